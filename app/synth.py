"""A small, dependency-free test-video generator (moving instrument-like shapes on a tissue-like background).

Used by the tests and by `python -m app.bench --generator shapes` (fast numbered frames, no scene detail).
Each frame shows its index in the top-left corner so ordering can be checked by eye.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from models.atomic_io import atomic_path


def render_frame(index: int, width: int, height: int, rng_seed: int = 0) -> np.ndarray:
    """Frame ``index`` of the scene: reddish background with two grey shafts moving across it."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = index * 0.05 + rng_seed
    red = 140 + 40 * np.sin(x / 37.0 + phase) * np.cos(y / 53.0 - phase)
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = np.clip(red * 0.25, 0, 255)
    frame[..., 1] = np.clip(red * 0.35, 0, 255)
    frame[..., 2] = np.clip(red, 0, 255)
    for k, colour in enumerate(((200, 200, 205), (170, 175, 180))):
        cx = int((0.3 + 0.4 * k + 0.2 * np.sin(phase + k)) * width)
        cy = int((0.5 + 0.25 * np.cos(phase * 1.3 + k)) * height)
        tip = (cx, cy)
        base = (width - 1 if k == 0 else 0, height - 1)
        cv2.line(frame, base, tip, colour, max(4, width // 40), cv2.LINE_AA)
        cv2.circle(frame, tip, max(3, width // 60), (230, 230, 235), -1, cv2.LINE_AA)
    cv2.putText(frame, f"{index:05d}", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2, cv2.LINE_AA)
    return frame


def write_test_video(
    path: str | os.PathLike[str],
    num_frames: int = 100,
    width: int = 640,
    height: int = 360,
    fps: float = 25.0,
    seed: int = 0,
) -> Path:
    """Write an ``mp4v`` video of :func:`render_frame` frames atomically and return its path."""
    if num_frames < 1 or width < 16 or height < 16 or fps <= 0:
        raise ValueError(f"bad test video parameters: {num_frames} frames, {width}x{height}, {fps} fps")
    path = Path(path)
    with atomic_path(path) as tmp:
        target = tmp.with_suffix(path.suffix or ".mp4")
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise OSError(f"cannot write test video {target} (OpenCV VideoWriter did not open)")
        try:
            for index in range(num_frames):
                writer.write(render_frame(index, width, height, seed))
        finally:
            writer.release()
        os.replace(target, tmp)
    return path
