"""The processing stages between capture and the sinks: infer → reorder → post-process → compose (→ HUD).

Each is a :class:`app.core.stage.Stage`: one :meth:`process` per frame, no threads, no queues.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from app.core.overlay import HudInfo, Overlayer, OverlayStyle, Smoother, ViewState, draw_hud
from app.core.stage import BaseStage, Frame
from app.core.stage_timer import StageTimer
from app.size import Size
from engine.backends import InferenceBackend, sigmoid

Clock = Callable[[], float]


class Infer(BaseStage):
    """Runs the model on the full frame; several inference threads may share one (thread-safe backends)."""

    name = "inference"

    def __init__(self, backend: InferenceBackend, clock: Clock, timer: StageTimer | None = None) -> None:
        """``timer``: record ``preprocess`` (resize) and ``inference`` (model + sigmoid) per frame; a backend
        with its own ``predict`` (GPU backends resize on the device) is timed as ``inference`` only.

        CPU-resized frames take the fast area path (``resize_frame(fast=True)``: exact 2× halvings first)."""
        self.backend = backend
        self.clock = clock
        self.timer = timer
        self.split = type(backend).predict is InferenceBackend.predict
        self._lock = threading.Lock()  # several worker threads record into the same rings

    def process(self, frame: Frame) -> list[Frame]:
        """Set ``frame.probability`` and the inference timestamps."""
        frame.times.infer_start = self.clock()
        frame.probability = self._predict(frame.image)
        frame.times.infer_end = self.clock()
        return [frame]

    def _predict(self, image: np.ndarray) -> np.ndarray:
        start = time.perf_counter_ns()
        if not self.split:
            probability = self.backend.predict(image)
            if self.timer is not None:
                with self._lock:
                    self.timer.record_since("inference", start)
            return probability
        resized = np.ascontiguousarray(self.backend.resize_frame(image, fast=True))
        resized_at = time.perf_counter_ns()
        probability = sigmoid(self.backend.infer(resized[None])[0, 0])
        if self.timer is not None:
            with self._lock:
                self.timer.record("preprocess", resized_at - start)
                self.timer.record_since("inference", resized_at)
        return probability


class Reorder(BaseStage):
    """Puts frames back in ``sequence`` order (inference workers may finish out of order).

    Holds at most as many frames as are in flight between inference and here, so memory stays bounded."""

    name = "reorder"

    def __init__(self) -> None:
        self._waiting: dict[int, Frame] = {}
        self._expected = 0

    def process(self, frame: Frame) -> list[Frame]:
        """The frames now due, in order (empty while ``frame`` waits for an earlier one)."""
        self._waiting[frame.sequence] = frame
        due = []
        while self._expected in self._waiting:
            due.append(self._waiting.pop(self._expected))
            self._expected += 1
        return due


class PostProcess(BaseStage):
    """Temporal smoothing of the probability, then the threshold: ``frame.mask`` at frame resolution."""

    name = "post-process"
    timing = "postprocess"

    def __init__(self, smooth: float, threshold: float) -> None:
        self.smoother = Smoother(smooth)
        self.overlayer = Overlayer(OverlayStyle(), threshold)

    def process(self, frame: Frame) -> list[Frame]:
        """Set ``frame.mask``."""
        if frame.probability is None:
            raise ValueError(f"frame {frame.index}: no probability (is the inference stage missing?)")
        frame.mask = self.overlayer.mask(self.smoother(frame.probability), Size.of(frame.image))
        return [frame]


class Compose(BaseStage):
    """Draws the mask on the frame as the view asks (overlay, contours, mask-only): ``frame.output``."""

    name = "compose"
    timing = "compose"

    def __init__(self, style: OverlayStyle, view: ViewState) -> None:
        self.overlayer = Overlayer(style, threshold=0.5)
        self.view = view

    def process(self, frame: Frame) -> list[Frame]:
        """Set ``frame.output`` (drawn in place on the input image)."""
        if frame.mask is None:
            raise ValueError(f"frame {frame.index}: no mask (is the post-process stage missing?)")
        frame.output = self.overlayer.draw(frame.image, frame.mask, self.view)
        return [frame]


class Hud(BaseStage):
    """Draws the HUD (fps, latency, backend, drops, PAUSED, keys) on ``frame.output``.

    Where it sits in the stage list decides what carries it: before the video sink it is burnt into
    the recording (``--burn-hud``), after it only the display shows it. The fps is an exponential
    average of the intervals between frames reaching this stage."""

    name = "hud"

    def __init__(self, backend: str, clock: Clock, view: ViewState, dropped: Callable[[], int]) -> None:
        self.info = HudInfo(backend=backend)
        self.clock = clock
        self.view = view
        self.dropped = dropped
        self._interval: float | None = None
        self._last: float | None = None

    def process(self, frame: Frame) -> list[Frame]:
        """Update the figures and draw them on ``frame.output``."""
        if frame.output is None:
            raise ValueError(f"frame {frame.index}: nothing composed (is the compose stage missing?)")
        now = self.clock()
        if self._last is not None:
            interval = now - self._last
            self._interval = interval if self._interval is None else 0.9 * self._interval + 0.1 * interval
            self.info.fps = 1.0 / self._interval if self._interval > 0 else 0.0
        self._last = now
        self.info.latency_ms = (now - frame.times.capture) * 1000.0
        self.info.dropped = self.dropped()
        self.info.paused = self.view.paused
        draw_hud(frame.output, self.info)
        return [frame]
