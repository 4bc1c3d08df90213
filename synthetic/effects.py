"""Image-only post-effects (never change the mask): shadows, smoke, blur, colour, noise, JPEG."""

from __future__ import annotations

import cv2
import numpy as np

from .config import SceneConfig
from .noise import Pulses, SmoothSignal, smooth_noise


class PostEffects:
    """Per-video random post-effect parameters; `apply` works on one float32 BGR frame (0..1)."""

    def __init__(self, rng: np.random.Generator, height: int, width: int, cfg: SceneConfig) -> None:
        self.h, self.w, self.cfg = height, width, cfg
        # every random draw happens regardless of the toggles, so toggles never change other content
        self.shadow_strength = float(rng.uniform(0.15, 0.5))
        self.shadow_offset = rng.normal(0, 0.012, 2) * width
        self.shadow_blur = float(rng.uniform(0.006, 0.02) * width)
        self.smoke_on = rng.random() < 0.35
        self.lh, self.lw = max(8, height // 4), max(8, width // 4)
        self.smoke_tex = smooth_noise(rng, 2 * self.lh, 2 * self.lw, 5, octaves=3) * 0.5 + 0.3
        self.smoke_level = SmoothSignal.random(rng, 1.0, 60, 300)
        self.smoke_max = float(rng.uniform(0.15, 0.6))
        self.smoke_color = np.array([0.85, 0.85, 0.88], np.float32) * np.float32(rng.uniform(0.7, 1.0))
        self.smoke_drift = rng.normal(0, 0.15, 2)
        self.motion_on = rng.random() < 0.4
        starts = rng.uniform(-10, 300, 4)
        self.motion_pulses = Pulses(tuple((float(s), float(rng.uniform(2, 8)), float(rng.uniform(0, 15)))
                                          for s in starts))
        self.motion_len = float(rng.uniform(3, 14) * width / 700)
        self.motion_angle = SmoothSignal.random(rng, 3.0, 30, 200)
        self.defocus_on = rng.random() < 0.25
        self.defocus_sig = SmoothSignal.random(rng, 1.0, 40, 200)
        self.defocus_max = float(rng.uniform(1.0, 3.0) * width / 700)
        self.wb = np.exp(rng.normal(0, 0.08, 3)).astype(np.float32)
        self.exposure = float(np.exp(rng.normal(0.05, 0.2)))
        self.flicker = SmoothSignal.random(rng, 0.05, 10, 80)
        self.gamma = float(np.exp(rng.normal(0, 0.12)))
        self.saturation = float(np.exp(rng.normal(0.0, 0.2)))
        self.noise_on = rng.random() < 0.85
        self.noise_sigma = float(np.exp(rng.uniform(np.log(0.002), np.log(0.03))))
        self.jpeg_on = rng.random() < 0.5
        self.jpeg_quality = int(rng.integers(30, 95))
        self.lut = np.clip(((np.arange(256) / 255.0) ** self.gamma) * 255 + 0.5, 0, 255).astype(np.uint8)

    def shadow(self, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Darken the background with a soft, offset copy of the instrument coverage."""
        if not self.cfg.shadows or not alpha.any():
            return bg
        small = cv2.resize(alpha, (max(4, self.w // 4), max(4, self.h // 4)), interpolation=cv2.INTER_AREA)
        m = np.float32([[1, 0, self.shadow_offset[0] / 4], [0, 1, self.shadow_offset[1] / 4]])
        small = cv2.warpAffine(small, m, (small.shape[1], small.shape[0]), borderMode=cv2.BORDER_REPLICATE)
        small = cv2.GaussianBlur(small, (0, 0), max(0.5, self.shadow_blur / 4))
        sh = cv2.resize(small, (self.w, self.h), interpolation=cv2.INTER_LINEAR)
        return bg * (1 - self.shadow_strength * sh)[..., None]

    def smoke(self, img: np.ndarray, t: float) -> np.ndarray:
        """Translucent drifting smoke / haze patches."""
        if not (self.cfg.smoke and self.smoke_on):
            return img
        level = max(0.0, self.smoke_level(t)) * self.smoke_max
        if level <= 0.01:
            return img
        ox = int(self.lw * (0.5 + 0.5 * np.sin(self.smoke_drift[0] * t * 0.05)))
        oy = int(self.lh * (0.5 + 0.5 * np.sin(self.smoke_drift[1] * t * 0.05)))
        crop = self.smoke_tex[oy:oy + self.lh, ox:ox + self.lw]
        hz = cv2.resize(crop, (self.w, self.h), interpolation=cv2.INTER_CUBIC)
        hz = np.clip(hz, 0, 1) * np.float32(level)
        return img * (1 - hz[..., None]) + self.smoke_color * hz[..., None]

    def finish(self, img: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
        """Blur, colour, noise, quantisation, gamma and JPEG; returns uint8 BGR."""
        cfg = self.cfg
        if cfg.defocus and self.defocus_on:
            sigma = max(0.0, self.defocus_sig(t)) * self.defocus_max
            if sigma > 0.3:
                img = cv2.GaussianBlur(img, (0, 0), sigma)
        if cfg.motion_blur and self.motion_on:
            length = self.motion_pulses(t) * self.motion_len
            if length >= 1.5:
                n = int(np.ceil(length)) | 1
                k = np.zeros((n, n), np.float32)
                ang = self.motion_angle(t)
                c = n // 2
                p = (c + np.cos(ang) * length / 2, c + np.sin(ang) * length / 2)
                q = (c - np.cos(ang) * length / 2, c - np.sin(ang) * length / 2)
                cv2.line(k, (int(round(q[0] * 8)), int(round(q[1] * 8))), (int(round(p[0] * 8)), int(round(p[1] * 8))),
                         1.0, 1, cv2.LINE_AA, shift=3)
                img = cv2.filter2D(img, -1, k / max(float(k.sum()), 1e-6))
        if cfg.color_jitter:
            img = img * (self.wb * np.float32(self.exposure * (1 + self.flicker(t))))
            gray = img @ np.array([0.114, 0.587, 0.299], np.float32)
            img = gray[..., None] + np.float32(self.saturation) * (img - gray[..., None])
        if cfg.sensor_noise and self.noise_on:
            noise = rng.standard_normal(img.shape, dtype=np.float32)
            img = img + noise * (np.float32(self.noise_sigma) * (0.5 + np.sqrt(np.clip(img, 0, 1))))
        out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
        if cfg.color_jitter:
            out = cv2.LUT(out, self.lut)
        if cfg.jpeg and self.jpeg_on:
            q = int(np.clip(self.jpeg_quality + rng.integers(-5, 6), 10, 100))
            ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok:
                out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return out
