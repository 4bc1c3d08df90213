"""The GPU infer + compose stage: one stage in place of infer → post-process → compose for GPU backends.

Backends that declare ``device == "cuda"`` and ``device_tensors`` (``engine/backends/registry.py``:
torch-cuda, tensorrt) run each frame through :class:`app.gpu.compose.GpuFramePath`: one upload of the
``uint8`` frame, resize, inference, sigmoid, smoothing, mask up-sampling, blend and contour on the
device, one download of the composed frame (``frame.output``). CUDA graphs are on by default where the
backend declares them (shapes are static: one frame size, one model input); otherwise, or when the
capture fails, the steps run eagerly and the reason is logged. Other backends keep the CPU stages.

The stage also runs on CPU tensors (a CPU backend with ``infer_tensor``, e.g. torch-cpu), which is how
the tests compare it with the CPU path through the real pipeline.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import torch

from app.core.overlay import OverlayStyle, ViewState
from app.core.stage import BaseStage, Frame
from app.core.stage_timer import StageTimer
from app.gpu.compose import CudaGraphRunner, GpuFramePath, ViewFlags
from app.size import Size
from engine.backends import InferenceBackend, capabilities

LOG = logging.getLogger(__name__)
Clock = Callable[[], float]
#: Host output frames the path cycles through: enough for the frames queued and held after this stage.
OUT_SLOTS = 8


def uses_gpu_path(backend: InferenceBackend) -> bool:
    """Whether ``backend`` declares a CUDA device and device-tensor I/O (then the pipeline uses :class:`GpuInferCompose`)."""
    try:
        caps = capabilities(backend.name)
    except ValueError:  # a backend outside the registry (a test double): the CPU stages
        return False
    return caps.device == "cuda" and caps.device_tensors and hasattr(backend, "infer_tensor")


def graphs_reason(backend: InferenceBackend, requested: bool) -> str | None:
    """Why CUDA graphs stay off for ``backend`` (``None``: try them)."""
    if not requested:
        return "CUDA graphs disabled (--no-cuda-graphs)"
    try:
        declared = capabilities(backend.name).cuda_graphs
    except ValueError:
        declared = False
    if not declared:
        return f"backend {backend.name} does not declare CUDA graph support"
    if getattr(backend, "cuda_graphs", False):
        return f"backend {backend.name} replays its own CUDA graph of the model"
    return None


class GpuInferCompose(BaseStage):
    """Upload → resize → infer → sigmoid → smooth → up-sample → blend/contour → download on the backend's device.

    Sets ``frame.output`` (a host array reused after :data:`OUT_SLOTS` frames) and, with ``masks``,
    ``frame.mask``. One worker thread (GPU backends take one). ``timer``: ``upload``, ``preprocess``,
    ``inference``, ``postprocess``, ``compose`` (CUDA events on a CUDA device) and ``download``; with a
    CUDA graph the replay is ``inference`` and the three steps inside it have no samples of their own.
    ``threshold``: the instrument probability threshold (default: the backend's, from the model file).
    """

    name = "gpu-infer-compose"

    def __init__(
        self,
        backend: InferenceBackend,
        frame_size: Size,
        style: OverlayStyle,
        view: ViewState,
        smooth: float,
        clock: Clock,
        timer: StageTimer | None = None,
        cuda_graphs: bool = True,
        masks: bool = False,
        threshold: float | None = None,
    ) -> None:
        infer = getattr(backend, "infer_tensor", None)
        if infer is None:
            raise ValueError(f"backend {backend.name} cannot run on device tensors (it has no infer_tensor)")
        device = torch.device(getattr(backend, "device", "cpu"))
        self.backend = backend
        self.view = view
        self.clock = clock
        self.timer = timer
        self.masks = masks
        self.path = GpuFramePath(frame_size.wh, backend.input_size, infer, style,
                                 backend.threshold if threshold is None else threshold, smooth, device, OUT_SLOTS)
        reason = graphs_reason(backend, cuda_graphs)
        self.runner = CudaGraphRunner(device, enabled=reason is None)
        if reason is not None:
            self.runner.reason = reason
            LOG.info("GPU frame path: CUDA graphs off: %s", reason)
        stream = getattr(backend, "stream_context", None)
        self._stream: Callable[[], contextlib.AbstractContextManager[None]] = stream or contextlib.nullcontext

    @property
    def graphs_active(self) -> bool:
        """Whether frames are replayed from CUDA graphs (``False`` after a failed capture)."""
        return self.runner.active

    def process(self, frame: Frame) -> list[Frame]:
        """Set ``frame.output`` (and ``frame.mask`` when asked) and the inference timestamps."""
        frame.times.infer_start = self.clock()
        view = ViewFlags(self.view.overlay, self.view.mask_only, self.view.contours)
        with self._stream():
            if self.timer is None:
                frame.output = self.path.process(frame.image, view, self.runner)
            else:
                frame.output = self.path.process_timed(frame.image, self.timer, view, self.runner)
            if self.masks:
                frame.mask = self.path.mask.to(torch.uint8).mul_(255).cpu().numpy()
        frame.times.infer_end = self.clock()
        return [frame]

    def close(self) -> None:
        """Resolve the CUDA timing events still in flight (from the worker thread, at the end)."""
        if self.timer is not None:
            with self._stream():
                self.timer.flush()

