"""CVAT for images 1.1 (one XML file): ``<image>`` elements holding ``<polygon>``, ``<box>``, ``<ellipse>`` and ``<mask>``.

Coordinates are pixel-edge coordinates. ``<box>`` and ``<ellipse>`` may carry a ``rotation`` (degrees,
clockwise). A ``<mask>`` is CVAT's RLE: comma-separated run lengths, the first one background, over its
``left, top, width, height`` box in row-major order; it keeps its holes. ``<polyline>``, ``<points>``,
``<cuboid>``, ``<skeleton>`` and ``<tag>`` have no area and are skipped with a warning. An ``<image>``
without shapes is a negative frame.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np

from training.labels.model import ImageLabels, LabelImportError, Region, polygon_array
from training.labels.rasterize import ellipse, rectangle

LOG = logging.getLogger("training.labels")
NO_AREA = ("polyline", "points", "cuboid", "skeleton", "tag")


def read_cvat(annotations: Path, images: Path) -> list[ImageLabels]:
    """Read a CVAT for images 1.1 XML file; image ``name``s are relative to ``images``."""
    try:
        root = ET.parse(annotations).getroot()
    except OSError as error:
        raise LabelImportError(f"cannot read annotation file {annotations}: {error.strerror or error}") from None
    except ET.ParseError as error:
        raise LabelImportError(f"annotation file {annotations} is not valid XML ({error}); expected CVAT for images 1.1") from None
    if root.tag != "annotations":
        raise LabelImportError(f"{annotations}: the root element is <{root.tag}>; expected <annotations> (CVAT for images 1.1)")
    elements = root.findall("image")
    if not elements:
        tracks = ""
        if root.find("track") is not None:
            tracks = " (it holds <track> elements: export as 'CVAT for images 1.1', not 'CVAT for video 1.1')"
        raise LabelImportError(f"{annotations}: no <image> elements{tracks}; expected CVAT for images 1.1")
    skipped: Counter[str] = Counter()
    found = [_read_image(element, annotations, images, skipped) for element in elements]
    if skipped:
        listed = ", ".join(f"{kind} ({count})" for kind, count in sorted(skipped.items()))
        LOG.warning("skipped %d CVAT shapes that have no area: %s", sum(skipped.values()), listed)
    return found


def _number(element: ET.Element, key: str, where: str, kind: type = float) -> float:
    value = element.get(key)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise LabelImportError(f"{where}: {key}={value!r}; expected {'an integer' if kind is int else 'a number'}") from None
    if not np.isfinite(number):
        raise LabelImportError(f"{where}: {key}={value!r}; expected a finite number")
    return number


def _read_image(element: ET.Element, annotations: Path, images: Path, skipped: Counter[str]) -> ImageLabels:
    name = element.get("name")
    where = f"{annotations}: <image id={element.get('id')!r} name={name!r}>"
    if not name:
        raise LabelImportError(f"{where}: no name; expected the image's file name")
    size = (int(_number(element, "height", where, int)), int(_number(element, "width", where, int)))
    labels = ImageLabels(images / name, where, size)
    for number, shape in enumerate(element):
        shape_where = f"{where} <{shape.tag}> {number}"
        if shape.tag in NO_AREA:
            skipped[shape.tag] += 1
            continue
        label = shape.get("label")
        if not label:
            raise LabelImportError(f"{shape_where}: no label attribute; expected the label's name")
        labels.regions.append(_region(shape, label, shape_where))
    return labels


def _region(shape: ET.Element, label: str, where: str) -> Region:
    rotation = _number(shape, "rotation", where) if shape.get("rotation") is not None else 0.0
    if shape.tag == "polygon":
        points = _points(shape.get("points"), where)
        if len(points) < 3:
            raise LabelImportError(f"{where}: a polygon with {len(points)} points; expected at least 3")
        return Region(label, where, polygons=(points,))
    if shape.tag == "box":
        corners = [_number(shape, key, where) for key in ("xtl", "ytl", "xbr", "ybr")]
        return Region(label, where, polygons=(rectangle(*corners, rotation),))
    if shape.tag == "ellipse":
        cx, cy, rx, ry = (_number(shape, key, where) for key in ("cx", "cy", "rx", "ry"))
        return Region(label, where, polygons=(ellipse(cx, cy, rx, ry, rotation),))
    if shape.tag == "mask":
        left, top, width, height = (int(_number(shape, key, where, int)) for key in ("left", "top", "width", "height"))
        if width < 1 or height < 1:
            raise LabelImportError(f"{where}: width={width} height={height}; expected a box of at least 1x1")
        runs = _runs(shape.get("rle"), width * height, where)
        return Region(label, where, patch=partial(decode_cvat_rle, runs, (height, width)), origin=(left, top))
    known = f"polygon, box, ellipse, mask (or {', '.join(NO_AREA)}, skipped)"
    raise LabelImportError(f"{where}: <{shape.tag}> is not a known shape; expected {known}")


def _points(text: str | None, where: str) -> np.ndarray:
    if not text:
        raise LabelImportError(f"{where}: no points attribute; expected 'x1,y1;x2,y2;...'")
    try:
        values = [[float(v) for v in pair.split(",")] for pair in text.strip().split(";")]
    except ValueError:
        raise LabelImportError(f"{where}: points={text!r:.80}; expected 'x1,y1;x2,y2;...'") from None
    return polygon_array(values, where)


def _runs(text: str | None, pixels: int, where: str) -> np.ndarray:
    """CVAT's run lengths (background first); they must cover the mask's box exactly."""
    try:
        runs = np.array([int(v) for v in (text or "").split(",")], np.int64)
    except ValueError:
        raise LabelImportError(f"{where}: rle={text!r:.80}; expected comma-separated run lengths") from None
    if (runs < 0).any():
        raise LabelImportError(f"{where}: the rle has a negative run ({int(runs.min())}); expected run lengths >= 0")
    if int(runs.sum()) != pixels:
        raise LabelImportError(f"{where}: the rle runs add up to {int(runs.sum())} pixels; expected width x height = {pixels}")
    return runs


def decode_cvat_rle(runs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Run lengths (background first, row-major) as a boolean array of ``size`` = (height, width)."""
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(size)
