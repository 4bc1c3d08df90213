"""A built-in live source for the latency bench: frames of a stated size at a stated rate, paced in real time.

``parse_live_spec("1080p60")`` (or ``"720p60"``, ``"1280x720@50"``) gives the size and rate. A
:class:`LiveSource` pre-renders a few frames when it is created (the project's scene generator or a
cheap moving pattern), so emitting costs almost nothing; its own thread then emits one frame per
period into a :class:`LatestFrameSlot`, stamping each with its capture time
(``time.perf_counter_ns``). The slot holds only the newest frame: a frame overwritten before the
consumer took it is counted as dropped, as on a real camera feed whose reader falls behind.

Wiring into the pipeline: the capture stage calls :meth:`LiveSource.read`; the frame's
``capture_ns`` is the start of the capture → overlay-ready latency. ``emitted``, ``dropped`` and
``missed_ticks`` go into the bench JSON (``dropped`` counts frames the pipeline never saw).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from app.size import Size

#: Named frame sizes, ``(width, height)``.
NAMED_SIZES: dict[str, tuple[int, int]] = {
    "360p": (640, 360),
    "480p": (854, 480),
    "540p": (960, 540),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "2160p": (3840, 2160),
}
DEFAULT_FPS = 60.0
GENERATORS = ("scene", "pattern")
SCENE_RENDER_WIDTH = 640  #: the scene generator renders at most this wide, then the frames are resized


@dataclass(frozen=True)
class LiveSpec:
    """Frame size and rate of a live source."""

    width: int
    height: int
    fps: float

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise ValueError(f"live source size must be at least 16x16, got {self.width}x{self.height}")
        if not 0 < self.fps <= 1000:
            raise ValueError(f"live source rate must be in (0, 1000] frames/s, got {self.fps}")

    @property
    def label(self) -> str:
        """``1920x1080@60`` (for logs and the bench JSON)."""
        return f"{self.width}x{self.height}@{self.fps:g}"


def parse_live_spec(text: str) -> LiveSpec:
    """``1080p60``, ``720p`` (60 frames/s), ``1920x1080@60`` or ``1920x1080`` → :class:`LiveSpec`."""
    value = text.strip().lower()
    named = re.fullmatch(r"(\d+p)(?:@?(\d+(?:\.\d+)?))?", value)
    if named and named.group(1) in NAMED_SIZES:
        width, height = NAMED_SIZES[named.group(1)]
        return LiveSpec(width, height, float(named.group(2) or DEFAULT_FPS))
    explicit = re.fullmatch(r"(\d+)x(\d+)(?:@(\d+(?:\.\d+)?))?", value)
    if explicit:
        return LiveSpec(int(explicit.group(1)), int(explicit.group(2)), float(explicit.group(3) or DEFAULT_FPS))
    raise ValueError(f"live source {text!r}: expected e.g. 1080p60, 720p60 or WxH@FPS (sizes: {', '.join(NAMED_SIZES)})")


@dataclass
class LiveFrame:
    """One emitted frame: its index (emission order, from 0), the image and its capture time."""

    index: int
    image: np.ndarray
    capture_ns: int  #: ``time.perf_counter_ns()`` when the frame was emitted


class LatestFrameSlot:
    """A one-frame slot: :meth:`put` replaces an untaken frame (counted in :attr:`dropped`)."""

    def __init__(self) -> None:
        self._item: LiveFrame | None = None
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.taken = 0

    def put(self, item: LiveFrame) -> bool:
        """Store ``item``; ``True`` when it replaced a frame nobody took."""
        with self._cond:
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()
            return replaced

    def take(self, timeout: float | None = None) -> LiveFrame | None:
        """The newest frame (waiting up to ``timeout`` s for one); ``None`` on time-out or once closed and empty."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            if item is not None:
                self.taken += 1
            return item

    def close(self) -> None:
        """No more frames; a waiting :meth:`take` returns what is left, then ``None``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def pending(self) -> bool:
        """Whether a frame waits to be taken."""
        with self._cond:
            return self._item is not None


def pattern_frames(width: int, height: int, count: int) -> list[np.ndarray]:
    """``count`` frames of a cheap moving pattern: a tissue-coloured gradient with two grey bars sweeping across."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.empty((height, width, 3), np.uint8)
    red = 150 + 50 * np.sin(x / max(8.0, width / 20.0)) * np.cos(y / max(8.0, height / 12.0))
    base[..., 0] = (red * 0.25).astype(np.uint8)
    base[..., 1] = (red * 0.35).astype(np.uint8)
    base[..., 2] = red.astype(np.uint8)
    frames = []
    thickness = max(3, width // 40)
    for k in range(count):
        frame = base.copy()
        phase = 2 * np.pi * k / max(1, count)
        for j, colour in enumerate(((200, 200, 205), (165, 170, 175))):
            tip = (int((0.3 + 0.4 * j + 0.15 * np.sin(phase + j)) * width), int((0.5 + 0.2 * np.cos(phase + j)) * height))
            cv2.line(frame, (width - 1 if j == 0 else 0, height - 1), tip, colour, thickness, cv2.LINE_AA)
        frames.append(frame)
    return frames


def scene_frames(width: int, height: int, count: int, seed: int = 12) -> list[np.ndarray]:
    """``count`` consecutive frames of the project's scene generator, rendered at most
    :data:`SCENE_RENDER_WIDTH` wide and resized to ``width``×``height``."""
    from synthetic.video import SceneRenderer  # noqa: PLC0415 - the generator is only needed here

    render_w = min(width, SCENE_RENDER_WIDTH)
    render_h = max(16, round(height * render_w / width))
    scene = SceneRenderer(seed, render_w, render_h)
    frames = []
    for k in range(count):
        frame, _ = scene.render(k * 3)
        if frame.shape[:2] != (height, width):
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
        frames.append(np.ascontiguousarray(frame))
    return frames


class LiveSource:
    """Emits pre-rendered frames at ``spec.fps`` from its own thread into a latest-frame-wins slot.

    ``frames``: the images to cycle through (all ``spec``-sized BGR ``uint8``); default: ``count``
    frames of ``generator`` (``"scene"`` or ``"pattern"``). ``copy``: hand out a fresh copy of each
    frame (as a camera delivers a new buffer; the consumer may draw on it in place). With
    ``copy=False`` the consumer gets read-only views of the pre-rendered set (no per-frame cost; drawing
    on them raises). ``max_frames``: stop emitting after that many (the source then closes).

    Pacing: frame ``k`` is due at ``start + k / fps``. If the emitting thread wakes more than a whole
    period late (the machine was busy), the ticks it slept through are counted in :attr:`missed_ticks`
    and skipped (a real camera would have overwritten those frames in its own buffer).
    """

    live = True  # duck-types the pipeline's FrameSource flag

    def __init__(
        self,
        spec: LiveSpec,
        frames: Sequence[np.ndarray] | None = None,
        generator: str = "scene",
        count: int = 8,
        copy: bool = True,
        max_frames: int | None = None,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        origin = generator if frames is None else "given"
        if frames is None:
            if generator not in GENERATORS:
                raise ValueError(f"generator {generator!r}: expected one of {', '.join(GENERATORS)}")
            if count < 1:
                raise ValueError(f"count must be at least 1, got {count}")
            make = scene_frames if generator == "scene" else pattern_frames
            frames = make(spec.width, spec.height, count)
        if not frames:
            raise ValueError("a live source needs at least one frame")
        for frame in frames:
            if frame.dtype != np.uint8 or frame.shape != (spec.height, spec.width, 3):
                raise ValueError(f"frames must be uint8 {spec.height}x{spec.width}x3, got {frame.dtype} {frame.shape}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self.spec = spec
        self.fps = spec.fps
        self.frame_size = Size(spec.height, spec.width)
        self.description = f"live {spec.label} ({origin} frames)"
        self.copy = copy
        self.max_frames = max_frames
        self._clock = clock
        self._frames = [np.ascontiguousarray(f) for f in frames]
        for frame in self._frames:
            frame.flags.writeable = False
        self.slot = LatestFrameSlot()
        self.emitted = 0
        self.missed_ticks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # -- control ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start emitting (once)."""
        if self._thread is not None:
            raise RuntimeError("live source already started")
        self._thread = threading.Thread(target=self._run, name="surgseg-live-source", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop emitting and close the slot (frames already in it can still be read)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.slot.close()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the emitting thread to end (after ``max_frames`` or :meth:`stop`)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> LiveSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- consumer --------------------------------------------------------------------------------

    def read(self, timeout: float | None = 1.0) -> LiveFrame | None:
        """The newest frame not yet read (waits up to ``timeout`` s); ``None`` on time-out or at the end."""
        return self.slot.take(timeout)

    @property
    def ended(self) -> bool:
        """Whether the source stopped emitting and its slot is empty."""
        thread_done = self._thread is not None and not self._thread.is_alive()
        return self.slot.closed and thread_done and not self.slot.pending

    @property
    def dropped(self) -> int:
        """Frames overwritten before the consumer took them."""
        return self.slot.dropped

    @property
    def taken(self) -> int:
        """Frames the consumer took."""
        return self.slot.taken

    def counts(self) -> dict[str, int]:
        """``emitted``, ``taken``, ``dropped`` and ``missed_ticks`` (for the bench JSON)."""
        return {"emitted": self.emitted, "taken": self.taken, "dropped": self.dropped, "missed_ticks": self.missed_ticks}

    # -- emitter ---------------------------------------------------------------------------------

    def _run(self) -> None:
        period_ns = round(1e9 / self.spec.fps)
        frames = self._frames
        start = self._clock()
        tick = 0
        try:
            while not self._stop.is_set():
                due = start + tick * period_ns
                now = self._clock()
                if now < due:
                    if self._stop.wait((due - now) / 1e9):
                        break
                elif now - due > period_ns:  # woke up late: skip the ticks slept through
                    late = (now - due) // period_ns
                    self.missed_ticks += late
                    tick += late
                source = frames[self.emitted % len(frames)]
                image = source.copy() if self.copy else source
                self.slot.put(LiveFrame(self.emitted, image, self._clock()))
                self.emitted += 1
                tick += 1
                if self.max_frames is not None and self.emitted >= self.max_frames:
                    break
        except BaseException as error:  # noqa: B036 - recorded for the consumer, the slot is closed below
            self.error = error
        finally:
            self.slot.close()
