"""Network definition, self-describing checkpoints and the shipped default model."""
