"""Regions to a binary mask: polygons by area coverage (exact sub-pixel sampling), bitmap patches pasted as they are.

A pixel is inside a polygon when at least half of its area is, estimated on a 4x4 grid of sub-pixels
whose centres are tested exactly (scanlines), so thin shapes keep their true width instead of gaining
the half pixel on each side that an outline-plus-fill rasterisation adds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from training.labels.model import LabelImportError, Region

SUPERSAMPLE = 4  # sub-pixels per pixel side
_BAND_ROWS = 128  # pixel rows rasterised at a time (bounds the memory of a large polygon)


def fill_polygons(canvas: np.ndarray, polygons: Iterable[np.ndarray]) -> None:
    """OR the filled ``polygons`` (``N x 2`` pixel-edge coordinates, see :class:`Region`) into the boolean ``canvas``.

    A sub-pixel is inside when its centre is (even-odd rule within a polygon, union over the polygons); a
    pixel is set when at least half of its ``SUPERSAMPLE x SUPERSAMPLE`` sub-pixels are inside.
    """
    polygons = [p for p in polygons if len(p) >= 3]
    if not polygons:
        return
    everything = np.concatenate(polygons)
    height, width = canvas.shape
    x0, y0 = max(0, math.floor(everything[:, 0].min())), max(0, math.floor(everything[:, 1].min()))
    x1, y1 = min(width, math.ceil(everything[:, 0].max())), min(height, math.ceil(everything[:, 1].max()))
    if x1 <= x0 or y1 <= y0:
        return
    f = SUPERSAMPLE
    shifted = [np.column_stack([(p[:, 0] - x0) * f, p[:, 1]]) for p in polygons]  # x in sub-pixels from the box, y in pixels
    for top in range(y0, y1, _BAND_ROWS):
        rows = min(_BAND_ROWS, y1 - top)
        centres_y = top + (np.arange(rows * f) + 0.5) / f
        fine = np.zeros((rows * f, (x1 - x0) * f), np.uint8)
        for polygon in shifted:
            for row, first, stop in _spans(polygon, centres_y, fine.shape[1]):
                fine[row, first:stop] = f * f
        # each pixel's mean over its f x f sub-pixels (exact for an integer factor) = the count of sub-pixels inside
        covered = cv2.resize(fine, (x1 - x0, rows), interpolation=cv2.INTER_AREA)
        canvas[top : top + rows, x0:x1] |= 2 * covered.astype(np.int32) >= f * f


def _spans(polygon: np.ndarray, centres_y: np.ndarray, columns: int) -> list[tuple[int, int, int]]:
    """``(row, first, stop)`` runs of sub-pixel columns (centres at ``j + 0.5``) inside the polygon on each row at ``centres_y``."""
    start, end = polygon, np.roll(polygon, -1, axis=0)
    low, high = np.minimum(start[:, 1], end[:, 1]), np.maximum(start[:, 1], end[:, 1])
    y = centres_y[:, None]
    crosses = (low <= y) & (y < high)  # half-open: a vertex on the line counts once, horizontal edges never
    with np.errstate(divide="ignore", invalid="ignore"):
        x = start[:, 0] + (y - start[:, 1]) * (end[:, 0] - start[:, 0]) / (end[:, 1] - start[:, 1])
    x = np.sort(np.where(crosses, x, np.inf), axis=1)
    if x.shape[1] % 2:
        x = np.concatenate([x, np.full((len(x), 1), np.inf)], axis=1)
    enter, leave = x[:, 0::2], x[:, 1::2]
    row, pair = np.nonzero(np.isfinite(enter))
    first = np.clip(np.ceil(enter[row, pair] - 0.5), 0, columns).astype(np.intp)
    stop = np.clip(np.ceil(leave[row, pair] - 0.5), 0, columns).astype(np.intp)
    keep = stop > first
    return list(zip(row[keep].tolist(), first[keep].tolist(), stop[keep].tolist(), strict=True))


def rectangle(x0: float, y0: float, x1: float, y1: float, degrees: float = 0.0) -> np.ndarray:
    """The corners of the box between two opposite corners, turned ``degrees`` clockwise (on screen) about its centre."""
    left, right, top, bottom = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    corners = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float64)
    return _rotate(corners, (left + right) / 2, (top + bottom) / 2, degrees)


def ellipse(cx: float, cy: float, rx: float, ry: float, degrees: float = 0.0) -> np.ndarray:
    """A polygon within 0.02 px of the ellipse with centre ``(cx, cy)`` and radii ``rx``, ``ry``, turned ``degrees`` clockwise."""
    radius = max(abs(rx), abs(ry), 1e-6)
    count = max(16, math.ceil(math.pi * math.sqrt(radius / 0.04)))  # sagitta r(1 - cos(pi/n)) ~ r pi^2 / 2n^2
    angles = np.linspace(0.0, 2 * math.pi, count, endpoint=False)
    points = np.stack([cx + abs(rx) * np.cos(angles), cy + abs(ry) * np.sin(angles)], axis=1)
    return _rotate(points, cx, cy, degrees)


def _rotate(points: np.ndarray, cx: float, cy: float, degrees: float) -> np.ndarray:
    if not degrees:
        return points
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    dx, dy = points[:, 0] - cx, points[:, 1] - cy
    return np.stack([cx + c * dx - s * dy, cy + s * dx + c * dy], axis=1)  # y points down: positive = clockwise


def paste_patch(canvas: np.ndarray, patch: np.ndarray, origin: tuple[int, int], where: str, whole_image: bool = False) -> None:
    """OR the boolean ``patch`` into ``canvas`` with its top-left pixel at ``origin`` = (col, row); it must fit
    (and with ``whole_image``, be exactly the canvas's size)."""
    if patch.ndim != 2:
        raise LabelImportError(f"{where}: the mask has shape {patch.shape}; expected a 2-D (single-channel) mask")
    col, row = origin
    height, width = canvas.shape
    if whole_image and patch.shape != canvas.shape:
        raise LabelImportError(
            f"{where}: the mask is {patch.shape[1]}x{patch.shape[0]} (WxH) but the image is {width}x{height}; expected the same size"
        )
    if col < 0 or row < 0 or col + patch.shape[1] > width or row + patch.shape[0] > height:
        raise LabelImportError(
            f"{where}: a {patch.shape[1]}x{patch.shape[0]} (WxH) mask at column {col}, row {row} extends past the "
            f"{width}x{height} image; expected it inside the image"
        )
    canvas[row : row + patch.shape[0], col : col + patch.shape[1]] |= patch.astype(bool)


def paint(canvas: np.ndarray, region: Region) -> None:
    """OR one region into the boolean ``canvas``."""
    fill_polygons(canvas, region.polygons)
    if region.patch is not None:
        paste_patch(canvas, region.patch(), region.origin, region.where, region.whole_image)


def rasterize(size: tuple[int, int], regions: Sequence[Region], classes: set[str]) -> np.ndarray:
    """The ``uint8`` mask (255 = instrument) of size ``(height, width)``: the union of the regions whose label is in ``classes``."""
    canvas = np.zeros(size, bool)
    for region in regions:
        if region.label in classes:
            paint(canvas, region)
    return canvas.astype(np.uint8) * 255
