"""Shared fixtures: tiny on-disk datasets (pictures from :mod:`synthetic.shapes`), a video decoder and a random-weights
checkpoint for the app tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.checkpoint import ModelMeta, build_segmenter, save_checkpoint
from models.unet import preset
from synthetic.shapes import INSTRUMENT_BGR, bar_frame

__all__ = ["INSTRUMENT_BGR", "decode_video", "draw_frame", "write_dvrk_video"]

draw_frame = bar_frame  #: the dataset tests' picture with its exact mask (see :mod:`synthetic.shapes`)


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


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weights ``fast`` checkpoint, one per test module (a module may define its own ``checkpoint``)."""
    return fast_checkpoint(tmp_path_factory.mktemp("model"))


def fast_checkpoint(folder: Path, instrument_bias: float | None = None) -> Path:
    """A random-weights ``fast`` checkpoint in ``folder``; with ``instrument_bias`` the head bias is set so
    that every pixel is "instrument" (the overlay covers the whole frame)."""
    meta = ModelMeta(config=preset("fast"))
    model = build_segmenter(meta)
    if instrument_bias is not None:
        model.unet.head.bias.data.fill_(instrument_bias)
    return save_checkpoint(folder / "fast.pt", model, meta)
