"""Inference engine: ONNX export, TensorRT engine build/cache and the inference backends."""
