"""``python -m engine`` commands and the GPU check script, run for real with tiny settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import engine.parity
from engine.__main__ import main
from engine.bench import adjust_size, parse_sizes
from engine.gpu_check import main as gpu_check_main
from engine.onnx_meta import read_onnx_meta
from engine.synthetic import random_model
from models.checkpoint import save_checkpoint
from models.unet import preset


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURGSEG_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    model, meta = random_model(preset("fast"), (64, 96), seed=2)
    return save_checkpoint(tmp_path / "m.pt", model, meta)


def test_export_command(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "model.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--precision", "fp16"]) == 0
    assert read_onnx_meta(out)[1]["precision"] == "fp16"
    assert "uint8 Nx64x96x3 BGR" in capsys.readouterr().out


def test_export_missing_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_verify_passes_and_fails(checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = ["verify", "--checkpoint", str(checkpoint), "--frames", "2", "--json", str(tmp_path / "v.json")]
    assert main(args) == 0
    output = capsys.readouterr().out
    assert "onnxruntime-cpu" in output and "ok" in output
    rows = json.loads((tmp_path / "v.json").read_text())
    assert {r["status"] for r in rows} <= {"ok", "skipped"}
    monkeypatch.setitem(engine.parity.TOLERANCES, "fp16", (0.0, 1.0))  # impossible: any fp16 error fails
    assert main(["verify", "--checkpoint", str(checkpoint), "--frames", "2",
                 "--backends", "onnxruntime-cpu/fp16"]) == 1


def test_build_without_tensorrt_is_a_clear_error(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnx")
    from engine.backends.tensorrt_backend import tensorrt_unavailable

    reason = tensorrt_unavailable()
    if reason is None:
        pytest.skip("tensorrt and CUDA are available here")
    assert main(["build", "--checkpoint", str(checkpoint)]) == 2
    assert reason in capsys.readouterr().err


def test_bench_command_rounds_sizes_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.json"
    assert main(["bench", "--models", "fast", "--sizes", "64x96,70x90", "--backends", "onnxruntime-cpu,torch-cpu,tensorrt",
                 "--iterations", "3", "--budget", "0.05", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "70x90 rounded up to 96x96 (multiple of 32)" in text
    report = json.loads(out.read_text())
    ok = [r for r in report["rows"] if r["status"] == "ok"]
    assert {r["backend"] for r in ok} >= {"onnxruntime-cpu", "torch-cpu"}
    assert all(r["median_ms"] > 0 and r["p95_ms"] >= r["median_ms"] * 0.5 and r["iterations"] >= 3 for r in ok)


def test_size_helpers() -> None:
    assert adjust_size(538, 701, 32) == (544, 704) and adjust_size(538, 701, 16) == (544, 704)
    assert adjust_size(256, 320, 32) == (256, 320)
    assert parse_sizes("256x320, 538x701") == [(256, 320), (538, 701)]
    with pytest.raises(ValueError, match="HxW"):
        parse_sizes("256-320")


def test_gpu_check_runs_on_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gpu"
    code = gpu_check_main(["--out", str(out), "--models", "fast", "--sizes", "64x96", "--iterations", "3",
                           "--budget", "0.05"])
    assert code == 0
    report = json.loads((out / "gpu_check.json").read_text())
    markdown = (out / "gpu_check.md").read_text()
    assert report["parity"] and report["timing"] and "Latency" in markdown
    import torch

    if not torch.cuda.is_available():
        assert "no CUDA device" in capsys.readouterr().out and report["messages"]
