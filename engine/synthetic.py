"""Deterministic test material: drawn surgical-like frames and random-weight models with non-trivial masks.

Used by ``verify``, ``bench``, ``gpu_check`` and the tests; nothing here needs a dataset.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from models.checkpoint import ModelMeta, build_segmenter
from models.frame_model import FrameSegmenter
from models.unet import UNetConfig


def draw_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``count`` BGR ``uint8`` frames ``N×H×W×3``: textured reddish tissue with grey instrument shafts."""
    if count < 1 or height < 8 or width < 8:
        raise ValueError(f"need count >= 1 and a frame of at least 8x8, got {count} frames of {height}x{width}")
    rng = np.random.default_rng(seed)
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for index in range(count):
        noise = rng.normal(0.0, 1.0, (height // 8 + 1, width // 8 + 1)).astype(np.float32)
        texture = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        shade = 0.6 + 0.4 * np.cos((xx - width / 2) / width * 2.5) * np.cos((yy - height / 2) / height * 2.5)
        base = np.stack([40 + 20 * texture, 50 + 25 * texture, 150 + 50 * texture], axis=-1) * shade[..., None]
        frame = np.clip(base, 0, 255).astype(np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            start = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            grey = int(rng.integers(140, 230))
            thickness = max(2, int(min(height, width) * rng.uniform(0.04, 0.1)))
            cv2.line(frame, start, end, (grey, grey, grey + 10 if grey < 245 else grey), thickness, cv2.LINE_AA)
            cv2.circle(frame, end, thickness, (grey - 30, grey - 30, grey - 20), -1, cv2.LINE_AA)
        frames[index] = cv2.GaussianBlur(frame, (3, 3), 0)
    return frames


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
