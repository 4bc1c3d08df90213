"""ONNX export: FP32/FP16 parity with PyTorch, embedded metadata, export cache, error handling."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engine.export import export_onnx
from engine.model_source import load_model_source
from engine.onnx_cache import cached_onnx_path, ensure_onnx
from engine.onnx_meta import OnnxModelError, read_onnx_meta
from engine.parity import mask_iou
from engine.paths import cache_root
from engine.synthetic import draw_frames, random_model
from models.checkpoint import save_checkpoint, weights_digest
from models.unet import preset

SIZE = (128, 160)
# Max |Δlogits| allowed, relative to max(1, max |reference logits|) (logits here spread over about ±10).
FP32_TOL, FP16_TOL = 1e-4, 2e-2


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURGSEG_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def model_and_meta():
    model, meta = random_model(preset("fast"), SIZE, seed=7)
    return model, meta


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return draw_frames(4, *SIZE, seed=11)


@pytest.fixture(scope="module")
def reference(model_and_meta, frames) -> np.ndarray:
    with torch.no_grad():
        return model_and_meta[0](torch.from_numpy(frames)).numpy()


@pytest.fixture(scope="module")
def exported(model_and_meta, tmp_path_factory) -> dict[str, Path]:
    model, meta = model_and_meta
    folder = tmp_path_factory.mktemp("onnx")
    return {p: export_onnx(model, meta, folder / f"m-{p}.onnx", precision=p) for p in ("fp32", "fp16")}


def _run(path: Path, frames: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"frames": frames})[0]


def test_reference_masks_are_non_trivial(reference: np.ndarray) -> None:
    fraction = float((reference >= 0).mean())
    assert 0.1 < fraction < 0.6


@pytest.mark.parametrize(("precision", "tolerance", "min_iou"), [("fp32", FP32_TOL, 0.999), ("fp16", FP16_TOL, 0.99)])
def test_onnx_matches_pytorch(exported, frames, reference, precision, tolerance, min_iou) -> None:
    logits = _run(exported[precision], frames)
    assert logits.dtype == np.float32 and logits.shape == (4, 1, *SIZE)
    scale = max(1.0, float(np.abs(reference).max()))
    assert float(np.abs(logits - reference).max()) <= tolerance * scale
    assert mask_iou(logits >= 0, reference >= 0) >= min_iou


def test_fp16_graph_has_fp16_weights_uint8_input_fp32_output(exported) -> None:
    proto = onnx.load(str(exported["fp16"]))
    float_inits = {i.data_type for i in proto.graph.initializer if i.data_type in (1, 10)}
    assert float_inits == {onnx.TensorProto.FLOAT16}
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    consumers = [n.op_type for n in proto.graph.node if "frames" in n.input]
    assert consumers == ["Cast"]  # uint8 is cast first (TensorRT requirement)


def test_opset_and_dynamic_batch(exported, frames, reference) -> None:
    proto = onnx.load(str(exported["fp32"]))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    one = _run(exported["fp32"], frames[:1])
    np.testing.assert_allclose(one, reference[:1], atol=FP32_TOL * 20)


def test_metadata_round_trip(exported, model_and_meta) -> None:
    model, meta = model_and_meta
    for precision, path in exported.items():
        stored, info = read_onnx_meta(path)
        assert stored.to_dict() == meta.to_dict()
        assert info["model_hash"] == weights_digest(model)
        assert info["precision"] == precision
        assert info["contract"]["input"] == {
            "name": "frames", "dtype": "uint8", "layout": "NHWC", "channels": "BGR", "shape": ["batch", *SIZE, 3]
        }
        assert info["opset"] >= 17 and "torch" in info["exporter"] and info["dynamic_batch"] is True


def test_onnx_alone_rebuilds_the_pytorch_model(exported, model_and_meta) -> None:
    rebuilt, meta = load_model_source(exported["fp32"])
    assert weights_digest(rebuilt) == weights_digest(model_and_meta[0])
    assert meta.input_size == SIZE


def test_export_is_atomic_and_leaves_no_temporaries(model_and_meta, tmp_path: Path) -> None:
    model, meta = model_and_meta
    out = tmp_path / "new" / "dir" / "m.onnx"
    export_onnx(model, meta, out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.onnx"]
    with pytest.raises(ValueError, match="precision"):
        export_onnx(model, meta, tmp_path / "bad.onnx", precision="int8")
    assert not (tmp_path / "bad.onnx").exists()


def test_missing_corrupt_and_foreign_onnx_files_fail_clearly(tmp_path: Path, model_and_meta) -> None:
    with pytest.raises(OnnxModelError, match="does not exist"):
        read_onnx_meta(tmp_path / "absent.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07not a protobuf" * 10)
    with pytest.raises(OnnxModelError, match=str(corrupt)):
        read_onnx_meta(corrupt)
    foreign = tmp_path / "foreign.onnx"
    model, meta = model_and_meta
    export_onnx(model, meta, foreign)
    proto = onnx.load(str(foreign))
    del proto.metadata_props[:]
    onnx.save(proto, str(foreign))
    with pytest.raises(OnnxModelError, match="metadata"):
        read_onnx_meta(foreign)


def test_export_cache_exports_once_and_repairs(model_and_meta, tmp_path: Path) -> None:
    model, meta = model_and_meta
    checkpoint = save_checkpoint(tmp_path / "m.pt", model, meta)
    path, _, info = ensure_onnx(checkpoint, "fp16")
    assert path == cache_root() / "onnx" / f"{weights_digest(model)}-128x160-fp16.onnx"
    assert path == cached_onnx_path(weights_digest(model), meta, "fp16") and info["precision"] == "fp16"
    stamp = path.stat().st_mtime_ns
    assert ensure_onnx(checkpoint, "fp16")[0] == path and path.stat().st_mtime_ns == stamp  # cache hit
    path.write_bytes(b"garbage")
    repaired, _, _ = ensure_onnx(checkpoint, "fp16")
    assert read_onnx_meta(repaired)[1]["model_hash"] == weights_digest(model)
    # An .onnx of the requested precision is used as is, without touching the cache.
    assert ensure_onnx(repaired, "fp16")[0] == repaired


def test_cache_location_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SURGSEG_CACHE_DIR", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "x"
    monkeypatch.delenv("SURGSEG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "surgical-seg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path(os.path.expanduser("~")) / ".cache" / "surgical-seg"


@pytest.mark.slow
def test_dynamo_exporter_matches_pytorch(model_and_meta, frames, reference, tmp_path: Path) -> None:
    model, meta = model_and_meta
    path = export_onnx(model, meta, tmp_path / "d.onnx", exporter="dynamo")
    logits = _run(path, frames)
    assert float(np.abs(logits - reference).max()) <= FP32_TOL * max(1.0, float(np.abs(reference).max()))


@pytest.mark.slow
def test_dynamo_fp32_onnx_is_converted_to_fp16_at_the_graph_level(model_and_meta, frames, reference,
                                                                  tmp_path: Path) -> None:
    """TensorRT >= 11 builds FP16 only from an FP16 graph; a dynamo export's weights cannot be read
    back, so ``ensure_onnx(..., "fp16")`` converts the graph itself (cached per file digest)."""
    model, meta = model_and_meta
    source = export_onnx(model, meta, tmp_path / "d.onnx", exporter="dynamo")
    with pytest.raises(OnnxModelError):
        load_model_source(source)  # the case this path exists for
    path, converted_meta, info = ensure_onnx(source, "fp16")
    assert path != source and path.parent == cache_root() / "onnx" and converted_meta == meta
    assert info["precision"] == "fp16" and info["model_hash"] == weights_digest(model)
    proto = onnx.load(str(path))
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    assert {init.data_type for init in proto.graph.initializer} & floats == {onnx.TensorProto.FLOAT16}
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    fp32, fp16 = _run(source, frames), _run(path, frames)
    assert fp16.dtype == np.float32 and fp16.shape == fp32.shape == reference.shape
    scale = max(1.0, float(np.abs(fp32).max()))
    assert float(np.abs(fp16 - fp32).max()) <= FP16_TOL * scale
    assert mask_iou(fp16 >= 0, fp32 >= 0) >= 0.99
    stamp = path.stat().st_mtime_ns
    assert ensure_onnx(source, "fp16")[0] == path and path.stat().st_mtime_ns == stamp  # converted once
    path.write_bytes(b"corrupt")
    assert ensure_onnx(source, "fp16")[0] == path and read_onnx_meta(path)[1]["precision"] == "fp16"  # repaired
    with pytest.raises(OnnxModelError, match=r"is a fp16 ONNX file and a fp32 graph is needed.*Pass the \.pt"):
        ensure_onnx(path, "fp32")  # no way back to fp32 from a graph whose weights cannot be read back
