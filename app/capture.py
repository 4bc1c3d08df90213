"""The capture stage: reads the source, stamps frames, paces realtime files, and rides out outages.

* **paused** (the space key): a file is not read; a live source is read and the frames discarded,
  so the picture is current when the pause ends.
* **realtime files** are paced at their fps; a frame whose time has passed is dropped
  (:attr:`Capture.pacing_drops`), as a live feed would have.
* **timing** (``timer``): the ``capture`` stage is how long ``source.read()`` took (decoding; a
  camera's read also waits for its next frame). A source that stamps its frames itself
  (``last_capture_ns``, a ``time.perf_counter_ns`` reading, as the live bench's source does) gives
  the frame that capture time, and ``capture`` is then the frame's age when the pipeline took it.
* **live outages**: the source is reopened with exponential back-off; meanwhile :attr:`Capture.no_signal`
  holds the NO SIGNAL message (also sent to :attr:`Capture.listeners`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from app.overlay import ViewState
from app.sources import FrameSource
from app.stage import Frame
from app.stage_timer import StageTimer
from app.stats import FrameTimes

LOG = logging.getLogger(__name__)
POLL_S = 0.05


class Capture:
    """Produces :class:`Frame` objects from a source; the first stage, so it has :meth:`read`, not ``process``."""

    name = "capture"

    def __init__(
        self,
        source: FrameSource,
        clock: Callable[[], float],
        view: ViewState | None = None,
        realtime: bool = False,
        reconnect_attempts: int = 0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 8.0,
        timer: StageTimer | None = None,
    ) -> None:
        self.source = source
        self.timer = timer
        self.clock = clock
        self.view = view or ViewState()
        self.paced = realtime and not source.live
        self.reconnect_attempts = reconnect_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.pacing_drops = 0
        self.reconnects = 0
        self.lost = False  #: a live source stayed down after every reconnect attempt
        self.no_signal: str | None = None
        self.listeners: list[Callable[[str | None], None]] = []
        self._pace_start: float | None = None
        self._paced_count = 0

    def read(self, stop: threading.Event) -> Frame | None:
        """The next frame; ``None`` at the end of the stream, when stopped or when the source is lost."""
        source = self.source
        while not stop.is_set():
            if self.view.paused:
                self._pace_start = None
                if source.live:
                    if source.read() is None and not self._reconnect(stop):
                        return None
                else:
                    stop.wait(POLL_S)
                continue
            started = time.perf_counter_ns()
            image = source.read()
            if image is None:
                if source.live and self._reconnect(stop):
                    continue
                return None
            now = self._stamp(started)
            if self.paced:
                due = self._due(now)
                if due is None:
                    continue
                if now < due and stop.wait(due - now):
                    return None
                now = self.clock()
            return Frame(FrameTimes(index=source.index, capture=now), image)
        return None

    def _stamp(self, read_started_ns: int) -> float:
        """The frame's capture time on :attr:`clock`; records the ``capture`` stage."""
        now = self.clock()
        finished = time.perf_counter_ns()
        stamped = getattr(self.source, "last_capture_ns", None)
        if stamped is not None:
            age_ns = max(0, finished - stamped)
            now -= age_ns / 1e9
        else:
            age_ns = finished - read_started_ns
        if self.timer is not None:
            self.timer.record("capture", age_ns)
        return now

    def _due(self, now: float) -> float | None:
        """When a paced frame is due; ``None`` (dropped) when decoding fell a whole period behind."""
        period = 1.0 / self.source.fps
        if self._pace_start is None:
            self._pace_start, self._paced_count = now, 0
        due = self._pace_start + self._paced_count * period
        self._paced_count += 1
        if now > due + period:
            self.pacing_drops += 1
            return None
        return due

    def _signal(self, message: str | None) -> None:
        self.no_signal = message
        for listener in self.listeners:
            listener(message)

    def _reconnect(self, stop: threading.Event) -> bool:
        """Reopen a live source with exponential back-off; ``False`` when stopping or out of attempts."""
        source = self.source
        delay = self.backoff_initial_s
        attempt = 0
        while not stop.is_set():
            attempt += 1
            self._signal(f"{source.description}: reconnecting, attempt {attempt} in {delay:.1f} s")
            LOG.warning("no signal from %s; reconnect attempt %d in %.1f s", source.description, attempt, delay)
            if stop.wait(delay):
                return False
            if source.reconnect():
                self._signal(None)
                self.reconnects += 1
                LOG.warning("%s: signal back after %d attempt(s)", source.description, attempt)
                return True
            if self.reconnect_attempts and attempt >= self.reconnect_attempts:
                self.lost = True
                return False
            delay = min(delay * 2.0, self.backoff_max_s)
        return False
