"""Video encoders behind :class:`app.outputs.writers.VideoOutput`: H.264, MPEG-4 Part 2 and MJPEG through PyAV.

``--codec auto`` (the default) writes H.264 in the mp4/mov/mkv container: NVIDIA's ``h264_nvenc`` where
the GPU has it (probed by opening the encoder once), else ``libx264`` on the CPU. H.264 mp4 files play in
web browsers and common viewers; ``mp4v`` (MPEG-4 Part 2) often does not. ``.avi`` keeps MJPG. The PyAV
wheels bundle FFmpeg with all of these encoders (``pip install av``); ``mp4v`` and ``MJPG`` go through
FFmpeg's ``mpeg4`` and ``mjpeg`` encoders, so every codec can write the crash-safe fragmented MP4 of
:mod:`app.outputs.recording`. Only without PyAV do ``mp4v``/``MJPG`` fall back to OpenCV's ``cv2.VideoWriter``,
whose files are not crash-safe (unreadable until closed).

H.264 frames are converted BGR → I420 with OpenCV (about 10× faster than FFmpeg's swscale here); all are
encoded on a thread of their own behind a small bounded queue, so the render stage does not wait for x264.
"""

from __future__ import annotations

import logging
import queue
import threading
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, Protocol

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
#: A resolved codec name → the FFmpeg encoder PyAV opens for it (all of them, when PyAV is installed).
PYAV_ENCODERS = {"libx264": "libx264", "h264_nvenc": "h264_nvenc", "mp4v": "mpeg4", "MJPG": "mjpeg"}
#: Container suffix → FFmpeg format name, for files PyAV writes in one piece.
PYAV_CONTAINERS = {**H264_CONTAINERS, ".avi": "avi"}
#: Fragmented MP4 (the crash-safe partial recording): an empty ``moov`` first, then a self-contained
#: ``moof``+``mdat`` fragment at every keyframe and at least every 0.5 s, each pushed to the file at once.
FRAGMENTED_MP4 = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    "frag_duration": "500000",
    "flush_packets": "1",
}
#: Fixed MJPEG quantiser (2 best .. 31): about the size and quality of OpenCV's MJPG.
MJPEG_QSCALE = 3
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
            LOG.warning("PyAV is not installed: writing OpenCV's mp4v instead of H.264, not crash-safe (%s)", INSTALL_AV)
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
    """``libx264``/``h264_nvenc`` (H.264), ``mp4v`` (MPEG-4 Part 2) or ``MJPG`` through PyAV.

    ``target``: a path (container from its suffix, ``faststart`` mp4/mov) or, with ``fragmented``, a path
    or an open binary file that receives fragmented MP4 (:data:`FRAGMENTED_MP4`, a keyframe at least
    every second). Odd frame sizes are padded by one edge pixel (4:2:0 needs even sizes).
    """

    def __init__(
        self,
        target: Path | BinaryIO,
        codec: str,
        fps: float,
        size: Size,
        preset: str | None = None,
        fragmented: bool = False,
    ) -> None:
        import av

        if fragmented:
            container_format, options = "mp4", dict(FRAGMENTED_MP4)
        elif isinstance(target, Path):
            container_format = PYAV_CONTAINERS[target.suffix.lower()]
            options = {"movflags": "+faststart"} if container_format in ("mp4", "mov") else {}
        else:
            raise ValueError("PyAVEncoder: an open file is written as fragmented MP4 only (expected fragmented=True)")
        self._container = av.open(str(target) if isinstance(target, Path) else target, mode="w", format=container_format, options=options)
        try:
            self._stream = self._container.add_stream(PYAV_ENCODERS[codec], rate=Fraction(fps).limit_denominator(1001))
            height, width = size
            self._pad = (height % 2, width % 2)
            self._stream.width, self._stream.height = width + self._pad[1], height + self._pad[0]
            self._stream.pix_fmt = "yuvj420p" if codec == "MJPG" else "yuv420p"
            _configure(self._stream.codec_context, codec, fps)
            if fragmented:  # a fragment, and a place to start decoding, at least every second
                self._stream.codec_context.gop_size = max(1, round(fps))
            self._stream.options = _codec_options(codec, preset)
        except Exception:
            self._container.close()
            raise
        self._frame_type = av.VideoFrame
        # mp4v/MJPG: FFmpeg converts from BGR, as OpenCV's writer did (the golden references were made so;
        # MJPG needs JPEG's full-range YUV). H.264: OpenCV's faster BGR → I420.
        self._from_bgr = codec in ("mp4v", "MJPG")

    def encode(self, frame: np.ndarray) -> None:
        if any(self._pad):
            frame = cv2.copyMakeBorder(frame, 0, self._pad[0], 0, self._pad[1], cv2.BORDER_REPLICATE)
        if self._from_bgr:
            picture = self._frame_type.from_ndarray(frame, format="bgr24")
        else:
            picture = self._frame_type.from_ndarray(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        for packet in self._stream.encode(picture):
            self._container.mux(packet)

    def finish(self) -> None:
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()


def _configure(context: Any, codec: str, fps: float) -> None:
    """Rate control of the MPEG encoders (FFmpeg's default of 200 kbit/s is far too low for either)."""
    if codec == "mp4v":  # OpenCV's choice for its mp4v writer: one bit per pixel and frame
        context.bit_rate = int(min(fps * context.width * context.height, 2**30))
    elif codec == "MJPG":
        context.qscale = True
        context.qmin = context.qmax = MJPEG_QSCALE


def _codec_options(codec: str, preset: str | None) -> dict[str, str]:
    """FFmpeg encoder options: x264 preset and CRF, or the NVENC preset."""
    if codec == "libx264":
        return {"preset": preset or DEFAULT_X264_PRESET, "crf": X264_CRF}
    if codec == "h264_nvenc" and preset:
        return {"preset": preset}
    return {}


def open_encoder(
    path: Path | BinaryIO,
    codec: str,
    fps: float,
    size: Size,
    preset: str | None = None,
    fragmented: bool = False,
) -> FrameEncoder:
    """An encoder for a codec name from :func:`resolve_codec`, for frames of ``size``.

    Every codec goes through PyAV when it is installed; only then can ``fragmented`` (crash-safe
    fragmented MP4, see :class:`PyAVEncoder`) be asked for. Without PyAV, ``mp4v``/``MJPG`` use OpenCV.
    """
    size = Size.require(size, "open_encoder size")
    if codec in ("libx264", "h264_nvenc") or (codec in PYAV_ENCODERS and have_pyav()):
        return PyAVEncoder(path, codec, fps, size, preset, fragmented)
    if fragmented or not isinstance(path, Path):
        raise ValueError(f"{codec}: fragmented MP4 needs PyAV, which is not installed ({INSTALL_AV})")
    return OpenCVEncoder(path, codec, fps, size)


def writes_fragmented(codec: str) -> bool:
    """Whether ``codec`` (from :func:`resolve_codec`) can write the crash-safe fragmented MP4 here (through PyAV)."""
    return codec in PYAV_ENCODERS and have_pyav()


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
