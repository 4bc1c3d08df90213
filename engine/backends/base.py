"""The one interface every inference backend implements.

Contract (the same for PyTorch, ONNX Runtime and TensorRT):

* :meth:`InferenceBackend.infer` takes a batch of ``uint8`` BGR frames ``N×H×W×3`` already at
  the model's input size and returns ``float32`` logits ``N×1×H×W``.
* :meth:`InferenceBackend.predict` takes one ``uint8`` BGR frame of any size and returns the
  instrument probability ``H×W`` (``float32`` in [0, 1]) at the model's input size. The base
  implementation resizes on the CPU; GPU backends override it to resize on the device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from models.checkpoint import ModelMeta
from models.frame_model import resize_to_input, resize_to_input_fast


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this machine; the message says why and what to install."""


class InferenceBackend(ABC):
    """Runs a segmentation model described by :class:`~models.checkpoint.ModelMeta`."""

    #: Short identifier, e.g. ``"onnxruntime-cpu"``, ``"torch-cuda"``, ``"tensorrt"``.
    name: str = "abstract"
    #: Whether :meth:`infer`/:meth:`predict` may run in several threads at once (CPU backends whose
    #: runtime is thread-safe). A pipeline uses this to run more than one inference worker.
    concurrent_calls: bool = False

    def __init__(self, meta: ModelMeta) -> None:
        self.meta = meta

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` of the frames :meth:`infer` accepts."""
        return self.meta.input_size

    @property
    def threshold(self) -> float:
        """Probability at or above which a pixel is "instrument"."""
        return self.meta.threshold

    @abstractmethod
    def infer(self, frames: np.ndarray) -> np.ndarray:
        """``uint8`` BGR ``N×H×W×3`` at :attr:`input_size` → ``float32`` logits ``N×1×H×W``."""

    def describe(self) -> str:
        """One line naming the backend, its device and precision (for logs and the HUD)."""
        return self.name

    def check_batch(self, frames: np.ndarray) -> None:
        """Raise ``ValueError`` unless ``frames`` is a ``uint8`` ``N×H×W×3`` batch at the input size."""
        height, width = self.input_size
        if (
            not isinstance(frames, np.ndarray)
            or frames.dtype != np.uint8
            or frames.ndim != 4
            or frames.shape[1:] != (height, width, 3)
            or frames.shape[0] < 1
        ):
            got = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
            raise ValueError(f"{self.name}: expected uint8 frames of shape N×{height}×{width}×3 (BGR), got {got}")

    def check_frame(self, frame: np.ndarray) -> None:
        """Raise ``ValueError`` unless ``frame`` is one non-empty ``uint8`` ``H×W×3`` BGR image."""
        if (
            not isinstance(frame, np.ndarray)
            or frame.dtype != np.uint8
            or frame.ndim != 3
            or frame.shape[2] != 3
            or frame.shape[0] < 1
            or frame.shape[1] < 1
        ):
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"{self.name}: expected a uint8 H×W×3 BGR frame, got {got}")

    def resize_frame(self, frame: np.ndarray, fast: bool = False) -> np.ndarray:
        """Resize a BGR frame to the input size (area interpolation when shrinking).

        ``fast``: :func:`~models.frame_model.resize_to_input_fast` (exact 2× halvings first; the app's path)."""
        self.check_frame(frame)
        return (resize_to_input_fast if fast else resize_to_input)(frame, self.input_size)

    def predict(self, frame: np.ndarray) -> np.ndarray:
        """One BGR frame of any size → ``float32`` instrument probability at the input size."""
        logits = self.infer(np.ascontiguousarray(self.resize_frame(frame))[None])
        return sigmoid(logits[0, 0])

    def close(self) -> None:
        """Release device resources; the backend is unusable afterwards."""

    def __enter__(self) -> InferenceBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Numerically safe logistic function, returned as ``float32``."""
    x = np.clip(logits.astype(np.float32, copy=False), -30.0, 30.0)
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32, copy=False)
