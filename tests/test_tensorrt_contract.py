"""CPU contract test of the TensorRT backend's glue: build → cache → deserialize → infer.

THIS IS A TEST DOUBLE, NOT A GPU RUN. TensorRT cannot be installed on the project's CPU machines,
so ``engine/backends/tensorrt_backend.py`` runs here against a stand-in ``tensorrt`` module and a
stand-in device layer (host memory instead of CUDA memory), both in ``tests/trt_stand_in.py``. The stand-in implements only names
and parameters that appear in the type stubs of the TensorRT 10.13 Python API from PyPI
(``tensorrt-stubs``: their names and parameter names are committed in ``tools/tensorrt_surface.json``,
checked below; ``.ci/run`` regenerates that file from the installed stubs and fails on a difference;
mypy checks the backend against the stubs themselves); a second stand-in version models TensorRT 11.x
(no ``BuilderFlag.FP16``, networks always strongly typed). What it proves: the backend calls the
documented API in a sensible order, checks the documented failure returns, caches and chunks
correctly. What it cannot prove: that a real TensorRT builds and runs our graph, or how fast;
only a run on a GPU (``docs/benchmarks/gpu-session.sh``) can.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from trt_stand_in import ENGINE_MAGIC, SIZE, TIMING_MAGIC, HostDevice, Journal, make_tensorrt, stand_in_logits, stand_in_members

from engine.backends import BackendUnavailable, create_backend
from engine.backends import tensorrt_backend as trt_backend
from engine.backends.cuda_device import TorchCudaDevice, resolve_cuda_device
from engine.backends.tensorrt_backend import TensorRTBackend
from engine.export import export_onnx
from engine.model_source import load_model_source
from engine.onnx_meta import OnnxModelError
from engine.synthetic import draw_frames, random_model
from engine.trt_cache import MAX_BATCH, CacheState, cache_state, engine_paths, timing_cache_path
from models.checkpoint import save_checkpoint
from models.unet import preset
from tools.trt_stubs import load_surface, stub_surface, surface_json


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trt-contract")


@pytest.fixture(autouse=True)
def _onnx_cache(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURGSEG_CACHE_DIR", str(workdir / "cache"))  # exports shared by the whole module


@pytest.fixture(scope="module")
def checkpoint(workdir: Path) -> Path:
    model, meta = random_model(preset("fast"), SIZE, seed=3, calibrate=False)
    return save_checkpoint(workdir / "model.pt", model, meta)


@pytest.fixture(params=["10.13.0.35", "11.0.0.114"], ids=["trt10", "trt11"])
def trt(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[types.ModuleType, Journal]]:
    journal = Journal()
    module = make_tensorrt(request.param, journal)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    yield module, journal


@pytest.fixture
def trt10(monkeypatch: pytest.MonkeyPatch) -> tuple[types.ModuleType, Journal]:
    journal = Journal()
    module = make_tensorrt("10.13.0.35", journal)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module, journal


def _backend(checkpoint: Path, cache: Path, precision: str = "auto") -> TensorRTBackend:
    return TensorRTBackend(checkpoint, precision=precision, cache_dir=cache, device_layer=HostDevice())


# ---------------------------------------------------------------------------------------------
# The stand-in stays inside the documented API
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["10.13.0.35", "11.0.0.114"])
def test_stand_in_uses_only_names_and_parameters_of_the_tensorrt_stub(version: str) -> None:
    surface = load_surface()  # tools/tensorrt_surface.json, generated from tensorrt-stubs (CI checks it)
    module = make_tensorrt(version, Journal())
    for name, value in vars(module).items():
        if name.startswith("_") and name != "__version__":
            continue
        assert name in surface or name in surface[""], f"stand-in tensorrt.{name} is not in the TensorRT stubs"
        if not isinstance(value, type):
            continue
        documented = surface[name]
        for member, attr in stand_in_members(value).items():
            if member.startswith("_") and member != "__init__":
                continue
            if member == "__init__" and "__init__" not in documented:
                continue  # pybind classes without a documented constructor
            assert member in documented, f"stand-in tensorrt.{name}.{member} is not in the stub"
            if inspect.isfunction(attr):
                params = [p for p in inspect.signature(attr).parameters][1:]
                assert any(params == overload[: len(params)] for overload in documented[member]), (
                    f"tensorrt.{name}.{member}{tuple(params)} matches no signature in the stub {documented[member]}")
    has_fp16 = hasattr(module.BuilderFlag, "FP16")
    assert has_fp16 == version.startswith("10."), "TensorRT 11 has no BuilderFlag.FP16"


# ---------------------------------------------------------------------------------------------
# Construction, build and run
# ---------------------------------------------------------------------------------------------
def test_cuda_device_index_is_resolved_before_set_device(monkeypatch: pytest.MonkeyPatch) -> None:
    selected: list[int] = []

    def set_device(device: Any) -> None:  # torch's own index rule, without a CUDA driver
        selected.append(torch.cuda._utils._get_device_index(device))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device: types.SimpleNamespace(device=device, cuda_stream=7))
    layer = TorchCudaDevice("cuda")
    assert layer.device == torch.device("cuda", 1) and selected == [1] and layer.stream_handle() == 7
    assert resolve_cuda_device("cuda:0") == torch.device("cuda", 0) and resolve_cuda_device(2).index == 2
    with pytest.raises(ValueError, match="'cpu'.*expected 'cuda' or 'cuda:N'"):
        resolve_cuda_device("cpu")


def test_build_with_each_version_then_infer(trt: tuple[types.ModuleType, Journal], checkpoint: Path,
                                            tmp_path: Path) -> None:
    module, journal = trt
    backend = _backend(checkpoint, tmp_path)
    (build,) = journal.builds
    if module.__version__.startswith("10."):  # weakly typed FP32 graph + FP16 flag
        assert backend.key.build_path == "fp16-flag" and not build["strongly_typed"] and build["compute"] == "fp16"
    else:  # no precision flags: the FP16 ONNX graph into a strongly typed network
        assert backend.key.build_path == "strongly-typed-fp16-onnx" and build["strongly_typed"]
        assert build["compute"] == "fp16"
    assert build["low"][0] == 1 and build["high"][0] == MAX_BATCH and build["timing_cache_attached"]
    assert all(os.path.isabs(path) for path in journal.parsed_paths)
    frames = draw_frames(2, *SIZE, seed=4)
    np.testing.assert_array_equal(backend.infer(frames), stand_in_logits(frames))
    assert journal.streams and set(journal.streams) == {HostDevice.STREAM}
    probability = backend.predict(draw_frames(1, 90, 70, seed=5)[0])
    assert probability.shape == SIZE and probability.dtype == np.float32
    assert "Stand-in GPU" in backend.describe()


def test_fp32_build_clears_tf32(trt: tuple[types.ModuleType, Journal], checkpoint: Path, tmp_path: Path) -> None:
    _, journal = trt
    backend = _backend(checkpoint, tmp_path, precision="fp32")
    (build,) = journal.builds
    assert backend.key.build_path == "fp32" and build["compute"] == "fp32"


@pytest.mark.parametrize("batch", range(1, 2 * MAX_BATCH + 2))
def test_every_batch_size_runs_in_chunks_of_the_profile(trt10: tuple[types.ModuleType, Journal], checkpoint: Path,
                                                        workdir: Path, batch: int) -> None:
    _, journal = trt10
    backend = _backend(checkpoint, workdir / "batch-engines")
    frames = draw_frames(batch, *SIZE, seed=batch)
    np.testing.assert_array_equal(backend.infer(frames), stand_in_logits(frames))
    assert all(1 <= shape[0] <= MAX_BATCH for shape in journal.input_shapes)
    assert sum(shape[0] for shape in journal.input_shapes) == batch


def test_one_logger_per_process_and_absolute_onnx_path(trt10: tuple[types.ModuleType, Journal], checkpoint: Path,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, journal = trt10
    model, meta = load_model_source(checkpoint)
    export_onnx(model, meta, tmp_path / "relative.onnx")
    monkeypatch.chdir(tmp_path)
    _backend(Path("relative.onnx"), tmp_path / "a", precision="fp32")
    _backend(Path("relative.onnx"), tmp_path / "b", precision="fp32")
    assert journal.loggers == 1
    assert journal.parsed_paths == [str(tmp_path.resolve() / "relative.onnx")] * 2


# ---------------------------------------------------------------------------------------------
# Engine cache and timing cache
# ---------------------------------------------------------------------------------------------
def test_cache_miss_hit_corrupt_and_mismatch(trt: tuple[types.ModuleType, Journal], checkpoint: Path,
                                             tmp_path: Path) -> None:
    _, journal = trt
    frames = draw_frames(3, *SIZE, seed=6)
    first = _backend(checkpoint, tmp_path)  # miss: built and stored
    assert len(journal.builds) == 1 and cache_state(tmp_path, first.key) is CacheState.HIT
    second = _backend(checkpoint, tmp_path)  # hit: no build
    assert len(journal.builds) == 1
    np.testing.assert_array_equal(second.infer(frames), stand_in_logits(frames))
    engine, sidecar = engine_paths(tmp_path, first.key)
    engine.write_bytes(b"not an engine")  # corrupt: the sidecar matches but deserialize returns None
    third = _backend(checkpoint, tmp_path)
    assert len(journal.builds) == 2 and json.loads(engine.read_bytes())["magic"] == ENGINE_MAGIC
    np.testing.assert_array_equal(third.infer(frames), stand_in_logits(frames))
    sidecar.write_text(json.dumps({**first.key.to_dict(), "tensorrt_version": "9.9"}))  # mismatch
    _backend(checkpoint, tmp_path)
    assert len(journal.builds) == 3 and cache_state(tmp_path, first.key) is CacheState.HIT


def test_timing_cache_is_reused_and_written_after_the_engine(trt10: tuple[types.ModuleType, Journal],
                                                            checkpoint: Path, tmp_path: Path) -> None:
    backend = _backend(checkpoint, tmp_path)
    key = backend.key
    timing = timing_cache_path(tmp_path, key.gpu_name, key.compute_capability, key.tensorrt_version)
    assert timing.read_bytes() == TIMING_MAGIC + b"+1"
    engine, _ = engine_paths(tmp_path, key)
    assert engine.stat().st_mtime_ns <= timing.stat().st_mtime_ns
    engine.unlink()
    _backend(checkpoint, tmp_path)
    assert timing.read_bytes() == TIMING_MAGIC + b"+1+1"  # the stored cache was loaded and extended


@pytest.mark.parametrize("failure", ["refused", "none returned", "unwritable", "unreadable"])
def test_timing_cache_failures_never_lose_the_engine(trt10: tuple[types.ModuleType, Journal], checkpoint: Path,
                                                     tmp_path: Path, failure: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    _, journal = trt10
    gpu, capability, _ = HostDevice().identity()
    timing = timing_cache_path(tmp_path, gpu, capability, "10.13.0.35")
    journal.refuse_timing_cache = failure == "refused"
    journal.timing_cache_missing = failure == "none returned"
    if failure == "unwritable":
        timing.mkdir(parents=True)  # a folder where the file should go: the write fails
    if failure == "unreadable":
        timing.parent.mkdir(parents=True, exist_ok=True)
        timing.write_bytes(b"garbage from another TensorRT")
    with caplog.at_level(logging.WARNING, logger="engine"):
        backend = _backend(checkpoint, tmp_path)
    assert cache_state(tmp_path, backend.key) is CacheState.HIT
    assert "timing cache" in caplog.text
    assert journal.builds[0]["timing_cache_attached"] == (failure != "refused")
    _backend(checkpoint, tmp_path)
    assert len(journal.builds) == 1  # the engine was kept: the second start is a cache hit


# ---------------------------------------------------------------------------------------------
# TensorRT 11 with an FP32 ONNX whose weights cannot be read back; engine build; auto fallback
# ---------------------------------------------------------------------------------------------
def test_trt11_fp16_from_a_dynamo_fp32_onnx_builds_from_a_graph_level_fp16_conversion(
        checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal()
    monkeypatch.setitem(sys.modules, "tensorrt", make_tensorrt("11.0.0.114", journal))
    model, meta = load_model_source(checkpoint)
    path = export_onnx(model, meta, tmp_path / "dynamo.onnx", exporter="dynamo")
    with pytest.raises(OnnxModelError):
        load_model_source(path)  # its weights cannot be read back: the PyTorch re-export is impossible
    backend = _backend(path, tmp_path / "engines", precision="fp16")
    (build,) = journal.builds
    assert backend.key.build_path == "strongly-typed-fp16-onnx" and build["strongly_typed"]
    assert build["compute"] == "fp16"  # strongly typed: the compute type is the graph's weight type
    assert journal.parsed_paths[-1] != str(path.resolve())  # the converted graph, not the fp32 file
    frames = draw_frames(2, *SIZE, seed=4)
    np.testing.assert_array_equal(backend.infer(frames), stand_in_logits(frames))
    assert _backend(path, tmp_path / "engines", precision="fp32").key.build_path == "fp32"


def test_engine_build_command_caches_the_key_the_app_asks_for(trt10: tuple[types.ModuleType, Journal],
                                                             checkpoint: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.__main__ import main as engine_main

    _, journal = trt10
    monkeypatch.setenv("SURGSEG_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(trt_backend, "TorchCudaDevice", lambda device: HostDevice())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert engine_main(["build", "--checkpoint", str(checkpoint)]) == 0
    backend = create_backend(checkpoint, "tensorrt")
    assert len(journal.builds) == 1 and backend.key.batch_profile == (1, 1, MAX_BATCH)


def test_auto_falls_back_after_construction_failures(trt10: tuple[types.ModuleType, Journal], checkpoint: Path,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from app.__main__ import main as app_main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # TensorRT and torch-cuda look usable, then fail
    with caplog.at_level(logging.INFO, logger="engine"):
        backend = create_backend(checkpoint, "auto")
    assert backend.name in ("onnxruntime-cpu", "torch-cpu")
    assert "tensorrt" in caplog.text and "torch-cuda" in caplog.text and "failed to start" in caplog.text
    with pytest.raises(BackendUnavailable, match="tensorrt: could not start"):
        create_backend(checkpoint, "tensorrt")
    status = app_main(["--checkpoint", str(checkpoint), "--backend", "tensorrt", "--window", "off",
                       "--output", str(tmp_path / "o.mp4")])
    assert status == 2 and "tensorrt: could not start" in capsys.readouterr().err


def test_gpu_requirements_pin_the_tensorrt_major_and_cuda_variant() -> None:
    lines = (Path(__file__).resolve().parents[1] / "requirements-gpu.txt").read_text().splitlines()
    pins = [line.split("#")[0].strip() for line in lines if line.strip().startswith("tensorrt")]
    assert pins == ["tensorrt-cu13>=10.13.2,<11"], "one TensorRT pin: the CUDA 13 variant (torch's CUDA), major 10"
    assert any("onnxruntime-gpu>=1.27" in line for line in lines)


def test_engine_files_are_never_loaded_from_a_user_path(trt10: tuple[types.ModuleType, Journal],
                                                        tmp_path: Path) -> None:
    from engine.trt_cache import EngineCacheError

    outside = tmp_path / "model.engine"
    outside.write_bytes(b"engine")
    with pytest.raises(EngineCacheError, match="only loaded from the cache folder"):
        TensorRTBackend(outside, cache_dir=tmp_path / "cache", device_layer=HostDevice())
    assert not trt10[1].builds


def test_surface_generator_reads_classes_bases_overloads_and_module_names() -> None:
    source = '''
version: str
class Base:
    def shared(self, a: int) -> None: ...
class Builder(Base):
    flags: int
    def build(self, network: int, config: int) -> bytes: ...
    def build(self, network: int) -> bytes: ...
    class Inner: ...
'''
    surface = stub_surface({"tensorrt/__init__.pyi": source})
    assert surface[""] == {"version": []}
    assert surface["Builder"] == {"shared": [["a"]], "flags": [], "build": [["network", "config"], ["network"]], "Inner": []}
    text = surface_json(surface)
    assert json.loads(text)["__stubs__"].startswith("tensorrt-stubs==")
    assert text.count("\n") == len(surface) + 3, "braces, header and one line per class, so a change reads as a small diff"


def test_committed_surface_is_read_and_a_broken_one_names_the_file(tmp_path: Path) -> None:
    assert {"Builder", "BuilderFlag", "Runtime", "ICudaEngine", "Logger"} <= set(load_surface())
    broken = tmp_path / "surface.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="surface.json"):
        load_surface(broken)
