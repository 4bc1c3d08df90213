"""Output files: the overlay video and per-frame mask PNGs, checked for writability before start."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from app.errors import SetupError

#: Container suffix → FourCC that this OpenCV/FFmpeg writes without extra codecs.
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


def ensure_writable_dir(directory: Path, option: str) -> None:
    """Create ``directory`` if needed and prove it is writable by creating a file there."""
    if directory.exists() and not directory.is_dir():
        raise SetupError(f"{option} {directory}: exists and is not a directory (expected a writable directory)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as error:
        raise SetupError(f"{option} {directory}: not writable ({error.strerror or error})") from error


def check_output_file(path: Path, option: str) -> Path:
    """Validate an output file path: writable parent directory, not a directory itself."""
    if path.is_dir():
        raise SetupError(f"{option} {path}: is a directory (expected a file path)")
    ensure_writable_dir(path.parent if str(path.parent) else Path("."), option)
    return path


class VideoOutput:
    """An overlay video at the input's size and fps; released (finalised, playable) by :meth:`close`."""

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int]) -> None:
        self.path = check_output_file(Path(path), "--output")
        codec = VIDEO_CODECS.get(self.path.suffix.lower())
        if codec is None:
            raise SetupError(f"--output {path}: unsupported container (expected one of {', '.join(VIDEO_CODECS)})")
        self.size = size
        self.fps = fps
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*codec), fps, size)
        if not self._writer.isOpened():
            raise SetupError(f"--output {path}: OpenCV could not open a {codec} writer at {size[0]}x{size[1]}")
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (must be the output size)."""
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise ValueError(f"output frame is {frame.shape[1]}x{frame.shape[0]}, the video is {self.size}")
        self._writer.write(frame)
        self.frames_written += 1

    def close(self) -> None:
        """Finalise the file (idempotent)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None  # type: ignore[assignment]


class MaskWriter:
    """One ``NNNNNN.png`` per frame (0/255, frame resolution) in a directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        ensure_writable_dir(self.directory, "--save-masks")
        self.count = 0

    def write(self, index: int, mask: np.ndarray) -> None:
        """Write the mask of input frame ``index``."""
        path = self.directory / f"{index:06d}.png"
        if not cv2.imwrite(str(path), mask, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f"could not write mask {path}")
        self.count += 1
