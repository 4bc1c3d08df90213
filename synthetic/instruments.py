"""Procedural surgical instruments (robotic and laparoscopic): sampling, motion and rendering.

Every part is an analytically rasterised, cylinder-shaded tapered segment, giving exact anti-aliased
coverage; the coverage is composited into a premultiplied instrument layer whose alpha is the mask source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .noise import Pulses, SmoothSignal


@dataclass(frozen=True)
class Material:
    """Simple cylinder shading material (albedo in BGR 0..1)."""

    albedo: tuple[float, float, float]
    diffuse: float = 0.8
    specular: float = 0.3
    shininess: float = 12.0
    ambient: float = 0.25


class Layer:
    """Premultiplied colour + coverage buffers for the instrument layer (float32)."""

    def __init__(self, height: int, width: int, grid: tuple[np.ndarray, np.ndarray] | None = None,
                 pad: int = 0) -> None:
        """`grid` = optional (gx, gy) scene coordinates of every output pixel (lens distortion), displaced
        by at most `pad` px from the pixel itself."""
        self.color = np.zeros((height, width, 3), np.float32)
        self.alpha = np.zeros((height, width), np.float32)
        self.grid = grid
        self.pad = pad

    def over(self, y0: int, x0: int, alpha: np.ndarray, color: np.ndarray) -> None:
        """Composite a straight-colour patch with coverage `alpha` over the layer at (y0, x0)."""
        hh, ww = alpha.shape
        a = alpha[..., None]
        c = self.color[y0:y0 + hh, x0:x0 + ww]
        c *= 1 - a
        c += color * a
        al = self.alpha[y0:y0 + hh, x0:x0 + ww]
        al *= 1 - alpha
        al += alpha


@dataclass(frozen=True)
class Light:
    """Directional light near the endoscope axis (camera looks along +z)."""

    x: float
    y: float
    z: float


def draw_segment(layer: Layer, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, mat: Material,
                 light: Light, round_end: bool = False, hole: tuple[float, float, float] | None = None,
                 axial_gain: float = 0.0, stain: tuple[np.ndarray, float, float] | None = None,
                 ribs: tuple[float, float, float] | None = None) -> None:
    """Rasterise a tapered cylinder from p0 (radius r0) to p1 (radius r1) with 1-px anti-aliasing.

    hole = (s_start, s_end, radius_fraction) cuts a window (fenestration); stain = (bgr, amount, phase);
    ribs = (count, amount, phase): fine longitudinal stripes / brushed texture around the circumference.
    """
    hgt, wid = layer.alpha.shape
    r0, r1 = max(r0, 1.0), max(r1, 1.0)  # ≥ 2 px wide: every drawn part has pixels with coverage ≥ 0.5
    d = p1 - p0
    length = float(np.hypot(*d))
    if length < 1e-3:
        return
    dx, dy = d / length
    pad = max(r0, r1) + 2 + layer.pad
    x0 = max(0, int(np.floor(min(p0[0], p1[0]) - pad)))
    x1 = min(wid, int(np.ceil(max(p0[0], p1[0]) + pad)) + 1)
    y0 = max(0, int(np.floor(min(p0[1], p1[1]) - pad)))
    y1 = min(hgt, int(np.ceil(max(p0[1], p1[1]) + pad)) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    if layer.grid is None:
        xs = (np.arange(x0, x1, dtype=np.float32) - np.float32(p0[0]))[None, :]
        ys = (np.arange(y0, y1, dtype=np.float32) - np.float32(p0[1]))[:, None]
    else:
        xs = layer.grid[0][y0:y1, x0:x1] - np.float32(p0[0])
        ys = layer.grid[1][y0:y1, x0:x1] - np.float32(p0[1])
    u = xs * np.float32(dx) + ys * np.float32(dy)
    v = ys * np.float32(dx) - xs * np.float32(dy)
    s = np.clip(u / np.float32(length), 0, 1)
    r = np.float32(r0) + np.float32(r1 - r0) * s
    alpha = np.clip(r - np.abs(v) + 0.5, 0, 1) * np.clip(u + 0.5, 0, 1) * np.clip(length - u + 0.5, 0, 1)
    if round_end:
        ex, ey = xs - np.float32(d[0]), ys - np.float32(d[1])
        alpha = np.maximum(alpha, np.clip(r1 - np.sqrt(ex * ex + ey * ey) + 0.5, 0, 1))
    if hole is not None and min(r0, r1) * (1 - hole[2]) >= 1.5:
        hs0, hs1, hf = hole
        ua, ub = hs0 * length, hs1 * length
        alpha *= 1 - np.clip(r * hf - np.abs(v) + 0.5, 0, 1) * np.clip(u - ua + 0.5, 0, 1) * np.clip(ub - u + 0.5, 0, 1)
    rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
    if rows.size == 0:
        return
    # shade only the tight bounding box of the covered pixels (long diagonal shafts waste most of the ROI)
    ra, rb, ca, cb = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    alpha = alpha[ra:rb, ca:cb]
    u = np.broadcast_to(u, (y1 - y0, x1 - x0))[ra:rb, ca:cb]
    v = np.broadcast_to(v, (y1 - y0, x1 - x0))[ra:rb, ca:cb]
    s = np.broadcast_to(s, (y1 - y0, x1 - x0))[ra:rb, ca:cb]
    r = np.broadcast_to(r, (y1 - y0, x1 - x0))[ra:rb, ca:cb]
    y0, x0 = y0 + int(ra), x0 + int(ca)
    t = np.clip(v / np.maximum(r, 0.5), -0.999, 0.999)
    nz = np.sqrt(1 - t * t)
    # in-plane normal direction is (-dy, dx) for positive v
    lxy = np.float32(-dy * light.x + dx * light.y)
    ndotl = np.clip(t * lxy + nz * np.float32(light.z), 0, 1)
    hz = light.z + 1.0
    hn = float(np.sqrt(light.x ** 2 + light.y ** 2 + hz ** 2))
    ndoth = np.clip(t * (lxy / hn) + nz * np.float32(hz / hn), 0, 1)
    spec = mat.specular * ndoth ** mat.shininess
    shade = mat.ambient + mat.diffuse * ndotl
    if axial_gain:
        shade = shade * (1 + np.float32(axial_gain) * s)
    if ribs is not None:
        count, amount, phase = ribs
        th = np.arcsin(t)  # angle around the cylinder: stripes run along the axis
        rib = (np.sin(th * np.float32(count) + np.float32(phase))
               + 0.6 * np.sin(th * np.float32(count * 2.37) + np.float32(2 * phase) + u * np.float32(0.011))
               + 0.4 * np.sin(th * np.float32(count * 5.1) + u * np.float32(0.03) + np.float32(3 * phase)))
        shade = shade * (1 + np.float32(amount / 2.0) * rib)
        spec = spec * (1 + np.float32(amount * 0.8) * rib)
    col = np.asarray(mat.albedo, np.float32) * shade[..., None] + spec[..., None]
    if stain is not None:
        bgr, amount, phase = stain
        sw = np.sin(u * 0.21 + phase) + np.sin(v * 0.37 + 2 * phase) + np.sin((u + v) * 0.13 + 3 * phase)
        sw = np.clip((sw / 3 + amount - 0.5) * 3, 0, 1)[..., None] * 0.9
        col = col * (1 - sw) + np.asarray(bgr, np.float32) * (0.4 + 0.6 * shade[..., None]) * sw
    layer.over(y0, x0, alpha, col)


def _rot(v: np.ndarray, a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _grey(rng: np.random.Generator, lo: float, hi: float, tint: np.ndarray | None = None,
          tint_amount: float = 0.0) -> tuple[float, float, float]:
    g = rng.uniform(lo, hi)
    c = np.array([g, g, g]) * np.exp(rng.normal(0, 0.04, 3))
    if tint is not None:
        c = c * (1 - tint_amount) + tint * g * 1.6 * tint_amount
    return tuple(float(x) for x in np.clip(c, 0, 1))


ROBOTIC_TOOLS = ("grasper", "fenestrated", "needle_driver", "scissors", "maryland")
LAP_TOOLS = ("grasper", "fenestrated", "hook", "clip_applier", "scissors", "probe")
LAP_SHAFT_COLORS = {  # BGR
    "black": (0.05, 0.05, 0.05), "grey": (0.30, 0.30, 0.31), "green": (0.45, 0.55, 0.10),
    "teal": (0.45, 0.50, 0.05), "blue": (0.65, 0.33, 0.12), "silver": (0.62, 0.62, 0.64),
}
PALE_PLASTIC_COLORS = {  # BGR: white, cream and pale-blue plastic shafts (suction, trocars, disposable graspers)
    "white": (0.86, 0.87, 0.88), "cream": (0.70, 0.84, 0.88), "pale_blue": (0.88, 0.80, 0.66),
}
DARK_PIN = Material((0.03, 0.03, 0.035), 0.5, 0.1, 8, 0.2)


@dataclass(frozen=True)
class Instrument:
    """A sampled instrument: appearance plus smooth motion signals (time in frames)."""

    family: str
    tool: str
    radius: float  # shaft radius at its distal end, px
    perspective: float  # relative radius growth per frame-width of shaft length
    shaft: Material
    metal: Material
    jaw: Material
    band: Material | None
    band_offset: float
    band_length: float
    jaw_length: float
    jaw_width: float
    max_open: float
    collar: float
    axial_gain: float
    stain: tuple[np.ndarray, float, float] | None
    shaft_ribs: tuple[float, float, float] | None
    metal_ribs: tuple[float, float, float] | None
    clevis_length: float
    clevis_hole: tuple[float, float, float] | None
    pins: bool
    base_angle: float
    tip_x: SmoothSignal
    tip_y: SmoothSignal
    center: tuple[float, float]
    angle_sig: SmoothSignal
    wrist_sig: SmoothSignal
    open_sig: SmoothSignal
    retract: Pulses

    @staticmethod
    def sample(rng: np.random.Generator, width: int, height: int, base_angle: float, tissue_bgr: np.ndarray,
               withdrawals: bool, close: bool = False, extended: bool = False) -> Instrument:
        """Sample a random robotic or laparoscopic instrument entering from direction `base_angle`.

        close = the instrument is near the camera: a much wider shaft (10-25 % of the frame width) and big
        wrist / jaws, with its tip nearer to the entry border.
        extended = also draw the instruments of :attr:`SceneConfig.extended_instruments` (the random draws
        for them are only made when it is set, so scenes without it are unchanged)."""
        robotic = rng.random() < (0.65 if close else 0.5)
        if close and extended and rng.random() < 0.5:  # a shaft filling much of the frame (25-45 % wide)
            radius = width * rng.uniform(0.12, 0.22)
        elif close:
            radius = width * rng.uniform(0.05, 0.12)
        else:
            radius = width * (rng.uniform(0.022, 0.06) if robotic else rng.uniform(0.010, 0.04))
        tint = tissue_bgr / max(float(tissue_bgr.max()), 1e-3)
        metal = Material(_grey(rng, 0.5, 0.9, tint, rng.uniform(0.1, 0.5)), 0.8, rng.uniform(0.5, 1.3),
                         rng.uniform(10, 50), 0.3)
        metal_ribs = (float(rng.uniform(30, 110)), float(rng.uniform(0.1, 0.35)), float(rng.uniform(0, 6.28)))
        clevis_length = radius * rng.uniform(0.9, 1.8)
        clevis_hole = (float(rng.uniform(0.15, 0.35)), float(rng.uniform(0.6, 0.85)), float(rng.uniform(0.3, 0.55))) \
            if rng.random() < 0.6 else None
        pins = bool(rng.random() < 0.75)
        shaft_ribs = None
        if robotic:
            tool = ROBOTIC_TOOLS[int(rng.integers(len(ROBOTIC_TOOLS)))]
            if rng.random() < 0.6:  # da Vinci style mid-grey shafts (RGB ~70-150) with a soft specular band
                shaft = Material(_grey(rng, 0.27, 0.6), rng.uniform(0.6, 0.9), rng.uniform(0.15, 0.45),
                                 rng.uniform(3, 10), 0.3)
            else:
                shaft = Material(_grey(rng, 0.06, 0.3), rng.uniform(0.6, 0.9), rng.uniform(0.05, 0.35),
                                 rng.uniform(4, 15), 0.25)
            shaft_ribs = (float(rng.uniform(30, 120)), float(rng.uniform(0.06, 0.3)), float(rng.uniform(0, 6.28)))
            if extended and rng.random() < (0.6 if close else 0.3):  # dark da Vinci shaft with pronounced ribs
                shaft = Material(_grey(rng, 0.04, 0.16), rng.uniform(0.6, 0.9), rng.uniform(0.2, 0.6),
                                 rng.uniform(3, 12), 0.25)
                shaft_ribs = (float(rng.uniform(40, 160)), float(rng.uniform(0.3, 0.55)), float(rng.uniform(0, 6.28)))
            band = None
            if rng.random() < 0.4:
                bc = (0.6, 0.35, 0.12) if rng.random() < 0.5 else _grey(rng, 0.35, 0.6)
                band = Material(tuple(float(x) for x in bc), 0.8, 0.2, 10, 0.25)
            jaw = metal if tool != "needle_driver" else Material(_grey(rng, 0.2, 0.4), 0.8, 0.6, 20, 0.25)
            jaw_length = radius * rng.uniform(1.3, 2.2) if tool == "needle_driver" else radius * rng.uniform(1.8, 3.8)
            jaw_width = radius * rng.uniform(0.35, 0.55)
        else:
            tool = LAP_TOOLS[int(rng.integers(len(LAP_TOOLS)))]
            name = list(LAP_SHAFT_COLORS)[int(rng.integers(len(LAP_SHAFT_COLORS)))]
            base = np.asarray(LAP_SHAFT_COLORS[name]) * np.exp(rng.normal(0, 0.1, 3))
            if extended and rng.random() < 0.35:  # matte white / pale plastic: broad, weak highlight
                pale = list(PALE_PLASTIC_COLORS.values())[int(rng.integers(len(PALE_PLASTIC_COLORS)))]
                albedo = np.clip(np.asarray(pale) * np.exp(rng.normal(0, 0.05, 3)), 0, 1)
                shaft = Material(tuple(float(x) for x in albedo), 0.9, rng.uniform(0.1, 0.35), rng.uniform(2, 8), 0.4)
            elif name == "silver":
                shaft = Material(_grey(rng, 0.45, 0.75, tint, 0.3), 0.8, rng.uniform(0.5, 1.0), rng.uniform(8, 30))
            else:
                shaft = Material(tuple(float(x) for x in np.clip(base, 0, 1)), 0.85, rng.uniform(0.2, 0.6),
                                 rng.uniform(10, 40), 0.25)
            band = None
            if rng.random() < 0.3:
                shaft_ribs = (float(rng.uniform(20, 80)), float(rng.uniform(0.03, 0.12)), float(rng.uniform(0, 6.28)))
            if rng.random() < 0.6:  # thin dark-grey / black metal tip and jaws
                metal = Material(_grey(rng, 0.04, 0.22), 0.8, rng.uniform(0.2, 0.8), rng.uniform(10, 40), 0.25)
                metal_ribs = None
            jaw = metal
            jaw_length = radius * rng.uniform(1.8, 3.5)
            jaw_width = radius * rng.uniform(0.25, 0.45)
        stain = None
        if rng.random() < 0.25:
            stain = (np.array([0.03, 0.03, 0.35]) * rng.uniform(0.6, 1.2), float(rng.uniform(0.2, 0.6)),
                     float(rng.uniform(0, 6.28)))
        amp = rng.uniform(0.15, 0.45)
        pulses: list[tuple[float, float, float]] = []
        if withdrawals and rng.random() < 0.3:
            pulses.append((float(rng.uniform(-20, 300)), float(rng.uniform(8, 25)), float(rng.uniform(0, 60))))
        # tip sits on the side of the frame opposite its entry direction, around the centre
        off = rng.uniform(-0.3, -0.05) if close else rng.uniform(0.0, 0.2)
        cx = 0.5 * width - np.cos(base_angle) * off * width
        cy = 0.5 * height - np.sin(base_angle) * off * height
        return Instrument(
            family="robotic" if robotic else "laparoscopic", tool=tool, radius=float(radius),
            perspective=float(rng.uniform(0.05, 0.35) if close else rng.uniform(0.1, 0.9)), shaft=shaft, metal=metal, jaw=jaw, band=band,
            band_offset=float(radius * rng.uniform(1.0, 4.0)), band_length=float(radius * rng.uniform(0.4, 1.2)),
            jaw_length=float(jaw_length), jaw_width=float(jaw_width), max_open=float(rng.uniform(0.2, 0.9)),
            collar=float(radius * rng.uniform(0.4, 1.2)), axial_gain=float(rng.uniform(-0.2, 0.4)), stain=stain,
            shaft_ribs=shaft_ribs, metal_ribs=metal_ribs, clevis_length=float(clevis_length),
            clevis_hole=clevis_hole, pins=pins, base_angle=float(base_angle),
            tip_x=SmoothSignal.random(rng, amp * width, 50, 400), tip_y=SmoothSignal.random(rng, amp * height, 50, 400),
            center=(float(cx), float(cy)), angle_sig=SmoothSignal.random(rng, rng.uniform(0.1, 0.45), 80, 500),
            wrist_sig=SmoothSignal.random(rng, rng.uniform(0.2, 0.9) if robotic else 0.0, 40, 200),
            open_sig=SmoothSignal.random(rng, 1.0, 20, 150), retract=Pulses(tuple(pulses)),
        )

    def draw(self, layer: Layer, t: float, light: Light, global_retract: float = 0.0) -> None:
        """Render the instrument at frame time t into the layer (front-most parts last)."""
        hgt, wid = layer.alpha.shape
        diag = float(np.hypot(wid, hgt))
        ang = self.base_angle + self.angle_sig(t)
        back = np.array([np.cos(ang), np.sin(ang)])  # from the distal end toward the entry port
        tip = np.array([self.center[0] + self.tip_x(t), self.center[1] + self.tip_y(t)])
        retract = max(self.retract(t), global_retract)
        tip = tip + back * retract * 1.5 * diag
        r = self.radius
        far = tip + back * 2.0 * diag
        r_far = r * (1 + self.perspective * 2.0 * diag / wid)
        fwd = -back
        # shaft
        draw_segment(layer, tip, far, r, r_far, self.shaft, light, axial_gain=self.axial_gain, ribs=self.shaft_ribs)
        if self.band is not None:
            b0 = tip + back * self.band_offset
            draw_segment(layer, b0, b0 + back * self.band_length, r * 1.01, r * 1.02, self.band, light)
        opening = self.max_open * (0.5 + 0.5 * self.open_sig(t))
        if self.family == "robotic":
            # metal clevis, wrist joint, then jaws articulated by the wrist angle
            c1 = tip + fwd * self.clevis_length
            draw_segment(layer, tip + back * r * 0.3, c1, r * 0.92, r * 0.75, self.metal, light,
                         hole=self.clevis_hole, ribs=self.metal_ribs)
            tdir = _rot(fwd, self.wrist_sig(t))
            w1 = c1 + tdir * r * 0.7
            draw_segment(layer, c1 - tdir * r * 0.2, w1, r * 0.55, r * 0.5, self.metal, light, round_end=True,
                         ribs=self.metal_ribs)
            if self.pins:  # screws / pins: bright rim, dark hole
                side = np.array([-fwd[1], fwd[0]])
                for pc, pr in ((tip + fwd * self.clevis_length * 0.15 + side * r * 0.45, r * 0.14),
                               (c1 + tdir * r * 0.15, r * 0.2)):
                    if pr >= 1.5:
                        draw_segment(layer, pc, pc + fwd * 0.5, pr * 1.5, pr * 1.5, self.metal, light, round_end=True)
                        draw_segment(layer, pc, pc + fwd * 0.5, pr, pr, DARK_PIN, light, round_end=True)
            self._jaws(layer, w1, tdir, r, opening, light)
        else:
            c1 = tip + fwd * self.collar
            draw_segment(layer, tip + back * 1.0, c1, r * 0.98, r * 0.7, self.metal, light, ribs=self.metal_ribs)
            if self.tool == "hook":
                w = r * 0.16
                h1 = c1 + fwd * self.jaw_length * 0.8
                draw_segment(layer, c1 - fwd * 1.0, h1, w * 1.4, w, self.metal, light, round_end=True)
                side = _rot(fwd, np.pi / 2 * (1 if self.open_sig(0) > 0 else -1))
                draw_segment(layer, h1, h1 + side * r * 0.6, w, w, self.metal, light, round_end=True)
            elif self.tool == "probe":
                draw_segment(layer, c1 - fwd, c1 + fwd * self.jaw_length, r * 0.55, r * 0.3, self.metal, light,
                             round_end=True)
            else:
                self._jaws(layer, c1, fwd, r, opening * (0.4 if self.tool == "clip_applier" else 1.0), light)

    def _jaws(self, layer: Layer, base: np.ndarray, tdir: np.ndarray, r: float, opening: float, light: Light) -> None:
        normal = np.array([-tdir[1], tdir[0]])
        fen = (0.25, 0.8, 0.45) if self.tool == "fenestrated" else None
        width = self.jaw_width * (1.6 if self.tool == "clip_applier" else 1.0)
        for sgn in (-1.0, 1.0):
            jd = _rot(tdir, sgn * opening / 2)
            p0 = base + normal * sgn * width * 0.6 - tdir * 1.0
            if self.tool in ("scissors", "maryland"):
                mid = p0 + jd * self.jaw_length * 0.55
                jd2 = _rot(jd, 0.35 * (1 if self.tool == "maryland" else sgn * 0.6))
                draw_segment(layer, p0, mid, width, width * 0.7, self.jaw, light, round_end=True, stain=self.stain)
                draw_segment(layer, mid, mid + jd2 * self.jaw_length * 0.45, width * 0.7, width * 0.25, self.jaw,
                             light, round_end=True, stain=self.stain)
            else:
                draw_segment(layer, p0, p0 + jd * self.jaw_length, width, width * 0.35, self.jaw, light,
                             round_end=True, hole=fen, stain=self.stain)
