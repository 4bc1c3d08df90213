"""The capture stage: reads the source, stamps frames, paces realtime files, and rides out outages.

* **paused** (the space key): a file is not read; a live source is read and the frames discarded,
  so the picture is current when the pause ends.
* **realtime files** are paced at their frames' own timestamps where the source has them
  (``timestamp_s``: a video file; a variable frame rate plays as recorded), else at the source's fps; a
  frame whose time has passed by more than one period (1 / fps) is dropped (:attr:`Capture.pacing_drops`),
  as a live feed would have. A timestamp that goes back, or jumps ahead by more than
  :data:`MAX_TIMESTAMP_GAP_S`, is not waited out: pacing restarts from that frame.
* **timing** (``timer``): the ``capture`` stage is how long ``source.read()`` took (decoding; a
  camera's read also waits for its next frame). A source that stamps its frames itself
  (``last_capture_ns``, a ``time.perf_counter_ns`` reading, as the live bench's source does) gives
  the frame that capture time, and ``capture`` is then the frame's age when the pipeline took it.
* **live outages**: the source is reopened with exponential back-off; meanwhile :attr:`Capture.no_signal`
  holds the NO SIGNAL message (also sent to :attr:`Capture.listeners`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from app.core.overlay import ViewState
from app.core.stage import Frame
from app.core.stage_timer import StageTimer
from app.core.stats import FrameTimes
from app.sources.source import FrameSource

LOG = logging.getLogger(__name__)
POLL_S = 0.05
#: A step between two frames' timestamps beyond this (a broken timestamp, a recording paused for minutes)
#: is not waited out by ``--realtime`` pacing.
MAX_TIMESTAMP_GAP_S = 5.0


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
        self._pace_start: float | None = None  #: clock time at which stream time 0 is due (None: restart)
        self._paced_count = 0
        self._last_stamp = 0.0

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
        stamp = self._stream_time(period)
        if self._pace_start is None or not 0.0 <= stamp - self._last_stamp <= MAX_TIMESTAMP_GAP_S:
            self._pace_start = now - stamp  # (re)start: this frame is due now, the next ones after it
        self._last_stamp = stamp
        due = self._pace_start + stamp
        if now > due + period:
            self.pacing_drops += 1
            return None
        return due

    def _stream_time(self, period: float) -> float:
        """The frame's time in the stream: its timestamp where the source gives one, else frames paced × period."""
        self._paced_count += 1
        stamp = getattr(self.source, "timestamp_s", None)
        if stamp is not None and math.isfinite(stamp):
            return float(stamp)
        return (self._paced_count - 1) * period

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
