"""The GPU-resident frame path: upload once, resize, infer, sigmoid, up-sample, smooth, blend, contour, download once.

Torch functions that run on any device (CUDA tensors in the app, CPU tensors in the tests), with the
same semantics as the CPU path (:class:`app.core.overlay.Smoother` and :class:`app.core.overlay.Overlayer`):

* **resize** to the model input: bilinear with antialiasing, rounded to ``uint8`` (as the CUDA torch
  backend's ``resize_on_device``; the CPU backends use ``cv2.INTER_AREA``, see the test's bound);
* **sigmoid** of the logits in float32;
* **smoothing**: ``state = f·state + (1−f)·p`` at model resolution, the first frame taken as is
  (``--smooth f``; 0 = off);
* **mask**: the probability quantised to ``uint8`` (``round(255·p)``), up-sampled bilinearly to the
  frame size (``align_corners=False`` = OpenCV's pixel-centre convention), rounded, and compared with
  the CPU overlay's level ``min(254, max(0, 255·threshold − 0.5))``;
* **blend**: ``round((1−α)·frame + α·colour)`` on the instrument pixels;
* **contour**: a morphological band around the mask (max-pool dilation minus max-pool erosion, zero
  outside the frame) whose widths reproduce the coverage of OpenCV's anti-aliased
  ``drawContours(thickness)``, drawn in the solid colour (no anti-aliasing; holes get a contour too,
  unlike ``RETR_EXTERNAL``).

:class:`GpuFramePath` holds every buffer (a pinned host staging frame and a ring of pinned host output
frames on CUDA, the device frame, the model input, the smoothing state, the composed frame), so a frame
costs one host→device copy, device kernels and one device→host copy. :class:`CudaGraphRunner` captures
the static-shape infer + compose step as a CUDA graph and falls back to eager calls, with the reason
logged, when there is no CUDA device or the capture fails.

Wiring (stage timer names in brackets; :meth:`GpuFramePath.process_timed` does all of it):
``upload`` [upload] → ``preprocess`` [preprocess] → ``infer`` [inference] → ``postprocess``
[postprocess] → ``compose`` [compose] → ``download`` [download]. With CUDA graphs the four middle
steps are one replay, timed as [inference].
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from app.core.overlay import OverlayStyle
from app.core.stage_timer import StageTimer
from engine.backends.torch_backend import resize_on_device

LOG = logging.getLogger(__name__)

Infer = Callable[[torch.Tensor], torch.Tensor]  #: ``uint8`` BGR ``1×h×w×3`` → logits ``1×1×h×w`` (any float dtype)


# -- pure functions ------------------------------------------------------------------------------


def resize_frame(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``uint8`` ``H×W×3`` → ``uint8`` ``h×w×3`` at ``size`` = ``(h, w)``: the torch backends' own resize
    (:func:`engine.backends.torch_backend.resize_on_device`), so both GPU paths feed the model alike."""
    return resize_on_device(image, size)


def probability_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Logits ``1×1×h×w`` (or ``h×w``) of any float dtype → float32 probability ``h×w``."""
    return torch.sigmoid(logits.float()).reshape(logits.shape[-2:])


def smooth_(state: torch.Tensor, probability: torch.Tensor, keep: torch.Tensor | float) -> torch.Tensor:
    """In place: ``state = keep·state + (1 − keep)·probability`` (``keep`` 0 on the first frame, else the factor)."""
    state.mul_(keep).add_(probability * (1.0 - keep))
    return state


def threshold_level(threshold: float) -> float:
    """The CPU overlay's ``uint8`` level: a pixel is instrument when ``round(255·p) > level``."""
    return min(254.0, max(0.0, threshold * 255.0 - 0.5))


def upsample_mask(probability: torch.Tensor, size: tuple[int, int], threshold: float) -> torch.Tensor:
    """Float probability ``h×w`` → ``bool`` mask ``H×W`` at ``size`` = ``(H, W)``, as :meth:`Overlayer.mask`."""
    prob8 = (probability * 255.0).round_().clamp_(0, 255)
    if tuple(prob8.shape) != tuple(size):
        prob8 = F.interpolate(prob8[None, None], size=size, mode="bilinear", align_corners=False)[0, 0].round_()
    return prob8 > threshold_level(threshold)


def _max_pool(mask: torch.Tensor, radius: int, outside: float) -> torch.Tensor:
    """Separable ``(2r+1)²`` max-pool of a float ``H×W`` mask, padding with ``outside``."""
    if radius == 0:
        return mask
    x = F.pad(mask[None, None], (radius, radius, radius, radius), value=outside)
    x = F.max_pool2d(x, (1, 2 * radius + 1), stride=1)
    return F.max_pool2d(x, (2 * radius + 1, 1), stride=1)[0, 0]


def contour_radii(thickness: int) -> tuple[int, int]:
    """``(inner, outer)`` band widths in pixels matching OpenCV's anti-aliased contour of ``thickness``.

    Measured coverage of ``cv2.drawContours(..., thickness, LINE_AA)`` around filled shapes: thickness 1
    covers the mask's boundary pixels (74 %); thickness 2 the boundary (100 %), the pixels just outside
    (95 %) and the next ring inside (72 %); thickness 3–4 two rings each side (the second one outside 80 %,
    the third inside 60 %); thickness 6 three outside (61 %) and four inside (38 %).
    """
    if thickness <= 0:
        return (0, 0)
    if thickness == 1:
        return (1, 0)
    outer = (thickness + 1) // 2
    return (outer + 1, outer)


def contour_band(mask: torch.Tensor, thickness: int) -> torch.Tensor:
    """``bool`` ``H×W``: the contour band of ``mask`` (dilation by the outer width minus erosion by the inner one)."""
    inner, outer = contour_radii(thickness)
    m = mask.float()
    grown = _max_pool(m, outer, 0.0)
    shrunk = -_max_pool(-m, inner, 0.0)  # erosion; outside the frame counts as background (as findContours)
    return (grown - shrunk) > 0.5


def compose(
    frame: torch.Tensor,
    mask: torch.Tensor,
    style: OverlayStyle,
    overlay: bool = True,
    mask_only: bool = False,
    contours: bool = True,
    out: torch.Tensor | None = None,
    color: torch.Tensor | None = None,
) -> torch.Tensor:
    """The overlay of :meth:`Overlayer.draw` on ``uint8`` ``H×W×3``: blend + contour, or the mask-only view.

    Written to ``out`` (same shape as ``frame``) when given; ``frame`` itself is not changed. ``color``:
    the style's colour as a float32 tensor of 3 on the frame's device (pass a preallocated one inside a
    CUDA graph capture, where creating a tensor from host values is not allowed).
    """
    out = torch.empty_like(frame) if out is None else out
    if color is None:
        color = torch.tensor(style.color, dtype=torch.float32, device=frame.device)
    color8 = color.to(torch.uint8)
    mask3 = mask[..., None]
    if mask_only:
        torch.where(mask3, color8, color8.new_zeros(()), out=out)
        return out
    if not overlay:
        out.copy_(frame)
        return out
    alpha = style.alpha
    blended = frame.float().mul_(1.0 - alpha).add_(color * alpha).round_().clamp_(0, 255).to(torch.uint8)
    torch.where(mask3, blended, frame, out=out)
    if contours and style.contour_thickness > 0:
        band = contour_band(mask, style.contour_thickness)
        out.copy_(torch.where(band[..., None], color8, out))
    return out


# -- the preallocated frame path -----------------------------------------------------------------


@dataclass
class ViewFlags:
    """What to draw (the display's toggles): blend, mask-only view, contours."""

    overlay: bool = True
    mask_only: bool = False
    contours: bool = True

    def key(self) -> tuple[bool, bool, bool]:
        """Hashable form (one CUDA graph per distinct view)."""
        return (self.overlay, self.mask_only, self.contours)


class GpuFramePath:
    """Preallocated buffers and the per-frame steps for one frame size, model input size and device.

    ``frame_size`` is ``(width, height)`` (OpenCV's order: a source's ``frame_size.wh``), ``input_size`` is the model's
    ``(height, width)``. ``infer`` maps the ``uint8`` model input ``1×h×w×3`` to logits. ``smooth`` is
    the EMA factor (0 = off), ``threshold`` the model's probability threshold.
    """

    def __init__(
        self,
        frame_size: tuple[int, int],
        input_size: tuple[int, int],
        infer: Infer,
        style: OverlayStyle,
        threshold: float,
        smooth: float = 0.0,
        device: torch.device | str = "cpu",
        out_slots: int = 3,
    ) -> None:
        if not 0.0 <= smooth < 1.0:
            raise ValueError(f"smoothing factor must be in [0, 1), got {smooth}")
        if out_slots < 1:
            raise ValueError(f"out_slots must be at least 1, got {out_slots}")
        width, height = frame_size
        self.frame_size = frame_size
        self.input_size = input_size
        self.infer = infer
        self.style = style
        self.threshold = threshold
        self.smooth = smooth
        self.device = torch.device(device)
        self.on_cuda = self.device.type == "cuda"
        shape = (height, width, 3)
        pin = self.on_cuda
        self.frame = torch.empty(shape, dtype=torch.uint8, device=self.device)  #: the uploaded frame
        self.model_input = torch.empty((1, *input_size, 3), dtype=torch.uint8, device=self.device)
        self.state = torch.zeros(input_size, dtype=torch.float32, device=self.device)  #: smoothed probability
        self.mask = torch.zeros((height, width), dtype=torch.bool, device=self.device)
        self.composed = torch.empty(shape, dtype=torch.uint8, device=self.device)
        self._color = torch.tensor(style.color, dtype=torch.float32, device=self.device)
        self._keep = torch.zeros((), dtype=torch.float32, device=self.device)  # 0 until the first frame is in
        self._primed = False
        self._staging = torch.empty(shape, dtype=torch.uint8, pin_memory=pin) if self.on_cuda else None
        self._outputs = [torch.empty(shape, dtype=torch.uint8, pin_memory=pin) for _ in range(out_slots)]
        self._next_output = 0
        self._upload_done = torch.cuda.Event() if self.on_cuda else None
        self._download_done = torch.cuda.Event() if self.on_cuda else None
        self._uploaded_once = False

    # -- steps -----------------------------------------------------------------------------------

    def upload(self, frame: np.ndarray) -> torch.Tensor:
        """Copy a ``uint8`` ``H×W×3`` frame into :attr:`frame` (via pinned staging and a non-blocking copy on CUDA)."""
        if frame.dtype != np.uint8 or frame.shape != tuple(self.frame.shape):
            raise ValueError(f"expected a uint8 frame of shape {tuple(self.frame.shape)}, got {frame.dtype} {frame.shape}")
        if self._staging is None:
            np.copyto(self.frame.numpy(), frame)  # a CPU device: the frame buffer is host memory
            return self.frame
        if self._uploaded_once:
            self._upload_done.synchronize()  # the staging buffer may still be in flight from the last frame
        np.copyto(self._staging.numpy(), frame)  # read-only frames (LiveSource(copy=False)) are fine
        self.frame.copy_(self._staging, non_blocking=True)
        self._upload_done.record()
        self._uploaded_once = True
        return self.frame

    def preprocess(self) -> torch.Tensor:
        """Resize :attr:`frame` into :attr:`model_input`."""
        self.model_input[0].copy_(resize_frame(self.frame, self.input_size))
        return self.model_input

    def postprocess(self, logits: torch.Tensor) -> torch.Tensor:
        """Sigmoid, smoothing and the up-sampled, thresholded mask (into :attr:`mask`)."""
        probability = probability_from_logits(logits)
        smooth_(self.state, probability, self._keep)
        self.mask.copy_(upsample_mask(self.state, self.frame.shape[:2], self.threshold))
        return self.mask

    def compose(self, view: ViewFlags | None = None) -> torch.Tensor:
        """Draw :attr:`mask` on :attr:`frame` into :attr:`composed`."""
        view = view or ViewFlags()
        return compose(
            self.frame, self.mask, self.style, view.overlay, view.mask_only, view.contours, out=self.composed, color=self._color
        )

    @torch.no_grad()
    def step(self, view: ViewFlags | None = None) -> torch.Tensor:
        """preprocess → infer → postprocess → compose on the uploaded frame (static buffers: graph-capturable)."""
        self.preprocess()
        self.postprocess(self.infer(self.model_input))
        return self.compose(view)

    def frame_done(self) -> None:
        """After each step: from the second frame on, smoothing blends with the state (outside any graph)."""
        if not self._primed:
            self._keep.fill_(self.smooth)
            self._primed = True

    def reset_smoothing(self) -> None:
        """Forget the smoothed state (the next frame is taken as is)."""
        self._keep.fill_(0.0)
        self._primed = False

    def download(self) -> np.ndarray:
        """One device→host copy of :attr:`composed`; the array is reused after ``out_slots`` more downloads."""
        target = self._outputs[self._next_output]
        self._next_output = (self._next_output + 1) % len(self._outputs)
        if self._download_done is None:
            target.copy_(self.composed)
        else:
            target.copy_(self.composed, non_blocking=True)
            self._download_done.record()
            self._download_done.synchronize()
        return target.numpy()

    def process(self, frame: np.ndarray, view: ViewFlags | None = None, runner: CudaGraphRunner | None = None) -> np.ndarray:
        """The whole path for one frame (eager, or through ``runner``); the composed frame on the host."""
        self.upload(frame)
        if runner is None:
            self.step(view)
        else:
            runner.run((view or ViewFlags()).key(), lambda: self.step(view), self)
        self.frame_done()
        return self.download()

    def process_timed(
        self, frame: np.ndarray, timer: StageTimer, view: ViewFlags | None = None, runner: CudaGraphRunner | None = None
    ) -> np.ndarray:
        """:meth:`process` with every step timed in ``timer`` (device spans: CUDA events on a CUDA device).

        Eager: ``upload``, ``preprocess``, ``inference``, ``postprocess``, ``compose``, ``download``. With an
        active ``runner`` the graph replay (preprocess to compose, one launch) is timed as ``inference`` and
        the three steps inside it get no samples of their own.
        """
        with timer.device_span("upload"):
            self.upload(frame)
        if runner is not None and runner.active:
            with timer.device_span("inference"):
                runner.run((view or ViewFlags()).key(), lambda: self.step(view), self)
        else:
            with torch.no_grad():
                with timer.device_span("preprocess"):
                    self.preprocess()
                with timer.device_span("inference"):
                    logits = self.infer(self.model_input)
                with timer.device_span("postprocess"):
                    self.postprocess(logits)
                with timer.device_span("compose"):
                    self.compose(view)
        self.frame_done()
        with timer.span("download"):  # host clock: it ends with the host waiting for the copy
            return self.download()

    # -- state save/restore around graph warm-up -------------------------------------------------

    def save_state(self) -> Any:
        """What a warm-up run may change (the smoothing state), to restore after a capture."""
        return self.state.clone()

    def restore_state(self, saved: Any) -> None:
        """Undo warm-up runs (see :meth:`save_state`)."""
        self.state.copy_(saved)


class CudaGraphRunner:
    """Runs a static-shape step as a captured CUDA graph, one graph per key, falling back to eager calls.

    ``enabled=False``, a non-CUDA device or a failed capture make every call eager; :attr:`reason`
    says why (logged once at warning level). The step must read and write only preallocated tensors
    (as :meth:`GpuFramePath.step` does). Warm-up runs (needed before a capture) execute the step, so
    the state of ``path`` is saved before and restored after them.
    """

    def __init__(self, device: torch.device | str, enabled: bool = True, warmup: int = 3) -> None:
        self.device = torch.device(device)
        self.warmup = warmup
        self.reason: str | None = None
        self._graphs: dict[Any, torch.cuda.CUDAGraph] = {}
        if not enabled:
            self.reason = "CUDA graphs disabled"
        elif self.device.type != "cuda":
            self.reason = f"device is {self.device.type}, CUDA graphs need a CUDA device"
        elif not torch.cuda.is_available():
            self.reason = "no CUDA device found (torch.cuda.is_available() is False)"
        if self.reason:
            LOG.info("CUDA graphs off: %s", self.reason)

    @property
    def active(self) -> bool:
        """Whether steps are (or will be) replayed from graphs."""
        return self.reason is None

    @property
    def captured(self) -> int:
        """Graphs captured so far."""
        return len(self._graphs)

    def run(self, key: Any, step: Callable[[], Any], path: GpuFramePath | None = None) -> None:
        """Replay the graph of ``key`` (capturing it on first use), or call ``step`` eagerly."""
        if self.reason is not None:
            step()
            return
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._capture(step, path)
            if graph is None:
                step()
                return
            self._graphs[key] = graph
        graph.replay()

    def _capture(self, step: Callable[[], Any], path: GpuFramePath | None) -> torch.cuda.CUDAGraph | None:
        saved = path.save_state() if path is not None else None
        try:
            side = torch.cuda.Stream(device=self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(self.warmup):
                    step()
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            return graph
        except Exception as error:  # any capture failure: fall back, say why
            self.reason = f"capture failed: {type(error).__name__}: {error}"
            LOG.warning("CUDA graphs off: %s", self.reason)
            torch.cuda.synchronize(self.device)
            return None
        finally:
            if path is not None:
                path.restore_state(saved)
