"""Training augmentations on ``uint8`` BGR images and 0/1 masks (OpenCV, seeded).

Geometric operations (scale, translation, rotation, flips) are folded into ONE affine warp
applied to the image (bilinear) and to the mask (nearest), so both stay aligned and the mask
stays binary. Photometric operations (brightness, contrast, saturation, hue, gamma, colour
temperature, blur, noise, JPEG) only touch the image.

The "footage" operations model real endoscopes the training data does not show: monochrome
sensors, strong colour casts, haze and smoke, motion blur, over-exposure, specular highlights
and field stops (circular, rectangular or none). Hard negatives (pale glossy organs, large glare, elongated pale lobes,
and in ``training/augment_negatives.py`` white strands, fat lobules and glare beside instrument tips) are drawn only
where the mask is background, behind the instruments, so labels stay exact; the monochrome sensor there recolours the
whole frame and never the mask. A field stop blacks out the image outside the stop and clears the mask there too
(nothing is visible, so nothing is instrument). Every random draw comes from the ``numpy.random.Generator`` passed in,
so a given (seed, epoch, index) is reproducible. An operation added after a preset was trained draws from that
generator only when its probability is > 0, so every older preset keeps its random stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from training.augment_negatives import _behind_instruments, fat_lobules, monochrome_sensor, tip_glare, white_strands


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
    # footage the training data does not show (see the module docstring); 0 disables each
    p_grayscale: float = 0.0
    p_color_cast: float = 0.0
    color_cast: float = 0.35  # per-channel gain 1 ± value
    p_haze: float = 0.0
    haze_strength: tuple[float, float] = (0.15, 0.55)
    p_motion_blur: float = 0.0
    motion_blur_px: tuple[int, int] = (5, 17)
    p_overexpose: float = 0.0
    overexpose_gain: tuple[float, float] = (1.3, 2.2)
    p_specular: float = 0.0
    p_field_stop: float = 0.0
    # hard negatives drawn BEHIND the instruments (only where the mask is 0), so labels stay exact
    p_pale_organ: float = 0.0
    p_glare: float = 0.0
    p_pale_lobe: float = 0.0  # drawn only when > 0, so presets without it keep their random streams
    # cholecystectomy and monochrome-sensor footage (training/augment_negatives.py); each drawn only when > 0
    p_white_strands: float = 0.0
    p_fat_lobules: float = 0.0
    p_tip_glare: float = 0.0
    p_monochrome_sensor: float = 0.0  # the whole frame (instruments too); never the mask


FOOTAGE = dict(
    p_grayscale=0.1,
    p_color_cast=0.25,
    p_haze=0.15,
    p_motion_blur=0.15,
    p_overexpose=0.15,
    p_specular=0.25,
    p_field_stop=0.3,
)
"""Probabilities of the footage operations in the ``footage`` augmentation preset."""

HARD_NEGATIVES = dict(p_pale_organ=0.3, p_glare=0.15)
"""Probabilities of the background hard negatives in the ``footage+negatives`` preset."""

PALE_LOBES = dict(p_pale_lobe=0.2)
"""Probability of the elongated pale lobe in the ``footage+negatives+lobes`` preset."""

CHOLEC = dict(p_white_strands=0.3, p_fat_lobules=0.25, p_tip_glare=0.2, p_monochrome_sensor=0.1)
"""Probabilities of the cholecystectomy and monochrome-sensor operations in ``footage+negatives+lobes+cholec``."""

AUGMENT_PRESETS = ("basic", "footage", "footage+negatives", "footage+negatives+lobes", "footage+negatives+lobes+cholec")


def augment_preset(name: str) -> AugmentConfig:
    """``basic``: geometry, colour, blur, noise, JPEG; ``footage``: basic plus the real-footage operations;
    ``footage+negatives``: footage plus pale glossy organs and glare drawn behind the instruments;
    ``footage+negatives+lobes``: also elongated pale lobes (bowel loops, fat pads, ducts) entering from a frame
    edge, the shaft-like shapes a model confuses with pale plastic instruments;
    ``footage+negatives+lobes+cholec``: also thin translucent white strands and fascia, yellow fat lobules and glare
    beside instrument tips (behind the instruments), and a monochrome sensor (grey, bright, textured, grainy) on the
    whole frame — the looks the model marked as tool on cholecystectomy and monochrome robot footage."""
    if name == "basic":
        return AugmentConfig()
    if name == "footage":
        return AugmentConfig(**FOOTAGE)
    if name == "footage+negatives":
        return AugmentConfig(**FOOTAGE, **HARD_NEGATIVES)
    if name == "footage+negatives+lobes":
        return AugmentConfig(**FOOTAGE, **HARD_NEGATIVES, **PALE_LOBES)
    if name == "footage+negatives+lobes+cholec":
        return AugmentConfig(**FOOTAGE, **HARD_NEGATIVES, **PALE_LOBES, **CHOLEC)
    raise ValueError(f"augmentation preset {name!r}: expected one of {', '.join(AUGMENT_PRESETS)}")


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


def geometric(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
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


def _low_frequency(rng: np.random.Generator, height: int, width: int, cells: int = 4) -> np.ndarray:
    """A smooth random field in [0, 1], ``height×width`` float32 (a coarse grid, resized bicubically)."""
    grid = rng.random((cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def haze(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Smoke or haze: blend towards a pale grey with a smoothly varying density."""
    height, width = image.shape[:2]
    density = _low_frequency(rng, height, width) * rng.uniform(*cfg.haze_strength)
    tone = rng.uniform(170, 240) * np.array([1.0, rng.uniform(0.95, 1.05), rng.uniform(0.95, 1.1)], np.float32)
    out = image.astype(np.float32) * (1.0 - density[..., None]) + tone * density[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def motion_blur(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Linear motion blur of a random length and direction."""
    length = int(rng.integers(cfg.motion_blur_px[0], cfg.motion_blur_px[1] + 1))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return cv2.filter2D(image, -1, kernel / max(float(kernel.sum()), 1e-6), borderType=cv2.BORDER_REFLECT_101)


def specular(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A few saturated white highlights (wet tissue, metal) of random size."""
    height, width = image.shape[:2]
    glow = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(1, 7))):
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        axes = (int(rng.uniform(1, max(2.0, width / 18))), int(rng.uniform(1, max(2.0, height / 18))))
        cv2.ellipse(glow, centre, axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
    glow = cv2.GaussianBlur(glow, (0, 0), rng.uniform(1.0, 3.0))
    out = image.astype(np.float32) + glow[..., None] * 255.0
    return np.clip(out, 0, 255).astype(np.uint8)


PALE_ORGAN_BGR = ((0.62, 0.86, 0.92), (0.88, 0.90, 0.90), (0.55, 0.80, 0.78), (0.70, 0.78, 0.95))
"""Gallbladder yellow-white, white fascia, greenish bile-stained and pinkish-pale tissue (BGR, 0..1)."""


def _soft_blob(rng: np.random.Generator, height: int, width: int, ellipse: bool) -> tuple[np.ndarray, np.ndarray]:
    """(coverage with soft edges, dome-shaped shading 0..1) of a random ellipse or disc, drawn at a
    quarter of the resolution (the blurs are wide) and scaled up."""
    small_h, small_w = max(8, height // 4), max(8, width // 4)
    blob = np.zeros((small_h, small_w), np.float32)
    centre = (int(rng.uniform(0.1, 0.9) * small_w), int(rng.uniform(0.1, 0.9) * small_h))
    if ellipse:
        axes = (max(2, int(rng.uniform(0.1, 0.35) * small_w)), max(2, int(rng.uniform(0.1, 0.35) * small_h)))
        cv2.ellipse(blob, centre, axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
        edge, spread = max(1.0, 0.06 * min(axes)), 0.4 * min(axes)
    else:
        radius = max(2, int(rng.uniform(0.1, 0.35) * max(small_h, small_w)))
        cv2.circle(blob, centre, radius, 1.0, -1)
        edge, spread = 0.4 * radius, 0.4 * radius
    alpha = cv2.GaussianBlur(blob, (0, 0), max(0.5, edge))
    dome = cv2.GaussianBlur(blob, (0, 0), max(0.5, spread))
    dome /= max(float(dome.max()), 1e-6)
    size = (width, height)
    return cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR), cv2.resize(dome, size, interpolation=cv2.INTER_LINEAR)


def pale_organ(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A large pale, glossy organ (gallbladder, fascia, fat) behind the instruments: pale smooth tissue is
    the commonest false positive of a model that learnt "grey/white = instrument"."""
    alpha, dome = _soft_blob(rng, *mask.shape[:2], ellipse=True)
    colour = np.asarray(PALE_ORGAN_BGR[int(rng.integers(len(PALE_ORGAN_BGR)))], np.float32) * rng.uniform(0.8, 1.05)
    shade = (0.5 + 0.5 * dome) * rng.uniform(0.7, 1.0)
    highlight = np.clip(dome - rng.uniform(0.85, 0.97), 0, None) * 3.0
    layer = np.clip(colour[None, None] * shade[..., None] + highlight[..., None], 0, 1) * 255.0
    return _behind_instruments(image, mask, layer, alpha * rng.uniform(0.85, 1.0))


PALE_LOBE_BGR = ((0.90, 0.84, 0.78), (0.70, 0.84, 0.90), (0.78, 0.80, 0.92), (0.80, 0.86, 0.84))
"""Pale-blue serosa, cream fat, pinkish bowel and greyish-green duct (BGR, 0..1). No neutral grey-white: that is
the colour of metal and white plastic shafts; a first trial with it (and a higher probability) lost precision on
the real validation frames (see the model card)."""


def _lobe_shape(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, float]:
    """(filled 0/1 shape, base radius in px) of a curved, tapering tube that enters from a random frame edge,
    drawn as a chain of discs along a wandering centreline."""
    shape = np.zeros((height, width), np.float32)
    side = int(rng.integers(4))
    along = rng.uniform(0.15, 0.85)
    x, y = ((along * width, 0.0), (width - 1.0, along * height), (along * width, height - 1.0), (0.0, along * height))[side]
    heading = (math.pi / 2, math.pi, -math.pi / 2, 0.0)[side] + rng.uniform(-0.6, 0.6)
    radius = rng.uniform(0.05, 0.14) * min(height, width)
    length = rng.uniform(0.3, 0.8) * math.hypot(height, width)
    steps = max(8, int(length / max(1.0, radius * 0.4)))
    bend, phase = rng.normal(0, 1.2) / steps, rng.uniform(0, 2 * math.pi)
    for i in range(steps):
        t = i / (steps - 1)
        taper = min(1.0, 4.0 * (1.0 - t)) ** 0.5 if t > 0.75 else 1.0  # rounded, narrowing end
        r = radius * (1.0 + 0.25 * math.sin(phase + 6.0 * t)) * max(0.35, taper)
        cv2.circle(shape, (int(x), int(y)), max(1, int(r)), 1.0, -1)
        heading += bend
        x, y = x + math.cos(heading) * length / steps, y + math.sin(heading) * length / steps
    return shape, radius


def pale_lobe(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An elongated pale, glossy lobe behind the instruments: tube-like tissue (bowel loop, fat pad, duct)
    reaching in from a frame edge, with soft edges, rounded shading across its width and a wet ridge
    highlight. It has the outline of a pale plastic shaft but not its straight, sharp edges."""
    height, width = mask.shape[:2]
    small_h, small_w = max(16, height // 4), max(16, width // 4)
    shape, radius = _lobe_shape(rng, small_h, small_w)
    inside = cv2.distanceTransform((shape > 0).astype(np.uint8), cv2.DIST_L2, 3)
    dome = cv2.GaussianBlur(np.clip(inside / max(radius, 1.0), 0, 1), (0, 0), max(0.5, 0.3 * radius))
    dome = dome / max(float(dome.max()), 1e-6)
    alpha = cv2.GaussianBlur(shape, (0, 0), max(0.5, rng.uniform(0.08, 0.25) * radius))
    size = (width, height)
    alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR)
    dome = cv2.resize(dome, size, interpolation=cv2.INTER_LINEAR)
    colour = np.asarray(PALE_LOBE_BGR[int(rng.integers(len(PALE_LOBE_BGR)))], np.float32) * rng.uniform(0.75, 1.05)
    shade = (0.45 + 0.55 * np.sqrt(dome)) * rng.uniform(0.7, 1.0)
    ridge = np.clip(dome - rng.uniform(0.75, 0.95), 0, None) * rng.uniform(1.5, 4.0)
    layer = np.clip(colour[None, None] * shade[..., None] + ridge[..., None], 0, 1) * 255.0
    return _behind_instruments(image, mask, layer, alpha * rng.uniform(0.85, 1.0))


def glare(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A large saturated white glare (light source close to wet tissue) behind the instruments."""
    alpha, _ = _soft_blob(rng, *mask.shape[:2], ellipse=False)
    alpha = np.clip(alpha / max(float(alpha.max()), 1e-6) * 1.6, 0, 1)
    tint = np.asarray([rng.uniform(0.9, 1.0), 1.0, 1.0], np.float32) * 255.0
    return _behind_instruments(image, mask, np.broadcast_to(tint, (*mask.shape[:2], 3)), alpha)


def field_stop_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Visible area of a random field stop (1 inside): a circle or a rounded rectangle, of random size."""
    visible = np.zeros((height, width), np.uint8)
    centre = (width / 2 + rng.uniform(-0.05, 0.05) * width, height / 2 + rng.uniform(-0.05, 0.05) * height)
    if rng.random() < 0.6:
        radius = rng.uniform(0.5, 0.75) * math.hypot(width, height) / 2
        cv2.circle(visible, (int(centre[0]), int(centre[1])), int(radius), 1, -1, cv2.LINE_AA)
    else:
        half_w, half_h = rng.uniform(0.38, 0.5) * width, rng.uniform(0.4, 0.5) * height
        corner = int(rng.uniform(0.05, 0.3) * min(half_w, half_h))
        x0, y0, x1, y1 = int(centre[0] - half_w), int(centre[1] - half_h), int(centre[0] + half_w), int(centre[1] + half_h)
        cv2.rectangle(visible, (x0 + corner, y0), (x1 - corner, y1), 1, -1)
        cv2.rectangle(visible, (x0, y0 + corner), (x1, y1 - corner), 1, -1)
        for cx, cy in ((x0 + corner, y0 + corner), (x1 - corner, y0 + corner), (x0 + corner, y1 - corner), (x1 - corner, y1 - corner)):
            cv2.circle(visible, (cx, cy), corner, 1, -1)
    return visible


def footage(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """The real-footage operations (each with its own probability); only the field stop touches the mask."""
    if rng.random() < cfg.p_color_cast:
        gains = 1.0 + rng.uniform(-cfg.color_cast, cfg.color_cast, 3)
        image = np.clip(image.astype(np.float32) * gains.astype(np.float32), 0, 255).astype(np.uint8)
    if rng.random() < cfg.p_overexpose:
        image = np.clip(image.astype(np.float32) * rng.uniform(*cfg.overexpose_gain), 0, 255).astype(np.uint8)
    if rng.random() < cfg.p_specular:
        image = specular(image, rng)
    if rng.random() < cfg.p_pale_organ:
        image = pale_organ(image, mask, rng)
    if rng.random() < cfg.p_glare:
        image = glare(image, mask, rng)
    if cfg.p_pale_lobe > 0 and rng.random() < cfg.p_pale_lobe:
        image = pale_lobe(image, mask, rng)
    if cfg.p_fat_lobules > 0 and rng.random() < cfg.p_fat_lobules:
        image = fat_lobules(image, mask, rng)
    if cfg.p_white_strands > 0 and rng.random() < cfg.p_white_strands:
        image = white_strands(image, mask, rng)
    if cfg.p_tip_glare > 0 and rng.random() < cfg.p_tip_glare:
        image = tip_glare(image, mask, rng)
    if rng.random() < cfg.p_haze:
        image = haze(image, rng, cfg)
    if rng.random() < cfg.p_motion_blur:
        image = motion_blur(image, rng, cfg)
    if rng.random() < cfg.p_grayscale:
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if cfg.p_monochrome_sensor > 0 and rng.random() < cfg.p_monochrome_sensor:
        image = monochrome_sensor(image, mask, rng)
    if rng.random() < cfg.p_field_stop:
        visible = field_stop_mask(rng, *mask.shape[:2])
        image = image * visible[..., None]
        mask = mask * visible
    return image, mask


def augment(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the full augmentation pipeline; returns a new ``(image, mask)`` pair, mask still 0/1."""
    cfg = cfg or AugmentConfig()
    image, mask = geometric(image, mask, rng, cfg)
    if rng.random() < cfg.p_photometric:
        image = photometric(image, rng, cfg)
    image, mask = footage(image, mask, rng, cfg)
    image = degrade(image, rng, cfg)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)
