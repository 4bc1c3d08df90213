"""Choosing and constructing a backend (initial version: PyTorch only; ONNX Runtime and TensorRT to come)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from engine.backends.base import BackendUnavailable, InferenceBackend
from engine.backends.torch_backend import TorchBackend
from models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint

LOG = logging.getLogger(__name__)

BACKEND_NAMES = ("auto", "torch-cpu", "torch-cuda")


def create_backend(
    model_path: str | os.PathLike[str] = DEFAULT_CHECKPOINT,
    backend: str = "auto",
) -> InferenceBackend:
    """Build the backend named ``backend`` (or the best available for ``"auto"``) for a checkpoint."""
    if backend not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKEND_NAMES)}")
    model, meta = load_checkpoint(Path(model_path))
    if backend == "auto":
        backend = "torch-cuda" if torch.cuda.is_available() else "torch-cpu"
        LOG.info("backend: %s (auto)", backend)
    if backend == "torch-cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailable("torch-cuda: no CUDA device found (torch.cuda.is_available() is False)")
        return TorchBackend(model, meta, device="cuda")
    return TorchBackend(model, meta, device="cpu")
