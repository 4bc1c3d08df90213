"""What every annotation reader produces: per image, the declared size and the labelled regions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.datasets import DatasetError


class LabelImportError(DatasetError):
    """The annotations or images cannot be imported (the message names the file, the value and what was expected)."""


@dataclass(frozen=True, eq=False)
class Region:
    """One labelled object: filled polygons (union), or a bitmap patch decoded on demand.

    Polygon points are ``(x, y)`` in pixel-edge coordinates: the pixel ``(col, row)`` covers
    ``[col, col + 1) x [row, row + 1)``, so its centre is ``(col + 0.5, row + 0.5)``. A patch is a
    2-D boolean array whose top-left pixel lands on ``origin`` = ``(col, row)``; holes are simply
    ``False`` pixels inside it. The patch is decoded only when the mask is drawn, so a large data set
    is never held in memory at once.
    """

    label: str
    where: str  # for error messages, e.g. "a.json: shape 3"
    polygons: tuple[np.ndarray, ...] = ()
    patch: Callable[[], np.ndarray] | None = None
    origin: tuple[int, int] = (0, 0)
    whole_image: bool = False  # the patch must be exactly the image's size (a full-frame mask)


@dataclass
class ImageLabels:
    """The annotations of one image."""

    image: Path  # where the image file is expected
    where: str  # what declared the image, for error messages
    size: tuple[int, int] | None  # (height, width) declared by the annotation file, None when it declares none
    regions: list[Region] = field(default_factory=list)


def polygon_array(values: object, where: str) -> np.ndarray:
    """``values`` (a flat ``[x1, y1, x2, y2, ...]`` or ``[[x1, y1], ...]`` list) as a finite ``N x 2`` float array."""
    try:
        points = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise LabelImportError(f"{where}: points {_short(values)} are not (x, y) number pairs; expected [x, y] coordinates") from None
    if points.ndim == 1 and points.size % 2 == 0:
        points = points.reshape(-1, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        raise LabelImportError(f"{where}: points {_short(values)} are not (x, y) pairs; expected [x1, y1, x2, y2, ...] or [[x, y], ...]")
    if not np.isfinite(points).all():
        raise LabelImportError(f"{where}: points {_short(values)} contain NaN or infinity; expected finite coordinates")
    return points


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
