"""Procedural tissue textures: organ regions, vessels, fat, blood, wet glints, depth shading."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .noise import smooth_noise

# base albedos in RGB, 0..1 (converted to BGR at the end)
TISSUE_COLORS: dict[str, tuple[float, float, float]] = {
    "peritoneum": (0.88, 0.46, 0.43),
    "muscle": (0.78, 0.22, 0.20),
    "dark": (0.45, 0.09, 0.09),
    "fat": (0.92, 0.72, 0.38),
    "liver": (0.50, 0.20, 0.17),
    "fascia": (0.90, 0.79, 0.73),
    "bowel": (0.90, 0.50, 0.40),
    "gallbladder": (0.76, 0.76, 0.64),
}

SCENES: dict[str, tuple[str, ...]] = {
    "pelvic": ("peritoneum", "muscle", "dark", "fascia", "peritoneum", "fat"),
    "liver": ("liver", "liver", "fat", "gallbladder", "bowel", "dark"),
    "fatty": ("fat", "fat", "peritoneum", "bowel", "dark"),
    "bloody": ("muscle", "dark", "dark", "peritoneum"),
    "mixed": tuple(TISSUE_COLORS),
}


@dataclass
class TissueTexture:
    """Tissue texture (BGR float32 0..1) plus an RGBA overlay of occluders drawn over instruments."""

    color: np.ndarray  # H×W×3 float32 BGR
    overlay: np.ndarray  # H×W×4 float32 (BGR premultiplied, alpha); alpha edges are 1-px anti-aliased
    mean_color: np.ndarray  # (3,) float32 BGR, used for metal reflections


def _jitter(rng: np.random.Generator, rgb: tuple[float, float, float], amount: float = 0.08) -> np.ndarray:
    c = np.asarray(rgb, np.float32) * np.exp(rng.normal(0, amount, 3)).astype(np.float32)
    c *= np.float32(np.exp(rng.normal(0, 0.1)))
    return np.clip(c, 0.02, 1.0)


def _noisy_polygon(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, angle: float,
                   roughness: float = 0.25, n: int = 48) -> np.ndarray:
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rad = np.ones(n)
    for k in range(2, 7):
        rad += roughness / k * rng.normal() * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    rad = np.clip(rad, 0.35, 1.8)
    x, y = rx * rad * np.cos(th), ry * rad * np.sin(th)
    ca, sa = np.cos(angle), np.sin(angle)
    pts = np.stack([cx + ca * x - sa * y, cy + sa * x + ca * y], 1)
    return pts


def fill_polygon_aa(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    """Anti-aliased (≈1 px) polygon coverage, float32 0..1."""
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def _vessel_tree(canvas: np.ndarray, rng: np.random.Generator, x: float, y: float, ang: float, width: float,
                 depth: int, scale: float) -> None:
    steps = int(rng.integers(8, 30))
    pts = [(x, y)]
    for _ in range(steps):
        ang += rng.normal(0, 0.35)
        step = scale * rng.uniform(5, 12)
        x, y = x + step * np.cos(ang), y + step * np.sin(ang)
        pts.append((x, y))
        if depth > 0 and rng.random() < 0.18:
            _vessel_tree(canvas, rng, x, y, ang + rng.choice([-1, 1]) * rng.uniform(0.4, 1.2),
                         width * rng.uniform(0.45, 0.75), depth - 1, scale)
        width *= 0.985
    arr = np.round(np.asarray(pts) * 4).astype(np.int32)
    cv2.polylines(canvas, [arr], False, 255, max(1, int(round(width))), cv2.LINE_AA, shift=2)


def _normals(height: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) * strength
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) * strength
    inv = 1.0 / np.sqrt(1.0 + gx * gx + gy * gy)
    return -gx * inv, -gy * inv, inv


def render_tissue(rng: np.random.Generator, height: int, width: int, occluders: bool = True) -> TissueTexture:
    """Render one tissue texture (done once per video; frames are warped crops of it)."""
    h, w = height, width
    scale = max(h, w) / 900.0
    scene = list(SCENES)[int(rng.integers(len(SCENES)))]
    kinds_pool = SCENES[scene]
    k = int(rng.integers(2, 6))
    kinds = [kinds_pool[int(rng.integers(len(kinds_pool)))] for _ in range(k)]
    cols = np.stack([_jitter(rng, TISSUE_COLORS[kd]) for kd in kinds])  # k×3 RGB

    # organ regions: soft argmax of smooth fields, with dark creases at the boundaries
    fields = np.stack([smooth_noise(rng, h, w, rng.uniform(1.2, 3.0), octaves=2) + rng.normal(0, 0.4)
                       for _ in range(k)])
    top2 = -np.partition(-fields, 1, axis=0)[:2] if k > 1 else np.concatenate([fields, fields - 9])
    margin = top2[0] - top2[1]
    tau = rng.uniform(0.05, 0.2)
    wts = np.exp((fields - top2[0][None]) / tau)
    wts /= wts.sum(0, keepdims=True)
    rgb = np.einsum("khw,kc->hwc", wts, cols).astype(np.float32)

    # per-region detail
    mid = smooth_noise(rng, h, w, rng.uniform(8, 20), octaves=3)
    rgb *= (1.0 + rng.uniform(0.05, 0.15) * mid)[..., None]
    for i, kd in enumerate(kinds):
        wk = wts[i]
        if kd == "fat":
            lob = smooth_noise(rng, h, w, max(h, w) / (scale * rng.uniform(14, 30)))
            fat_mod = np.clip(1.0 + 0.12 * lob, 0.7, 1.2)
            gaps = np.clip((-lob - 1.3) * 1.5, 0, 1) * wk * 0.5
            rgb *= (1 + (fat_mod - 1) * wk)[..., None]
            rgb += gaps[..., None] * (np.array([0.55, 0.15, 0.1], np.float32) - rgb) * 0.6
        elif kd == "liver":
            speck = smooth_noise(rng, h, w, max(h, w) / (scale * 4.0))
            rgb *= (1.0 + 0.08 * speck * wk)[..., None]

    # vessels (more on pink tissue, fewer on fat/liver)
    vessel_density = np.zeros((h, w), np.float32)
    for i, kd in enumerate(kinds):
        vessel_density += wts[i] * {"peritoneum": 1.0, "bowel": 0.9, "fascia": 0.7, "muscle": 0.6, "fat": 0.5,
                                    "gallbladder": 0.6, "liver": 0.15, "dark": 0.3}[kd]
    vcan = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(8, 45) * (w * h) / (900 * 700))):
        _vessel_tree(vcan, rng, rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 2 * np.pi),
                     scale * rng.uniform(1.5, 6.0), 3, scale)
    vmap = cv2.GaussianBlur(vcan.astype(np.float32) / 255.0, (0, 0), scale * rng.uniform(0.5, 1.5))
    vcol = _jitter(rng, (0.55, 0.05, 0.07) if rng.random() < 0.7 else (0.38, 0.12, 0.28), 0.1)
    va = np.clip(vmap * vessel_density * rng.uniform(0.5, 1.1), 0, 1)[..., None]
    rgb = rgb * (1 - va) + vcol * va

    # blood pools and smears baked into the tissue
    blood_rgb = _jitter(rng, (0.32, 0.02, 0.03), 0.15)
    for _ in range(int(rng.poisson(1.2))):
        pts = _noisy_polygon(rng, rng.uniform(0, w), rng.uniform(0, h), scale * rng.uniform(15, 90),
                             scale * rng.uniform(10, 60), rng.uniform(0, np.pi), 0.4)
        a = cv2.GaussianBlur(fill_polygon_aa((h, w), pts), (0, 0), scale * rng.uniform(1, 6))
        a *= rng.uniform(0.6, 1.0)
        rgb = rgb * (1 - a[..., None]) + blood_rgb * a[..., None]
    for _ in range(int(rng.poisson(1.0))):
        smear = np.zeros((h, w), np.uint8)
        _vessel_tree(smear, rng, rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 2 * np.pi),
                     scale * rng.uniform(8, 25), 0, scale * 2)
        a = cv2.GaussianBlur(smear.astype(np.float32) / 255, (0, 0), scale * 6) * rng.uniform(0.3, 0.7)
        rgb = rgb * (1 - a[..., None]) + blood_rgb * a[..., None]

    # depth and surface shading
    hgt = smooth_noise(rng, h, w, rng.uniform(2, 5), octaves=3)
    nx, ny, nz = _normals(hgt, rng.uniform(0.02, 0.08) / scale)
    light = np.array([rng.normal(0, 0.3), rng.normal(0, 0.3), 1.0])
    light /= np.linalg.norm(light)
    diffuse = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0, 1)
    depth = smooth_noise(rng, h, w, rng.uniform(1.0, 2.5))
    depth_mul = np.clip(0.8 + rng.uniform(0.1, 0.25) * depth, 0.35, 1.1)
    crease = np.exp(-margin / rng.uniform(0.03, 0.12)) * rng.uniform(0.3, 0.8)
    shade = (0.35 + 0.65 * diffuse ** 1.5) * depth_mul * (1 - crease)
    rgb *= shade[..., None]

    # wet specular glints: high-frequency bumps whose normals face the light
    bumps = smooth_noise(rng, h, w, max(h, w) / (scale * rng.uniform(6, 16)), octaves=2)
    bx, by, bz = _normals(bumps + 0.5 * hgt, rng.uniform(0.15, 0.4) / scale)
    spec = np.clip(bx * light[0] + by * light[1] + bz * light[2], 0, 1) ** rng.uniform(120, 500)
    wet = np.clip(smooth_noise(rng, h, w, 3) * 0.8 + rng.uniform(-0.5, 0.5), 0, 1)
    glint = np.clip(spec * wet * rng.uniform(0.8, 2.5), 0, 1)[..., None]
    rgb = rgb + glint * (np.array([1.0, 0.97, 0.95], np.float32) - rgb)
    rgb = np.clip(rgb, 0, 1)

    # saturation boost: real scenes are strongly pink / red / yellow
    lum = (rgb @ np.array([0.3, 0.59, 0.11], np.float32))[..., None]
    rgb = np.clip(lum + (rgb - lum) * np.float32(rng.uniform(1.0, 1.25)), 0, 1)
    rgb = _hard_negatives(rng, rgb, h, w, scale, shade)

    overlay = np.zeros((h, w, 4), np.float32)
    if occluders:
        overlay = _render_occluders(rng, h, w, scale, blood_rgb, rgb)
    color = np.ascontiguousarray(rgb[..., ::-1])
    return TissueTexture(color=color, overlay=overlay, mean_color=color.reshape(-1, 3).mean(0))


PALE_COLORS = ((0.90, 0.90, 0.86), (0.78, 0.83, 0.72), (0.78, 0.82, 0.90), (0.93, 0.84, 0.84), (0.85, 0.86, 0.80))
THREAD_COLORS = ((0.45, 0.20, 0.62), (0.20, 0.30, 0.75), (0.92, 0.92, 0.90), (0.10, 0.35, 0.20), (0.35, 0.25, 0.55))


def _hard_negatives(rng: np.random.Generator, rgb: np.ndarray, h: int, w: int, scale: float,
                    shade: np.ndarray) -> np.ndarray:
    """Background items that must NOT be segmented: pale glossy organs (gallbladder-like) with big soft
    highlights, whitish fibrous membranes, and thin sutures / threads."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lit = (0.55 + 0.45 * np.clip(shade / max(float(shade.max()), 1e-3), 0, 1))[..., None]
    for _ in range(int(rng.poisson(0.8))):  # pale glossy organ blob
        cx, cy = rng.uniform(0.15 * w, 0.85 * w), rng.uniform(0.15 * h, 0.85 * h)
        rx, ry = scale * rng.uniform(50, 180), scale * rng.uniform(35, 120)
        pts = _noisy_polygon(rng, cx, cy, rx, ry, rng.uniform(0, np.pi), 0.25)
        a = cv2.GaussianBlur(fill_polygon_aa((h, w), pts), (0, 0), scale * rng.uniform(1, 4))
        dome = cv2.GaussianBlur(a, (0, 0), scale * rng.uniform(15, 35))
        dome = dome / max(float(dome.max()), 1e-3)
        col = _jitter(rng, PALE_COLORS[int(rng.integers(len(PALE_COLORS)))], 0.05)
        body = col * (0.45 + 0.55 * dome)[..., None] * lit
        sx, sy = cx + rng.normal(0, 0.25) * rx, cy + rng.normal(0, 0.25) * ry
        sig = scale * rng.uniform(12, 45)
        hl = np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * sig * sig)) * rng.uniform(0.5, 1.0)
        body = body + (hl * dome)[..., None] * (1.0 - body)
        rgb = rgb * (1 - a[..., None]) + body * a[..., None]
    for _ in range(int(rng.poisson(0.7))):  # whitish fibrous membrane / fascia sheet
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        pts = _noisy_polygon(rng, cx, cy, scale * rng.uniform(60, 220), scale * rng.uniform(25, 90),
                             rng.uniform(0, np.pi), 0.5)
        a = cv2.GaussianBlur(fill_polygon_aa((h, w), pts), (0, 0), scale * rng.uniform(3, 12))
        ang = rng.uniform(0, np.pi)
        proj = (xx * np.cos(ang) + yy * np.sin(ang)) / scale
        fib = 0.5 + 0.5 * np.sin(proj * rng.uniform(0.15, 0.5) + 4 * smooth_noise(rng, h, w, 4))
        a = a * (rng.uniform(0.35, 0.75) * (0.55 + 0.45 * fib))
        col = _jitter(rng, (0.95, 0.90, 0.88), 0.04)
        rgb = rgb * (1 - a[..., None]) + (col * lit) * a[..., None]
    for _ in range(int(rng.poisson(0.9))):  # suture / thread: thin smooth curve
        can = np.zeros((h, w), np.uint8)
        x, y, ang = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 2 * np.pi)
        curv = rng.normal(0, 0.08)
        pts = [(x, y)]
        for _ in range(int(rng.integers(10, 40))):
            curv += rng.normal(0, 0.03)
            ang += curv
            x, y = x + scale * 12 * np.cos(ang), y + scale * 12 * np.sin(ang)
            pts.append((x, y))
        thick = max(1, int(round(scale * rng.uniform(1.0, 3.0))))
        cv2.polylines(can, [np.round(np.asarray(pts) * 4).astype(np.int32)], False, 255, thick, cv2.LINE_AA, shift=2)
        a = (can.astype(np.float32) / 255 * rng.uniform(0.7, 1.0))[..., None]
        col = _jitter(rng, THREAD_COLORS[int(rng.integers(len(THREAD_COLORS)))], 0.08)
        rgb = rgb * (1 - a) + col * lit * a
    return np.clip(rgb, 0, 1).astype(np.float32)


def _render_occluders(rng: np.random.Generator, h: int, w: int, scale: float, blood_rgb: np.ndarray,
                      tissue_rgb: np.ndarray) -> np.ndarray:
    """Opaque blood pools / tissue flaps (sharp edges) that are composited over instruments."""
    overlay = np.zeros((h, w, 4), np.float32)
    n = int(rng.choice([0, 0, 1, 1, 2, 3]))
    for _ in range(n):
        cx, cy = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)
        rx, ry = scale * rng.uniform(25, 110), scale * rng.uniform(15, 70)
        pts = _noisy_polygon(rng, cx, cy, rx, ry, rng.uniform(0, np.pi), 0.45)
        a = fill_polygon_aa((h, w), pts)
        inner = cv2.GaussianBlur(a, (0, 0), scale * rng.uniform(3, 10))  # 0 at edge → 1 inside
        if rng.random() < 0.5:  # blood pool, glossy, darker in the middle, clotted texture
            tex = 1.0 + 0.25 * smooth_noise(rng, h, w, max(h, w) / (scale * 12), octaves=2)
            base = blood_rgb * ((1.15 - 0.55 * inner) * tex)[..., None]
            hi = smooth_noise(rng, h, w, max(h, w) / (scale * 8))
            base = base + (np.clip(hi - 2.0, 0, 1) * 2.5 * (1 - inner))[..., None]
        else:  # tissue flap: a displaced piece of the same tissue, lit body, darker rolled rim
            dx, dy = int(rng.integers(-w // 3, w // 3)), int(rng.integers(-h // 3, h // 3))
            src = np.roll(tissue_rgb, (dy, dx), axis=(0, 1))
            tint = _jitter(rng, TISSUE_COLORS[["peritoneum", "fascia", "fat", "muscle", "bowel"][int(rng.integers(5))]])
            base = (src * 0.6 + tint * 0.4 * src.mean((0, 1)) / max(float(tint.mean()), 1e-3))
            base = base * (0.5 + 0.65 * inner)[..., None]
        base = np.clip(base, 0, 1)[..., ::-1]
        overlay[..., :3] = base * a[..., None] + overlay[..., :3] * (1 - a[..., None])
        overlay[..., 3] = a + overlay[..., 3] * (1 - a)
    return overlay
