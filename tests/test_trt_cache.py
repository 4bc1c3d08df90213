"""TensorRT engine cache logic (CPU) and, when TensorRT and a GPU exist, a real build-and-run."""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.trt_cache import (
    CacheState,
    EngineCacheError,
    EngineKey,
    cache_state,
    discard,
    engine_paths,
    fp16_build_path,
    read_engine,
    resolve_inside,
    timing_cache_path,
    write_engine,
)

KEY = EngineKey(
    model_hash="0edf882690fcf981", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0", sm_count=132,
    tensorrt_version="10.9.0.34", precision="fp16", build_path="fp16-flag", input_shape=(256, 320, 3),
    batch_profile=(1, 1, 4),
)


def test_key_digest_is_stable_and_sensitive_to_every_field() -> None:
    assert KEY.digest() == EngineKey(**{**KEY.__dict__}).digest()
    changes = dict(model_hash="x", gpu_name="NVIDIA A100", compute_capability="8.0", sm_count=108,
                   tensorrt_version="11.0.0", precision="fp32", build_path="fp32", input_shape=(512, 640, 3),
                   batch_profile=(1, 1, 8), format_version=2)
    digests = {replace(KEY, **{field: value}).digest() for field, value in changes.items()}
    assert KEY.digest() not in digests and len(digests) == len(changes)


def test_file_names_are_safe_and_derived_from_the_key(tmp_path: Path) -> None:
    name = KEY.file_name()
    assert name == f"0edf882690fcf981-fp16-{KEY.digest()}.engine"
    odd = replace(KEY, model_hash="../../etc/passwd")
    assert "/" not in odd.file_name() and ".." not in odd.file_name()
    engine, sidecar = engine_paths(tmp_path, KEY)
    assert engine.parent == tmp_path and sidecar == engine.with_suffix(".json")
    timing = timing_cache_path(tmp_path, KEY.gpu_name, KEY.compute_capability, KEY.tensorrt_version)
    assert timing.parent == tmp_path and "/" not in timing.name


def test_write_then_hit_with_sidecar_holding_the_full_key(tmp_path: Path) -> None:
    assert cache_state(tmp_path, KEY) is CacheState.MISSING
    path = write_engine(tmp_path, KEY, b"engine-bytes")
    assert cache_state(tmp_path, KEY) is CacheState.HIT
    assert json.loads(path.with_suffix(".json").read_text()) == KEY.to_dict()
    assert read_engine(tmp_path, path) == b"engine-bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, path.with_suffix(".json").name])


def test_sidecar_mismatch_or_loss_means_rebuild(tmp_path: Path) -> None:
    engine, sidecar = engine_paths(tmp_path, KEY)
    write_engine(tmp_path, KEY, b"engine-bytes")
    sidecar.write_text(json.dumps({**KEY.to_dict(), "tensorrt_version": "10.0.0"}))
    assert cache_state(tmp_path, KEY) is CacheState.MISMATCH
    sidecar.write_text("{not json")
    assert cache_state(tmp_path, KEY) is CacheState.MISMATCH
    sidecar.unlink()
    assert cache_state(tmp_path, KEY) is CacheState.MISMATCH
    discard(tmp_path, KEY)
    assert not engine.exists() and cache_state(tmp_path, KEY) is CacheState.MISSING


def test_empty_engine_is_corrupt_and_empty_data_is_refused(tmp_path: Path) -> None:
    write_engine(tmp_path, KEY, b"x")
    engine, _ = engine_paths(tmp_path, KEY)
    engine.write_bytes(b"")
    assert cache_state(tmp_path, KEY) is CacheState.CORRUPT
    with pytest.raises(EngineCacheError, match="empty"):
        write_engine(tmp_path, KEY, b"")


def test_engines_outside_the_cache_folder_are_refused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    inside = write_engine(cache, KEY, b"engine")
    assert resolve_inside(cache, inside) == inside.resolve()
    outside = tmp_path / "evil.engine"
    outside.write_bytes(b"engine")
    with pytest.raises(EngineCacheError, match="only loaded from the cache folder"):
        read_engine(cache, outside)
    with pytest.raises(EngineCacheError):
        resolve_inside(cache, cache / ".." / "evil.engine")
    nested = cache / "sub"
    nested.mkdir()
    (nested / "x.engine").write_bytes(b"engine")
    with pytest.raises(EngineCacheError):
        resolve_inside(cache, nested / "x.engine")
    link = cache / "link.engine"
    os.symlink(outside, link)
    with pytest.raises(EngineCacheError):
        read_engine(cache, link)
    with pytest.raises(EngineCacheError):
        resolve_inside(cache, inside.with_suffix(".json"))


def test_tensorrt_backend_refuses_engine_paths_outside_the_cache(tmp_path: Path) -> None:
    from engine.backends.tensorrt_backend import TensorRTBackend, tensorrt_unavailable

    reason = tensorrt_unavailable()
    if reason:
        pytest.skip(reason)
    outside = tmp_path / "model.engine"
    outside.write_bytes(b"engine")
    with pytest.raises(EngineCacheError):
        TensorRTBackend(outside, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    ("version", "has_flag", "expected"),
    [
        ("10.0.1", True, "fp16-flag"),
        ("10.9.0.34", True, "fp16-flag"),
        ("10.13.0", False, "strongly-typed-fp16-onnx"),
        ("11.0.0", False, "strongly-typed-fp16-onnx"),
        ("11.4.1", True, "strongly-typed-fp16-onnx"),
    ],
)
def test_fp16_build_path_by_version(version: str, has_flag: bool, expected: str) -> None:
    assert fp16_build_path(version, has_flag) == expected


@pytest.mark.parametrize("version", ["8.6.1", "garbage"])
def test_fp16_build_path_rejects_old_or_unreadable_versions(version: str) -> None:
    with pytest.raises(ValueError, match="TensorRT"):
        fp16_build_path(version, True)


@pytest.mark.gpu
def test_build_run_and_reuse_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("tensorrt") is None or not torch.cuda.is_available():
        pytest.skip("needs tensorrt and a CUDA device")
    from engine.backends.tensorrt_backend import TensorRTBackend
    from engine.parity import mask_iou
    from engine.synthetic import draw_frames, random_model
    from models.checkpoint import save_checkpoint
    from models.unet import preset

    monkeypatch.setenv("SURGSEG_CACHE_DIR", str(tmp_path / "cache"))
    model, meta = random_model(preset("fast"), (128, 160), seed=1)
    checkpoint = save_checkpoint(tmp_path / "m.pt", model, meta)
    frames = draw_frames(2, 128, 160)
    with torch.no_grad():
        reference = model(torch.from_numpy(frames)).numpy()
    backend = TensorRTBackend(checkpoint)
    logits = backend.infer(frames)
    assert logits.shape == reference.shape and logits.dtype == np.float32
    assert mask_iou(logits >= 0, reference >= 0) >= 0.99
    assert backend.predict(draw_frames(1, 301, 417)[0]).shape == (128, 160)
    engine, _ = engine_paths(backend.cache_dir, backend.key)
    assert cache_state(backend.cache_dir, backend.key) is CacheState.HIT
    engine.write_bytes(b"corrupt engine")  # sidecar still matches: deserialize fails -> rebuilt, not fatal
    again = TensorRTBackend(checkpoint)
    assert mask_iou(again.infer(frames) >= 0, reference >= 0) >= 0.99
