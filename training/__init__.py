"""Training: data sets, synthetic data generation, augmentation and metrics."""
