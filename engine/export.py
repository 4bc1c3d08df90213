"""ONNX export of the frame model with this project's metadata embedded (:mod:`engine.onnx_meta`).

The ``uint8`` → float cast is the first node of the graph (TensorRT only accepts ``uint8``
network inputs that feed a cast), followed by the folded normalisation, the NHWC → NCHW
transpose and BGR → RGB flip of :class:`~models.frame_model.FrameSegmenter`. The FP16 variant
holds float16 weights and computes in float16 but keeps the ``uint8`` input and casts the
logits back to ``float32`` inside the graph. Reading a file back: :mod:`engine.onnx_meta`,
:mod:`engine.model_source`; the per-checkpoint export cache: :mod:`engine.onnx_cache`.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from engine.onnx_meta import (
    INPUT_NAME,
    ONNX_FORMAT,
    ONNX_FORMAT_VERSION,
    OUTPUT_NAME,
    PREFIX,
    check_precision,
    input_contract,
)
from models.atomic_io import atomic_write_bytes
from models.checkpoint import ModelMeta, weights_digest
from models.frame_model import FrameSegmenter

EXPORTERS = ("torchscript", "dynamo")
DEFAULT_OPSET = 17


class _ExportWrapper(nn.Module):
    """Casts the ``uint8`` frames first (TensorRT-friendly) and returns ``float32`` logits."""

    def __init__(self, segmenter: FrameSegmenter) -> None:
        super().__init__()
        self.segmenter = segmenter

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.segmenter(frames.to(self.segmenter.scale.dtype)).float()


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
        "buffers": json.dumps({name: int(value) for name, value in source.state_dict().items()
                               if name.endswith("num_batches_tracked")}, sort_keys=True),
    }
    del proto.metadata_props[:]
    for key, value in properties.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = PREFIX + key, value
    proto.doc_string = f"Surgical instrument segmentation ({meta.config}), {precision}; see metadata_props"
    onnx.checker.check_model(proto)
    return atomic_write_bytes(out, proto.SerializeToString())
