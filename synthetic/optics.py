"""Endoscope optics: field stop, vignetting / light-source hot spot, lens distortion."""

from __future__ import annotations

import cv2
import numpy as np

from .noise import SmoothSignal


def field_stop(rng: np.random.Generator, height: int, width: int, enabled: bool = True) -> np.ndarray | None:
    """Random field-stop transmission map (float32 0..1, ~1-3 px soft edge) or None for full frame."""
    kind = rng.choice(["none", "circle", "ellipse", "rounded_rect", "bars"], p=[0.22, 0.3, 0.28, 0.12, 0.08])
    # edge softness: mostly crisp, sometimes a wide blurry falloff
    soft = float(rng.uniform(0.8, 3.0) if rng.random() < 0.6 else rng.uniform(3.0, 14.0))
    off = 0.03 if rng.random() < 0.6 else 0.12  # sometimes clearly off-centre
    cx = width / 2 + rng.uniform(-off, off) * width
    cy = height / 2 + rng.uniform(-off, off) * height
    circle_r = rng.uniform(0.42, 0.75) * height
    ry = rng.uniform(0.42, 0.68) * height
    ell = (ry * rng.uniform(0.8, 1.6), ry)
    inset = (rng.uniform(0.0, 0.06) * width, rng.uniform(0.0, 0.06) * height, rng.uniform(0.05, 0.35) * height)
    bars = rng.uniform(0.003, 0.06) * width
    if not enabled or kind == "none":
        return None
    x = np.arange(width, dtype=np.float32)[None, :] - np.float32(cx)
    y = np.arange(height, dtype=np.float32)[:, None] - np.float32(cy)
    if kind == "circle":
        dist = circle_r - np.sqrt(x * x + y * y)
    elif kind == "ellipse":
        rx, ry = ell
        rho = np.sqrt((x / rx) ** 2 + (y / ry) ** 2)
        dist = (1 - rho) * min(rx, ry)
    elif kind == "rounded_rect":
        mx, my, rad = inset
        hx, hy = width / 2 - mx, height / 2 - my
        rad = min(rad, hx, hy)
        qx = np.abs(x) - (hx - rad)
        qy = np.abs(y) - (hy - rad)
        outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2) + np.minimum(np.maximum(qx, qy), 0)
        dist = rad - outside
    else:
        dist = np.broadcast_to(width / 2 - bars - np.abs(x), (height, width))
    return np.ascontiguousarray(np.clip(dist / soft + 0.5, 0, 1).astype(np.float32))


class Illumination:
    """Vignetting times a slowly drifting hot spot from the light source (multiplicative map)."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.h, self.w = height, width
        self.lh, self.lw = max(4, height // 8), max(4, width // 8)
        y, x = np.mgrid[0:self.lh, 0:self.lw].astype(np.float32)
        self.x = (x + 0.5) / self.lw - 0.5
        self.y = ((y + 0.5) / self.lh - 0.5) * (height / width)
        r2 = (self.x ** 2 + self.y ** 2) / 0.4
        self.vignette = np.clip(1 - rng.uniform(0.2, 0.8) * r2 ** rng.uniform(0.7, 1.5), 0.05, 1)
        self.spot_gain = float(rng.uniform(0.0, 0.8))
        self.spot_sigma = float(rng.uniform(0.12, 0.4))
        self.spot_c = (float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.15, 0.15)))
        self.dx = SmoothSignal.random(rng, 0.08, 80, 400)
        self.dy = SmoothSignal.random(rng, 0.06, 80, 400)
        self.base = float(rng.uniform(0.75, 1.0))

    def __call__(self, t: float) -> np.ndarray:
        sx, sy = self.spot_c[0] + self.dx(t), self.spot_c[1] + self.dy(t)
        spot = np.exp(-((self.x - sx) ** 2 + (self.y - sy) ** 2) / (2 * self.spot_sigma ** 2))
        low = (self.base + self.spot_gain * spot) * self.vignette
        return cv2.resize(low.astype(np.float32), (self.w, self.h), interpolation=cv2.INTER_LINEAR)


def lens_distortion_maps(rng: np.random.Generator, height: int, width: int,
                         enabled: bool = True) -> tuple[np.ndarray, np.ndarray] | None:
    """Occasional slight barrel distortion (corners fixed), or None.

    Returns (gx, gy): float32 H×W undistorted (scene) coordinates seen by each output pixel. The renderer
    evaluates the tissue warp and the analytic instrument geometry at these coordinates, so the distortion
    needs no resampling of finished images and the mask stays exact.
    """
    use = rng.random() < 0.35
    k = float(rng.uniform(0.04, 0.2))
    if not (enabled and use):
        return None
    cx, cy = (width - 1) / 2, (height - 1) / 2
    f = float(np.hypot(cx, cy))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    xn, yn = (x - cx) / f, (y - cy) / f
    scale = (1 + k * (xn * xn + yn * yn)) / (1 + k)
    return (xn * scale * f + cx).astype(np.float32), (yn * scale * f + cy).astype(np.float32)
