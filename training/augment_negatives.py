"""Cholecystectomy and monochrome-sensor negatives for the training augmentation (issue 18, item 4).

The shipped model marks tissue as instrument on footage nobody here has: white connective-tissue strands and
fascia, yellow fat, glare right beside a tool tip (cholecystectomy), and bright, grainy, textured tissue filmed
by a monochrome sensor (a robot on ex-vivo tissue). These operations draw those looks:

- ``white_strands``, ``fat_lobules`` and ``tip_glare`` are hard negatives drawn BEHIND the instruments with
  ``_behind_instruments`` (only where the mask is 0 and the image is not a field stop's black surround), so the
  labels stay exact;
- ``monochrome_sensor`` changes the colours of the whole frame, instruments included, and never the mask.

Colours are kept away from the generator's instruments (``synthetic/instruments.py``: metal greys, black
shafts, white/cream/pale-blue plastic shafts). Strands are whitish but *translucent* (at most 0.85 opacity, the
tissue shows through and tints them pink), thin (1 to 5 px at 256×320) and curved, with a warm tint, never an
opaque neutral grey-white band with straight parallel edges. Fat is a saturated yellow to orange (HSV saturation
at least 0.55; the cream plastic shaft is about 0.2) in rounded lobules with crevices between them.

Every random draw comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

SURROUND_LEVEL = 12
"""Pixels whose brightest channel is at most this are taken as the black surround of a field stop."""


def brightest(image: np.ndarray) -> np.ndarray:
    """The brightest channel of each pixel of a BGR image (``image.max(axis=2)``, several times faster)."""
    return np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])


def _behind_instruments(image: np.ndarray, mask: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite ``layer`` (float BGR 0..255) with coverage ``alpha`` where the mask is background and the
    image is not the black surround of a field stop."""
    alpha = (alpha * ((mask == 0) & (brightest(image) > SURROUND_LEVEL)))[..., None]
    return np.clip(image.astype(np.float32) * (1.0 - alpha) + layer * alpha, 0, 255).astype(np.uint8)


def _local_light(image: np.ndarray) -> np.ndarray:
    """How lit each place is (H×W float32, about 0.35..1.05): a blurred luminance relative to the bright end,
    so a negative drawn in a dark, vignetted corner is dark too."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    small = cv2.resize(grey, (max(8, grey.shape[1] // 4), max(8, grey.shape[0] // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 3.0)
    light = cv2.resize(small, (grey.shape[1], grey.shape[0]), interpolation=cv2.INTER_LINEAR)
    top = max(float(np.percentile(small, 95)), 1.0)
    return np.clip(0.35 + 0.8 * light / top, 0.35, 1.05)


# ---------------------------------------------------------------------------------------------- white strands

STRAND_BGR = ((0.90, 0.93, 0.99), (0.86, 0.92, 1.00), (0.88, 0.95, 0.98), (0.93, 0.94, 0.99))
"""Whitish connective tissue, always a little warm (red ≥ blue + 0.05): never the neutral grey-white of a plastic
shaft, and drawn translucent so the tissue beneath tints it further."""


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, count: int) -> np.ndarray:
    """``count`` points (``count``×2) of the quadratic Bézier curve through ``p0`` and ``p2`` pulled towards ``p1``."""
    t = np.linspace(0.0, 1.0, count)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _draw_fibre(layers: dict[str, np.ndarray], points: np.ndarray, width: float, rng: np.random.Generator) -> None:
    """Draw one fibre into ``layers["cover"]`` (its opacity, 0..255) and a broken 1-px wet core into
    ``layers["sheen"]``; anti-aliased lines blend over what is there, as one translucent fibre over another."""
    count = len(points)
    phase, wobble = rng.uniform(0, 2 * math.pi), rng.uniform(2.0, 6.0)
    shine = rng.uniform(-1.0, 0.6)  # the wet core shows where a slow wave is above this
    t = (np.arange(count - 1) + 0.5) / (count - 1)
    taper = 0.35 + 0.65 * np.sin(np.pi * t)  # thin where it is attached, fuller in the middle
    along = 0.5 + 0.5 * np.sin(phase + wobble * np.pi * t)  # frayed: opacity varies along the fibre
    thickness = np.maximum(1, np.round(width * taper)).astype(int).tolist()
    level = (255 * (0.45 + 0.55 * along)).astype(int).tolist()
    wet = (np.sin(phase * 1.7 + 2.5 * np.pi * t) > shine).tolist()
    fixed = [tuple(p) for p in np.round(points * 4).astype(np.int32).tolist()]  # 2 fractional bits (shift=2)
    cover, sheen = layers["cover"], layers["sheen"]
    for i in range(count - 1):
        cv2.line(cover, fixed[i], fixed[i + 1], level[i], thickness[i], cv2.LINE_AA, shift=2)
    strength = int(255 * rng.uniform(0.3, 1.0))
    for i in range(count - 1):
        if wet[i]:
            cv2.line(sheen, fixed[i], fixed[i + 1], strength, 1, cv2.LINE_AA, shift=2)


def _draw_bundle(layers: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """One strand, or a fan of fibres spread between two attachment points (with, sometimes, a faint fibrous
    fascia sheet spanning the fan), somewhere across the frame."""
    height, width = layers["cover"].shape
    scale = min(height, width) / 256.0
    length = rng.uniform(0.15, 0.5) * math.hypot(height, width)
    start = np.array([rng.uniform(0.05, 0.95) * width, rng.uniform(0.05, 0.95) * height])
    angle = rng.uniform(0, 2 * math.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    end = start + length * direction
    fibres = 1 if rng.random() < 0.35 else int(rng.integers(3, 10))
    bow = rng.normal(0.0, 0.12) * length
    spread = rng.uniform(0.1, 0.35) * length if fibres > 1 else 0.0
    widest = rng.uniform(1.0, 3.0 if fibres > 1 else 5.0) * scale
    curves = []
    for k in range(fibres):
        offset = bow + (spread * (k / (fibres - 1) - 0.5) if fibres > 1 else 0.0)
        pull = (start + end) / 2 + normal * offset + rng.normal(0.0, 0.03 * length, 2)
        ends = [p + rng.normal(0.0, 0.02 * length, 2) for p in (start, end)]
        curve = _bezier(ends[0], pull, ends[1], 32)
        curves.append(curve)
        _draw_fibre(layers, curve, widest * rng.uniform(0.5, 1.0), rng)
    if fibres > 2 and rng.random() < 0.6:  # the sheet: many faint fibres between the fan's outer two
        level = rng.uniform(0.25, 0.5)
        for t in np.linspace(0.0, 1.0, int(rng.integers(8, 20))):
            curve = (1 - t) * curves[0] + t * curves[-1] + rng.normal(0.0, 0.01 * length, 2)
            shade = int(255 * level * rng.uniform(0.4, 1.0))
            cv2.polylines(layers["sheet"], [np.round(curve * 4).astype(np.int32)], False, shade, 1, cv2.LINE_AA, shift=2)


def strand_coverage(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(opacity 0..1, wet sheen 0..1), each ``height×width`` float32, of 1 to 3 strand bundles with soft edges."""
    layers = {name: np.zeros((height, width), np.uint8) for name in ("cover", "sheet", "sheen")}
    for _ in range(int(rng.integers(1, 4))):
        _draw_bundle(layers, rng)
    scale = max(min(height, width) / 256.0, 0.5)
    cover = cv2.GaussianBlur(layers["cover"].astype(np.float32) / 255.0, (0, 0), rng.uniform(0.6, 1.1) * scale)
    if layers["sheet"].any():
        sheet = cv2.GaussianBlur(layers["sheet"].astype(np.float32) / 255.0, (0, 0), 1.5 * scale)
        np.maximum(cover, sheet, out=cover)
    sheen = cv2.GaussianBlur(layers["sheen"].astype(np.float32) / 255.0, (0, 0), 0.5 * scale)
    return cover, sheen


def white_strands(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thin, translucent whitish connective-tissue strands and fascia behind the instruments: curved fibres of
    varying width crossing the tissue, some fanned between two points with a faint sheet between them, with a
    broken wet sheen along their cores. Tissue shows through them (opacity at most 0.85)."""
    height, width = mask.shape[:2]
    cover, sheen = strand_coverage(rng, height, width)
    colour = np.asarray(STRAND_BGR[int(rng.integers(len(STRAND_BGR)))], np.float32) * rng.uniform(0.85, 1.0)
    shine, opacity = rng.uniform(0.3, 0.6), rng.uniform(0.55, 0.8)
    ys, xs = np.nonzero(cover > 1e-4)
    if len(ys) == 0:
        return image
    roi = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    cover, sheen = cover[roi], sheen[roi]
    layer = colour[None, None] * _local_light(image)[roi][..., None] + sheen[..., None] * shine
    alpha = np.clip(cover * opacity + sheen * 0.3, 0.0, 0.85)
    out = image.copy()
    out[roi] = _behind_instruments(image[roi], mask[roi], np.clip(layer, 0, 1) * 255.0, alpha)
    return out


# ------------------------------------------------------------------------------------------------ fat lobules

FAT_BGR = ((0.30, 0.80, 0.96), (0.22, 0.68, 0.95), (0.40, 0.86, 0.95), (0.18, 0.58, 0.92))
"""Yellow to orange fat (hue 32–50°, saturation 0.58–0.80): far from the cream plastic shaft (saturation 0.2)."""

CREVICE_BGR = (0.16, 0.30, 0.70)
"""The orange-red of the creases between lobules (small vessels, shadow)."""


def lobule_cluster(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(relief 0..1 with a dome per lobule, glint 0..1), each ``height×width`` float32: a packed cluster of 12 to
    45 rounded lobules scattered around a random centre, each with a small highlight near its top."""
    side = min(height, width)
    relief = np.zeros((height, width), np.float32)
    glint = np.zeros((height, width), np.float32)
    centre = np.array([rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height])
    count = int(rng.integers(12, 46))
    size = rng.uniform(0.025, 0.06) * side
    spread = size * math.sqrt(count) * rng.uniform(0.3, 0.45) * np.array([rng.uniform(0.6, 1.6), 1.0])
    threshold = rng.uniform(0.93, 0.98)
    light = rng.normal(0.0, 0.25, 2)  # highlight offset from the dome's top, in radii
    for _ in range(count):
        rx, ry = size * rng.uniform(0.6, 1.4) * rng.uniform(0.8, 1.25, 2)
        cx, cy = centre + rng.normal(0.0, 1.0, 2) * spread
        x0, x1 = max(0, int(cx - rx) - 1), min(width, int(cx + rx) + 2)
        y0, y1 = max(0, int(cy - ry) - 1), min(height, int(cy + ry) + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        u, v = (xx - cx) / rx, (yy - cy) / ry
        wobble = 1.0 + rng.uniform(0.0, 0.18) * np.sin(int(rng.integers(3, 7)) * np.arctan2(v, u) + rng.uniform(0, 6.3))
        dome = np.clip(1.0 - (u * u + v * v) / (wobble * wobble), 0.0, 1.0) ** 0.35  # flat-topped, irregular rim
        top = np.sqrt(np.clip(1.0 - (u - light[0]) ** 2 - (v - light[1]) ** 2, 0.0, 1.0))
        gloss = rng.uniform(0.3, 1.0) if rng.random() < 0.6 else 0.0
        shine = np.clip((top - threshold) / (1.0 - threshold), 0.0, 1.0) ** 2 * (dome > 0) * gloss
        np.maximum(relief[y0:y1, x0:x1], dome, out=relief[y0:y1, x0:x1])
        np.maximum(glint[y0:y1, x0:x1], shine, out=glint[y0:y1, x0:x1])
    return relief, glint


def fat_lobules(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cluster of yellow, glossy, rounded fat lobules behind the instruments: yellow-to-orange domes, orange-red
    creases between them, a fine mottled texture and small wet highlights."""
    height, width = mask.shape[:2]
    relief, glint = lobule_cluster(rng, height, width)
    scale = max(min(height, width) / 256.0, 0.5)
    ys, xs = np.nonzero(relief)
    if len(ys) == 0:
        return image
    pad = int(math.ceil(4.5 * scale)) + 1  # room for the soft edge
    roi = (slice(max(0, ys.min() - pad), ys.max() + pad + 1), slice(max(0, xs.min() - pad), xs.max() + pad + 1))
    relief, glint = relief[roi], glint[roi]
    colour = np.asarray(FAT_BGR[int(rng.integers(len(FAT_BGR)))], np.float32) * rng.uniform(0.85, 1.05)
    inside = (relief > 0).astype(np.float32)
    crease = np.clip(1.0 - relief / 0.6, 0.0, 1.0) * inside  # near a lobule's rim: the crease
    tone = colour[None, None] + crease[..., None] * (np.asarray(CREVICE_BGR, np.float32) - colour) * rng.uniform(0.3, 0.7)
    grain = cv2.GaussianBlur(rng.normal(0.0, 1.0, relief.shape).astype(np.float32), (0, 0), 1.5 * scale)
    shade = np.clip((0.7 + 0.3 * relief) * (1.0 + rng.uniform(0.1, 0.25) * grain) * _local_light(image)[roi], 0.0, None)
    # shadowed fat turns orange-brown, not olive: blue and green fall faster than red (light scattered in the fat)
    layer = tone * np.stack([shade * np.sqrt(shade), shade * shade**0.2, shade**0.8], axis=-1)
    layer = layer + glint[..., None] * (1.0 - layer) * rng.uniform(0.6, 1.0)
    alpha = cv2.GaussianBlur(inside, (0, 0), rng.uniform(0.6, 1.5) * scale) * rng.uniform(0.85, 1.0)
    out = image.copy()
    out[roi] = _behind_instruments(image[roi], mask[roi], np.clip(layer, 0, 1) * 255.0, alpha)
    return out


# ---------------------------------------------------------------------------------------------- glare at tips


def instrument_tips(image: np.ndarray, mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(tip point (x, y), unit direction the instrument points in) of each end of an instrument inside the view:
    the mask's convex extremities (jaw tips, the end of a shaft), found as mask pixels around which little of a
    disc is instrument, counting what is outside the view (frame edge, field stop) as instrument, so the place
    where a shaft enters the view is no tip. Sharpest first (thin jaws before blunt ends)."""
    height, width = mask.shape[:2]
    r = max(3, int(0.08 * min(height, width)))
    inside = mask > 0
    solid = (inside | (brightest(image) <= 3 * SURROUND_LEVEL)).astype(np.float32)  # also a soft stop's dark rim
    padded = cv2.copyMakeBorder(solid, r, r, r, r, cv2.BORDER_CONSTANT, value=1.0)
    share = cv2.blur(padded, (2 * r + 1, 2 * r + 1))[r:-r, r:-r]
    candidates = (inside & (share < 0.35) & (share > 0.03)).astype(np.uint8)
    count, labels = cv2.connectedComponents(candidates, connectivity=8)
    tips = []
    sharpness = []
    for label in range(1, count):
        ys, xs = np.nonzero(labels == label)
        best = int(np.argmin(share[ys, xs]))
        x, y = int(xs[best]), int(ys[best])
        near = inside[max(0, y - 2 * r) : y + 2 * r + 1, max(0, x - 2 * r) : x + 2 * r + 1]
        ny, nx = np.nonzero(near)
        tip = np.array([x, y], np.float32)
        pointing = tip - np.array([nx.mean() + max(0, x - 2 * r), ny.mean() + max(0, y - 2 * r)], np.float32)
        tips.append((tip, pointing / max(float(np.hypot(*pointing)), 1e-6)))
        sharpness.append(float(share[y, x]))
    return [tips[i] for i in np.argsort(sharpness, kind="stable")]


def tip_glare(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Saturated glare on the wet tissue right beside an instrument tip (the light source is at the tip), behind
    the instrument: a bright core with a soft halo, and sometimes smaller satellites. Unlike ``glare`` (one large
    blob anywhere) it sits where a model must tell the tool's end from the light around it. No instrument: no
    change."""
    height, width = mask.shape[:2]
    tips = instrument_tips(image, mask)
    if not tips:
        return image
    side = min(height, width)
    alpha = np.zeros((height, width), np.float32)
    for index in rng.permutation(min(3, len(tips)))[: int(rng.integers(1, 3))]:  # among the 3 sharpest tips
        tip, pointing = tips[int(index)]
        sideways = np.array([-pointing[1], pointing[0]], np.float32)
        radius = rng.uniform(0.025, 0.08) * side
        for spot in range(int(rng.integers(1, 4))):
            r = radius * (1.0 if spot == 0 else rng.uniform(0.25, 0.6))
            centre = tip + pointing * r * rng.uniform(0.2, 1.5) + sideways * r * rng.normal(0.0, 1.0)
            stretch = rng.uniform(1.0, 2.0)
            angle = rng.uniform(0, math.pi)
            reach = int(math.ceil(3.0 * r * stretch))  # beyond this the glare is below 1/1000
            x0, y0 = max(0, int(centre[0]) - reach), max(0, int(centre[1]) - reach)
            x1, y1 = min(width, int(centre[0]) + reach + 1), min(height, int(centre[1]) + reach + 1)
            if x0 >= x1 or y0 >= y1:
                continue
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            du, dv = xx - centre[0], yy - centre[1]
            along = (du * math.cos(angle) + dv * math.sin(angle)) / stretch
            across = -du * math.sin(angle) + dv * math.cos(angle)
            spot_alpha = np.clip(1.8 * np.exp(-(along * along + across * across) / (r * r)), 0.0, 1.0)
            np.maximum(alpha[y0:y1, x0:x1], spot_alpha, out=alpha[y0:y1, x0:x1])
    tint = np.asarray([rng.uniform(0.9, 1.0), rng.uniform(0.96, 1.0), 1.0], np.float32) * 255.0
    return _behind_instruments(image, mask, np.broadcast_to(tint, (height, width, 3)), alpha)


# ------------------------------------------------------------------------------------------- monochrome sensor


def monochrome_sensor(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A monochrome endoscope sensor: one grey channel (a random, mostly red-heavy spectral response, so red
    tissue comes out bright) replicated to 3 channels, sometimes slightly tinted; auto-exposed bright, local
    contrast raised (textured tissue), then sensor grain: shot and read noise plus fixed-pattern column/row
    offsets and per-pixel gain. The whole frame changes, instruments included; the mask does not (it is only
    used to keep a field stop's black surround black)."""
    height, width = mask.shape[:2]
    weights = rng.dirichlet((0.8, 1.2, 2.0))  # B, G, R
    grey = cv2.transform(image.astype(np.float32), weights[None, :])  # H×W float32
    surround = (mask == 0) & (brightest(image) <= SURROUND_LEVEL)
    seen = grey[~surround] if (~surround).any() else grey.ravel()
    dark, median = np.percentile(seen[::3], (2, 50))  # every third pixel is plenty for the exposure
    black = dark * rng.uniform(0.0, 0.8)  # part of the black level taken off: more contrast
    middle = max(float(median) - black, 1.0)
    # auto-exposure (bright tissue) and gamma, as a lookup table over the grey level
    steps = np.linspace(0.0, 255.0, 1024, dtype=np.float32)
    curve = (np.clip((steps - black) / middle * rng.uniform(0.45, 0.7), 0.0, None) ** rng.uniform(0.7, 1.0)).astype(np.float32)
    level = curve[np.clip(grey * (1023 / 255.0) + 0.5, 0, 1023).astype(np.int32)]
    scale = max(min(height, width) / 256.0, 0.5)
    detail = level - cv2.GaussianBlur(level, (0, 0), rng.uniform(1.5, 5.0) * scale)
    level = level + np.float32(rng.uniform(0.4, 1.6)) * detail  # textured
    signal = np.clip(level, 0.0, 1.0) * np.float32(255.0)
    gain = 1.0 + rng.standard_normal((height, width), dtype=np.float32) * rng.uniform(0.005, 0.03)
    columns = rng.standard_normal(width, dtype=np.float32)[None, :] * rng.uniform(0.5, 3.0)
    rows = rng.standard_normal(height, dtype=np.float32)[:, None] * rng.uniform(0.0, 1.5)
    shot, read = rng.uniform(0.15, 0.5), rng.uniform(1.5, 5.0)
    noise = rng.standard_normal((height, width), dtype=np.float32) * (read + shot * np.sqrt(signal))
    grey = np.clip(signal * gain + columns + rows + noise, 0, 255)
    if rng.random() < 0.3:  # a slight tint
        out = np.clip(grey[..., None] * (1.0 + rng.uniform(-0.06, 0.06, 3).astype(np.float32)), 0, 255).astype(np.uint8)
    else:
        out = cv2.cvtColor(grey.astype(np.uint8), cv2.COLOR_GRAY2BGR)
    np.copyto(out, image, where=surround[..., None])
    return out
