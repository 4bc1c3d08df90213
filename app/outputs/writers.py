"""Output files: the overlay video and per-frame mask PNGs.

Both are checked before start (writable folder, known container/codec, a ``--save-masks`` folder that
would not mix runs) but created only when the first frame arrives, so a run that fails before its first
frame leaves nothing behind. The video is recorded crash-safe (:mod:`app.outputs.recording`): into
``<stem>.partial.mp4`` beside its destination, fragmented MP4 that plays after a ``kill -9``, remuxed
into the destination when finalised (:meth:`VideoOutput.close`, also on Ctrl-C/SIGTERM), so the
destination is replaced only by a complete file; a partial left by a crash is finalised as
``<stem>.recovered-<time>.mp4`` when the next run with the same output starts. Only OpenCV's writer
(``mp4v``/``MJPG`` without PyAV) is not crash-safe: it writes a hidden temporary file renamed into place.
Each mask is written to a hidden temporary file and renamed, so a crash leaves every mask whole or absent.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from app.errors import SetupError
from app.outputs.encoders import OPENCV_CODECS, FrameEncoder, ThreadedEncoder, open_encoder, resolve_codec, writes_fragmented
from app.outputs.paths import check_mask_dir, check_output_file, check_writable_dir
from app.outputs.recording import FragmentedRecording, recover_partial
from app.size import Size
from models.atomic_io import _current_umask

#: Kept for callers of the earlier API: container suffix → OpenCV FourCC.
VIDEO_CODECS = OPENCV_CODECS

__all__ = ["VIDEO_CODECS", "MaskWriter", "VideoOutput", "check_output_file", "ensure_writable_dir"]


def ensure_writable_dir(directory: Path, option: str) -> None:
    """Raise :class:`SetupError` unless files can be created in ``directory`` (nothing is created)."""
    check_writable_dir(directory, option)


def _make_dirs(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)


class VideoOutput:
    """An overlay video at the input's size and fps, created at the first frame, finalised by :meth:`close`.

    ``codec`` is a ``--codec`` choice (``auto``: H.264, NVENC where available); ``threaded`` encodes on a
    thread of its own. A partial recording of the same path left by a crashed run is finalised when this
    is created (:attr:`recovered`, see :func:`app.outputs.recording.recover_partial`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        size: Size,
        codec: str = "auto",
        preset: str | None = None,
        threaded: bool = True,
    ) -> None:
        self.path = check_output_file(Path(path), "--output")
        if not (fps > 0 and np.isfinite(fps)):
            raise SetupError(f"--output {path}: frame rate {fps} (expected a positive number; see --fps)")
        size = Size.require(size, "VideoOutput size")
        if size.width < 1 or size.height < 1:
            raise SetupError(f"--output {path}: frame size {size.width}x{size.height} (expected a positive size)")
        self.codec = resolve_codec(codec, self.path)
        self.crash_safe = writes_fragmented(self.codec)
        self.recovered = recover_partial(self.path)
        self.preset = preset
        self.size = size
        self.fps = fps
        self.threaded = threaded
        self.frames_written = 0
        self._encoder: FrameEncoder | None = None
        self._tmp: Path | None = None
        self._recording: FragmentedRecording | None = None
        self._closed = False

    def _open(self) -> FrameEncoder:
        _make_dirs(self.path.parent)
        if self.crash_safe:
            self._recording = FragmentedRecording.open(self.path, self.codec, self.fps, self.size, self.preset)
            return ThreadedEncoder(self._recording) if self.threaded else self._recording
        fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".part{self.path.suffix}", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(name)
        try:
            encoder = open_encoder(self._tmp, self.codec, self.fps, self.size, self.preset)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
            raise
        return ThreadedEncoder(encoder) if self.threaded else encoder

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (must be the output size); the file is created at the first one."""
        if self._closed:
            raise ValueError(f"{self.path}: written after close")
        if Size.of(frame) != self.size:
            raise ValueError(
                f"output frame is {frame.shape[1]}x{frame.shape[0]}, the video is {self.size.width}x{self.size.height}"
            )
        if self._encoder is None:
            self._encoder = self._open()
        self._encoder.encode(frame)
        self.frames_written += 1

    def close(self) -> None:
        """Finalise the file and move it into place (idempotent); nothing is created if no frame came."""
        if self._closed:
            return
        self._closed = True
        if self._encoder is not None and self._recording is not None:
            try:
                self._encoder.finish()
            except BaseException:
                self._recording.abandon()  # what was written stays playable; the next start recovers it
                raise
            self._recording.finalise()
            return
        if self._encoder is None or self._tmp is None:
            return
        try:
            self._encoder.finish()
            with open(self._tmp, "rb+") as handle:  # as models.atomic_io: on disk before the rename
                os.fsync(handle.fileno())
            os.chmod(self._tmp, 0o666 & ~_current_umask())  # mkstemp made it 0600
            os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)


class MaskWriter:
    """One ``NNNNNN.png`` per frame (0/255, frame resolution) in a directory of this run only.

    A folder that is not empty is refused unless ``overwrite``; then the earlier run's masks are deleted
    when the first new mask is written (see :func:`app.outputs.paths.check_mask_dir`).
    """

    def __init__(self, directory: str | os.PathLike[str], overwrite: bool = False) -> None:
        self.directory = Path(directory)
        self._stale = check_mask_dir(self.directory, overwrite)
        self._ready = False
        self.count = 0
        self.replaced = 0

    def _prepare(self) -> None:
        _make_dirs(self.directory)
        for path in self._stale:
            path.unlink(missing_ok=True)
        self.replaced = len(self._stale)
        self._stale = []
        self._ready = True

    def write(self, index: int, mask: np.ndarray) -> None:
        """Write the mask of input frame ``index`` (the folder is created, or cleared, at the first one)."""
        if not self._ready:
            self._prepare()
        path = self.directory / f"{index:06d}.png"
        ok, png = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise OSError(f"could not encode mask {path} (expected a 2-D uint8 mask, got {mask.dtype} {mask.shape})")
        tmp = self.directory / f".{path.name}.part"  # whole or absent after a crash; a leftover is cleared
        tmp.write_bytes(png.tobytes())
        os.replace(tmp, path)
        self.count += 1
