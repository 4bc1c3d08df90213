"""The per-checkpoint ONNX export cache: one export per weights digest, input size and precision."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from engine.export import export_onnx
from engine.model_source import load_model_source
from engine.onnx_meta import OnnxModelError, check_precision, is_onnx_path, read_onnx_meta
from engine.paths import onnx_cache_dir
from models.checkpoint import ModelMeta, weights_digest

LOG = logging.getLogger("engine")


def cached_onnx_path(digest: str, meta: ModelMeta, precision: str) -> Path:
    """``<cache>/onnx/<digest>-<H>x<W>-<precision>.onnx``."""
    return onnx_cache_dir() / f"{digest}-{meta.input_height}x{meta.input_width}-{check_precision(precision)}.onnx"


def ensure_onnx(model_path: str | os.PathLike[str], precision: str = "fp32") -> tuple[Path, ModelMeta, dict[str, Any]]:
    """An ONNX file for ``model_path`` at ``precision``: the file itself if it already is one,
    else an export cached per weights digest, input size and precision (exported once).

    An ``.onnx`` file of the other precision is converted by rebuilding the PyTorch model from
    its weights; a file whose weights cannot be read back (e.g. exported with ``--exporter
    dynamo``) raises :class:`OnnxModelError` saying which file and what to pass instead."""
    check_precision(precision)
    model_path = Path(model_path)
    if is_onnx_path(model_path):
        meta, info = read_onnx_meta(model_path)
        if info["precision"] == precision:
            return model_path, meta, info
        try:
            model, meta = load_model_source(model_path)
        except OnnxModelError as error:
            raise OnnxModelError(
                f"{model_path} is a {info['precision']} ONNX file and a {precision} graph is needed "
                f"(TensorRT >= 11 builds FP16 only from an FP16 ONNX graph), but its weights cannot be read back "
                f"to export one: {error}. Pass the .pt checkpoint, or an ONNX file exported with "
                f"`python -m engine export --precision {precision}`, or use --precision {info['precision']}"
            ) from error
    else:
        model, meta = load_model_source(model_path)
    digest = weights_digest(model)
    target = cached_onnx_path(digest, meta, precision)
    if target.is_file():
        try:
            cached_meta, info = read_onnx_meta(target)
            if info["model_hash"] == digest and info["precision"] == precision:
                return target, cached_meta, info
            LOG.warning("cached ONNX %s does not match its name; exporting again", target)
        except OnnxModelError as error:
            LOG.warning("cached ONNX %s is unusable (%s); exporting again", target, error)
    LOG.info("exporting %s to %s (%s, cached for the next start)", model_path, target, precision)
    export_onnx(model, meta, target, precision=precision)
    cached_meta, info = read_onnx_meta(target)
    return target, cached_meta, info
