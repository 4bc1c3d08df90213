"""Shared fixtures: tiny on-disk datasets drawn with OpenCV."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

INSTRUMENT_BGR = (40, 220, 40)  # a colour no background pixel has


def draw_frame(seed: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A reddish textured background with a green "instrument" bar; mask 0/255 marks the bar."""
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


def write_dvrk_video(folder: Path, frames: Sequence[tuple[str, int]], height: int, width: int) -> None:
    """Write ``images/<stem>.png`` + ``ground_truth/<stem>.png`` for each ``(stem, seed)``."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "ground_truth").mkdir(parents=True, exist_ok=True)
    for stem, seed in frames:
        image, mask = draw_frame(seed, height, width)
        cv2.imwrite(str(folder / "images" / f"{stem}.png"), image)
        cv2.imwrite(str(folder / "ground_truth" / f"{stem}.png"), mask)


def decode_video(path: Path) -> list[np.ndarray]:
    """Every frame of a video file, decoded by OpenCV to the end (the file must open)."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} does not open"
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return frames
            frames.append(frame)
    finally:
        capture.release()


@pytest.fixture
def make_dvrk(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_dvrk(num_videos, frames_per_video, height=24, width=32)`` → dataset root.

    Videos are named like the real data (``Video_01`` … ``Video_09``, ``Video_010`` …);
    frames are ``000.png``, ``001.png`` …
    """

    def make(num_videos: int, frames_per_video: int, height: int = 24, width: int = 32, name: str = "dvrk") -> Path:
        root = tmp_path / name
        for v in range(1, num_videos + 1):
            video = root / (f"Video_{v:02d}" if v < 10 else f"Video_0{v}")
            write_dvrk_video(video, [(f"{f:03d}", v * 1000 + f) for f in range(frames_per_video)], height, width)
        return root

    return make
