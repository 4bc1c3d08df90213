"""Contract tests run against every backend name; unavailable backends are skipped with their reason."""

from __future__ import annotations

import importlib.machinery
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.backends import (
    CONCRETE_BACKENDS,
    REGISTRY,
    BackendUnavailable,
    available_backends,
    backend_unavailable,
    capabilities,
    create_backend,
    resolve_backend,
)
from engine.backends.torch_backend import TorchBackend
from engine.export import export_onnx
from engine.parity import TOLERANCES, mask_iou
from engine.synthetic import draw_frames, random_model
from models.checkpoint import save_checkpoint
from models.cpu import physical_cores
from models.unet import preset

SIZE = (96, 128)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("backends")


@pytest.fixture(scope="module", autouse=True)
def _cache(workdir: Path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SURGSEG_CACHE_DIR", str(workdir / "cache"))
        yield


@pytest.fixture(scope="module")
def checkpoint(workdir: Path) -> Path:
    model, meta = random_model(preset("fast"), SIZE, seed=5)
    return save_checkpoint(workdir / "model.pt", model, meta)


@pytest.fixture(scope="module")
def onnx_file(checkpoint: Path, workdir: Path) -> Path:
    from engine.model_source import load_model_source

    model, meta = load_model_source(checkpoint)
    return export_onnx(model, meta, workdir / "model.onnx")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return draw_frames(3, *SIZE, seed=2)


@pytest.fixture(scope="module")
def reference(checkpoint: Path, frames: np.ndarray) -> np.ndarray:
    with create_backend(checkpoint, "torch-cpu") as backend:
        return backend.infer(frames)


@pytest.fixture(params=CONCRETE_BACKENDS)
def backend_name(request) -> str:
    reason = backend_unavailable(request.param)
    if reason:
        pytest.skip(f"{request.param}: {reason}")
    return request.param


@pytest.fixture(params=["pt", "onnx"])
def backend(request, backend_name: str, checkpoint: Path, onnx_file: Path):
    source = checkpoint if request.param == "pt" else onnx_file
    with create_backend(source, backend_name) as instance:
        yield instance


def test_output_shape_and_dtype(backend, frames: np.ndarray) -> None:
    logits = backend.infer(frames[:1])
    assert logits.shape == (1, 1, *SIZE) and logits.dtype == np.float32
    assert backend.input_size == SIZE and backend.describe().startswith(backend.name)


def test_logits_agree_with_torch_cpu(backend, frames: np.ndarray, reference: np.ndarray) -> None:
    logits = np.concatenate([backend.infer(frames[i : i + 1]) for i in range(len(frames))])
    precision = getattr(backend, "precision", "fp16" if getattr(backend, "half", False) else "fp32")
    relative, min_iou = TOLERANCES[precision]
    assert float(np.abs(logits - reference).max()) <= relative * max(1.0, float(np.abs(reference).max()))
    assert mask_iou(logits >= 0, reference >= 0) >= min_iou


@pytest.mark.parametrize("shape", [(97, 131), (301, 451), (96, 128)])
def test_predict_returns_probability_at_input_size(backend, shape: tuple[int, int]) -> None:
    frame = draw_frames(1, *shape, seed=3)[0]
    probability = backend.predict(frame)
    assert probability.shape == SIZE and probability.dtype == np.float32
    assert 0.0 <= float(probability.min()) and float(probability.max()) <= 1.0


@pytest.mark.parametrize(
    "bad",
    [np.zeros((1, *SIZE, 3), np.float32), np.zeros((1, 64, 64, 3), np.uint8), np.zeros((*SIZE, 3), np.uint8),
     np.zeros((1, *SIZE, 4), np.uint8)],
    ids=["float32", "wrong-size", "no-batch-axis", "4-channels"],
)
def test_bad_batch_raises_value_error_naming_the_shape(backend, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="N×96×128×3"):
        backend.infer(bad)


def test_bad_frame_raises_value_error(backend) -> None:
    with pytest.raises(ValueError, match="H×W×3"):
        backend.predict(np.zeros((50, 60), np.uint8))


def test_missing_and_corrupt_model_files_fail_clearly(backend_name: str, tmp_path: Path) -> None:
    for suffix in (".pt", ".onnx"):
        missing = tmp_path / f"absent{suffix}"
        with pytest.raises(ValueError, match="does not exist"):
            create_backend(missing, backend_name)
        corrupt = tmp_path / f"corrupt{suffix}"
        corrupt.write_bytes(b"this is not a model")
        with pytest.raises(ValueError, match=str(corrupt)):
            create_backend(corrupt, backend_name)


def test_available_backends_lists_every_name_with_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from engine.backends.cuda_device import NO_CUDA
    from engine.backends.tensorrt_backend import INSTALL_HINT

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # e.g. only type stubs installed
    monkeypatch.setattr(sys.modules["tensorrt"], "__spec__", importlib.machinery.ModuleSpec("tensorrt", None))
    status = available_backends()
    assert tuple(status) == CONCRETE_BACKENDS
    assert status["torch-cpu"] is None and status["onnxruntime-cpu"] is None  # onnxruntime is in requirements.txt
    assert status["tensorrt"] == f"{INSTALL_HINT} (the 'tensorrt' found has no runtime)"
    assert status["torch-cuda"] == NO_CUDA
    for name in ("onnxruntime-cuda", "onnxruntime-tensorrt"):
        assert status[name] and ("ExecutionProvider" in status[name] or status[name] == NO_CUDA)
    assert all(status[name] for name in CONCRETE_BACKENDS if capabilities(name).device == "cuda")


def test_registry_declares_every_backend_and_matches_the_built_objects(checkpoint: Path) -> None:
    assert set(REGISTRY) == set(CONCRETE_BACKENDS) and resolve_backend("torch-cpu") == "torch-cpu"
    assert {n for n, c in REGISTRY.items() if c.concurrent_calls} == {"onnxruntime-cpu", "torch-cpu"}
    assert capabilities("torch-cpu").precisions == ("fp32",) and capabilities("tensorrt").default_precision == "fp16"
    assert [n for n, c in REGISTRY.items() if c.cuda_graphs] == ["torch-cuda"]
    with pytest.raises(ValueError, match="resolve 'auto'"):
        capabilities("auto")
    for name in ("onnxruntime-cpu", "torch-cpu"):
        with create_backend(checkpoint, name) as backend:
            assert backend.concurrent_calls == capabilities(name).concurrent_calls


def test_torch_cpu_honours_the_planned_thread_count(checkpoint: Path, frames: np.ndarray) -> None:
    import threading

    seen: list[int] = []
    with create_backend(checkpoint, "torch-cpu", threads=1) as backend:
        assert backend.threads == 1 and "1 thread" in backend.describe()

        def worker() -> None:  # PyTorch's CPU thread count is per calling thread: set where the call runs
            backend.infer(frames[:1])
            seen.append(torch.get_num_threads())

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert seen == [1]


def test_auto_logs_one_line_naming_backend_and_reason(checkpoint: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="engine"):
        backend = create_backend(checkpoint)
    lines = [r.getMessage() for r in caplog.records if r.name == "engine" and r.getMessage().startswith("backend ")]
    assert len(lines) == 1 and lines[0].startswith(f"backend {backend.name}:")
    if backend.name == "onnxruntime-cpu":
        assert "tensorrt" in lines[0] and "no CUDA device" in lines[0]


def test_explicit_unavailable_backends_fail_with_the_fix(checkpoint: Path) -> None:
    status = available_backends()
    expected = {
        "tensorrt": ("tensorrt is not installed: pip install -r requirements-gpu.txt", "no CUDA device found"),
        "torch-cuda": ("no CUDA device found",),
    }
    checked = 0
    for name, messages in expected.items():
        if status[name] is None:
            continue
        with pytest.raises(BackendUnavailable) as error:
            create_backend(checkpoint, name)
        assert any(message in str(error.value) for message in messages)
        checked += 1
    if not checked:
        pytest.skip("tensorrt and torch-cuda are both available on this machine")


def test_unknown_names_are_value_errors(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        create_backend(checkpoint, "openvino")
    with pytest.raises(ValueError, match="unknown precision"):
        create_backend(checkpoint, "torch-cpu", precision="int4")


def test_onnxruntime_cpu_session_settings(checkpoint: Path) -> None:
    if backend_unavailable("onnxruntime-cpu"):
        pytest.skip(backend_unavailable("onnxruntime-cpu"))
    with create_backend(checkpoint, "onnxruntime-cpu") as backend:
        assert backend.threads == physical_cores()
        assert backend.active_provider == "CPUExecutionProvider"
        assert backend.onnx_path.name.endswith("-96x128-fp32.onnx")


@pytest.mark.gpu
def test_cuda_graphs_match_eager(checkpoint: Path, frames: np.ndarray) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device found")
    from engine.model_source import load_model_source

    model, meta = load_model_source(checkpoint)
    eager = TorchBackend(model, meta, device="cuda")
    graphs = TorchBackend(load_model_source(checkpoint)[0], meta, device="cuda", cuda_graphs=True)
    for i in range(len(frames)):  # replays reuse the static buffers: results must follow the input
        np.testing.assert_allclose(graphs.infer(frames[i : i + 1]), eager.infer(frames[i : i + 1]), atol=1e-2)
    assert graphs.predict(draw_frames(1, 101, 150)[0]).shape == SIZE


@pytest.mark.gpu
def test_cuda_fp32_matches_the_cpu_reference_without_tf32(checkpoint: Path, frames: np.ndarray) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device found")
    from engine.model_source import load_model_source

    model, meta = load_model_source(checkpoint)
    cpu = TorchBackend(model, meta, device="cpu").infer(frames)
    fp32 = TorchBackend(load_model_source(checkpoint)[0], meta, device="cuda", half=False)
    relative, _ = TOLERANCES["fp32"]  # as engine.parity scores it (an H200 with TF32 on was 0.036 off)
    assert np.abs(fp32.infer(frames) - cpu).max() <= relative * max(1.0, float(np.abs(cpu).max()))
    assert torch.backends.cudnn.allow_tf32  # the process-wide default is back after the call


def test_exact_fp32_block_turns_tf32_off_and_restores_it() -> None:
    from engine.backends.torch_backend import exact_fp32_convolutions

    before = torch.backends.cudnn.allow_tf32
    with exact_fp32_convolutions(False):
        assert torch.backends.cudnn.allow_tf32 == before
    with pytest.raises(RuntimeError), exact_fp32_convolutions(True):
        assert torch.backends.cudnn.allow_tf32 is False
        raise RuntimeError("inference failed")
    assert torch.backends.cudnn.allow_tf32 == before


def test_cuda_graphs_refused_on_cpu(checkpoint: Path) -> None:
    from engine.model_source import load_model_source

    model, meta = load_model_source(checkpoint)
    with pytest.raises(ValueError, match="CUDA graphs"):
        TorchBackend(model, meta, device="cpu", cuda_graphs=True)
