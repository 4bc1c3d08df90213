"""INT8 models for ONNX Runtime on the CPU: static QDQ quantization, a cache, and the ``auto`` choice.

``ensure_int8(model)`` quantizes the FP32 export of a ``.pt`` checkpoint (or an FP32 ``.onnx``) with
``onnxruntime.quantization.quantize_static`` (QDQ, per-channel INT8 weights, MinMax calibration on
training frames: :mod:`engine.int8_data`), and caches it under ``<cache>/onnx/int8-<weights
digest>-<H>x<W>-<recipe digest>.onnx`` (atomic writes; an unreadable or mismatched entry is rebuilt).
The file keeps the export's contract (``uint8`` BGR N×H×W×3 in, ``float32`` logits out) and carries,
in ``metadata_props`` key ``surgseg.int8``, the recipe, the calibration set, the INT8-vs-FP32
parity record per validation root and the build-time speed check (:mod:`engine.int8_record`).

``auto_cpu_model(model)``: what ``precision="auto"`` runs on ONNX Runtime CPU: a cached INT8 file
whose record passes (:func:`~engine.int8_record.int8_verdict`), else FP32, the reason logged. It
never calibrates at start-up (that takes tens of seconds); ``--precision int8`` or ``python -m
engine export --precision int8`` builds the file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from engine.int8_data import (
    CALIBRATION_SEED,
    VALIDATION_SEED,
    Int8Recipe,
    calibration_set,
    generated_frames,
    read_frames,
    real_train_root,
    recipe_digest,
    validation_files,
)
from engine.int8_record import int8_verdict, measure_speed, parity_record
from engine.onnx_cache import ensure_onnx
from engine.onnx_meta import (
    PREFIX,
    OnnxModelError,
    is_onnx_path,
    load_proto,
    meta_from_proto,
    replace_properties,
    stored_properties,
)
from engine.paths import onnx_cache_dir
from models.atomic_io import atomic_write_bytes
from models.checkpoint import ModelMeta

LOG = logging.getLogger("engine")
RECORD_KEY = "int8"
DEFAULT_RECIPE = Int8Recipe()  #: what ``--precision int8`` and ``auto`` use
LOWRES_FACTOR = 4  #: ``conv-lowres`` quantizes the convolutions at 1/4 of the input size or less


@dataclass(frozen=True)
class Int8Plan:
    """Everything that names one INT8 build: its FP32 source, recipe, frames and cache path."""

    fp32_path: Path
    meta: ModelMeta
    model_hash: str
    info: dict[str, Any]  #: the FP32 file's info (``read_onnx_meta``)
    recipe: Int8Recipe
    calibration_files: list[Path]
    validation_files: list[Path]
    calibration: dict[str, Any]
    digest: str
    target: Path


def quantizer_name() -> str:
    """The quantizer and its version (part of the cache key)."""
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__} quantize_static QDQ per-channel MinMax"


def plan_int8(model_path: str | os.PathLike[str], recipe: Int8Recipe | None = None,
              real_root: Path | None = None) -> Int8Plan:
    """The INT8 build of ``model_path`` (``.pt`` or FP32 ``.onnx``; exported to FP32 first when needed);
    ``real_root``: the ROBUST-MIS training folder (default :func:`~engine.int8_data.real_train_root`)."""
    recipe = recipe or DEFAULT_RECIPE
    real_root = real_root if real_root is not None else real_train_root()
    fp32_path, meta, info = ensure_onnx(model_path, "fp32")
    calib, description = calibration_set(meta, recipe, real_root)
    val = validation_files(real_root, recipe)
    digest = recipe_digest(recipe, description, calib, val, quantizer_name())
    target = onnx_cache_dir() / f"int8-{info['model_hash']}-{meta.input_height}x{meta.input_width}-{digest}.onnx"
    return Int8Plan(fp32_path, meta, info["model_hash"], info, recipe, calib, val, description, digest, target)


def read_int8_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The INT8 record (recipe, calibration, parity, speed) stored in an INT8 file; :class:`OnnxModelError` if none."""
    path = Path(path)
    props = stored_properties(load_proto(path))
    try:
        return dict(json.loads(props[RECORD_KEY]))
    except (KeyError, TypeError, ValueError) as error:
        raise OnnxModelError(f"{path} carries no valid {PREFIX}{RECORD_KEY} record: {error!r}") from error


def cached_int8(plan: Int8Plan) -> tuple[Path, ModelMeta, dict[str, Any]] | None:
    """The cached INT8 file of ``plan`` with its meta and info (``info["int8"]`` = the record), or ``None``
    when absent, unreadable or not matching its name (logged)."""
    if not plan.target.is_file():
        return None
    try:
        proto = load_proto(plan.target)
        meta, info = meta_from_proto(proto, plan.target)
        record = json.loads(stored_properties(proto)[RECORD_KEY])
        if info["precision"] == "int8" and info["model_hash"] == plan.model_hash and record["recipe_digest"] == plan.digest:
            return plan.target, meta, {**info, "int8": record}
        LOG.warning("cached INT8 model %s does not match its name; quantizing again", plan.target)
    except (OnnxModelError, KeyError, TypeError, ValueError) as error:
        LOG.warning("cached INT8 model %s is unusable (%s); quantizing again", plan.target, error)
    return None


def select_convs(proto: onnx.ModelProto, variant: str) -> list[str]:
    """The Conv nodes ``variant`` quantizes in a shape-inferred graph: ``conv-lowres`` those whose output is
    at most 1/:data:`LOWRES_FACTOR` of the input height and width, ``conv-noends`` all but the first and
    the last, ``conv`` (and ``all``) every one."""
    convs = [node for node in proto.graph.node if node.op_type == "Conv"]
    if variant == "conv-noends":
        return [node.name for node in convs[1:-1]]
    if variant != "conv-lowres":
        return [node.name for node in convs]
    height, width = (dim.dim_value for dim in proto.graph.input[0].type.tensor_type.shape.dim[1:3])
    shapes = {value.name: [dim.dim_value for dim in value.type.tensor_type.shape.dim]
              for value in (*proto.graph.value_info, *proto.graph.output)}
    low = []
    for node in convs:
        shape = shapes.get(node.output[0])
        if not shape or len(shape) != 4 or not shape[2] or not shape[3]:
            raise OnnxModelError(f"INT8 conv-lowres: no inferred output shape for {node.name}")
        if shape[2] * LOWRES_FACTOR <= height and shape[3] * LOWRES_FACTOR <= width:
            low.append(node.name)
    return low


def _quantize(fp32_path: Path, frames: np.ndarray, recipe: Int8Recipe, workdir: Path) -> onnx.ModelProto:
    """``quantize_static`` of the pre-processed (Conv+BN fused, shapes inferred) FP32 graph."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.array_split(frames, max(1, len(frames) // 8)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"frames": np.ascontiguousarray(batch)}

    pre, out = workdir / "pre.onnx", workdir / "int8.onnx"
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    selected = select_convs(onnx.load(str(pre)), recipe.variant)
    if not selected:
        raise OnnxModelError(f"INT8 {recipe.variant}: no Conv node of {fp32_path} qualifies for quantization")
    options: dict[str, Any] = {"op_types_to_quantize": None if recipe.variant == "all" else ["Conv"],
                               "nodes_to_quantize": selected if recipe.variant != "all" else None}
    activation = QuantType.QUInt8 if recipe.activations == "quint8" else QuantType.QInt8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=activation, weight_type=QuantType.QInt8, **options)
    return onnx.load(str(out))


def _with_metadata(proto: onnx.ModelProto, source: onnx.ModelProto, record: dict[str, Any]) -> onnx.ModelProto:
    """``proto`` with the FP32 file's metadata, ``precision`` int8 and the record; its contract checked."""
    props = stored_properties(source)
    props.update(precision="int8", exporter=f"{props.get('exporter', '')} + {quantizer_name()}",
                 **{RECORD_KEY: json.dumps(record, sort_keys=True)})
    replace_properties(proto, props)
    proto.doc_string = source.doc_string.replace("fp32", "int8 (QDQ)")
    io_types = [value.type.tensor_type.elem_type for value in (*proto.graph.input, *proto.graph.output)]
    if io_types != [onnx.TensorProto.UINT8, onnx.TensorProto.FLOAT]:
        raise OnnxModelError(f"INT8 quantization broke the uint8 in / float32 out contract: {io_types}")
    onnx.checker.check_model(proto)
    return proto


def build_int8(plan: Int8Plan) -> tuple[Path, ModelMeta, dict[str, Any]]:
    """Calibrate, quantize, record parity and speed, and write ``plan.target`` atomically."""
    size = plan.meta.input_size
    generated, _ = generated_frames(CALIBRATION_SEED, plan.recipe.generated_scenes, size)
    frames = np.concatenate([generated, read_frames(plan.calibration_files, size)])
    LOG.info("quantizing %s to INT8 (%s, %d calibration frames): %s", plan.fp32_path, plan.recipe.variant,
             len(frames), plan.target)
    with tempfile.TemporaryDirectory(prefix="surgseg-int8-") as tmp:
        quantized = _quantize(plan.fp32_path, frames, plan.recipe, Path(tmp))
    data = quantized.SerializeToString()
    val_generated, _ = generated_frames(VALIDATION_SEED, plan.recipe.val_generated_scenes, size)
    roots = {"generated-val": (val_generated, f"synthetic scenes seeds {VALIDATION_SEED}.."
                               f"{VALIDATION_SEED + plan.recipe.val_generated_scenes - 1}, 2 frames each")}
    if plan.validation_files:
        operations = sorted({p.stem.split("_f")[0] for p in plan.validation_files})
        roots["robustmis-val"] = (read_frames(plan.validation_files, size),
                                  f"ROBUST-MIS validation operations {' + '.join(operations)}")
    record: dict[str, Any] = {"recipe": plan.recipe.to_dict(), "recipe_digest": plan.digest,
                              "calibration": plan.calibration,
                              "parity": parity_record(plan.fp32_path, data, plan.meta.threshold, roots)}
    if plan.recipe.speed_rounds > 0:
        record["speed"] = measure_speed(plan.fp32_path, data, generated[0], plan.recipe.speed_rounds)
    proto = _with_metadata(quantized, load_proto(plan.fp32_path), record)
    atomic_write_bytes(plan.target, proto.SerializeToString())
    meta, info = meta_from_proto(proto, plan.target)
    return plan.target, meta, {**info, "int8": record}


def ensure_int8(model_path: str | os.PathLike[str], recipe: Int8Recipe | None = None,
                real_root: Path | None = None) -> tuple[Path, ModelMeta, dict[str, Any]]:
    """An INT8 file for ``model_path``: the file itself if it is one, else the cached build (built once)."""
    model_path = Path(model_path)
    if is_onnx_path(model_path):
        meta, info = meta_from_proto(load_proto(model_path), model_path)
        if info["precision"] == "int8":
            return model_path, meta, {**info, "int8": read_int8_record(model_path)}
    plan = plan_int8(model_path, recipe, real_root)
    return cached_int8(plan) or build_int8(plan)


def auto_cpu_model(model_path: str | os.PathLike[str], recipe: Int8Recipe | None = None,
                   real_root: Path | None = None) -> tuple[Path, ModelMeta, dict[str, Any]]:
    """What ``precision="auto"`` runs on ONNX Runtime CPU: a cached INT8 build whose record passes, else FP32;
    the choice and its reason are logged (INFO, logger ``engine``)."""
    plan = plan_int8(model_path, recipe, real_root)
    cached = cached_int8(plan)
    if cached is None:
        reason = (f"no INT8 build of this model is cached ({plan.target.name}); `--precision int8` or "
                  "`python -m engine export --precision int8` calibrates one")
    else:
        usable, reason = int8_verdict(cached[2]["int8"])
        if usable:
            LOG.info("precision int8 (auto): %s", reason)
            return cached
    LOG.info("precision fp32 (auto): %s", reason)
    return plan.fp32_path, plan.meta, plan.info
