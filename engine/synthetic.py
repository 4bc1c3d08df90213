"""Deterministic test material: generated surgical frames and random-weight models with non-trivial masks.

Used by ``verify``, ``bench``, ``gpu_check`` and the tests; nothing here needs a dataset.
"""

from __future__ import annotations

import numpy as np
import torch

from models.checkpoint import ModelMeta, build_segmenter
from models.frame_model import FrameSegmenter
from models.unet import UNetConfig
from synthetic import generate_video


def draw_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``count`` BGR ``uint8`` frames ``N×H×W×3`` of a generated surgical scene (the project's generator)."""
    if count < 1:
        raise ValueError(f"need count >= 1, got {count}")
    frames = [frame for frame, _ in generate_video(seed, count, width=width, height=height)]
    return np.stack(frames)


def random_model(
    config: UNetConfig,
    input_size: tuple[int, int],
    seed: int = 0,
    calibrate: bool = True,
    positive_fraction: float = 0.35,
) -> tuple[FrameSegmenter, ModelMeta]:
    """A model with random weights; with ``calibrate`` the 1×1 head is rescaled so that logits
    spread over a few units and about ``positive_fraction`` of the pixels of a drawn frame are
    "instrument" (a non-trivial mask, as parity tests need)."""
    torch.manual_seed(seed)
    meta = ModelMeta(config=config, input_height=input_size[0], input_width=input_size[1])
    model = build_segmenter(meta).eval()
    if calibrate:
        frames = torch.from_numpy(draw_frames(2, *input_size, seed=seed + 1000))
        with torch.no_grad():
            logits = model(frames)
            scale = 3.0 / max(float(logits.std()), 1e-6)
            model.unet.head.weight.mul_(scale)
            model.unet.head.bias.mul_(scale)
            centre = float(torch.quantile(model(frames).flatten().float(), 1.0 - positive_fraction))
            model.unet.head.bias.sub_(centre)
    return model, meta
