"""Inference backends behind one interface, and the factory that picks one."""

from engine.backends.base import BackendUnavailable, InferenceBackend, sigmoid
from engine.backends.factory import BACKEND_NAMES, create_backend

__all__ = ["BACKEND_NAMES", "BackendUnavailable", "InferenceBackend", "create_backend", "sigmoid"]
