"""ONNX export of the frame model, its embedded metadata and the per-checkpoint export cache.

Input contract of every exported graph (the frame itself, nothing to prepare outside):

* input ``frames``: ``uint8`` ``N×H×W×3`` BGR, H×W fixed to the checkpoint's input size; the
  batch axis is dynamic (``batch``) by default;
* output ``logits``: ``float32`` ``N×1×H×W``.

The ``uint8`` → float cast is the first node of the graph (TensorRT only accepts ``uint8``
network inputs that feed a cast), followed by the folded normalisation, the NHWC → NCHW
transpose and BGR → RGB flip of :class:`~models.frame_model.FrameSegmenter`. The FP16 variant
holds float16 weights and computes in float16 but keeps the ``uint8`` input and casts the
logits back to ``float32`` inside the graph.

The whole :class:`~models.checkpoint.ModelMeta` (plus the weights digest, the contract, the
precision and the exporter) is stored in the ONNX ``metadata_props``, so an ``.onnx`` file alone
is enough to run: :func:`read_onnx_meta` reads it back and :func:`load_model_source` rebuilds
the PyTorch model from either a ``.pt`` checkpoint or an exported ``.onnx`` file (BatchNorm
layers are kept in the graph, so the initializers carry the state-dict names; ONNX Runtime and
TensorRT fuse them into the convolutions at load time).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from engine.paths import onnx_cache_dir
from models.atomic_io import atomic_write_bytes
from models.checkpoint import ModelMeta, build_segmenter, load_checkpoint, weights_digest
from models.frame_model import FrameSegmenter

LOG = logging.getLogger("engine")

PRECISIONS = ("fp32", "fp16")
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_OPSET = 17
INPUT_NAME = "frames"
OUTPUT_NAME = "logits"
ONNX_FORMAT = "surgical-seg-onnx"
ONNX_FORMAT_VERSION = "1"
_PREFIX = "surgseg."


class OnnxModelError(ValueError):
    """An ONNX file is missing, unreadable, or lacks this project's metadata."""


class _ExportWrapper(nn.Module):
    """Casts the ``uint8`` frames first (TensorRT-friendly) and returns ``float32`` logits."""

    def __init__(self, segmenter: FrameSegmenter) -> None:
        super().__init__()
        self.segmenter = segmenter

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.segmenter(frames.to(self.segmenter.scale.dtype)).float()


def check_precision(precision: str) -> str:
    """Return ``precision`` if it is ``fp32`` or ``fp16``; raise ``ValueError`` otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def input_contract(meta: ModelMeta, dynamic_batch: bool = True) -> dict[str, Any]:
    """The input/output contract written into the ONNX metadata."""
    batch: int | str = "batch" if dynamic_batch else 1
    return {
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "channels": "BGR",
                  "shape": [batch, meta.input_height, meta.input_width, 3]},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "layout": "NCHW",
                   "shape": [batch, 1, meta.input_height, meta.input_width],
                   "meaning": "logits; sigmoid(logits) >= threshold is instrument"},
    }


def _export_graph(
    wrapper: nn.Module, dummy: torch.Tensor, path: Path, opset: int, dynamic_batch: bool, exporter: str
) -> None:
    """Run the chosen torch exporter into ``path``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks are expected
        if exporter == "torchscript":
            torch.onnx.export(
                wrapper, (dummy,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                opset_version=opset, dynamo=False, do_constant_folding=False,
                training=torch.onnx.TrainingMode.PRESERVE,  # keep BatchNorm: initializers keep state-dict names
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None,
            )
        else:
            dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=64)},) if dynamic_batch else None
            example = dummy.expand(2, *dummy.shape[1:]).contiguous() if dynamic_batch else dummy  # size 1 specialises
            program = torch.onnx.export(
                wrapper, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                opset_version=opset, dynamo=True, dynamic_shapes=dynamic_shapes,
            )
            program.save(str(path))


def export_onnx(
    model: FrameSegmenter,
    meta: ModelMeta,
    out: str | os.PathLike[str],
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    exporter: str = "torchscript",
) -> Path:
    """Export ``model`` to ``out`` (atomically) with the metadata embedded; return the path.

    ``exporter="torchscript"`` (the default, ``dynamo=False``) keeps the BatchNorm nodes and
    state-dict names; ``"dynamo"`` uses the ``torch.export`` based exporter. Both gave the
    same ONNX Runtime CPU latency here (see ``engine/README.md``).
    """
    check_precision(precision)
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    source = copy.deepcopy(model).cpu().float().eval()
    digest = weights_digest(source)
    segmenter = source.half() if precision == "fp16" else source
    wrapper = _ExportWrapper(segmenter).eval()
    dummy = torch.zeros((1, meta.input_height, meta.input_width, 3), dtype=torch.uint8)
    with tempfile.TemporaryDirectory(prefix="surgseg-export-") as tmp:
        raw = Path(tmp) / "model.onnx"
        _export_graph(wrapper, dummy, raw, opset, dynamic_batch, exporter)
        proto = onnx.load(str(raw))
    properties = {
        "format": ONNX_FORMAT,
        "format_version": ONNX_FORMAT_VERSION,
        "meta": json.dumps(meta.to_dict(), sort_keys=True),
        "model_hash": digest,
        "precision": precision,
        "contract": json.dumps(input_contract(meta, dynamic_batch), sort_keys=True),
        "exporter": f"torch.onnx {exporter} (torch {torch.__version__})",
        "opset": str(opset),
    }
    del proto.metadata_props[:]
    for key, value in properties.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = _PREFIX + key, value
    proto.doc_string = f"Surgical instrument segmentation ({meta.config}), {precision}; see metadata_props"
    onnx.checker.check_model(proto)
    return atomic_write_bytes(out, proto.SerializeToString())


def _load_proto(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise OnnxModelError(f"ONNX model {path} does not exist")
    try:
        return onnx.load(str(path))
    except Exception as error:  # protobuf raises DecodeError and others for corrupt files
        raise OnnxModelError(f"ONNX model {path} could not be read: {error}") from error


def _meta_from_proto(proto: onnx.ModelProto, path: Path) -> tuple[ModelMeta, dict[str, Any]]:
    props = {p.key[len(_PREFIX):]: p.value for p in proto.metadata_props if p.key.startswith(_PREFIX)}
    if props.get("format") != ONNX_FORMAT:
        raise OnnxModelError(
            f"{path} has no {ONNX_FORMAT} metadata (metadata_props key {_PREFIX}format); "
            "export it with `python -m engine export`"
        )
    try:
        meta = ModelMeta.from_dict(json.loads(props["meta"]))
        info: dict[str, Any] = {
            "model_hash": props["model_hash"],
            "precision": check_precision(props["precision"]),
            "contract": json.loads(props["contract"]),
            "exporter": props.get("exporter", ""),
            "opset": int(props.get("opset", "0")),
            "format_version": props["format_version"],
        }
    except (KeyError, TypeError, ValueError) as error:
        raise OnnxModelError(f"ONNX model {path} has invalid {ONNX_FORMAT} metadata: {error!r}") from error
    info["dynamic_batch"] = info["contract"]["input"]["shape"][0] == "batch"
    return meta, info


def read_onnx_meta(path: str | os.PathLike[str]) -> tuple[ModelMeta, dict[str, Any]]:
    """Return the :class:`ModelMeta` stored in an exported ONNX file and a dict with
    ``model_hash``, ``precision``, ``contract``, ``exporter``, ``opset``, ``dynamic_batch``."""
    path = Path(path)
    return _meta_from_proto(_load_proto(path), path)


def is_onnx_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an ONNX file (by suffix)."""
    return Path(path).suffix.lower() == ".onnx"


def load_model_source(path: str | os.PathLike[str]) -> tuple[FrameSegmenter, ModelMeta]:
    """Rebuild the PyTorch model (CPU, float32, eval) from a ``.pt`` checkpoint or an exported ``.onnx``."""
    path = Path(path)
    if not is_onnx_path(path):
        return load_checkpoint(path)
    proto = _load_proto(path)
    meta, info = _meta_from_proto(proto, path)
    model = build_segmenter(meta)
    weights = {init.name: init for init in proto.graph.initializer}
    for node in proto.graph.node:  # the exporter de-duplicates equal tensors through Identity nodes
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    state: dict[str, torch.Tensor] = {}
    missing = []
    for name, reference in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = reference
        elif "segmenter." + name in weights or name in weights:
            array = numpy_helper.to_array(weights.get("segmenter." + name, weights.get(name)))
            state[name] = torch.from_numpy(np.array(array, dtype=np.float32)).reshape(reference.shape)
        else:
            missing.append(name)
    if missing:
        raise OnnxModelError(
            f"ONNX model {path} does not carry the PyTorch weights by name ({len(missing)} missing, e.g. "
            f"{missing[0]!r}); it was probably exported with exporter='dynamo': use the .pt checkpoint instead"
        )
    model.load_state_dict(state)
    if info["precision"] == "fp32" and weights_digest(model) != info["model_hash"]:
        raise OnnxModelError(f"ONNX model {path}: weights do not match the stored model hash {info['model_hash']}")
    return model.eval(), meta


def cached_onnx_path(digest: str, meta: ModelMeta, precision: str) -> Path:
    """``<cache>/onnx/<digest>-<H>x<W>-<precision>.onnx``."""
    return onnx_cache_dir() / f"{digest}-{meta.input_height}x{meta.input_width}-{check_precision(precision)}.onnx"


def ensure_onnx(model_path: str | os.PathLike[str], precision: str = "fp32") -> tuple[Path, ModelMeta, dict[str, Any]]:
    """An ONNX file for ``model_path`` at ``precision``: the file itself if it already is one,
    else an export cached per weights digest, input size and precision (exported once)."""
    check_precision(precision)
    model_path = Path(model_path)
    if is_onnx_path(model_path):
        meta, info = read_onnx_meta(model_path)
        if info["precision"] == precision:
            return model_path, meta, info
    model, meta = load_model_source(model_path)
    target = cached_onnx_path(weights_digest(model), meta, precision)
    if target.is_file():
        try:
            cached_meta, info = read_onnx_meta(target)
            if info["model_hash"] == weights_digest(model) and info["precision"] == precision:
                return target, cached_meta, info
            LOG.warning("cached ONNX %s does not match its name; exporting again", target)
        except OnnxModelError as error:
            LOG.warning("cached ONNX %s is unusable (%s); exporting again", target, error)
    LOG.info("exporting %s to %s (%s, cached for the next start)", model_path, target, precision)
    export_onnx(model, meta, target, precision=precision)
    cached_meta, info = read_onnx_meta(target)
    return target, cached_meta, info
