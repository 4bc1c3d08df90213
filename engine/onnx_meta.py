"""The ONNX contract of this project and the metadata every exported file carries.

Input ``frames``: ``uint8`` ``N×H×W×3`` BGR (H×W fixed, batch axis ``batch`` or 1); output
``logits``: ``float32`` ``N×1×H×W``. The whole :class:`~models.checkpoint.ModelMeta`, the
weights digest, the contract, the precision and the exporter are stored in the ONNX
``metadata_props`` (prefix ``surgseg.``), so an ``.onnx`` file alone is enough to run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import onnx

from models.checkpoint import ModelMeta

PRECISIONS = ("fp32", "fp16")  #: what the exporter writes
#: what an ONNX file of this project may hold: the exports, and INT8 quantizations (:mod:`engine.int8`)
FILE_PRECISIONS = (*PRECISIONS, "int8")
INPUT_NAME = "frames"
OUTPUT_NAME = "logits"
ONNX_FORMAT = "surgical-seg-onnx"
ONNX_FORMAT_VERSION = "1"
PREFIX = "surgseg."


class OnnxModelError(ValueError):
    """An ONNX file is missing, unreadable, or lacks this project's metadata."""


def check_precision(precision: str) -> str:
    """Return ``precision`` if it is ``fp32`` or ``fp16``; raise ``ValueError`` otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def _file_precision(precision: str) -> str:
    if precision not in FILE_PRECISIONS:
        raise ValueError(f"precision must be one of {FILE_PRECISIONS}, got {precision!r}")
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


def is_onnx_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an ONNX file (by suffix)."""
    return Path(path).suffix.lower() == ".onnx"


def load_proto(path: Path) -> onnx.ModelProto:
    """Read an ONNX file; :class:`OnnxModelError` naming the file when it is missing or unreadable."""
    if not path.is_file():
        raise OnnxModelError(f"ONNX model {path} does not exist")
    try:
        return onnx.load(str(path))
    except Exception as error:  # protobuf raises DecodeError and others for corrupt files
        raise OnnxModelError(f"ONNX model {path} could not be read: {error}") from error


def stored_properties(proto: onnx.ModelProto) -> dict[str, str]:
    """This project's ``metadata_props`` (prefix removed)."""
    return {p.key[len(PREFIX):]: p.value for p in proto.metadata_props if p.key.startswith(PREFIX)}


def replace_properties(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace ``proto``'s metadata with ``props`` (keys without the ``surgseg.`` prefix, which is added)."""
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = PREFIX + key, value


def meta_from_proto(proto: onnx.ModelProto, path: Path) -> tuple[ModelMeta, dict[str, Any]]:
    """:class:`ModelMeta` and the info dict stored in ``proto`` (``path`` only names it in errors)."""
    props = stored_properties(proto)
    if props.get("format") != ONNX_FORMAT:
        raise OnnxModelError(
            f"{path} has no {ONNX_FORMAT} metadata (metadata_props key {PREFIX}format); "
            "export it with `python -m engine export`"
        )
    try:
        meta = ModelMeta.from_dict(json.loads(props["meta"]))
        info: dict[str, Any] = {
            "model_hash": props["model_hash"],
            "precision": _file_precision(props["precision"]),
            "contract": json.loads(props["contract"]),
            "exporter": props.get("exporter", ""),
            "opset": int(props.get("opset", "0")),
            "format_version": props["format_version"],
            "buffers": json.loads(props.get("buffers", "{}")),
        }
    except (KeyError, TypeError, ValueError) as error:
        raise OnnxModelError(f"ONNX model {path} has invalid {ONNX_FORMAT} metadata: {error!r}") from error
    info["dynamic_batch"] = info["contract"]["input"]["shape"][0] == "batch"
    return meta, info


def read_onnx_meta(path: str | os.PathLike[str]) -> tuple[ModelMeta, dict[str, Any]]:
    """Return the :class:`ModelMeta` stored in an exported ONNX file and a dict with
    ``model_hash``, ``precision``, ``contract``, ``exporter``, ``opset``, ``dynamic_batch``."""
    path = Path(path)
    return meta_from_proto(load_proto(path), path)
