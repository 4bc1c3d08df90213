"""Existing binary mask images (``--annotations`` is their folder), paired with the images by file stem.

Any non-zero value is instrument. A mask must hold at most two values, background 0 and one other
(``{0, 255}``, ``{0, 1}``, ``{0, 38}``, ...); anything else is refused with the values found. An image
without a mask is left out with a warning; a mask without an image is an error.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np

from training.datasets import IMAGE_EXTENSIONS, DatasetError, read_mask_channel
from training.labels.model import ImageLabels, LabelImportError, Region

LOG = logging.getLogger("training.labels")
LABEL = "instrument"  # the one label this format has


def _files_by_stem(folder: Path, option: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise LabelImportError(f"{option} {folder} is not a folder; expected a folder of images")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."):
            if path.stem in found:
                raise LabelImportError(
                    f"{option} {folder}: {found[path.stem].name} and {path.name} share the stem {path.stem!r}; expected one file per stem"
                )
            found[path.stem] = path
    return found


def read_masks(annotations: Path, images: Path) -> list[ImageLabels]:
    """One :class:`ImageLabels` per mask file in ``annotations``; the image is the file of ``images`` with the same stem."""
    masks = _files_by_stem(annotations, "--annotations")
    if not masks:
        raise LabelImportError(f"--annotations {annotations} holds no mask images; expected files ending in {', '.join(IMAGE_EXTENSIONS)}")
    pictures = _files_by_stem(images, "--images")
    unlabelled = sorted(set(pictures) - set(masks))
    if unlabelled:
        LOG.warning("%d images in %s have no mask in %s and are left out (first: %s)", len(unlabelled), images, annotations, unlabelled[0])
    found = []
    for stem, mask in masks.items():
        image = pictures.get(stem, images / f"{stem}{mask.suffix}")
        region = Region(LABEL, f"mask {mask}", patch=partial(read_binary_mask, mask), whole_image=True)
        found.append(ImageLabels(image, f"mask {mask}", None, [region]))
    return found


def read_binary_mask(path: Path) -> np.ndarray:
    """A mask file as a boolean array (any non-zero value is instrument); more than one non-zero value is an error."""
    try:
        mask = read_mask_channel(path)
    except DatasetError as error:
        raise LabelImportError(str(error)) from error
    values = np.unique(mask)
    if len(values) > 2 or (len(values) == 2 and values[0] != 0):
        shown = ", ".join(str(v) for v in values[:10].tolist()) + (", ..." if len(values) > 10 else "")
        raise LabelImportError(
            f"mask {path} holds the values {{{shown}}} ({len(values)} distinct); expected two at most, 0 for background and one "
            "other value for instrument"
        )
    return mask > 0
