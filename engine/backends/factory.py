"""Choosing and constructing a backend.

``auto`` tries TensorRT → PyTorch CUDA → ONNX Runtime CPU (→ PyTorch CPU when onnxruntime is
missing) and logs ONE line on the ``engine`` logger naming the backend and why. An explicitly
named backend that cannot run raises :class:`BackendUnavailable` with the reason and the fix.
Every backend accepts a ``.pt`` checkpoint or an ``.onnx`` file exported by :mod:`engine.export`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

from engine.backends.base import BackendUnavailable, InferenceBackend
from engine.backends.onnxruntime_backend import OnnxRuntimeBackend, onnxruntime_unavailable
from engine.backends.tensorrt_backend import TensorRTBackend, tensorrt_unavailable
from engine.backends.torch_backend import NO_CUDA, TorchBackend
from engine.export import load_model_source
from models.checkpoint import DEFAULT_CHECKPOINT

LOG = logging.getLogger("engine")

#: Concrete backends, fastest first (the ``auto`` order is a subset of this).
CONCRETE_BACKENDS = (
    "tensorrt",
    "torch-cuda",
    "onnxruntime-tensorrt",
    "onnxruntime-cuda",
    "onnxruntime-cpu",
    "torch-cpu",
)
BACKEND_NAMES = ("auto", *CONCRETE_BACKENDS)
AUTO_ORDER = ("tensorrt", "torch-cuda", "onnxruntime-cpu", "torch-cpu")
PRECISION_CHOICES = ("auto", "fp32", "fp16")


def _cuda_unavailable() -> str | None:
    return None if torch.cuda.is_available() else NO_CUDA


_CHECKS: dict[str, Callable[[], str | None]] = {
    "tensorrt": tensorrt_unavailable,
    "torch-cuda": _cuda_unavailable,
    "onnxruntime-tensorrt": lambda: onnxruntime_unavailable("tensorrt") or _cuda_unavailable(),
    "onnxruntime-cuda": lambda: onnxruntime_unavailable("cuda") or _cuda_unavailable(),
    "onnxruntime-cpu": lambda: onnxruntime_unavailable("cpu"),
    "torch-cpu": lambda: None,
}


def backend_unavailable(name: str) -> str | None:
    """``None`` if backend ``name`` can run on this machine, else the reason (with the fix)."""
    if name not in _CHECKS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKEND_NAMES)}")
    return _CHECKS[name]()


def available_backends() -> dict[str, str | None]:
    """Every concrete backend name → ``None`` if available, else the reason it is not."""
    return {name: backend_unavailable(name) for name in CONCRETE_BACKENDS}


def _construct(name: str, model_path: Path, precision: str, threads: int | None) -> InferenceBackend:
    if name == "tensorrt":
        return TensorRTBackend(model_path, precision=precision)
    if name.startswith("onnxruntime-"):
        return OnnxRuntimeBackend(model_path, provider=name.removeprefix("onnxruntime-"), precision=precision,
                                  threads=threads)
    model, meta = load_model_source(model_path)
    if name == "torch-cuda":
        return TorchBackend(model, meta, device="cuda", half=precision != "fp32")
    if precision == "fp16":
        raise ValueError("torch-cpu runs in fp32 only; use precision='fp32' or 'auto'")
    return TorchBackend(model, meta, device="cpu")


def first_backend_to_try(backend: str) -> str:
    """The backend :func:`create_backend` tries first for ``backend``: itself, or for ``"auto"`` the
    first of :data:`AUTO_ORDER` whose requirements are met here (construction can still fall back)."""
    if backend != "auto":
        return backend
    return next((name for name in AUTO_ORDER if backend_unavailable(name) is None), AUTO_ORDER[-1])


def create_backend(
    model_path: str | os.PathLike[str] = DEFAULT_CHECKPOINT,
    backend: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
) -> InferenceBackend:
    """Build the backend named ``backend`` (or the best available for ``"auto"``) for a ``.pt`` or ``.onnx`` model.

    ``precision``: ``"auto"`` (FP16 on GPUs, FP32 on the CPU), ``"fp32"`` or ``"fp16"``.
    ``threads``: CPU threads for ONNX Runtime (default: physical cores); a pipeline that decodes
    and encodes video on the same machine may leave a core to those stages.
    Raises :class:`BackendUnavailable` when an explicitly named backend cannot run here.
    """
    if backend not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKEND_NAMES)}")
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISION_CHOICES)}")
    model_path = Path(model_path)
    if backend != "auto":
        reason = backend_unavailable(backend)
        if reason:
            raise BackendUnavailable(f"{backend}: {reason}")
        return _construct(backend, model_path, precision, threads)
    skipped: list[str] = []
    for name in AUTO_ORDER:
        reason = backend_unavailable(name)
        if reason:
            skipped.append(reason if reason.startswith(name) else f"{name}: {reason}")
            continue
        try:
            chosen = _construct(name, model_path, precision, threads)
        except BackendUnavailable as error:
            skipped.append(f"{name}: {error}")
            continue
        why = "; ".join(skipped) if skipped else "fastest available"
        LOG.info("backend %s: %s", name, why)
        return chosen
    raise BackendUnavailable("no backend could start: " + "; ".join(skipped))  # torch-cpu always starts
