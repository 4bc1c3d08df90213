"""Capture sources: camera index, V4L2 device, video file, RTSP/HTTP URL, image folder, GStreamer pipeline.

:func:`open_source` parses the ``--source`` text, opens the source and reads its first frame, so every
problem (missing file, unopenable camera, bad URL scheme, OpenCV without GStreamer) is a
:class:`~app.errors.SetupError` raised before any thread starts.

A source's :meth:`FrameSource.read` returns the next good frame or ``None`` (end of a file, or a live
source that stopped delivering). Every frame not delivered is accounted for in
:attr:`FrameSource.skipped` by reason, the first few named (file or frame index) in the log:

* ``corrupt``: failed to decode or empty (also counted in :attr:`FrameSource.corrupt`);
* ``unsupported``: decoded, but as a picture with no obvious conversion to BGR ``uint8`` (say float pixels);
* ``truncated``: a video file ended before the frame count in its header (the missing frames).

Every frame passes :func:`app.sources.frame_convert.to_bgr8` on its way out, the one place where 16-bit
pictures are scaled to 8-bit, grey ones repeated into 3 channels and alpha dropped; each kind of
conversion is noted once in the log and in :attr:`FrameSource.notes`.

Video files are shown upright as a phone shows them: OpenCV applies a rotation tag (display matrix,
``rotate=90``), so :attr:`FrameSource.frame_size` is the displayed size. Their frames carry their
presentation time (:attr:`FrameSource.timestamp_s`), which ``--realtime`` pacing follows, so a variable
frame rate plays as recorded. Their frame count is the one the container states (mp4, mov, avi); for
containers that state none (mkv, webm, ts) it is unknown, not OpenCV's duration × fps estimate.

A frame of another size than the first (an image folder of mixed sizes, a stream that changed
resolution) is *resized* to the first frame's size with a warning and counted in
:attr:`FrameSource.resized`, so no frame is lost and the outputs keep one size.
"""

from __future__ import annotations

import logging
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from app.errors import SetupError
from app.redact import redact
from app.size import Size
from app.sources.frame_convert import ALPHA_DROPPED, UnsupportedFrame, png_has_alpha, to_bgr8
from models.sorting import natural_key

LOG = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FPS = 25.0
#: Consecutive failed reads after which a file is considered ended (or a live source disconnected).
MAX_CONSECUTIVE_FAILURES = 8
#: Open/read time-outs for network streams, in milliseconds.
STREAM_TIMEOUT_MS = 5000
#: Skipped or resized frames named in the log, per reason (the rest are only counted).
NAMED_PER_REASON = 5
#: Image folders keep 16-bit depth and grey for :func:`~app.sources.frame_convert.to_bgr8` (which says what it
#: converted); not ``IMREAD_UNCHANGED``, which would ignore EXIF orientation.
IMAGE_READ_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR


@dataclass(frozen=True)
class CaptureOptions:
    """Camera/stream settings (``--width --height --fps --fourcc``); ``None`` keeps the device default."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None


@lru_cache(maxsize=1)
def opencv_has_gstreamer() -> bool:
    """Whether this OpenCV build has the GStreamer video I/O backend."""
    match = re.search(r"GStreamer:\s*(\S+)", cv2.getBuildInformation())
    return bool(match and match.group(1).upper().startswith("YES"))


class FrameSource(ABC):
    """A stream of BGR ``uint8`` frames of one size."""

    #: Human-readable description for logs, the HUD and the stats file.
    description: str = "source"
    #: Live sources (cameras, streams) drop stale frames and reconnect; files do neither.
    live: bool = False

    def __init__(self) -> None:
        self.fps: float = DEFAULT_FPS
        self.frame_size = Size(0, 0)  #: known once the first frame is read (:meth:`prime`)
        self.frame_count: int | None = None
        self.corrupt = 0
        #: Frames not delivered, by reason (``corrupt``, ``truncated``).
        self.skipped: dict[str, int] = {}
        #: Frames delivered resized to the first frame's size, by reason (``size_mismatch``).
        self.resized: dict[str, int] = {}
        #: The first few skipped/resized frames, named: ``"corrupt: 3.png (cannot be decoded)"``.
        self.examples: list[str] = []
        #: Input index of the frame last returned by :meth:`read` (counts corrupt frames too).
        self.index = -1
        #: Presentation time of the frame last read, in seconds, where the source has one (video files).
        self.timestamp_s: float | None = None
        #: Conversions made on the way to BGR ``uint8`` (16-bit, grey, alpha) and rotations, once per kind.
        self.notes: list[str] = []
        #: The first frame not delivered and why (for the message when no frame is readable at all).
        self.problem: str | None = None
        self._converted: set[str] = set()
        self._pending: np.ndarray | None = None

    def prime(self) -> None:
        """Read the first frame now (to learn the frame size); it is returned by the next :meth:`read`."""
        frame = self._next_valid()
        if frame is None:
            why = f" (the first refused: {self.problem})" if self.problem else ""
            raise SetupError(f"{self.description}: opened but delivered no readable frame{why}")
        self._pending = frame
        self.frame_size = Size.of(frame)

    def read(self) -> np.ndarray | None:
        """The next good frame, or ``None`` at the end of the stream / when a live source stops."""
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        return self._next_valid()

    def _to_bgr8(self, frame: object, where: str, made: tuple[str, ...] = ()) -> np.ndarray:
        """``frame`` as BGR ``uint8`` (:func:`~app.sources.frame_convert.to_bgr8`), each new kind of conversion noted once.

        ``made``: conversions the decoder already made (an alpha channel it dropped). Raises
        :class:`~app.sources.frame_convert.UnsupportedFrame` when the frame has no obvious conversion.
        """
        image, converted = to_bgr8(frame)
        for conversion in (*made, *converted):
            if conversion not in self._converted:
                self._converted.add(conversion)
                self._add_note(f"{where} is {conversion}; every such frame is converted the same way")
        return image

    def _add_note(self, note: str, level: int = logging.WARNING) -> None:
        """Keep ``note`` in :attr:`notes` and log it."""
        self.notes.append(note)
        LOG.log(level, "%s: %s", self.description, note)

    def _note(self, counts: dict[str, int], reason: str, where: str, detail: str, amount: int = 1) -> None:
        """Count ``amount`` frames under ``reason``; name the first few in the log and :attr:`examples`."""
        counts[reason] = counts.get(reason, 0) + amount
        if counts[reason] - amount < NAMED_PER_REASON:
            line = f"{reason}: {where} ({detail})"
            self.examples.append(line)
            LOG.warning("%s: %s", self.description, line)
        elif counts[reason] - amount == NAMED_PER_REASON:
            LOG.warning("%s: more %s frames; only counted from now on", self.description, reason)

    def _skip(self, reason: str, where: str, detail: str, amount: int = 1) -> None:
        """Record ``amount`` frames not delivered (``corrupt`` ones also go to :attr:`corrupt`)."""
        if reason == "corrupt":
            self.corrupt += amount
        if self.problem is None:
            self.problem = f"{where}: {detail}"
        self._note(self.skipped, reason, where, detail, amount)

    def _conform(self, frame: np.ndarray, where: str) -> np.ndarray:
        """``frame`` at the first frame's size: resized (and counted) when it differs."""
        size, wanted = Size.of(frame), self.frame_size
        if wanted == Size(0, 0) or size == wanted:
            return frame
        detail = f"{size.width}x{size.height}, resized to {wanted.width}x{wanted.height}"
        self._note(self.resized, "size_mismatch", where, detail)
        return cv2.resize(frame, wanted.wh, interpolation=cv2.INTER_AREA)

    @abstractmethod
    def _next_valid(self) -> np.ndarray | None:
        """Read until a valid frame (counting invalid ones in :attr:`corrupt`) or the end."""

    def reconnect(self) -> bool:
        """Try to reopen a live source after it stopped; ``True`` when frames flow again."""
        return False

    def close(self) -> None:  # noqa: B027 - optional hook, most sources hold nothing to release
        """Release the device or file."""


class VideoCaptureSource(FrameSource):
    """Anything ``cv2.VideoCapture`` opens: files, cameras, V4L2 devices, URLs, GStreamer pipelines."""

    def __init__(
        self,
        target: str | int,
        description: str,
        live: bool,
        api: int = cv2.CAP_ANY,
        options: CaptureOptions | None = None,
        params: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        self.target = target
        self.description = description
        self.live = live
        self.api = api
        self.options = options or CaptureOptions()
        self.params = params
        self.capture: cv2.VideoCapture | None = None
        #: Frames a file should hold: its stated count, else OpenCV's estimate (a failed read before it is a
        #: corrupt frame, not the end).
        self._frames_expected: int | None = None
        if not self._open():
            raise SetupError(self._open_failure_message())
        self._read_properties()
        self.prime()
        if not self.live:
            self._note_rotation()

    def _open_failure_message(self) -> str:
        if isinstance(self.target, int) or str(self.target).startswith("/dev/"):
            return f"cannot open {self.description}: no such camera or it is busy (expected a working camera)"
        if self.live:
            return f"cannot open {self.description}: no stream answered (expected a reachable stream)"
        info = probe_container(str(self.target))
        if info is not None and info.video is None:
            return f"cannot open {self.description}: it holds no video stream (expected a video file)"
        if info is not None:
            return (
                f"cannot open {self.description}: its video stream ({info.video}) cannot be decoded by OpenCV/FFmpeg "
                "(expected a video file OpenCV decodes, such as H.264 or HEVC)"
            )
        return f"cannot open {self.description}: OpenCV/FFmpeg could not decode it (expected a video file)"

    def _open(self) -> bool:
        capture = (
            cv2.VideoCapture(self.target, self.api, list(self.params))
            if self.params
            else cv2.VideoCapture(self.target, self.api)
        )
        if not capture.isOpened():
            capture.release()
            return False
        self._configure(capture)
        self.capture = capture
        return True

    def _configure(self, capture: cv2.VideoCapture) -> None:
        if self.api == cv2.CAP_FFMPEG:
            # Upright as a phone shows it: OpenCV's FFmpeg backend applies a rotation tag (display matrix,
            # rotate=90); on by default since OpenCV 4.5, asked for here so that no build default decides.
            capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        if not self.live:
            return
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        opts = self.options
        if opts.fourcc:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*opts.fourcc))
        if opts.width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, opts.width)
        if opts.height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, opts.height)
        if opts.fps:
            capture.set(cv2.CAP_PROP_FPS, opts.fps)

    def _read_properties(self) -> None:
        assert self.capture is not None
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else (self.options.fps or DEFAULT_FPS)
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._frames_expected = self.frame_count = count if count > 0 and not self.live else None
        if not self.live:
            # OpenCV estimates duration × fps where the container states no count (mkv, webm, ts): wrong for a
            # variable frame rate, so the count is the container's own or unknown.
            info = probe_container(str(self.target))
            if info is not None and info.video is not None:
                self.frame_count = info.frames

    def _note_rotation(self) -> None:
        """Note a file's rotation tag: applied (upright, as a phone shows it), or not by this OpenCV."""
        assert self.capture is not None
        rotation = int(self.capture.get(cv2.CAP_PROP_ORIENTATION_META) or 0) % 360
        if not rotation:
            return
        size = f"{self.frame_size.width}x{self.frame_size.height}"
        if self.capture.get(cv2.CAP_PROP_ORIENTATION_AUTO) == 1:
            self._add_note(f"tagged rotate={rotation}: frames turned {rotation}° clockwise to {size}, as a phone shows them", logging.INFO)
        else:
            self._add_note(f"tagged rotate={rotation}, but this OpenCV does not apply it: frames shown as stored ({size})")

    def _next_valid(self) -> np.ndarray | None:
        if self.capture is None:
            return None
        failures = refused = 0  # consecutive reads that failed (or gave nothing) / frames with no conversion
        while failures + refused < MAX_CONSECUTIVE_FAILURES:
            ok, frame = self.capture.read()
            if not ok or not isinstance(frame, np.ndarray) or frame.size == 0:
                if not ok and (self.live or not self._more_frames_expected(failures)):
                    break
                failures += 1
                continue
            if failures:  # failures followed by a decoded frame were corrupt frames, not the end
                first = self.index + 1
                where = f"frame {first}" if failures == 1 else f"frames {first}-{first + failures - 1}"
                self._skip("corrupt", where, "could not be decoded", failures)
            self.index += 1 + failures
            failures = 0
            try:
                image = self._to_bgr8(frame, f"frame {self.index}")
            except UnsupportedFrame as error:
                self._skip("unsupported", f"frame {self.index}", str(error))
                refused += 1
                continue
            self.timestamp_s = self._position_s()
            return self._conform(image, f"frame {self.index}")
        self._check_truncated()
        return None

    def _position_s(self) -> float | None:
        """A file's presentation time of the frame just read, in seconds; ``None`` for live sources."""
        if self.live or self.capture is None:
            return None
        position_ms = self.capture.get(cv2.CAP_PROP_POS_MSEC)
        return position_ms / 1000.0 if math.isfinite(position_ms) else None

    def _check_truncated(self) -> None:
        """At the end of a file: frames its header promised but that never came are ``truncated``."""
        if self.live or self.frame_count is None or self.skipped.get("truncated"):
            return
        missing = self.frame_count - (self.index + 1)
        if missing > 0:
            self._skip(
                "truncated",
                f"frames {self.index + 1}-{self.frame_count - 1}",
                f"the file ended after {self.index + 1} of the {self.frame_count} frames in its header",
                missing,
            )

    def _more_frames_expected(self, failures: int) -> bool:
        """For files: a failed read before the expected frame count is a corrupt frame, not the end."""
        if self._frames_expected is None:
            return False
        return self.index + 1 + failures < self._frames_expected

    def reconnect(self) -> bool:
        """Release and reopen the capture (used with back-off by the capture stage)."""
        if self.capture is not None:
            self.capture.release()
            self.capture = None
        if not self._open():
            return False
        frame = self._next_valid()
        if frame is None:
            return False
        self._pending = frame
        return True

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


class ImageFolderSource(FrameSource):
    """The images of a folder in natural numeric order (``2.png`` before ``10.png``)."""

    def __init__(self, folder: Path, fps: float | None = None) -> None:
        super().__init__()
        self.description = f"image folder {folder}"
        self.paths = sorted(
            (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: natural_key(p.name.lower())
        )
        if not self.paths:
            raise SetupError(
                f"--source {folder}: the folder holds no images (expected files ending in {', '.join(IMAGE_SUFFIXES)})"
            )
        self.fps = fps or DEFAULT_FPS
        self.frame_count = len(self.paths)
        self._position = 0
        self.prime()

    def _next_valid(self) -> np.ndarray | None:
        while self._position < len(self.paths):
            path = self.paths[self._position]
            self._position += 1
            image = cv2.imread(str(path), IMAGE_READ_FLAGS)
            if image is None or image.size == 0:
                self._skip("corrupt", path.name, "cannot be decoded as an image")
                continue
            try:
                frame = self._to_bgr8(image, path.name, _decoder_made(path))
            except UnsupportedFrame as error:
                self._skip("unsupported", path.name, str(error))
                continue
            self.index = self._position - 1
            return self._conform(frame, path.name)
        return None


def _decoder_made(path: Path) -> tuple[str, ...]:
    """What OpenCV's colour decoding already converted in an image: the alpha channel of a PNG that has one."""
    if path.suffix.lower() != ".png":
        return ()
    try:
        with path.open("rb") as file:
            head = file.read(26)
    except OSError:
        return ()
    return (ALPHA_DROPPED,) if png_has_alpha(head) else ()


@dataclass(frozen=True)
class ContainerInfo:
    """What a file's container states, read with PyAV without decoding the pictures."""

    video: str | None  #: its first video stream, e.g. ``"hevc yuv420p10le 1280x720"``; ``None``: it has none
    frames: int | None  #: that stream's frame count as the container states it; ``None`` where it states none


def probe_container(path: str) -> ContainerInfo | None:
    """The container of the file at ``path``; ``None`` when PyAV is not installed or cannot read it either."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(path) as container:
            if not container.streams.video:
                return ContainerInfo(video=None, frames=None)
            stream = container.streams.video[0]
            context = stream.codec_context
            pixels = context.format.name if context.format is not None else "unknown pixel format"
            return ContainerInfo(video=f"{context.name} {pixels} {context.width}x{context.height}", frames=stream.frames or None)
    except (av.FFmpegError, OSError, ValueError):
        return None


def _url_scheme(text: str) -> str | None:
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*)://", text)
    return match.group(1).lower() if match else None


def open_source(text: str, options: CaptureOptions | None = None) -> FrameSource:
    """Parse ``--source`` and open it; raises :class:`SetupError` with a one-line reason on failure.

    Accepted: a camera index (``0``), a V4L2 device (``/dev/video0``), a video file, a folder of
    images, an ``rtsp://``/``http(s)://``/... URL, or a GStreamer pipeline (text containing ``!``).
    """
    options = options or CaptureOptions()
    text = text.strip()
    shown = redact(text)
    if not text:
        raise SetupError("--source is empty (expected a camera index, device, file, folder, URL or pipeline)")
    if text.isdigit():
        return VideoCaptureSource(int(text), f"camera {text}", live=True, options=options)
    scheme = _url_scheme(text)
    if scheme == "file":
        text = text[len("file://") :]
    elif scheme is not None:
        if scheme not in URL_SCHEMES:
            raise SetupError(
                f"--source {shown}: unsupported URL scheme {scheme!r} (expected one of {', '.join(URL_SCHEMES)})"
            )
        params = (cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS)
        return VideoCaptureSource(text, f"stream {shown}", live=True, api=cv2.CAP_FFMPEG, options=options, params=params)
    if "!" in text:
        if not opencv_has_gstreamer():
            raise SetupError(
                f"--source {shown!r} looks like a GStreamer pipeline, but this OpenCV was built without GStreamer "
                "(expected a camera index, device, file, folder or URL)"
            )
        return VideoCaptureSource(text, f"GStreamer pipeline {shown!r}", live=True, api=cv2.CAP_GSTREAMER)
    path = Path(text).expanduser()
    if re.fullmatch(r"/dev/video\d+", text):
        if not path.exists():
            raise SetupError(f"--source {shown}: no such camera device (expected an existing /dev/videoN)")
        return VideoCaptureSource(text, f"camera device {shown}", live=True, api=cv2.CAP_V4L2, options=options)
    if path.is_dir():
        return ImageFolderSource(path, fps=options.fps)
    if not path.exists():
        raise SetupError(
            f"--source {shown}: no such file or directory (expected a video file, image folder, camera index, "
            "/dev/videoN, URL or GStreamer pipeline)"
        )
    if not path.is_file():
        raise SetupError(f"--source {shown}: not a regular file (expected a video file)")
    return VideoCaptureSource(str(path), f"video file {path}", live=False, api=cv2.CAP_FFMPEG, options=options)
