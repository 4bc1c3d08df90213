"""Sinks: the last stages, which take composed frames out of the pipeline (files, stats, the window).

They wrap the writers of :mod:`app.outputs.writers` and the counters of :mod:`app.core.stats` unchanged. A new
sink (a network stream, a GPU encoder) is one more class here and one more entry in the stage list.
"""

from __future__ import annotations

import threading

import numpy as np

from app.core.stage import BaseStage, Frame
from app.core.stage_timer import StageTimer
from app.core.stats import StatsRecorder
from app.outputs.writers import MaskWriter, VideoOutput
from app.size import Size


class VideoSink(BaseStage):
    """Appends ``frame.output`` to the overlay video; :meth:`close` finalises the file."""

    name = "video"
    timing = "encode"

    def __init__(self, video: VideoOutput) -> None:
        self.video = video

    def process(self, frame: Frame) -> list[Frame]:
        """Write the composed frame."""
        if frame.output is None:
            raise ValueError(f"frame {frame.index}: nothing composed to write")
        self.video.write(frame.output)
        return [frame]

    def close(self) -> None:
        """Finalise the video (playable afterwards)."""
        self.video.close()


class MaskSink(BaseStage):
    """Writes ``frame.mask`` as a PNG named by the frame's input index."""

    name = "masks"

    def __init__(self, masks: MaskWriter) -> None:
        self.masks = masks

    def process(self, frame: Frame) -> list[Frame]:
        """Write the mask."""
        if frame.mask is None:
            raise ValueError(f"frame {frame.index}: no mask to write")
        self.masks.write(frame.index, frame.mask)
        return [frame]


class StatsSink(BaseStage):
    """Stamps the frame as rendered and records its timestamps (latency: capture → here)."""

    name = "stats"

    def __init__(self, stats: StatsRecorder) -> None:
        self.stats = stats

    def process(self, frame: Frame) -> list[Frame]:
        """Record the frame."""
        frame.times.render_end = self.stats.now()
        self.stats.add(frame.times)
        return [frame]


class DisplaySink(BaseStage):
    """Hands composed frames to the window on the main thread; only the newest waits (latest wins).

    The window reads it through :meth:`next_image`, :attr:`finished` and :attr:`no_signal`; the
    capture stage reports outages through :meth:`set_no_signal`. The window records how long showing a
    frame takes in :attr:`timer` (stage ``display``; the pipeline sets it), from the main thread."""

    name = "display"

    def __init__(self, size: Size) -> None:
        self.size = size
        self._latest: np.ndarray | None = None
        self._closed = False
        self._no_signal: str | None = None
        self._cond = threading.Condition()
        self.timer: StageTimer | None = None

    def process(self, frame: Frame) -> list[Frame]:
        """Publish ``frame.output``, replacing one not yet shown."""
        if frame.output is None:
            raise ValueError(f"frame {frame.index}: nothing composed to show")
        with self._cond:
            self._latest = frame.output
            self._cond.notify_all()
        return [frame]

    def close(self) -> None:
        """No more frames; the window ends once it has taken the last one."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def next_image(self, timeout: float) -> np.ndarray | None:
        """The newest frame not yet shown, or ``None`` if none arrives within ``timeout`` seconds."""
        with self._cond:
            if self._latest is None and not self._closed:
                self._cond.wait(timeout)
            image, self._latest = self._latest, None
            return image

    @property
    def finished(self) -> bool:
        """Closed and every frame taken."""
        with self._cond:
            return self._closed and self._latest is None

    @property
    def no_signal(self) -> str | None:
        """While a live source is down: the NO SIGNAL message to show."""
        return self._no_signal

    def set_no_signal(self, message: str | None) -> None:
        """Report an outage (``None``: the signal is back)."""
        self._no_signal = message
