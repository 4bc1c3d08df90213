"""Per-video scene state and frame rendering: camera motion, compositing, mask extraction."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from .config import SceneConfig
from .effects import PostEffects
from .instruments import Instrument, Layer, Light
from .noise import Pulses, SmoothSignal
from .optics import Illumination, field_stop, lens_distortion_maps
from .tissue import render_tissue

# independent random streams: toggling one element never changes the others
_TISSUE, _CAMERA, _INSTR, _OPTICS, _EFFECTS, _FRAME = 1, 2, 3, 4, 5, 100
_TEX_MARGIN = 1.4  # tissue texture is this much larger than the frame (room for pan / zoom / roll)


class SceneRenderer:
    """All per-video state (textures, instruments, optics); `render(i)` gives (frame, mask) for frame i."""

    def __init__(self, seed: int, width: int, height: int, config: SceneConfig | None = None) -> None:
        if seed < 0:
            raise ValueError("seed must be >= 0")
        if width < 16 or height < 16:
            raise ValueError("width and height must be >= 16")
        self.seed, self.w, self.h = int(seed), int(width), int(height)
        self.cfg = cfg = config or SceneConfig()

        def rng(stream: int) -> np.random.Generator:
            return np.random.default_rng([self.seed, stream])

        r = rng(_TISSUE)
        tw, th = int(np.ceil(width * _TEX_MARGIN)), int(np.ceil(height * _TEX_MARGIN))
        self.tissue = render_tissue(r, th, tw, occluders=cfg.occluders)
        self.has_overlay = bool(self.tissue.overlay[..., 3].any())

        r = rng(_CAMERA)
        self.tex_c = (tw / 2, th / 2)
        self.zoom0 = float(r.uniform(1.0, 1.25))
        self.zoom_sig = SmoothSignal.random(r, 0.1, 100, 600)
        self.pan_x = SmoothSignal.random(r, 0.1 * width, 100, 600)
        self.pan_y = SmoothSignal.random(r, 0.1 * height, 100, 600)
        self.roll0 = float(r.uniform(-0.15, 0.15))
        self.roll_sig = SmoothSignal.random(r, 0.06, 100, 600)
        gh, gw = 5, 6
        self.def_amp = float(r.uniform(0.003, 0.015) * width)
        self.def_phase = r.uniform(0, 2 * np.pi, (2, gh, gw)).astype(np.float32)
        self.def_period = float(r.uniform(60, 150))  # breathing-like
        self.def_amp_grid = r.uniform(0.3, 1.0, (2, gh, gw)).astype(np.float32)

        r = rng(_INSTR)
        count_u = r.random()
        lo, hi = cfg.min_instruments, cfg.max_instruments
        n = lo + int(min(count_u * (hi - lo + 1), hi - lo)) if hi > lo else lo
        a0 = r.uniform(0, 2 * np.pi)
        # at most one instrument close to the camera (very wide shaft, big wrist) per scene
        close_k = int(r.integers(0, max(1, n))) if r.random() < 0.45 else -1
        insts = []
        for k in range(max(3, hi)):
            ang = a0 + k * 2 * np.pi / max(2, n) + r.normal(0, 0.35)
            insts.append(Instrument.sample(r, width, height, float(ang), self.tissue.mean_color, cfg.withdrawals,
                                           close=k == close_k, extended=cfg.extended_instruments))
        order = r.permutation(len(insts))
        self.instruments = [insts[i] for i in order if i < n]
        self.light = Light(float(r.normal(0, 0.35)), float(r.normal(0, 0.35)), 1.0)
        self.global_retract = Pulses(())
        if r.random() < 0.3 and cfg.withdrawals:
            self.global_retract = Pulses(((float(r.uniform(-10, 280)), float(r.uniform(8, 20)),
                                           float(r.uniform(5, 40))),))

        r = rng(_OPTICS)
        self.stop = field_stop(r, height, width, cfg.field_stop)
        self.stop_hard = None if self.stop is None else (self.stop >= 0.5).astype(np.float32)
        self.illum = Illumination(r, height, width)
        self.lens = lens_distortion_maps(r, height, width, cfg.lens_distortion)
        # scene coordinates of every output pixel, relative to the frame centre (lens distortion folded in)
        if self.lens is None:
            self.xc = np.arange(width, dtype=np.float32)[None, :] - np.float32(width / 2)
            self.yc = np.arange(height, dtype=np.float32)[:, None] - np.float32(height / 2)
        self.lens_pad = 0
        if self.lens is not None:
            ys, xs = np.mgrid[0:height, 0:width]
            self.lens_pad = int(np.ceil(max(np.abs(self.lens[0] - xs).max(), np.abs(self.lens[1] - ys).max()))) + 1
            self.xc = self.lens[0] - np.float32(width / 2)
            self.yc = self.lens[1] - np.float32(height / 2)

        self.fx = PostEffects(rng(_EFFECTS), height, width, cfg)

    def _maps(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        zoom, roll, px, py = self.zoom0, self.roll0, 0.0, 0.0
        if cfg.camera_motion:
            zoom *= 1 + self.zoom_sig(t)
            roll += self.roll_sig(t)
            px, py = self.pan_x(t), self.pan_y(t)
        c, s = np.cos(roll) / zoom, np.sin(roll) / zoom
        mx = np.float32(self.tex_c[0] + px) + np.float32(c) * self.xc - np.float32(s) * self.yc
        my = np.float32(self.tex_c[1] + py) + np.float32(s) * self.xc + np.float32(c) * self.yc
        if cfg.tissue_deformation:
            ph = np.float32(2 * np.pi * t / self.def_period)
            grid = self.def_amp * self.def_amp_grid * np.sin(ph + self.def_phase)
            dx = cv2.resize(grid[0], (self.w, self.h), interpolation=cv2.INTER_CUBIC)
            dy = cv2.resize(grid[1], (self.w, self.h), interpolation=cv2.INTER_CUBIC)
            mx, my = mx + dx, my + dy
        return mx, my

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Render frame `index`: (uint8 H×W×3 BGR frame, uint8 H×W mask in {0, 255})."""
        t = float(index)
        mx, my = self._maps(t)
        bg = cv2.remap(self.tissue.color, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        layer = Layer(self.h, self.w, self.lens, self.lens_pad)
        if self.cfg.draw_instruments:
            gr = self.global_retract(t)
            for inst in self.instruments:
                inst.draw(layer, t, self.light, gr)
        cov, col = layer.alpha, layer.color
        if self.stop_hard is not None:
            # instruments are cut by the field stop at its 50 % line (the soft stop then darkens everything),
            # so no partially-stopped instrument sliver can fall below the mask threshold
            cov, col = cov * self.stop_hard, col * self.stop_hard[..., None]
        hard = None
        if self.has_overlay:
            ov = cv2.remap(self.tissue.overlay, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            # hard-edged occluders: a soft occluder edge crossing a soft instrument edge would leave sub-pixel
            # slivers of instrument (coverage < 0.5) that no binary mask can represent
            hard = ov[..., 3] >= 0.5
        if cov.any():
            # drop anti-aliasing fringe pixels (coverage < 0.5) that are not next to a visible mask pixel, e.g. an
            # instrument edge running along an occluder edge: nothing unmasked may show instrument beyond 1 px
            vis = cov >= 0.5 if hard is None else (cov >= 0.5) & ~hard
            keep = cv2.dilate(vis.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
            cov, col = cov * keep, col * keep[..., None]
        bg = self.fx.shadow(bg, cov)
        img = col + bg * (1 - cov)[..., None]
        if hard is not None:
            ao = hard.astype(np.float32)
            occ = ov[..., :3] / np.maximum(ov[..., 3:], 1e-3)
            img = np.where(hard[..., None], occ, img)
            cov = cov * (1 - ao)
        img = img * self.illum(t)[..., None]
        img = self.fx.smoke(img, t)
        if self.stop is not None:
            img = img * self.stop[..., None]
        mask = np.where(cov >= 0.5, np.uint8(255), np.uint8(0))
        frame = self.fx.finish(img, t, np.random.default_rng([self.seed, _FRAME, index]))
        return frame, mask


def generate_video(seed: int, num_frames: int, width: int = 701, height: int = 538,
                   config: SceneConfig | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (frame, mask) per frame: frame uint8 H×W×3 BGR, mask uint8 H×W with values {0,255}.

    Deterministic by seed; frame i does not depend on num_frames (a longer video extends a shorter one).
    """
    if num_frames < 0:
        raise ValueError("num_frames must be >= 0")
    scene = SceneRenderer(seed, width, height, config)  # built eagerly so bad arguments fail at the call
    return (scene.render(i) for i in range(num_frames))
