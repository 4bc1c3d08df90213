"""The live app's preprocess path (``resize_to_input_fast``) against the exact area resize it replaces.

Tolerance (issue 21, also in docs/app.md): on the scene generator's frames at 720p and 1080p the fast
path's model input differs from ``cv2.INTER_AREA``'s by at most :data:`MAX_LEVELS` grey levels and
:data:`MEAN_LEVELS` on average, and the shipped model's masks from the two agree on at least
:data:`MASK_AGREEMENT` of the pixels. Frames it does not speed up (small, upscaled, odd-sized) are
resized exactly as before. Its speed is measured by ``python -m app.bench --live``, not asserted here.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.core.stage import Frame
from app.core.stages import Infer
from app.core.stats import FrameTimes
from app.sources.live import scene_frames
from engine.backends import InferenceBackend, create_backend, sigmoid
from models.checkpoint import DEFAULT_CHECKPOINT, ModelMeta
from models.frame_model import resize_to_input, resize_to_input_fast
from models.unet import preset

INPUT = (256, 320)  # the shipped model's input (height, width)
MAX_LEVELS, MEAN_LEVELS = 16, 0.5
MASK_AGREEMENT = 0.999
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


@pytest.fixture(scope="module")
def frames() -> dict[str, list[np.ndarray]]:
    """Three consecutive scene frames at each size."""
    return {name: scene_frames(width, height, 3) for name, (width, height) in SIZES.items()}


@pytest.mark.parametrize("name", SIZES)
def test_fast_path_stays_close_to_inter_area(frames: dict[str, list[np.ndarray]], name: str) -> None:
    for image in frames[name]:
        exact = cv2.resize(image, INPUT[::-1], interpolation=cv2.INTER_AREA)
        fast = resize_to_input_fast(image, INPUT)
        assert fast.shape == exact.shape and fast.dtype == np.uint8
        diff = np.abs(fast.astype(np.int16) - exact)
        assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS, (diff.max(), diff.mean())
        assert not np.array_equal(fast, exact)  # the fast path was taken


def test_fast_path_is_an_area_average_not_a_decimation() -> None:
    """One-pixel lines (a thin instrument's edge) are kept as a faint line, as by INTER_AREA, not lost or aliased."""
    image = np.zeros((1080, 1920, 3), np.uint8)
    image[:, ::6] = 240  # vertical lines, one every 6 pixels: area averages them to 40 everywhere
    fast = resize_to_input_fast(image, INPUT)
    assert np.abs(fast.astype(int) - 40).max() <= 1


@pytest.mark.parametrize(
    "shape", [(240, 320, 3), (256, 320, 3), (600, 800, 3), (719, 1279, 3), (1080, 1919, 3), (100, 2000, 3)]
)
def test_frames_it_does_not_speed_up_are_resized_exactly(shape: tuple[int, int, int]) -> None:
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(resize_to_input_fast(image, INPUT), resize_to_input(image, INPUT))


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="shipped model not present")
def test_shipped_model_sees_the_same_instruments(frames: dict[str, list[np.ndarray]]) -> None:
    with create_backend(DEFAULT_CHECKPOINT, "onnxruntime-cpu", threads=1) as backend:
        for images in frames.values():
            for image in images:
                exact, fast = (
                    sigmoid(backend.infer(resize(image, backend.input_size)[None])[0, 0]) >= backend.threshold
                    for resize in (resize_to_input, resize_to_input_fast)
                )
                assert np.mean(exact == fast) >= MASK_AGREEMENT


class _Recorder(InferenceBackend):
    """Records the model inputs it is given; all-zero logits."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__(ModelMeta(config=preset("fast"), input_height=INPUT[0], input_width=INPUT[1]))
        self.inputs: list[np.ndarray] = []

    def infer(self, frames: np.ndarray) -> np.ndarray:
        self.inputs.append(frames[0].copy())
        return np.zeros((1, 1, *INPUT), np.float32)


def test_infer_stage_uses_the_fast_path(frames: dict[str, list[np.ndarray]]) -> None:
    backend = _Recorder()
    image = frames["1080p"][0]
    (done,) = Infer(backend, lambda: 0.0).process(Frame(FrameTimes(index=0, capture=0.0), image))
    assert np.array_equal(backend.inputs[0], resize_to_input_fast(image, INPUT))
    assert done.probability is not None and done.probability.shape == INPUT
    assert np.array_equal(backend.resize_frame(image), resize_to_input(image, INPUT))  # the default stays exact
