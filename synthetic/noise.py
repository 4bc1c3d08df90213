"""Random smooth fields and smooth 1-D signals (deterministic given a numpy Generator)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: float, octaves: int = 1,
                 persistence: float = 0.5) -> np.ndarray:
    """Band-limited noise, float32 H×W, zero mean, unit std; `cells` = features across the long side."""
    out = np.zeros((height, width), np.float32)
    amp = 1.0
    long_side = max(height, width)
    for _ in range(octaves):
        gw = max(2, int(round(cells * width / long_side)) + 2)
        gh = max(2, int(round(cells * height / long_side)) + 2)
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        # upsample from a slightly larger grid and crop a random window to hide grid alignment
        big = cv2.resize(grid, (width + width // max(1, gw - 1), height + height // max(1, gh - 1)),
                         interpolation=cv2.INTER_CUBIC)
        ox = int(rng.integers(0, big.shape[1] - width + 1))
        oy = int(rng.integers(0, big.shape[0] - height + 1))
        out += amp * big[oy:oy + height, ox:ox + width]
        amp *= persistence
        cells *= 2.0
    out -= out.mean()
    std = float(out.std())
    return out / std if std > 1e-6 else out


@dataclass(frozen=True)
class SmoothSignal:
    """Sum of low-frequency sinusoids; |value| <= amplitude. Time in frames."""

    amps: tuple[float, ...]
    freqs: tuple[float, ...]
    phases: tuple[float, ...]

    @classmethod
    def random(cls, rng: np.random.Generator, amplitude: float = 1.0, min_period: float = 60.0,
               max_period: float = 400.0, components: int = 3) -> SmoothSignal:
        """Random signal with periods (in frames) drawn log-uniformly in [min_period, max_period]."""
        w = rng.uniform(0.3, 1.0, components)
        w = w / w.sum() * amplitude
        periods = np.exp(rng.uniform(np.log(min_period), np.log(max_period), components))
        return cls(tuple(float(a) for a in w), tuple(float(1.0 / p) for p in periods),
                   tuple(float(p) for p in rng.uniform(0, 2 * np.pi, components)))

    def __call__(self, t: float) -> float:
        return float(sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in zip(self.amps, self.freqs, self.phases, strict=False)))


def smoothstep(x: float) -> float:
    """Cubic smoothstep of x clipped to [0, 1]."""
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


@dataclass(frozen=True)
class Pulses:
    """Sum of smooth trapezoid pulses in [0, 1]: (start, ramp, hold) per pulse, time in frames."""

    pulses: tuple[tuple[float, float, float], ...]

    def __call__(self, t: float) -> float:
        v = 0.0
        for start, ramp, hold in self.pulses:
            up = smoothstep((t - start) / ramp)
            down = smoothstep((t - start - ramp - hold) / ramp)
            v = max(v, up - down)
        return v
