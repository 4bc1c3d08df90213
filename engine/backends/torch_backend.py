"""PyTorch backend: CPU (float32) and CUDA (FP16, channels-last, optional CUDA graphs)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from engine.backends.base import BackendUnavailable, InferenceBackend
from engine.backends.cuda_device import NO_CUDA
from models.checkpoint import ModelMeta
from models.frame_model import FrameSegmenter


def resize_on_device(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a ``uint8`` ``H×W×3`` tensor to ``size`` (bilinear, antialiased) on its device."""
    height, width = size
    if tuple(image.shape[:2]) == (height, width):
        return image
    nchw = image.permute(2, 0, 1)[None].float()
    nchw = F.interpolate(nchw, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return nchw.round_().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous()


@contextlib.contextmanager
def exact_fp32_convolutions(active: bool) -> Iterator[None]:
    """Within the block, cuDNN convolutions on float32 inputs compute in IEEE float32, not TF32.

    PyTorch lets cuDNN use TF32 tensor cores for float32 convolutions by default
    (``torch.backends.cudnn.allow_tf32``); on an H200 that put the "fp32" backend 0.036 logits
    from the CPU reference. The fp32 backend is the reference mode, so it turns TF32 off for its
    own calls and restores the process setting afterwards.
    """
    if not active:
        yield
        return
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = previous


class _GraphRunner:
    """One captured CUDA graph of the model forward for one fixed input shape."""

    def __init__(self, model: torch.nn.Module, shape: tuple[int, ...], device: torch.device, warmup: int = 3) -> None:
        self.static_input = torch.zeros(shape, dtype=torch.uint8, device=device)
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up (cuDNN autotuning, allocator) outside the capture
            for _ in range(warmup):
                model(self.static_input)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_output = model(self.static_input).float()

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.static_input.copy_(batch, non_blocking=True)
        self.graph.replay()
        return self.static_output.clone()


class TorchBackend(InferenceBackend):
    """Runs the :class:`FrameSegmenter` directly in PyTorch.

    ``cuda_graphs=True`` (CUDA only) captures the forward once per input shape after a warm-up
    on a side stream; each call then copies the batch into the static input buffer and replays
    the graph, removing the per-kernel launch overhead. ``threads`` (CPU only): intra-op threads
    of each call, set in the calling thread (PyTorch's CPU thread count is per calling thread).
    """

    def __init__(
        self,
        model: FrameSegmenter,
        meta: ModelMeta,
        device: str = "cpu",
        half: bool | None = None,
        channels_last: bool | None = None,
        cuda_graphs: bool = False,
        threads: int | None = None,
    ) -> None:
        super().__init__(meta)
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(NO_CUDA)
        on_cuda = self.device.type == "cuda"
        self.half = on_cuda if half is None else half
        if self.half and not on_cuda:
            raise ValueError("FP16 is only supported on CUDA in the torch backend; use half=False on the CPU")
        if cuda_graphs and not on_cuda:
            raise ValueError("CUDA graphs need device='cuda'")
        self.channels_last = on_cuda if channels_last is None else channels_last
        self.cuda_graphs = cuda_graphs
        if threads is not None and (threads < 1 or on_cuda):
            raise ValueError(f"threads={threads}: expected a whole number >= 1, and only on the CPU")
        self.threads = threads
        self.name = "torch-cuda" if on_cuda else "torch-cpu"
        # A CPU forward in inference mode is thread-safe; CUDA calls share one stream (and CUDA graphs' buffers).
        self.concurrent_calls = not on_cuda
        model = model.to(self.device).eval()
        if self.half:
            model = model.half()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self._graphs: dict[tuple[int, ...], _GraphRunner] = {}

    def describe(self) -> str:
        """Backend, device and precision."""
        device = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"
        graphs = ", CUDA graphs" if self.cuda_graphs else ""
        threads = f", {self.threads} thread{'' if self.threads == 1 else 's'}" if self.threads else ""
        return f"{self.name} ({device}, {'fp16' if self.half else 'fp32'}{graphs}{threads})"

    @torch.no_grad()
    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        """Device ``uint8`` batch → device ``float32`` logits."""
        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with exact_fp32_convolutions(self.device.type == "cuda" and not self.half):
            if not self.cuda_graphs:
                return self.model(frames).float()
            shape = tuple(frames.shape)
            runner = self._graphs.get(shape)
            if runner is None:
                runner = self._graphs[shape] = _GraphRunner(self.model, shape, self.device)
            return runner(frames)

    def infer_tensor(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8`` BGR ``N×H×W×3`` on :attr:`device` → ``float32`` logits ``N×1×H×W`` on the device (no host copy).

        Capturable in a caller's CUDA graph when this backend's own ``cuda_graphs`` is off."""
        return self._run(frames)

    def stream_context(self) -> contextlib.AbstractContextManager[None]:
        """Where :meth:`infer_tensor`'s neighbours must run: PyTorch's current stream (nothing to enter)."""
        return contextlib.nullcontext()

    def infer(self, frames: np.ndarray) -> np.ndarray:
        """``uint8`` BGR ``N×H×W×3`` → ``float32`` logits ``N×1×H×W``."""
        self.check_batch(frames)
        batch = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, non_blocking=True)
        return self._run(batch).cpu().numpy()

    @torch.no_grad()
    def predict(self, frame: np.ndarray) -> np.ndarray:
        """Resize on the device when on CUDA (upload uint8, resize, normalise and infer on the GPU)."""
        if self.device.type != "cuda":
            return super().predict(frame)
        self.check_frame(frame)
        image = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device, non_blocking=True)
        image = resize_on_device(image, self.input_size)
        probability = torch.sigmoid(self._run(image[None]))[0, 0]
        return probability.cpu().numpy()

    def close(self) -> None:
        """Drop captured graphs and the model."""
        self._graphs.clear()
