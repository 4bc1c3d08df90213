"""Drawing: the alpha-blended mask, its contour, the mask-only view, the HUD and the NO SIGNAL screen.

All work is done with OpenCV primitives restricted to where the mask is: the probability is
upsampled with ``cv2.resize`` and thresholded with ``cv2.threshold``; the blend (``cv2.addWeighted``,
copied back through the mask with ``cv2.copyTo``; numpy boolean indexing is ~20× slower at 1080p) runs
in place on the mask's bounding box within each band of :data:`BAND_ROWS` rows (:func:`mask_boxes`),
which follows slanted instruments far more tightly than one box; the contour is found in the mask's
bounding box and its points simplified to within :data:`CONTOUR_EPSILON` pixels per 1080 rows before
drawing (the anti-aliased 2-pixel line costs per segment: ~4.5 ms for the ~2,400 points of a 1080p
contour, ~1.5 ms for the ~460 left).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from app.core.keys import KEY_LEGEND
from app.size import Size

BGR = tuple[int, int, int]

COLOR_NAMES: dict[str, BGR] = {
    "green": (0, 255, 0),
    "red": (0, 0, 255),
    "blue": (255, 0, 0),
    "yellow": (0, 255, 255),
    "cyan": (255, 255, 0),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
    "orange": (0, 165, 255),
}

FONT = cv2.FONT_HERSHEY_SIMPLEX
BAND_ROWS = 64  #: the blend's bands: each is blended only in the mask's bounding box within it
#: contour points are simplified (Douglas-Peucker) to within this many pixels per 1080 rows of frame
#: (1 px at 1080p, 0.67 at 720p, 0.22 at 240 rows: a fixed fraction of the picture)
CONTOUR_EPSILON = 1.0


def parse_color(text: str) -> BGR:
    """``green``, ``#RRGGBB`` or ``R,G,B`` (0-255) → a BGR tuple; ``ValueError`` names the accepted forms."""
    value = text.strip().lower()
    if value in COLOR_NAMES:
        return COLOR_NAMES[value]
    if re.fullmatch(r"#?[0-9a-f]{6}", value):
        value = value.lstrip("#")
        r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
        return (b, g, r)
    parts = value.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() and int(p) <= 255 for p in parts):
        r, g, b = (int(p) for p in parts)
        return (b, g, r)
    raise ValueError(f"colour {text!r}: expected a name ({', '.join(COLOR_NAMES)}), #RRGGBB or R,G,B")


@dataclass(frozen=True)
class OverlayStyle:
    """How the mask is drawn."""

    color: BGR = (0, 255, 0)
    alpha: float = 0.45
    contours: bool = True
    contour_thickness: int = 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")


@dataclass
class ViewState:
    """What the keys toggle; written by the display (main) thread, read by the render thread."""

    overlay: bool = True
    mask_only: bool = False
    contours: bool = True
    paused: bool = False


class Smoother:
    """Exponential moving average of the probability at model resolution (``factor`` 0 = off)."""

    def __init__(self, factor: float) -> None:
        if not 0.0 <= factor < 1.0:
            raise ValueError(f"smoothing factor must be in [0, 1), got {factor}")
        self.factor = factor
        self._state: np.ndarray | None = None

    def __call__(self, probability: np.ndarray) -> np.ndarray:
        """Blend ``probability`` into the running average and return the average."""
        if self.factor == 0.0 or self._state is None or self._state.shape != probability.shape:
            self._state = probability.astype(np.float32, copy=True)
        else:
            cv2.addWeighted(self._state, self.factor, probability, 1.0 - self.factor, 0.0, dst=self._state)
        return self._state


class Overlayer:
    """Turns a model-resolution probability into a full-resolution mask and draws it on frames."""

    def __init__(self, style: OverlayStyle, threshold: float) -> None:
        self.style = style
        self.threshold = threshold
        self._color_band_image: np.ndarray | None = None

    def mask(self, probability: np.ndarray, size: Size) -> np.ndarray:
        """``uint8`` 0/255 mask at ``size`` (bilinear upsampling, then threshold)."""
        prob8 = cv2.convertScaleAbs(probability, alpha=255.0)
        if Size.of(prob8) != size:
            prob8 = cv2.resize(prob8, size.wh, interpolation=cv2.INTER_LINEAR)
        level = min(254.0, max(0.0, self.threshold * 255.0 - 0.5))
        _, mask = cv2.threshold(prob8, level, 255, cv2.THRESH_BINARY)
        return mask

    def _color_band(self, width: int) -> np.ndarray:
        """The overlay colour, :data:`BAND_ROWS` × ``width`` (cached; one band, not a frame-sized image)."""
        if self._color_band_image is None or self._color_band_image.shape[1] != width:
            self._color_band_image = np.empty((BAND_ROWS, width, 3), np.uint8)
            self._color_band_image[:] = self.style.color
        return self._color_band_image

    def draw(self, frame: np.ndarray, mask: np.ndarray, view: ViewState) -> np.ndarray:
        """Draw ``mask`` on ``frame`` (in place) as the view asks; returns the image to show/write."""
        if not view.mask_only and not view.overlay:
            return frame
        boxes, colors = mask_boxes(mask), self._color_band(frame.shape[1])
        if view.mask_only:
            image = np.zeros_like(frame)
            for x, y, w, h in boxes:
                cv2.copyTo(colors[:h, :w], mask[y : y + h, x : x + w], image[y : y + h, x : x + w])
            return image
        if not boxes:
            return frame
        alpha = self.style.alpha
        for x, y, w, h in boxes:
            roi = frame[y : y + h, x : x + w]
            blended = cv2.addWeighted(roi, 1.0 - alpha, colors[:h, :w], alpha, 0.0)
            cv2.copyTo(blended, mask[y : y + h, x : x + w], roi)
        if view.contours and self.style.contour_thickness > 0:
            x0, y0 = min(b[0] for b in boxes), boxes[0][1]
            x1, y1 = max(b[0] + b[2] for b in boxes), boxes[-1][1] + boxes[-1][3]
            contours, _ = cv2.findContours(mask[y0:y1, x0:x1], cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))
            epsilon = CONTOUR_EPSILON * frame.shape[0] / 1080.0
            simplified = [cv2.approxPolyDP(contour, epsilon, True) for contour in contours]
            cv2.drawContours(frame, simplified, -1, self.style.color, self.style.contour_thickness, cv2.LINE_AA)
        return frame


def mask_boxes(mask: np.ndarray, band_rows: int = BAND_ROWS) -> list[tuple[int, int, int, int]]:
    """``(x, y, w, h)`` of the mask's bounding box within each band of ``band_rows`` rows, top to bottom
    (bands without a mask pixel left out): every mask pixel lies in exactly one box."""
    boxes = []
    for top in range(0, mask.shape[0], band_rows):
        x, y, w, h = cv2.boundingRect(mask[top : top + band_rows])
        if w > 0 and h > 0:
            boxes.append((x, top + y, w, h))
    return boxes


@dataclass
class HudInfo:
    """Figures shown on the HUD."""

    fps: float = 0.0
    latency_ms: float = 0.0
    backend: str = ""
    dropped: int = 0
    paused: bool = False


def _text_box(image: np.ndarray, lines: list[str], origin: tuple[int, int], scale: float) -> None:
    thickness = max(1, round(scale * 2))
    sizes = [cv2.getTextSize(line, FONT, scale, thickness)[0] for line in lines]
    line_h = max(s[1] for s in sizes) + int(12 * scale)
    box_w = max(s[0] for s in sizes) + int(16 * scale)
    box_h = line_h * len(lines) + int(8 * scale)
    x0, y0 = origin
    x0 = max(0, min(x0, image.shape[1] - box_w))
    y0 = max(0, min(y0, image.shape[0] - box_h))
    roi = image[y0 : y0 + box_h, x0 : x0 + box_w]
    cv2.addWeighted(roi, 0.35, np.zeros_like(roi), 0.65, 0.0, dst=roi)
    for k, line in enumerate(lines):
        baseline = y0 + line_h * (k + 1) - int(4 * scale)
        cv2.putText(image, line, (x0 + int(8 * scale), baseline), FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def draw_hud(image: np.ndarray, info: HudInfo) -> None:
    """Figures (top-left) and the key legend (bottom-left), drawn in place."""
    scale = max(0.5, image.shape[0] / 1000.0)
    status = "  PAUSED" if info.paused else ""
    lines = [
        f"{info.fps:5.1f} fps  {info.latency_ms:5.0f} ms latency{status}",
        f"{info.backend}  dropped {info.dropped}",
    ]
    _text_box(image, lines, (8, 8), scale)
    _text_box(image, [KEY_LEGEND], (8, image.shape[0]), scale * 0.8)


def draw_paused(image: np.ndarray) -> None:
    """Mark a frozen frame as PAUSED (in place)."""
    scale = max(0.8, image.shape[0] / 500.0)
    _text_box(image, ["PAUSED (space to resume)"], (image.shape[1] // 3, image.shape[0] // 2), scale)


def no_signal_image(size: Size, message: str) -> np.ndarray:
    """A dark frame of ``size`` saying NO SIGNAL and ``message``."""
    height, width = size
    image = np.full((height, width, 3), 24, np.uint8)
    scale = max(0.8, height / 300.0)
    text = "NO SIGNAL"
    (tw, th), _ = cv2.getTextSize(text, FONT, scale, 3)
    cv2.putText(image, text, ((width - tw) // 2, (height + th) // 2), FONT, scale, (0, 0, 255), 3, cv2.LINE_AA)
    small = scale * 0.35
    (mw, _), _ = cv2.getTextSize(message, FONT, small, 1)
    org = (max(4, (width - mw) // 2), (height + th) // 2 + int(40 * small) + th // 2)
    cv2.putText(image, message, org, FONT, small, (200, 200, 200), 1, cv2.LINE_AA)
    return image
