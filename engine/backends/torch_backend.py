"""PyTorch backend: CPU (float32) and CUDA (FP16, channels-last, optional CUDA graphs)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engine.backends.base import BackendUnavailable, InferenceBackend
from models.checkpoint import ModelMeta
from models.frame_model import FrameSegmenter


class TorchBackend(InferenceBackend):
    """Runs the :class:`FrameSegmenter` directly in PyTorch."""

    def __init__(
        self,
        model: FrameSegmenter,
        meta: ModelMeta,
        device: str = "cpu",
        half: bool | None = None,
        channels_last: bool | None = None,
    ) -> None:
        super().__init__(meta)
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("no CUDA device found (torch.cuda.is_available() is False)")
        on_cuda = self.device.type == "cuda"
        self.half = on_cuda if half is None else half
        if self.half and not on_cuda:
            raise ValueError("FP16 is only supported on CUDA in the torch backend; use half=False on the CPU")
        self.channels_last = on_cuda if channels_last is None else channels_last
        self.name = "torch-cuda" if on_cuda else "torch-cpu"
        model = model.to(self.device).eval()
        if self.half:
            model = model.half()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    def describe(self) -> str:
        """Backend, device and precision."""
        device = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"
        return f"{self.name} ({device}, {'fp16' if self.half else 'fp32'})"

    @torch.inference_mode()
    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model(frames).float()

    def infer(self, frames: np.ndarray) -> np.ndarray:
        """``uint8`` BGR ``N×H×W×3`` → ``float32`` logits ``N×1×H×W``."""
        self.check_batch(frames)
        batch = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, non_blocking=True)
        return self._run(batch).cpu().numpy()

    @torch.inference_mode()
    def predict(self, frame: np.ndarray) -> np.ndarray:
        """Resize on the device when on CUDA (upload uint8, resize, normalise and infer on the GPU)."""
        if self.device.type != "cuda":
            return super().predict(frame)
        height, width = self.input_size
        image = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device, non_blocking=True)
        if image.shape[:2] != (height, width):
            nchw = image.permute(2, 0, 1)[None].float()
            nchw = F.interpolate(nchw, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
            image = nchw.round_().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0)
        probability = torch.sigmoid(self._run(image[None]))[0, 0]
        return probability.cpu().numpy()
