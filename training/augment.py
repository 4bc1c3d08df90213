"""Training augmentations on ``uint8`` BGR images and 0/1 masks (OpenCV, seeded).

Geometric operations (scale, translation, rotation, flips) are folded into ONE affine warp
applied to the image (bilinear) and to the mask (nearest), so both stay aligned and the mask
stays binary. Photometric operations (brightness, contrast, saturation, hue, gamma, colour
temperature, blur, noise, JPEG) only touch the image. Every random draw comes from the
``numpy.random.Generator`` passed in, so a given (seed, epoch, index) is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges and probabilities of each augmentation (set a probability to 0 to disable one)."""

    scale: tuple[float, float] = (0.75, 1.6)
    aspect: float = 0.25  # log-uniform x/y stretch: frames of other aspect ratios (16:9, 5:4) squeezed to the input
    translate: float = 0.1  # fraction of width/height
    rotate_deg: float = 12.0
    hflip: float = 0.5
    vflip: float = 0.2
    brightness: float = 0.2  # additive, fraction of 255
    contrast: float = 0.25  # multiplicative, 1 ± value
    saturation: float = 0.3
    hue_deg: float = 8.0
    gamma: float = 0.25
    temperature: float = 0.1  # opposite gains on red and blue
    p_photometric: float = 0.8
    p_blur: float = 0.2
    p_noise: float = 0.2
    noise_sigma: float = 6.0
    p_jpeg: float = 0.2
    jpeg_quality: tuple[int, int] = (40, 90)


def affine_matrix(
    height: int,
    width: int,
    scale: float,
    angle_deg: float,
    shift: tuple[float, float],
    hflip: bool,
    vflip: bool,
    stretch: float = 1.0,
) -> np.ndarray:
    """2×3 matrix: flip, stretch x by ``stretch`` and y by ``1/stretch``, rotate/scale about the centre, shift."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    flip = np.array([[(-1.0 if hflip else 1.0) * stretch, 0, 0], [0, (-1.0 if vflip else 1.0) / stretch, 0], [0, 0, 1]])
    centre = np.array([[1.0, 0, -cx], [0, 1, -cy], [0, 0, 1]])
    theta = math.radians(angle_deg)
    rot = np.array(
        [
            [scale * math.cos(theta), -scale * math.sin(theta), 0],
            [scale * math.sin(theta), scale * math.cos(theta), 0],
            [0, 0, 1],
        ]
    )
    back = np.array([[1.0, 0, cx + shift[0]], [0, 1, cy + shift[1]], [0, 0, 1]])
    return (back @ rot @ flip @ centre)[:2]


def geometric(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Random scale/translate/rotate/flip of image and mask with one shared affine warp."""
    height, width = mask.shape[:2]
    scale = math.exp(rng.uniform(math.log(cfg.scale[0]), math.log(cfg.scale[1])))
    angle = rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)
    stretch = math.exp(rng.uniform(-cfg.aspect, cfg.aspect))
    shift = (rng.uniform(-cfg.translate, cfg.translate) * width, rng.uniform(-cfg.translate, cfg.translate) * height)
    matrix = affine_matrix(height, width, scale, angle, shift, rng.random() < cfg.hflip, rng.random() < cfg.vflip, stretch)
    image = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    mask = cv2.warpAffine(mask, matrix, (width, height), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
    return image, mask


def photometric(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Random brightness, contrast, gamma, colour temperature, saturation and hue (image only)."""
    # Brightness, contrast, gamma and temperature folded into one per-channel lookup table.
    values = np.arange(256, dtype=np.float32) / 255.0
    contrast = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
    brightness = rng.uniform(-cfg.brightness, cfg.brightness)
    gamma = math.exp(rng.uniform(-cfg.gamma, cfg.gamma))
    temperature = rng.uniform(-cfg.temperature, cfg.temperature)
    gains = (1.0 - temperature, 1.0, 1.0 + temperature)  # B, G, R
    base = np.clip((values - 0.5) * contrast + 0.5 + brightness, 0.0, 1.0) ** gamma
    lut = np.stack([np.clip(base * g, 0.0, 1.0) for g in gains], axis=-1)
    lut = (lut * 255.0 + 0.5).astype(np.uint8).reshape(256, 1, 3)
    image = cv2.LUT(image, lut)
    saturation = 1.0 + rng.uniform(-cfg.saturation, cfg.saturation)
    hue = rng.uniform(-cfg.hue_deg, cfg.hue_deg) / 2.0  # OpenCV hue unit is 2 degrees
    if abs(saturation - 1.0) > 1e-3 or abs(hue) > 0.25:
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        h = ((hsv[..., 0].astype(np.int16) + int(round(hue))) % 180).astype(np.uint8)
        s = np.clip(hsv[..., 1].astype(np.float32) * saturation, 0, 255).astype(np.uint8)
        image = cv2.cvtColor(np.dstack([h, s, hsv[..., 2]]), cv2.COLOR_HSV2BGR)
    return image


def degrade(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Random Gaussian blur, Gaussian noise and JPEG compression (image only)."""
    if rng.random() < cfg.p_blur:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < cfg.p_noise:
        noise = rng.normal(0.0, rng.uniform(1.0, cfg.noise_sigma), image.shape).astype(np.float32)
        image = np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < cfg.p_jpeg:
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return image


def augment(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the full augmentation pipeline; returns a new ``(image, mask)`` pair, mask still 0/1."""
    cfg = cfg or AugmentConfig()
    image, mask = geometric(image, mask, rng, cfg)
    if rng.random() < cfg.p_photometric:
        image = photometric(image, rng, cfg)
    image = degrade(image, rng, cfg)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)
