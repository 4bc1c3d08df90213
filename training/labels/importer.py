"""``import_labels``: annotations in one of :data:`FORMATS` to a ``folders`` data set (``OUT/images`` + ``OUT/masks``)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training.labels.coco import read_coco
from training.labels.cvat import read_cvat
from training.labels.labelme import read_labelme
from training.labels.masks import read_masks
from training.labels.model import ImageLabels, LabelImportError
from training.labels.rasterize import rasterize
from training.labels.writer import check_output, staged_output, write_pair

LOG = logging.getLogger("training.labels")
Reader = Callable[[Path, Path], list[ImageLabels]]
FORMATS: dict[str, Reader] = {"coco": read_coco, "labelme": read_labelme, "cvat": read_cvat, "masks": read_masks}


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_labels` wrote."""

    out: Path
    images: int
    negatives: int  # images whose mask is empty
    label_counts: dict[str, int]  # shapes per label found in the annotations
    classes: list[str]  # the labels taken as instrument


def import_labels(
    fmt: str,
    annotations: Path,
    images: Path,
    out: Path,
    classes: Sequence[str] | None = None,
    overwrite: bool = False,
) -> ImportSummary:
    """Rasterise the annotations of every listed image into ``out/masks/<stem>.png`` (255 = instrument) beside a copy
    of the image in ``out/images``. ``classes`` (default: every label) are the instrument labels, the union of their
    shapes is the mask. Nothing is written unless every image imports; raises :class:`LabelImportError` on bad input."""
    if fmt not in FORMATS:
        raise LabelImportError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    annotations, images, out = Path(annotations), Path(images), Path(out)
    check_output(out, overwrite, (annotations, images))
    if not annotations.exists():
        raise LabelImportError(f"--annotations {annotations} does not exist; expected the {fmt} annotations")
    if not images.is_dir():
        raise LabelImportError(f"--images {images} is not a folder; expected the folder holding the images")
    found = FORMATS[fmt](annotations, images)
    if not found:
        raise LabelImportError(f"{annotations} lists no images; expected at least one")
    _check_stems(found)
    counts = Counter(region.label for labels in found for region in labels.regions)
    LOG.info("labels found in %s: %s", annotations, _listing(counts) or "none")
    chosen = _choose(fmt, classes, counts, annotations)
    negatives = 0
    with staged_output(out) as staging:
        for labels in found:
            image = _read_image(labels)
            mask = rasterize(image.shape[:2], labels.regions, chosen)
            negatives += not mask.any()
            write_pair(staging, labels.image, image, mask)
    return ImportSummary(out, len(found), negatives, dict(sorted(counts.items())), sorted(chosen))


def _listing(counts: Counter[str]) -> str:
    return ", ".join(f"{label} ({count})" for label, count in sorted(counts.items()))


def _check_stems(found: list[ImageLabels]) -> None:
    seen: dict[str, ImageLabels] = {}
    for labels in found:
        stem = labels.image.stem
        if stem in seen:
            raise LabelImportError(
                f"{seen[stem].where} and {labels.where} both name an image with the stem {stem!r} "
                f"({seen[stem].image} and {labels.image}); expected one image per stem (the mask is named after it)"
            )
        seen[stem] = labels


def _choose(fmt: str, classes: Sequence[str] | None, counts: Counter[str], annotations: Path) -> set[str]:
    """The instrument labels: ``classes``, each of which must occur, or every label found."""
    if classes is None:
        if not counts:
            LOG.warning("%s has no labelled shapes: every mask will be empty", annotations)
        return set(counts)
    if fmt == "masks":
        raise LabelImportError("--classes does not apply to --format masks (a mask has one class: any non-zero value)")
    missing = [name for name in classes if name not in counts]
    if missing:
        raise LabelImportError(
            f"--classes {' '.join(missing)}: no shape in {annotations} has {'this label' if len(missing) == 1 else 'these labels'} "
            f"(labels are case-sensitive); the labels found are {_listing(counts) or 'none'}"
        )
    left_out = sorted(set(counts) - set(classes))
    if left_out:
        LOG.info("labels taken as background: %s", ", ".join(left_out))
    return set(classes)


def _read_image(labels: ImageLabels) -> np.ndarray:
    """Decode the image of ``labels`` (as training will) and check its size against the annotations."""
    path = labels.image
    if not path.is_file():
        raise LabelImportError(f"image {path} (listed in {labels.where}) does not exist; expected the image file there")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise LabelImportError(f"image {path} (listed in {labels.where}) cannot be decoded; expected a PNG, JPEG or other image file")
    if labels.size is not None and tuple(labels.size) != image.shape[:2]:
        height, width = labels.size
        raise LabelImportError(
            f"{labels.where} gives the image size as {width}x{height} (WxH) but {path} is {image.shape[1]}x{image.shape[0]}; "
            "expected the same"
        )
    return image
