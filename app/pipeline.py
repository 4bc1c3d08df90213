"""The threaded pipeline: capture → inference → render/output, joined by small bounded queues.

* **capture** reads the source. Files are lossless by default: the queue to inference blocks when full
  (back-pressure, every frame kept, in order). Live sources (and ``realtime`` files, paced at their
  fps) use a one-slot latest-frame-wins queue: a stale frame is replaced and counted as dropped, so
  latency never builds up. A live source that stops delivering shows NO SIGNAL and is reopened with
  exponential back-off.
* **inference** calls ``backend.predict`` on the full frame (GPU backends resize on the device). On
  CPU backends whose runtime is thread-safe, ``inference_workers`` threads share the backend and run
  frames concurrently (each with few intra-op threads): on 2 cores this gives more frames per second
  than one call spread over both cores. Each frame gets a sequence number when it is taken for
  inference, and the render stage restores that order.
* **render** puts frames back in order, smooths the probability, draws the overlay, writes the video and mask PNGs, records the
  timestamps and publishes the frame for the display (which runs on the main thread).

Stopping: :meth:`Pipeline.request_stop` ends capture and lets the queued frames drain, so the output
holds every frame captured; :meth:`Pipeline.abort` stops at once. Either way the output video is
released (finalised) by the render stage. An exception in a stage aborts the pipeline and is kept in
:attr:`Pipeline.error` naming the stage and frame index.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.errors import StageError
from app.outputs import MaskWriter, VideoOutput
from app.overlay import HudInfo, Overlayer, OverlayStyle, Smoother, ViewState, draw_hud
from app.sources import FrameSource
from app.stats import FrameTimes, StatsRecorder
from engine.backends import InferenceBackend

LOG = logging.getLogger(__name__)

EMPTY = object()  #: :meth:`FrameQueue.get` timed out
CLOSED = object()  #: :meth:`FrameQueue.get`: closed and drained
POLL_S = 0.05


class FrameQueue:
    """Bounded FIFO between two stages.

    Blocking mode: :meth:`put` waits while full (back-pressure). ``latest_wins`` mode: a full queue
    drops its oldest item (counted in :attr:`dropped`) so the newest always gets through.
    """

    def __init__(self, maxsize: int, latest_wins: bool = False) -> None:
        if maxsize < 1:
            raise ValueError(f"queue size must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self.latest_wins = latest_wins
        self.dropped = 0
        self.high_water = 0
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Any, cancel: threading.Event) -> bool:
        """Enqueue ``item``; ``False`` (not enqueued) if ``cancel`` is set while waiting for room."""
        with self._cond:
            while len(self._items) >= self.maxsize:
                if self.latest_wins:
                    self._items.popleft()
                    self.dropped += 1
                    break
                if cancel.is_set():
                    return False
                self._cond.wait(POLL_S)
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify_all()
            return True

    def wait_for_room(self, cancel: threading.Event) -> bool:
        """Block until :meth:`put` would not wait (always at once in ``latest_wins`` mode); ``False`` if cancelled."""
        with self._cond:
            while not self.latest_wins and len(self._items) >= self.maxsize:
                if cancel.is_set():
                    return False
                self._cond.wait(POLL_S)
            return True

    def get(self, timeout: float = POLL_S) -> Any:
        """The oldest item, :data:`EMPTY` after ``timeout`` or :data:`CLOSED` once closed and drained."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            return CLOSED if self._closed else EMPTY

    def close(self) -> None:
        """No more items will be put; getters drain what is left, then see :data:`CLOSED`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


@dataclass
class PipelineConfig:
    """How the pipeline runs (the CLI fills it from its options)."""

    live: bool = False  #: latest-frame-wins between capture and inference (cameras, streams, realtime files)
    realtime: bool = False  #: pace a file at its native fps (implies ``live``)
    smooth: float = 0.0  #: EMA factor for the probabilities, 0 = off
    style: OverlayStyle = field(default_factory=OverlayStyle)
    max_frames: int | None = None  #: stop after this many captured frames
    queue_size: int = 1  #: lossless queue depth between stages (1 is enough to overlap them)
    inference_workers: int = 1  #: concurrent inference threads (needs ``backend.concurrent_calls`` when > 1)
    show: bool = False  #: publish rendered frames (with HUD) for the display
    burn_hud: bool = False  #: draw the HUD into the output video as well
    reconnect_attempts: int = 0  #: live sources: reopen attempts per outage, 0 = forever
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0


@dataclass
class _Item:
    times: FrameTimes
    image: np.ndarray
    probability: np.ndarray | None = None
    sequence: int = -1  #: order of arrival at inference; the render stage writes frames in this order


class Pipeline:
    """Three stage threads around a source, a backend and optional outputs."""

    def __init__(
        self,
        source: FrameSource,
        backend: InferenceBackend,
        config: PipelineConfig,
        video: VideoOutput | None = None,
        masks: MaskWriter | None = None,
        stats: StatsRecorder | None = None,
    ) -> None:
        if config.inference_workers < 1:
            raise ValueError(f"inference_workers must be at least 1, got {config.inference_workers}")
        if config.inference_workers > 1 and not backend.concurrent_calls:
            raise ValueError(
                f"inference_workers={config.inference_workers}: backend {backend.name} does not support concurrent "
                "calls (only CPU backends do); use 1"
            )
        self.source = source
        self.backend = backend
        self.config = config
        self.video = video
        self.masks = masks
        self.stats = stats or StatsRecorder()
        self.live = config.live or config.realtime or source.live
        self.view = ViewState(contours=config.style.contours)
        self.hud = HudInfo(backend=backend.name)
        self.to_infer = FrameQueue(1 if self.live else config.queue_size, latest_wins=self.live)
        self.to_render = FrameQueue(config.queue_size)
        #: Rendered frames for the display; only the newest is kept.
        self.display = FrameQueue(1, latest_wins=True)
        self.error: StageError | None = None
        self.stop_reason: str | None = None
        #: Set while a live source is down: the NO SIGNAL message to show.
        self.no_signal: str | None = None
        self.captured = 0
        self.pacing_drops = 0
        self.reconnects = 0
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        #: The frame index each stage thread is working on (thread-local: several inference workers).
        self._current = threading.local()
        self._threads: list[threading.Thread] = []
        self._take_lock = threading.Lock()  # taking a frame for inference and numbering it is one step
        self._next_sequence = 0
        self._workers_left = config.inference_workers

    # -- control ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the capture, inference and render threads."""
        if self._threads:
            raise RuntimeError("pipeline already started")
        stages = [("render", "render", self._render)]
        stages += [("inference", f"inference-{k}", self._infer) for k in range(self.config.inference_workers)]
        stages.append(("capture", "capture", self._capture))
        for stage, thread_name, body in stages:
            thread = threading.Thread(
                target=self._run_stage, args=(stage, body), name=f"surgseg-{thread_name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def request_stop(self, reason: str) -> None:
        """Stop capturing; frames already captured are still processed and written."""
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason
        self._stop.set()

    def abort(self, reason: str) -> None:
        """Stop every stage now (the output video is still finalised)."""
        self.request_stop(reason)
        self._abort.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the render stage has finished (outputs finalised); ``True`` when it has."""
        return self._done.wait(timeout)

    def join(self, timeout: float = 10.0) -> None:
        """Join the stage threads (after :meth:`wait`, or to clean up after an abort)."""
        for thread in self._threads:
            thread.join(timeout)

    def run(self) -> dict[str, Any]:
        """Start, wait for the end of the stream (or a stop), join and return :meth:`summary`."""
        self.start()
        while not self.wait(0.2):
            pass
        self.join()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """Figures for the console and the stats file."""
        return self.stats.summary(
            captured=self.captured,
            dropped=self.dropped,
            corrupt=self.source.corrupt,
            reconnects=self.reconnects,
            backend=self.backend.describe(),
            source=self.source.description,
            mode="live (latest frame wins)" if self.live else "lossless (every frame, in order)",
            frame_size=list(self.source.frame_size),
            stop_reason=self.stop_reason or ("error" if self.error else "end of stream"),
            error=str(self.error) if self.error else None,
            queue_high_water={"to_infer": self.to_infer.high_water, "to_render": self.to_render.high_water},
            inference_workers=self.config.inference_workers,
        )

    @property
    def dropped(self) -> int:
        """Frames dropped because they were stale (live mode)."""
        return self.to_infer.dropped + self.pacing_drops

    # -- stages ----------------------------------------------------------------------------------

    def _run_stage(self, stage: str, body: Any) -> None:
        try:
            body()
        except BaseException as error:  # noqa: B036 - any failure must stop the whole pipeline
            with self._lock:
                if self.error is None:
                    self.error = StageError(stage, getattr(self._current, "index", None), error)
            LOG.debug("stage %s failed", stage, exc_info=True)
            self.abort(f"{stage} error")

    def _capture(self) -> None:
        source, config = self.source, self.config
        paced = config.realtime and not source.live
        period = 1.0 / source.fps
        pace_start: float | None = None
        paced_count = 0
        try:
            while not self._stop.is_set():
                if self.view.paused:
                    pace_start = None
                    if source.live:
                        if source.read() is None and not self._reconnect():
                            break
                    else:
                        self._stop.wait(POLL_S)
                    continue
                # Lossless mode: read only when the frame can be queued at once, so its capture
                # timestamp is not inflated by waiting for room (end-to-end latency stays honest).
                if not self.to_infer.wait_for_room(self._stop):
                    break
                frame = source.read()
                if frame is None:
                    if source.live and self._reconnect():
                        continue
                    break
                self._current.index = source.index
                now = self.stats.now()
                if paced:
                    if pace_start is None:
                        pace_start, paced_count = now, 0
                    due = pace_start + paced_count * period
                    paced_count += 1
                    if now > due + period:  # decoding fell behind the clock: a live feed would have dropped it
                        self.pacing_drops += 1
                        continue
                    if now < due and self._stop.wait(due - now):
                        break
                    now = self.stats.now()
                item = _Item(FrameTimes(index=source.index, capture=now), frame)
                if not self.to_infer.put(item, self._abort):
                    break
                self.captured += 1
                if config.max_frames is not None and self.captured >= config.max_frames:
                    self.request_stop("max frames")
                    break
        finally:
            self.to_infer.close()

    def _reconnect(self) -> bool:
        """Reopen a live source with exponential back-off; ``False`` when stopping or out of attempts."""
        source, config = self.source, self.config
        delay = config.backoff_initial_s
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            self.no_signal = f"{source.description}: reconnecting, attempt {attempt} in {delay:.1f} s"
            LOG.warning("no signal from %s; reconnect attempt %d in %.1f s", source.description, attempt, delay)
            if self._stop.wait(delay):
                return False
            if source.reconnect():
                self.no_signal = None
                self.reconnects += 1
                LOG.warning("%s: signal back after %d attempt(s)", source.description, attempt)
                return True
            if config.reconnect_attempts and attempt >= config.reconnect_attempts:
                self.request_stop("source lost")
                return False
            delay = min(delay * 2.0, config.backoff_max_s)
        return False

    def _next_item(self, queue: FrameQueue) -> Any | None:
        """The next item of ``queue``; ``None`` once it is closed and drained or the pipeline aborts."""
        while True:
            item = queue.get()
            if item is EMPTY:
                if self._abort.is_set():
                    return None
                continue
            if item is CLOSED or self._abort.is_set():
                return None
            return item

    def _take_for_inference(self) -> _Item | None:
        """The next frame for an inference worker, numbered in the order frames are taken."""
        with self._take_lock:
            item = self._next_item(self.to_infer)
            if item is not None:
                item.sequence = self._next_sequence
                self._next_sequence += 1
            return item

    def _infer(self) -> None:
        """One inference worker; the last one to finish closes the queue to the render stage."""
        try:
            while (item := self._take_for_inference()) is not None:
                self._current.index = item.times.index
                item.times.infer_start = self.stats.now()
                item.probability = self.backend.predict(item.image)
                item.times.infer_end = self.stats.now()
                if not self.to_render.put(item, self._abort):
                    return
        finally:
            with self._lock:
                self._workers_left -= 1
                last = self._workers_left == 0
            if last:
                self.to_render.close()

    def _in_order(self) -> Iterator[_Item]:
        """Items of the render queue in inference-sequence order (workers may finish out of order).

        At most ``inference_workers + queue_size`` items wait here, so memory stays bounded."""
        waiting: dict[int, _Item] = {}
        expected = 0
        while (item := self._next_item(self.to_render)) is not None:
            waiting[item.sequence] = item
            while expected in waiting:
                yield waiting.pop(expected)
                expected += 1

    def _render(self) -> None:
        config = self.config
        smoother = Smoother(config.smooth)
        overlayer = Overlayer(config.style, self.backend.threshold)
        interval_ema: float | None = None
        last_end: float | None = None
        try:
            for item in self._in_order():
                times: FrameTimes = item.times
                self._current.index = times.index
                height, width = item.image.shape[:2]
                mask = overlayer.mask(smoother(item.probability), (width, height))
                image = overlayer.draw(item.image, mask, self.view)
                if config.burn_hud:
                    self._update_hud(times)
                    draw_hud(image, self.hud)
                if self.video is not None:
                    self.video.write(image)
                if self.masks is not None:
                    self.masks.write(times.index, mask)
                times.render_end = self.stats.now()
                self.stats.add(times)
                if last_end is not None:
                    interval = times.render_end - last_end
                    interval_ema = interval if interval_ema is None else 0.9 * interval_ema + 0.1 * interval
                    self.hud.fps = 1.0 / interval_ema if interval_ema > 0 else 0.0
                last_end = times.render_end
                if config.show:
                    if not config.burn_hud:
                        self._update_hud(times)
                        draw_hud(image, self.hud)
                    self.display.put(image, self._abort)
        finally:
            try:
                if self.video is not None:
                    self.video.close()
            finally:
                self.display.close()
                self._done.set()

    def _update_hud(self, times: FrameTimes) -> None:
        self.hud.latency_ms = (self.stats.now() - times.capture) * 1000.0
        self.hud.dropped = self.dropped
        self.hud.paused = self.view.paused
