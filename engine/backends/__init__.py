"""Inference backends behind one interface, and the factory that picks one."""

from engine.backends.base import BackendUnavailable, InferenceBackend, sigmoid
from engine.backends.factory import (
    AUTO_ORDER,
    BACKEND_NAMES,
    CONCRETE_BACKENDS,
    available_backends,
    backend_unavailable,
    create_backend,
)

__all__ = [
    "AUTO_ORDER",
    "BACKEND_NAMES",
    "CONCRETE_BACKENDS",
    "BackendUnavailable",
    "InferenceBackend",
    "available_backends",
    "backend_unavailable",
    "create_backend",
    "sigmoid",
]
