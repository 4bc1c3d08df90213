"""LabelMe: one JSON file per image (``--annotations`` is their folder).

Shapes: ``polygon``, ``rectangle`` (two opposite corners; four or more points are read as a polygon),
``circle`` (centre and a point on the circle), ``mask`` (a base64 PNG whose top-left pixel is the first
of its two ``points``, as LabelMe writes it). ``line``, ``linestrip``, ``point`` and ``points`` have no
area and are skipped with a warning. Coordinates are pixel-edge coordinates, as LabelMe's canvas gives
them (pixel ``(col, row)`` spans ``[col, col + 1)``). A file whose ``shapes`` is empty is a negative frame.
The image is ``--images/<imagePath>``, else ``--images/<file name of imagePath>``, else ``imagePath`` relative to
the JSON file.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import Counter
from functools import partial
from pathlib import Path, PureWindowsPath
from typing import Any

import cv2
import numpy as np

from models.sorting import natural_key
from training.labels.coco import load_json
from training.labels.model import ImageLabels, LabelImportError, Region, polygon_array
from training.labels.rasterize import ellipse, rectangle

LOG = logging.getLogger("training.labels")
NO_AREA = ("line", "linestrip", "point", "points")


def read_labelme(annotations: Path, images: Path) -> list[ImageLabels]:
    """Read every ``*.json`` in the folder ``annotations`` (not its sub-folders), in natural order."""
    if not annotations.is_dir():
        raise LabelImportError(f"--annotations {annotations} is not a folder; expected the folder of LabelMe JSON files")
    files = sorted((p for p in annotations.iterdir() if p.suffix.lower() == ".json" and p.is_file()), key=lambda p: natural_key(p.name))
    if not files:
        raise LabelImportError(f"--annotations {annotations} holds no .json files; expected one LabelMe JSON file per image")
    skipped: Counter[str] = Counter()
    found = [_read_file(path, images, skipped) for path in files]
    if skipped:
        listed = ", ".join(f"{kind} ({count})" for kind, count in sorted(skipped.items()))
        LOG.warning("skipped %d LabelMe shapes that have no area: %s", sum(skipped.values()), listed)
    return found


def _read_file(path: Path, images: Path, skipped: Counter[str]) -> ImageLabels:
    data = load_json(path)
    if not isinstance(data, dict):
        raise LabelImportError(f"{path}: the top level is a {type(data).__name__}; expected a LabelMe object with 'shapes'")
    image_path = data.get("imagePath")
    if not isinstance(image_path, str) or not image_path:
        raise LabelImportError(f"{path}: imagePath is {image_path!r}; expected the image's file name")
    height, width = data.get("imageHeight"), data.get("imageWidth")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (height, width)):
        raise LabelImportError(f"{path}: imageHeight {height!r} and imageWidth {width!r}; expected positive integers")
    shapes = data.get("shapes")
    if not isinstance(shapes, list):
        raise LabelImportError(f"{path}: shapes is {shapes!r:.80}; expected a list (empty for an image without instruments)")
    labels = ImageLabels(_image_file(path, image_path, images), f"{path}", (height, width))
    for number, shape in enumerate(shapes):
        where = f"{path}: shape {number}"
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str):
            raise LabelImportError(f"{where} is {shape!r:.80}; expected an object with a 'label' string")
        kind = shape.get("shape_type") or "polygon"  # LabelMe < 3 wrote no shape_type: polygons
        if kind in NO_AREA:
            skipped[kind] += 1
            continue
        labels.regions.append(_region(shape, str(kind), where))
    return labels


def _image_file(path: Path, image_path: str, images: Path) -> Path:
    """The first that exists of ``--images/<imagePath>``, ``--images/<its file name>`` and ``imagePath`` relative to
    the JSON file's folder (else the first, for the error message)."""
    parts = PureWindowsPath(image_path).parts  # also splits the paths of LabelMe files written on Windows
    candidates = [images / Path(*parts), images / parts[-1], path.parent / Path(*parts)]
    return next((c for c in candidates if c.is_file()), candidates[0])


def _region(shape: dict[str, Any], kind: str, where: str) -> Region:
    label = shape["label"]
    points = polygon_array(shape.get("points"), where)
    if kind == "polygon":
        if len(points) < 3:
            raise LabelImportError(f"{where}: a polygon with {len(points)} points; expected at least 3")
        return Region(label, where, polygons=(points,))
    if kind == "rectangle":
        if len(points) == 2:
            return Region(label, where, polygons=(rectangle(*points[0], *points[1]),))
        if len(points) >= 4:
            return Region(label, where, polygons=(points,))
        raise LabelImportError(f"{where}: a rectangle with {len(points)} points; expected 2 opposite corners (or 4 corners)")
    if kind == "circle":
        if len(points) != 2:
            raise LabelImportError(f"{where}: a circle with {len(points)} points; expected 2 (centre, a point on the circle)")
        radius = float(np.hypot(*(points[1] - points[0])))
        return Region(label, where, polygons=(ellipse(*points[0], radius, radius),))
    if kind == "mask":
        if len(points) != 2:
            raise LabelImportError(f"{where}: a mask with {len(points)} points; expected 2 (top-left and bottom-right pixel)")
        (x1, y1), (x2, y2) = points.astype(int)
        data = shape.get("mask")
        if not isinstance(data, str) or not data:
            raise LabelImportError(f"{where}: mask is {data!r:.40}; expected a base64-encoded PNG")
        return Region(label, where, patch=partial(_decode_mask, data, (y2 - y1 + 1, x2 - x1 + 1), where), origin=(int(x1), int(y1)))
    raise LabelImportError(
        f"{where}: shape_type {kind!r} is not known; expected polygon, rectangle, circle, mask (or {', '.join(NO_AREA)}, skipped)"
    )


def _decode_mask(data: str, size: tuple[int, int], where: str) -> np.ndarray:
    """LabelMe's base64 PNG as a boolean array; it must be as large as the box its two points span."""
    try:
        encoded = np.frombuffer(base64.b64decode(data, validate=True), np.uint8)
    except (binascii.Error, ValueError):
        raise LabelImportError(f"{where}: the mask is not valid base64; expected a base64-encoded PNG") from None
    mask = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE) if encoded.size else None
    if mask is None:
        raise LabelImportError(f"{where}: the mask does not decode as an image; expected a base64-encoded PNG")
    if mask.shape != size:
        raise LabelImportError(
            f"{where}: the mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its points span {size[1]}x{size[0]}; expected the same"
        )
    return mask > 0
