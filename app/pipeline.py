"""The threaded pipeline: stage objects run on threads joined by small bounded queues.

The stages (:mod:`app.sources.capture`, :mod:`app.core.stages`, :mod:`app.outputs.sinks`; contract in :mod:`app.core.stage`) do
the work; this module only runs them:

* a **capture** thread takes frames from :class:`app.sources.capture.Capture`. Files are lossless by default:
  the queue to inference blocks when full (back-pressure, every frame kept, in order). Live sources
  (and ``realtime`` files) use a one-slot latest-frame-wins queue: a stale frame is replaced and
  counted as dropped, so latency never builds up.
* ``inference_workers`` **inference** threads run the worker stages (:class:`app.core.stages.Infer`) on
  frames numbered in the order they are taken; on CPU backends several frames run concurrently.
* a **render** thread runs the render stages, from :class:`app.core.stages.Reorder` (restores the order)
  to the sinks; the list comes from :func:`build_stages`.

Stopping: :meth:`Pipeline.request_stop` ends capture and lets the queued frames drain, so the output
holds every frame captured; :meth:`Pipeline.abort` stops at once. Either way every stage is closed
(the output video finalised) by the render thread. An exception in a stage aborts the pipeline and is
kept in :attr:`Pipeline.error` naming the stage and frame index. :func:`run_in_one_thread` runs the
same stages without threads (the bench's naive loop).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.overlay import OverlayStyle, ViewState
from app.core.stage import Frame, Stage, close_all, run_chain
from app.core.stage_timer import StageTimer
from app.core.stages import Compose, Hud, Infer, PostProcess, Reorder
from app.core.stats import StatsRecorder
from app.errors import StageError
from app.gpu.stage import GpuInferCompose, uses_gpu_path
from app.outputs.sinks import DisplaySink, MaskSink, StatsSink, VideoSink
from app.outputs.writers import MaskWriter, VideoOutput
from app.size import Size
from app.sources.capture import Capture
from app.sources.source import FrameSource
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
    threshold: float | None = None  #: instrument probability threshold; ``None``: the model's own (``backend.threshold``)
    style: OverlayStyle = field(default_factory=OverlayStyle)
    max_frames: int | None = None  #: stop after this many captured frames
    queue_size: int = 1  #: lossless queue depth between stages (1 is enough to overlap them)
    inference_workers: int = 1  #: concurrent inference threads (needs ``backend.concurrent_calls`` when > 1)
    show: bool = False  #: publish rendered frames (with HUD) for the display
    burn_hud: bool = False  #: draw the HUD into the output video as well
    reconnect_attempts: int = 0  #: live sources: reopen attempts per outage, 0 = forever
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    #: run inference + compose on the device (:mod:`app.gpu.stage`); ``None``: when the backend declares it
    gpu_path: bool | None = None
    cuda_graphs: bool = True  #: on the GPU path, replay CUDA graphs where the backend declares them


def mask_threshold(config: PipelineConfig, backend: InferenceBackend) -> float:
    """The instrument probability threshold the pipeline applies: ``config.threshold``, else the model's."""
    return backend.threshold if config.threshold is None else config.threshold


def stage_timer(backend: InferenceBackend) -> StageTimer:
    """The per-stage timer for a pipeline on ``backend`` (CUDA events for device spans on a CUDA device)."""
    return StageTimer(device=getattr(backend, "device", None))


def build_stages(
    config: PipelineConfig,
    backend: InferenceBackend,
    view: ViewState,
    stats: StatsRecorder,
    dropped: Callable[[], int] = lambda: 0,
    video: VideoOutput | None = None,
    masks: MaskWriter | None = None,
    display: DisplaySink | None = None,
    sinks: Sequence[Stage] = (),
    timer: StageTimer | None = None,
    frame_size: Size | None = None,
) -> tuple[list[Stage], list[Stage]]:
    """The stage lists: ``(worker stages, render stages)``.

    Workers: infer, or on the GPU path (``config.gpu_path``, by default when the backend declares a CUDA
    device with device tensors) one GPU infer + compose stage, which needs ``frame_size``. Render order:
    reorder → [post-process → compose: CPU path] → [HUD when burnt in] → video → masks → stats → ``sinks``
    → [HUD] → display. A new stage is one more entry here; the others do not change. ``timer``: the
    stages record their times there (see :func:`app.core.stage.run_chain`)."""
    gpu = uses_gpu_path(backend) if config.gpu_path is None else config.gpu_path
    threshold = mask_threshold(config, backend)
    render: list[Stage] = [Reorder()]
    if gpu:
        if frame_size is None:
            raise ValueError("the GPU frame path needs the frame size")
        workers: list[Stage] = [
            GpuInferCompose(backend, frame_size, config.style, view, config.smooth, stats.now, timer,
                            config.cuda_graphs, masks=masks is not None, threshold=threshold)
        ]
    else:
        workers = [Infer(backend, stats.now, timer)]
        render += [PostProcess(config.smooth, threshold), Compose(config.style, view)]
    hud = Hud(backend.name, stats.now, view, dropped)
    if config.burn_hud:
        render.append(hud)
    if video is not None:
        render.append(VideoSink(video))
    if masks is not None:
        render.append(MaskSink(masks))
    render.append(StatsSink(stats))
    render.extend(sinks)
    if display is not None:
        if not config.burn_hud:
            render.append(hud)
        render.append(display)
    return workers, render


def run_in_one_thread(
    capture: Capture, workers: Sequence[Stage], render: Sequence[Stage], timer: StageTimer | None = None
) -> int:
    """Run the stages frame after frame on the calling thread (no queues); returns the frames captured.

    The same stage objects as :class:`Pipeline`, so comparing the two measures threading only.
    ``timer``: the render stages are timed there (workers and capture record their own)."""
    stop = threading.Event()
    count = 0
    try:
        while (frame := capture.read(stop)) is not None:
            frame.sequence = count
            count += 1
            for inferred in run_chain(workers, frame):
                run_chain(render, inferred, timer=timer)
    finally:
        close_all([*workers, *render])
    return count


class Pipeline:
    """Threads and bounded queues around the stages built for a source, a backend and optional outputs."""

    def __init__(
        self,
        source: FrameSource,
        backend: InferenceBackend,
        config: PipelineConfig,
        video: VideoOutput | None = None,
        masks: MaskWriter | None = None,
        stats: StatsRecorder | None = None,
        sinks: Sequence[Stage] = (),
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
        #: Per-stage durations of every frame (``stages_ms`` in :meth:`summary`).
        self.timer = stage_timer(backend)
        self.live = config.live or config.realtime or source.live
        self.view = ViewState(contours=config.style.contours)
        self.to_infer = FrameQueue(1 if self.live else config.queue_size, latest_wins=self.live)
        self.to_render = FrameQueue(config.queue_size)
        self.capture = Capture(
            source,
            self.stats.now,
            self.view,
            realtime=config.realtime,
            reconnect_attempts=config.reconnect_attempts,
            backoff_initial_s=config.backoff_initial_s,
            backoff_max_s=config.backoff_max_s,
            timer=self.timer,
        )
        #: Rendered frames for the window (``config.show``), else ``None``.
        self.display = DisplaySink(Size.require(source.frame_size, "FrameSource.frame_size")) if config.show else None
        if self.display is not None:
            self.capture.listeners.append(self.display.set_no_signal)
            self.display.timer = self.timer
        self.worker_stages, self.render_stages = build_stages(
            config, backend, self.view, self.stats, lambda: self.dropped, video, masks, self.display, sinks,
            timer=self.timer, frame_size=source.frame_size,
        )
        self.error: StageError | None = None
        self.stop_reason: str | None = None
        self.captured = 0
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
            threshold=mask_threshold(self.config, self.backend),
            source=self.source.description,
            mode="live (latest frame wins)" if self.live else "lossless (every frame, in order)",
            frame_size=list(self.source.frame_size.wh),  # JSON: width, height
            stop_reason=self.stop_reason or ("error" if self.error else "end of stream"),
            error=str(self.error) if self.error else None,
            queue_high_water={"to_infer": self.to_infer.high_water, "to_render": self.to_render.high_water},
            inference_workers=self.config.inference_workers,
            stages_ms=self.timer.summary_ms(),
            gpu_path=self.gpu_path,
        )

    @property
    def gpu_path(self) -> dict[str, Any] | None:
        """On the GPU frame path: whether CUDA graphs replay, or why not; ``None`` on the CPU path."""
        stage = next((s for s in self.worker_stages if isinstance(s, GpuInferCompose)), None)
        if stage is None:
            return None
        return {"device": str(stage.path.device), "cuda_graphs": stage.graphs_active, "cuda_graphs_off": stage.runner.reason}

    @property
    def dropped(self) -> int:
        """Frames dropped because they were stale (live mode)."""
        return self.to_infer.dropped + self.capture.pacing_drops

    @property
    def reconnects(self) -> int:
        """Successful reconnections of a live source."""
        return self.capture.reconnects

    @property
    def no_signal(self) -> str | None:
        """While a live source is down: the NO SIGNAL message."""
        return self.capture.no_signal

    # -- threads ---------------------------------------------------------------------------------

    def _run_stage(self, stage: str, body: Callable[[], None]) -> None:
        try:
            body()
        except BaseException as error:  # noqa: B036 - any failure must stop the whole pipeline
            with self._lock:
                if self.error is None:
                    self.error = StageError(stage, getattr(self._current, "index", None), error)
            LOG.debug("stage %s failed", stage, exc_info=True)
            self.abort(f"{stage} error")

    def _track(self, frame: Frame) -> None:
        self._current.index = frame.index

    def _capture(self) -> None:
        try:
            while not self._stop.is_set():
                # Lossless mode: read only when the frame can be queued at once, so its capture
                # timestamp is not inflated by waiting for room (end-to-end latency stays honest).
                if not self.to_infer.wait_for_room(self._stop):
                    break
                frame = self.capture.read(self._stop)
                if frame is None:
                    if self.capture.lost:
                        self.request_stop("source lost")
                    break
                self._track(frame)
                if not self.to_infer.put(frame, self._abort):
                    break
                self.captured += 1
                if self.config.max_frames is not None and self.captured >= self.config.max_frames:
                    self.request_stop("max frames")
                    break
        finally:
            self.to_infer.close()

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

    def _take_for_inference(self) -> Frame | None:
        """The next frame for an inference worker, numbered in the order frames are taken."""
        with self._take_lock:
            frame = self._next_item(self.to_infer)
            if frame is not None:
                frame.sequence = self._next_sequence
                self._next_sequence += 1
            return frame

    def _infer(self) -> None:
        """One inference worker; the last one to finish closes the queue to the render thread."""
        try:
            while (frame := self._take_for_inference()) is not None:
                for inferred in run_chain(self.worker_stages, frame, self._track):
                    if not self.to_render.put(inferred, self._abort):
                        return
        finally:
            with self._lock:
                self._workers_left -= 1
                last = self._workers_left == 0
            if last:
                self.to_render.close()
                close_all(self.worker_stages)

    def _render(self) -> None:
        """Run the render stages on every inferred frame; close them all at the end (outputs finalised)."""
        try:
            while (frame := self._next_item(self.to_render)) is not None:
                run_chain(self.render_stages, frame, self._track, self.timer)
        finally:
            try:
                close_all(self.render_stages)
            finally:
                self._done.set()
