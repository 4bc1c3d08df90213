"""The CUDA device layer the TensorRT backend runs on: device selection, identity and one stream.

TensorRT needs raw device addresses and a stream handle. In production both come from PyTorch
(:class:`TorchCudaDevice`: CUDA tensors and a ``torch.cuda.Stream``, see engine/README.md "Why
PyTorch CUDA tensors instead of pycuda"). The backend talks to this layer only through
:class:`DeviceLayer`, so a test can put a host-memory layer in its place and run the backend's
real build → cache → deserialize → infer glue on a CPU (``tests/test_tensorrt_contract.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

import torch

NO_CUDA = "no CUDA device found (torch.cuda.is_available() is False)"


class DeviceLayer(Protocol):
    """What the TensorRT backend needs from a device: where tensors live, who it is, one stream."""

    #: The device tensors are allocated on (``torch.empty(..., device=layer.device)``).
    device: torch.device

    def identity(self) -> tuple[str, str, int]:
        """``(name, "major.minor", SM count)`` of the device (part of the engine cache key)."""
        ...

    def stream_handle(self) -> int:
        """The raw stream handle passed to ``IExecutionContext.execute_async_v3``."""
        ...

    def on_stream(self) -> contextlib.AbstractContextManager[None]:
        """Context in which tensor work (uploads, resize, sigmoid) is queued on the same stream."""
        ...

    def synchronize(self) -> None:
        """Wait until all work queued on the stream is done."""
        ...


def resolve_cuda_device(device: str | int | torch.device = "cuda") -> torch.device:
    """``"cuda"`` → ``cuda:<current device>``; ``"cuda:1"``/``1`` → ``cuda:1``; anything else raises ``ValueError``.

    ``torch.cuda.set_device`` refuses a ``torch.device`` without an index, so the index is
    resolved here once (``torch.cuda.current_device()`` for a bare ``"cuda"``)."""
    resolved = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    if resolved.type != "cuda":
        raise ValueError(f"TensorRT runs on a CUDA device; got device {str(device)!r} (expected 'cuda' or 'cuda:N')")
    if resolved.index is None:
        resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


class TorchCudaDevice:
    """The production layer: one CUDA device made current, and one ``torch.cuda.Stream`` on it."""

    def __init__(self, device: str | int | torch.device = "cuda") -> None:
        if not torch.cuda.is_available():
            raise RuntimeError(NO_CUDA)
        self.device = resolve_cuda_device(device)
        torch.cuda.set_device(self.device)
        self.stream = torch.cuda.Stream(device=self.device)

    def identity(self) -> tuple[str, str, int]:
        """``(name, "major.minor", SM count)`` from ``torch.cuda.get_device_properties``."""
        props = torch.cuda.get_device_properties(self.device)
        return props.name, f"{props.major}.{props.minor}", int(props.multi_processor_count)

    def stream_handle(self) -> int:
        """``cudaStream_t`` of :attr:`stream` as an integer."""
        return int(self.stream.cuda_stream)

    @contextlib.contextmanager
    def on_stream(self) -> Iterator[None]:
        """Make :attr:`stream` current for the block."""
        with torch.cuda.stream(self.stream):
            yield

    def synchronize(self) -> None:
        """Block until the stream is idle."""
        self.stream.synchronize()
