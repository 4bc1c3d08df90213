"""The output folder (``images/`` + ``masks/``, the ``folders`` layout), built aside and moved into place at the end."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from training.labels.model import LabelImportError

COPIED_AS_IS = (".png", ".jpg", ".jpeg")  # other image files are re-encoded as PNG


def check_output(out: Path, overwrite: bool, inputs: Iterable[Path]) -> None:
    """Refuse ``out`` when it is a file, a non-empty folder without ``overwrite``, or (to be replaced) holds an input."""
    if out.exists() and not out.is_dir():
        raise LabelImportError(f"--out {out} exists and is a file; expected a new or empty folder")
    parent = out.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise LabelImportError(f"--out {out}: {parent} is a file, so the folder cannot be created; expected a folder path")
    content = sorted(out.iterdir()) if out.is_dir() else []
    if not content:
        return
    if not overwrite:
        raise LabelImportError(
            f"--out {out} already holds {len(content)} entries (first: {content[0].name}); expected a new or empty folder, "
            "or --overwrite to replace it"
        )
    target = out.resolve()
    for path in inputs:
        resolved = path.resolve()
        if resolved == target or target in resolved.parents:
            raise LabelImportError(f"--out {out} holds the input {path}; --overwrite would delete it, so expected another --out folder")


@contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """Yield a hidden sibling folder of ``out`` with ``images/`` and ``masks/``; when the block ends without an
    error it replaces ``out`` (checked beforehand with :func:`check_output`), otherwise it is deleted."""
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    staging = out.absolute().parent / f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        (staging / "images").mkdir()
        (staging / "masks").mkdir()
        yield staging
        _move_into_place(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, out: Path) -> None:
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.rename(staging, out)
        return
    old = out.absolute().parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def write_pair(staging: Path, image_path: Path, image: np.ndarray, mask: np.ndarray) -> None:
    """Put one image (copied byte for byte when PNG/JPEG, else re-encoded as PNG) and its mask (PNG, same stem) in ``staging``."""
    if image_path.suffix.lower() in COPIED_AS_IS:
        shutil.copyfile(image_path, staging / "images" / image_path.name)
    else:
        _write_png(staging / "images" / f"{image_path.stem}.png", image)
    _write_png(staging / "masks" / f"{image_path.stem}.png", mask)


def _write_png(path: Path, array: np.ndarray) -> None:
    if not cv2.imwrite(str(path), array):
        raise OSError(f"could not write {path}")
