"""The per-checkpoint ONNX export cache: one export per weights digest, input size and precision."""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import onnx

from engine.export import export_onnx
from engine.model_source import load_model_source
from engine.onnx_meta import (
    OnnxModelError,
    check_precision,
    is_onnx_path,
    load_proto,
    meta_from_proto,
    read_onnx_meta,
    replace_properties,
    stored_properties,
)
from engine.paths import onnx_cache_dir
from models.atomic_io import atomic_write_bytes
from models.checkpoint import ModelMeta, weights_digest

LOG = logging.getLogger("engine")


def cached_onnx_path(digest: str, meta: ModelMeta, precision: str) -> Path:
    """``<cache>/onnx/<digest>-<H>x<W>-<precision>.onnx``."""
    return onnx_cache_dir() / f"{digest}-{meta.input_height}x{meta.input_width}-{check_precision(precision)}.onnx"


def ensure_onnx(model_path: str | os.PathLike[str], precision: str = "fp32") -> tuple[Path, ModelMeta, dict[str, Any]]:
    """An ONNX file for ``model_path`` at ``precision``: the file itself if it already is one,
    else an export cached per weights digest, input size and precision (exported once).

    An ``.onnx`` file of the other precision is converted by rebuilding the PyTorch model from
    its weights. An fp32 file whose weights cannot be read back (e.g. exported with ``--exporter
    dynamo``) is converted to fp16 at the graph level (:func:`convert_onnx_to_fp16`, cached per
    the file's content digest); the other way round raises :class:`OnnxModelError` saying which
    file and what to pass instead."""
    check_precision(precision)
    model_path = Path(model_path)
    if is_onnx_path(model_path):
        meta, info = read_onnx_meta(model_path)
        if info["precision"] == precision:
            return model_path, meta, info
        try:
            model, meta = load_model_source(model_path)
        except OnnxModelError as error:
            if info["precision"] == "fp32" and precision == "fp16":
                LOG.info("%s: weights cannot be read back (%s); converting the graph to fp16", model_path, error)
                return ensure_fp16_graph(model_path)
            raise OnnxModelError(
                f"{model_path} is a {info['precision']} ONNX file and a {precision} graph is needed, "
                f"but its weights cannot be read back "
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


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def converted_onnx_path(source_digest: str, meta: ModelMeta) -> Path:
    """``<cache>/onnx/graph-<source sha256>-<H>x<W>-fp16.onnx``: a graph-level fp16 conversion."""
    return onnx_cache_dir() / f"graph-{source_digest}-{meta.input_height}x{meta.input_width}-fp16.onnx"


def ensure_fp16_graph(source: Path) -> tuple[Path, ModelMeta, dict[str, Any]]:
    """The fp16 graph-level conversion of the fp32 ONNX file ``source``, cached per its content digest."""
    digest = file_digest(source)
    meta, _ = read_onnx_meta(source)
    target = converted_onnx_path(digest, meta)
    if target.is_file():
        try:
            proto = load_proto(target)
            cached_meta, info = meta_from_proto(proto, target)
            if stored_properties(proto).get("source_sha256") == digest and info["precision"] == "fp16":
                return target, cached_meta, info
            LOG.warning("cached ONNX %s does not match its name; converting again", target)
        except OnnxModelError as error:
            LOG.warning("cached ONNX %s is unusable (%s); converting again", target, error)
    LOG.info("converting %s to fp16 at the graph level: %s (cached for the next start)", source, target)
    converted = convert_onnx_to_fp16(load_proto(source), digest)
    atomic_write_bytes(target, converted.SerializeToString())
    cached_meta, info = read_onnx_meta(target)
    return target, cached_meta, info


def convert_onnx_to_fp16(proto: onnx.ModelProto, source_digest: str = "") -> onnx.ModelProto:
    """An fp16 copy of this project's fp32 graph ``proto``, with the same contract as
    ``python -m engine export --precision fp16``: float16 weights and compute, the ``uint8``
    input cast first, ``float32`` logits out. The metadata is copied with ``precision`` fp16,
    the converter appended to ``exporter`` and ``source_sha256`` naming the fp32 file.

    ``onnxconverter_common.float16`` keeps ops it blocks by default (e.g. ``Resize``) in fp32
    behind casts, and leaves the ``to`` of existing ``Cast`` nodes at float32 while retyping their
    outputs to float16; those casts (the ``uint8`` → float input cast) are set to float16 here."""
    from onnxconverter_common.float16 import convert_float_to_float16

    props = stored_properties(proto)
    if props.get("precision") != "fp32":
        raise OnnxModelError(f"only an fp32 graph can be converted to fp16, this one is {props.get('precision')!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "float32 number ... will be truncated" for tiny weights is expected
        converted = convert_float_to_float16(proto, keep_io_types=True)
    types = {value.name: value.type.tensor_type.elem_type
             for value in list(converted.graph.value_info) + list(converted.graph.output)}
    for node in converted.graph.node:
        if node.op_type == "Cast" and types.get(node.output[0]) == onnx.TensorProto.FLOAT16:
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == onnx.TensorProto.FLOAT:
                    attribute.i = onnx.TensorProto.FLOAT16
    props.update(precision="fp16", source_sha256=source_digest,
                 exporter=f"{props.get('exporter', '')} + onnxconverter-common float16 (graph-level)".lstrip(" +"))
    replace_properties(converted, props)
    converted.doc_string = proto.doc_string.replace("fp32", "fp16")
    io_types = [value.type.tensor_type.elem_type for value in (*converted.graph.input, *converted.graph.output)]
    try:
        onnx.checker.check_model(converted)
        onnx.shape_inference.infer_shapes(converted, check_type=True, strict_mode=True)  # a Cast left at fp32 fails
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise OnnxModelError(f"the fp16 conversion of the graph is invalid: {error}") from error
    if io_types != [onnx.TensorProto.UINT8, onnx.TensorProto.FLOAT]:
        raise OnnxModelError(f"the fp16 conversion broke the uint8 in / float32 out contract: {io_types}")
    return converted
