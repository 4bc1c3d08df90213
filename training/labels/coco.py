"""COCO instance annotations (one JSON file): polygons, RLE (compressed and uncompressed) and ``iscrowd``.

Polygon coordinates are pixel-edge coordinates (COCO's convention). An object's polygons are united
(COCO polygons have no holes); RLE masks are decoded with ``pycocotools`` and keep their holes.
Crowd annotations (``iscrowd: 1``) are regions of the same class, so they count as instrument pixels
when their class does. Images listed without annotations are negative frames.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from training.labels.model import ImageLabels, LabelImportError, Region, polygon_array

LOG = logging.getLogger("training.labels")


def load_json(path: Path) -> Any:
    """Parse a JSON file; a missing or malformed file is a :class:`LabelImportError` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise LabelImportError(f"cannot read annotation file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise LabelImportError(f"annotation file {path} is not UTF-8 text ({error.reason} at byte {error.start}); expected JSON") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise LabelImportError(f"annotation file {path} is not valid JSON: {error.msg} at {where}; expected JSON") from None


def _list(data: dict[str, Any], key: str, path: Path) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise LabelImportError(f"{path}: {key!r} is {type(value).__name__ if key in data else 'missing'}; expected a list (COCO format)")
    return value


def _field(entry: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise LabelImportError(f"{where}: no {key!r} field; expected one in every entry (COCO format)")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LabelImportError(f"{where}: {key!r} is {value!r}; expected {getattr(kind, '__name__', kind)}")
    return value


def read_coco(annotations: Path, images: Path) -> list[ImageLabels]:
    """Read a COCO instances JSON file; image ``file_name``s are relative to ``images``."""
    data = load_json(annotations)
    if not isinstance(data, dict):
        raise LabelImportError(f"{annotations}: the top level is a {type(data).__name__}; expected an object with 'images' (COCO format)")
    categories = {}
    for entry in _list(data, "categories", annotations):
        where = f"{annotations}: category {entry.get('id') if isinstance(entry, dict) else entry!r}"
        categories[_field(entry, "id", int, where)] = str(_field(entry, "name", str, where))
    by_id: dict[int, ImageLabels] = {}
    for entry in _list(data, "images", annotations):
        where = f"{annotations}: image {entry.get('id') if isinstance(entry, dict) else entry!r}"
        image_id = _field(entry, "id", int, where)
        if image_id in by_id:
            raise LabelImportError(f"{where}: the image id {image_id} is listed twice; expected unique ids")
        name = _field(entry, "file_name", str, where)
        size = (_field(entry, "height", int, where), _field(entry, "width", int, where))
        by_id[image_id] = ImageLabels(images / name, f"{annotations}: image id {image_id} ({name})", size)
    skipped = 0
    for entry in _list(data, "annotations", annotations):
        where = f"{annotations}: annotation {entry.get('id') if isinstance(entry, dict) else entry!r}"
        image_id, category = _field(entry, "image_id", int, where), _field(entry, "category_id", int, where)
        if image_id not in by_id:
            raise LabelImportError(f"{where}: image_id {image_id} is not among the listed images; expected one of the 'images' ids")
        if category not in categories:
            raise LabelImportError(f"{where}: category_id {category} is not among the categories {sorted(categories)}")
        image = by_id[image_id]
        region, degenerate = _region(entry, categories[category], image.size, where)
        skipped += degenerate
        if region is not None:
            image.regions.append(region)
    if skipped:
        LOG.warning("skipped %d COCO polygons with fewer than 3 points (no area)", skipped)
    return list(by_id.values())


def _region(entry: dict[str, Any], label: str, size: tuple[int, int] | None, where: str) -> tuple[Region | None, int]:
    """The region of one annotation and the number of degenerate polygons left out of it."""
    segmentation = entry.get("segmentation")
    if isinstance(segmentation, dict):
        assert size is not None
        return Region(label, where, patch=_rle_decoder(segmentation, size, where), whole_image=True), 0
    if not isinstance(segmentation, list) or not segmentation:
        raise LabelImportError(
            f"{where}: segmentation is {segmentation!r}; expected polygons [[x1, y1, x2, y2, ...], ...] or an RLE "
            "{'size': [h, w], 'counts': ...} (a bounding box alone cannot make a mask)"
        )
    if all(isinstance(v, (int, float)) for v in segmentation):
        segmentation = [segmentation]  # a single flat polygon, as some exporters write it
    polygons = []
    for number, values in enumerate(segmentation):
        if not isinstance(values, list) or len(values) % 2:
            raise LabelImportError(f"{where}: polygon {number} is {values!r:.80}; expected an even-length list [x1, y1, x2, y2, ...]")
        polygons.append(polygon_array(values, f"{where}: polygon {number}"))
    kept = tuple(p for p in polygons if len(p) >= 3)
    return (Region(label, where, polygons=kept) if kept else None), len(polygons) - len(kept)


def _rle_decoder(rle: dict[str, Any], size: tuple[int, int], where: str) -> Callable[[], np.ndarray]:
    """Check an RLE segmentation against the image size; return a function decoding it to a boolean mask."""
    declared, counts = rle.get("size"), rle.get("counts")
    if not (isinstance(declared, list) and len(declared) == 2 and all(isinstance(v, int) for v in declared)):
        raise LabelImportError(f"{where}: RLE size is {declared!r}; expected [height, width]")
    if tuple(declared) != size:
        raise LabelImportError(f"{where}: RLE size {declared} (height, width) differs from the image's {list(size)}; expected the same")
    height, width = size
    if isinstance(counts, str):
        total = sum(_string_counts(counts, where))
        compressed = {"size": declared, "counts": counts.encode("ascii")}
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
        total = sum(counts)
        compressed = coco_mask.frPyObjects({"size": declared, "counts": counts}, height, width)
    else:
        raise LabelImportError(f"{where}: RLE counts is {counts!r:.80}; expected a compressed string or a list of run lengths >= 0")
    if total != height * width:
        raise LabelImportError(f"{where}: the RLE runs add up to {total} pixels; expected height x width = {height * width}")
    return partial(_decode, compressed, where)


def _decode(compressed: dict[str, Any], where: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():  # pycocotools 2.0.x vs numpy 2: a DeprecationWarning about __array__(copy=)
            warnings.simplefilter("ignore", DeprecationWarning)
            return coco_mask.decode(compressed).astype(bool)
    except ValueError as error:
        raise LabelImportError(f"{where}: the RLE cannot be decoded ({error}); expected a valid COCO RLE") from None


def _string_counts(counts: str, where: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' LEB128-like code, each run relative to the one two back)."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts) or not 48 <= ord(counts[position]) < 48 + 64:
                raise LabelImportError(f"{where}: RLE counts string is malformed at character {position}; expected a COCO compressed RLE")
            code = ord(counts[position]) - 48
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise LabelImportError(f"{where}: RLE counts string decodes to a negative run ({value}); expected a COCO compressed RLE")
        runs.append(value)
    return runs
