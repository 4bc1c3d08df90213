"""Rebuild the PyTorch model from a ``.pt`` checkpoint or from an ``.onnx`` file this project exported.

The TorchScript exporter keeps BatchNorm nodes (no constant folding), so the ONNX initializers
carry the state-dict names and the float weights; the integer ``num_batches_tracked`` buffers
are not part of the graph, so the exporter stores them in the metadata (``surgseg.buffers``)
and they are restored here: the rebuilt model has the same :func:`weights_digest` as the
checkpoint it was exported from.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from engine.onnx_meta import OnnxModelError, is_onnx_path, load_proto, meta_from_proto
from models.checkpoint import ModelMeta, build_segmenter, load_checkpoint, weights_digest
from models.frame_model import FrameSegmenter

TRACKED = "num_batches_tracked"


def _initializers(proto: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    weights = {init.name: init for init in proto.graph.initializer}
    for node in proto.graph.node:  # the exporter de-duplicates equal tensors through Identity nodes
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    return weights


def load_model_source(path: str | os.PathLike[str]) -> tuple[FrameSegmenter, ModelMeta]:
    """Rebuild the PyTorch model (CPU, float32, eval) from a ``.pt`` checkpoint or an exported ``.onnx``."""
    path = Path(path)
    if not is_onnx_path(path):
        return load_checkpoint(path)
    proto = load_proto(path)
    meta, info = meta_from_proto(proto, path)
    if info["precision"] == "int8":
        raise OnnxModelError(
            f"ONNX model {path} is an INT8 (quantized) file: its float weights cannot be read back; "
            "use the .pt checkpoint or its fp32 export"
        )
    model = build_segmenter(meta)
    weights = _initializers(proto)
    state: dict[str, torch.Tensor] = {}
    missing = []
    for name, reference in model.state_dict().items():
        if name.endswith(TRACKED):
            state[name] = torch.tensor(int(info["buffers"].get(name, int(reference))), dtype=reference.dtype)
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
        hint = "" if info["buffers"] else " (exported before BatchNorm counters were stored: export it again)"
        raise OnnxModelError(
            f"ONNX model {path}: the weights rebuilt from it hash to {weights_digest(model)}, expected the "
            f"stored model hash {info['model_hash']}{hint}"
        )
    return model.eval(), meta
