"""The one mp4 writer of the generators: frames → an ``mp4v`` file, written atomically."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from models.atomic_io import atomic_path


def write_mp4(path: str | os.PathLike[str], frames: Iterable[np.ndarray], fps: float) -> Path:
    """Write BGR ``uint8`` frames (all one size) as an ``mp4v`` mp4 and return its path.

    The file appears complete or not at all. Raises ``ValueError`` for no frames and ``OSError`` when
    the folder cannot be created or OpenCV cannot open a writer there."""
    path = Path(path)
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError(f"{path}: no frames to write")
    height, width = first.shape[:2]
    with atomic_path(path) as tmp:
        target = tmp.with_suffix(".mp4")  # OpenCV picks the container by the suffix
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), float(fps), (width, height))
        try:
            if not writer.isOpened():
                raise OSError(f"cannot write video {path}: OpenCV could not open an mp4v writer ({width}x{height})")
            writer.write(first)
            for frame in iterator:
                writer.write(frame)
            writer.release()
            os.replace(target, tmp)
        finally:
            writer.release()
            target.unlink(missing_ok=True)
    return path
