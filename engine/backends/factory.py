"""Choosing and constructing a backend.

``auto`` tries TensorRT → PyTorch CUDA → ONNX Runtime CPU (→ PyTorch CPU when onnxruntime is
missing): a backend whose requirements are missing, or that fails to construct for any reason,
is skipped with the reason logged, and the next one is tried; ONE INFO line on the ``engine``
logger names the backend chosen and why. An explicitly named backend that cannot run or start
raises :class:`BackendUnavailable` with the reason (the CLIs exit 2 with it). Every backend
accepts a ``.pt`` checkpoint or an ``.onnx`` file exported by :mod:`engine.export`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

from engine.backends.base import BackendUnavailable, InferenceBackend
from engine.backends.cuda_device import NO_CUDA
from engine.backends.onnxruntime_backend import OnnxRuntimeBackend, onnxruntime_unavailable
from engine.backends.registry import AUTO_ORDER, BACKEND_NAMES, CONCRETE_BACKENDS, capabilities
from engine.backends.tensorrt_backend import TensorRTBackend, tensorrt_unavailable
from engine.backends.torch_backend import TorchBackend
from engine.model_source import load_model_source
from models.checkpoint import DEFAULT_CHECKPOINT

LOG = logging.getLogger("engine")
PRECISION_CHOICES = ("auto", "fp32", "fp16", "int8")
__all__ = ["AUTO_ORDER", "BACKEND_NAMES", "CONCRETE_BACKENDS", "PRECISION_CHOICES", "available_backends",
           "backend_for_precision", "backend_unavailable", "construct", "create_backend", "resolve_backend"]


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
    if precision == "int8":
        raise ValueError(f"{name} does not run int8; int8 runs on onnxruntime-cpu (ONNX Runtime INT8 on the CPU)")
    model, meta = load_model_source(model_path)
    if name == "torch-cuda":
        return TorchBackend(model, meta, device="cuda", half=precision != "fp32")
    if precision == "fp16":
        raise ValueError("torch-cpu runs in fp32 only; use precision='fp32' or 'auto'")
    return TorchBackend(model, meta, device="cpu", threads=threads)


def construct(name: str, build: Callable[[], InferenceBackend]) -> InferenceBackend:
    """Run ``build`` for backend ``name``: :class:`BackendUnavailable` and ``ValueError`` (bad input)
    pass through; any other failure becomes :class:`BackendUnavailable` ``"<name>: could not start: …"``."""
    try:
        return build()
    except (BackendUnavailable, ValueError):
        raise
    except Exception as error:  # a GPU runtime can fail in many ways (RuntimeError, AssertionError, OSError)
        raise BackendUnavailable(f"{name}: could not start: {type(error).__name__}: {error}") from error


def resolve_backend(backend: str) -> str:
    """The one place ``auto`` is resolved: ``backend`` itself, or for ``"auto"`` the first of
    :data:`AUTO_ORDER` whose requirements are met here (:func:`create_backend` may still fall
    back further if it then fails to construct)."""
    if backend not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKEND_NAMES)}")
    if backend != "auto":
        return backend
    return next((name for name in AUTO_ORDER if backend_unavailable(name) is None), AUTO_ORDER[-1])


def backend_for_precision(backend: str, precision: str) -> str:
    """``backend``, except ``auto`` with ``int8``: ``onnxruntime-cpu``, the one backend that runs INT8."""
    return "onnxruntime-cpu" if backend == "auto" and precision == "int8" else backend


def create_backend(
    model_path: str | os.PathLike[str] = DEFAULT_CHECKPOINT,
    backend: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
) -> InferenceBackend:
    """Build the backend named ``backend`` (or the best available for ``"auto"``) for a ``.pt`` or ``.onnx`` model.

    ``precision``: ``"auto"`` (FP16 on GPUs; on ONNX Runtime CPU a cached INT8 build whose parity record
    passes and that was measured faster, else FP32: :mod:`engine.int8`), ``"fp32"``, ``"fp16"`` or
    ``"int8"`` (ONNX Runtime CPU only: ``backend="auto"`` then means ``onnxruntime-cpu``).
    ``threads``: CPU threads per call for backends that declare ``thread_control`` (default:
    physical cores for ONNX Runtime, PyTorch's own default for torch-cpu); ignored by GPU backends.
    Raises :class:`BackendUnavailable` when an explicitly named backend cannot run or start here.
    """
    resolve_backend(backend)  # validates the name
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISION_CHOICES)}")
    model_path = Path(model_path)
    if backend_for_precision(backend, precision) != backend:
        LOG.info("precision int8: backend onnxruntime-cpu (the only backend that runs int8)")
        backend = backend_for_precision(backend, precision)

    def build(name: str) -> InferenceBackend:
        planned = threads if capabilities(name).thread_control else None
        return construct(name, lambda: _construct(name, model_path, precision, planned))

    if backend != "auto":
        reason = backend_unavailable(backend)
        if reason:
            raise BackendUnavailable(f"{backend}: {reason}")
        return build(backend)
    skipped: list[str] = []
    bad_input: ValueError | None = None
    for name in AUTO_ORDER:
        reason = backend_unavailable(name)
        if reason:
            skipped.append(reason if reason.startswith(name) else f"{name}: {reason}")
            continue
        try:
            chosen = build(name)
        except (BackendUnavailable, ValueError) as error:
            LOG.warning("backend %s failed to start, trying the next: %s", name, error)
            skipped.append(f"{name} failed to start: {error}")
            if isinstance(error, ValueError) and bad_input is None:
                bad_input = error
            continue
        why = "; ".join(skipped) if skipped else "fastest available"
        LOG.info("backend %s: %s", name, why)
        return chosen
    if bad_input is not None:  # e.g. a missing or corrupt model file: every backend refused it
        raise bad_input
    raise BackendUnavailable("no backend could start: " + "; ".join(skipped))
