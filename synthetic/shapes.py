"""Simple, fast test pictures (no scene detail), beside the surgical scene generator.

* :func:`render_frame` / :func:`write_test_video`: a reddish background with two grey shafts moving
  across it, each frame showing its index (``python -m app.bench --generator shapes``, the app tests).
* :func:`bar_frame`: a textured frame with one green "instrument" bar and its exact 0/255 mask (the
  dataset and evaluation tests).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .mp4 import write_mp4

#: The colour of :func:`bar_frame`'s bar; no background pixel has it.
INSTRUMENT_BGR = (40, 220, 40)


def render_frame(index: int, width: int, height: int, rng_seed: int = 0) -> np.ndarray:
    """Frame ``index`` of the shapes video: reddish background with two grey shafts moving across it."""
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
    return write_mp4(path, (render_frame(index, width, height, seed) for index in range(num_frames)), fps)


def bar_frame(seed: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A reddish textured background with a green "instrument" bar; the mask (0/255) marks the bar."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.uint8)
    image[...] = (60, 70, 170)
    image += rng.integers(0, 25, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    x0 = int(rng.integers(0, width // 2))
    y0 = int(rng.integers(0, height // 2))
    angle = rng.uniform(-0.6, 0.6)
    x1 = int(x0 + width * 0.6 * np.cos(angle))
    y1 = int(y0 + height * 0.6 * abs(np.sin(angle))) + height // 4
    cv2.line(mask, (x0, y0), (x1, y1), 255, max(2, height // 8))
    image[mask > 0] = INSTRUMENT_BGR
    return image, mask
