"""Video encoders behind :class:`app.outputs.VideoOutput`: H.264 through PyAV, or OpenCV's ``mp4v``/``MJPG``.

``--codec auto`` (the default) writes H.264 in the mp4/mov/mkv container: NVIDIA's ``h264_nvenc`` where
the GPU has it (probed by opening the encoder once), else ``libx264`` on the CPU. H.264 mp4 files play in
web browsers and common viewers; OpenCV's ``mp4v`` (MPEG-4 Part 2) often does not. ``.avi`` keeps
OpenCV's MJPG. The PyAV wheels bundle FFmpeg with both H.264 encoders (``pip install av``).

Frames are converted BGR → I420 with OpenCV (about 10× faster than FFmpeg's swscale here) and encoded
on a thread of their own behind a small bounded queue, so the render stage does not wait for x264.
"""

from __future__ import annotations

import logging
import queue
import threading
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from app.errors import SetupError
from app.size import Size

LOG = logging.getLogger(__name__)

CODEC_CHOICES = ("auto", "h264", "h264_nvenc", "mp4v")
#: Containers that carry H.264 written by PyAV → FFmpeg format name.
H264_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
#: Container suffix → FourCC that OpenCV/FFmpeg writes without extra codecs (``--codec mp4v``, and ``.avi``).
OPENCV_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}
#: libx264 preset, chosen with ``python -m app.bench --codec h264 --x264-preset P`` (see README).
DEFAULT_X264_PRESET = "ultrafast"
X264_CRF = "23"
#: Frames waiting for the encoder thread (each a full-size BGR copy).
ENCODER_QUEUE = 8
INSTALL_AV = "pip install av (its wheels bundle FFmpeg with libx264 and h264_nvenc)"


def have_pyav() -> bool:
    """Whether PyAV (``import av``) is installed."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def encoder_opens(name: str, width: int = 256, height: int = 144) -> bool:
    """Whether FFmpeg's encoder ``name`` opens here (NVENC needs an NVIDIA GPU with its driver)."""
    if not have_pyav():
        return False
    import av

    try:
        context = av.CodecContext.create(name, "w")
        context.width, context.height, context.pix_fmt = width, height, "yuv420p"
        context.time_base = Fraction(1, 25)
        context.framerate = Fraction(25, 1)
        context.open()
    except Exception as error:  # noqa: BLE001 - any failure means "not usable here"
        LOG.debug("encoder %s does not open: %s", name, error)
        return False
    return True


def resolve_codec(requested: str, path: Path) -> str:
    """The encoder for ``--codec requested`` and ``--output path``: ``h264_nvenc``, ``libx264``, ``mp4v`` or ``MJPG``.

    Raises :class:`SetupError` naming the option when the codec cannot write that container or is missing.
    """
    suffix = path.suffix.lower()
    if suffix not in OPENCV_CODECS:
        raise SetupError(f"--output {path}: unsupported container {suffix or '(none)'} (expected one of {', '.join(OPENCV_CODECS)})")
    if requested not in CODEC_CHOICES:
        raise SetupError(f"--codec {requested}: unknown (expected one of {', '.join(CODEC_CHOICES)})")
    if requested == "mp4v" or (requested == "auto" and suffix not in H264_CONTAINERS):
        return OPENCV_CODECS[suffix]
    if suffix not in H264_CONTAINERS:
        raise SetupError(f"--codec {requested} --output {path}: H.264 is written to {', '.join(H264_CONTAINERS)} (expected one of those)")
    if not have_pyav():
        if requested == "auto":
            LOG.warning("PyAV is not installed: writing mp4v instead of H.264 (%s)", INSTALL_AV)
            return OPENCV_CODECS[suffix]
        raise SetupError(f"--codec {requested}: needs PyAV, which is not installed ({INSTALL_AV})")
    if requested == "h264_nvenc":
        if not encoder_opens("h264_nvenc"):
            raise SetupError(
                "--codec h264_nvenc: the NVENC encoder does not open here (expected an NVIDIA GPU and driver); use --codec h264"
            )
        return "h264_nvenc"
    if requested == "auto" and encoder_opens("h264_nvenc"):
        return "h264_nvenc"
    if not encoder_opens("libx264"):
        raise SetupError(f"--codec {requested}: this FFmpeg has no libx264 encoder (expected the PyAV wheel's FFmpeg)")
    return "libx264"


class FrameEncoder(Protocol):
    """Writes BGR frames of one size into one file."""

    def encode(self, frame: np.ndarray) -> None:
        """Append one frame."""

    def finish(self) -> None:
        """Flush and close the file."""


class OpenCVEncoder:
    """``cv2.VideoWriter`` with a FourCC (``mp4v``, ``MJPG``)."""

    def __init__(self, path: Path, fourcc: str, fps: float, size: Size) -> None:
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size.wh)
        if not self._writer.isOpened():
            raise OSError(f"OpenCV could not open a {fourcc} writer for {path} at {size.width}x{size.height}")

    def encode(self, frame: np.ndarray) -> None:
        self._writer.write(frame)

    def finish(self) -> None:
        self._writer.release()


class PyAVEncoder:
    """H.264 (``libx264`` or ``h264_nvenc``) in an mp4/mov/mkv container through PyAV.

    Odd frame sizes are padded by one edge pixel (4:2:0 needs even sizes).
    """

    def __init__(self, path: Path, codec: str, fps: float, size: Size, preset: str | None = None) -> None:
        import av

        self._container = av.open(
            str(path),
            mode="w",
            format=H264_CONTAINERS[path.suffix.lower()],
            options={"movflags": "+faststart"} if path.suffix.lower() != ".mkv" else {},
        )
        try:
            self._stream = self._container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            height, width = size
            self._pad = (height % 2, width % 2)
            self._stream.width, self._stream.height = width + self._pad[1], height + self._pad[0]
            self._stream.pix_fmt = "yuv420p"
            options: dict[str, Any] = {}
            if codec == "libx264":
                options = {"preset": preset or DEFAULT_X264_PRESET, "crf": X264_CRF}
            elif codec == "h264_nvenc" and preset:
                options = {"preset": preset}
            self._stream.options = options
        except Exception:
            self._container.close()
            raise
        self._frame_type = av.VideoFrame

    def encode(self, frame: np.ndarray) -> None:
        if any(self._pad):
            frame = cv2.copyMakeBorder(frame, 0, self._pad[0], 0, self._pad[1], cv2.BORDER_REPLICATE)
        yuv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
        for packet in self._stream.encode(self._frame_type.from_ndarray(yuv, format="yuv420p")):
            self._container.mux(packet)

    def finish(self) -> None:
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()


def open_encoder(path: Path, codec: str, fps: float, size: Size, preset: str | None = None) -> FrameEncoder:
    """An encoder for a codec name from :func:`resolve_codec`, for frames of ``size``."""
    size = Size.require(size, "open_encoder size")
    if codec in ("libx264", "h264_nvenc"):
        return PyAVEncoder(path, codec, fps, size, preset)
    return OpenCVEncoder(path, codec, fps, size)


class ThreadedEncoder:
    """Runs an encoder on its own thread behind a bounded queue; errors surface on the next call."""

    _END = object()

    def __init__(self, inner: FrameEncoder, name: str = "surgseg-encoder") -> None:
        self._inner = inner
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ENCODER_QUEUE)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (frame := self._queue.get()) is not self._END:
            if self._error is None:
                try:
                    self._inner.encode(frame)
                except BaseException as error:  # noqa: B036 - kept and re-raised on the caller's thread
                    self._error = error

    def encode(self, frame: np.ndarray) -> None:
        """Queue a copy of ``frame`` (the caller may draw on it afterwards); waits while the queue is full."""
        if self._error is not None:
            raise self._error
        self._queue.put(frame.copy())

    def finish(self) -> None:
        """Encode what is queued, then close the file."""
        self._queue.put(self._END)
        self._thread.join()
        try:
            self._inner.finish()
        finally:
            if self._error is not None:
                raise self._error
