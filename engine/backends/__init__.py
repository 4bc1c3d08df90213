"""Inference backends behind one interface, their declared capabilities, and the factory that picks one."""

from engine.backends.base import BackendUnavailable, InferenceBackend, sigmoid
from engine.backends.factory import (
    available_backends,
    backend_unavailable,
    create_backend,
    resolve_backend,
)
from engine.backends.registry import AUTO_ORDER, BACKEND_NAMES, CONCRETE_BACKENDS, REGISTRY, Capabilities, capabilities

__all__ = [
    "AUTO_ORDER",
    "BACKEND_NAMES",
    "CONCRETE_BACKENDS",
    "REGISTRY",
    "BackendUnavailable",
    "Capabilities",
    "InferenceBackend",
    "available_backends",
    "backend_unavailable",
    "capabilities",
    "create_backend",
    "resolve_backend",
    "sigmoid",
]
