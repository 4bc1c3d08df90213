"""``python -m engine`` commands and the GPU check script, run for real with tiny settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import engine.bench
import engine.parity
from engine.__main__ import main
from engine.bench import adjust_size
from engine.gpu_check import main as gpu_check_main
from engine.onnx_meta import read_onnx_meta
from engine.synthetic import random_model
from models.checkpoint import save_checkpoint
from models.sizes import parse_sizes
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


def test_bench_command_rounds_sizes_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, tuple[int, ...]]] = []

    def fake_timings(backend, frame, iterations: int, budget_s: float) -> list[float]:
        calls.append((backend.name, frame.shape))
        return [1.0, 2.0, 3.0, 10.0]  # median 2.5, linear p95 8.95

    monkeypatch.setattr(engine.bench, "time_backend", fake_timings)
    out = tmp_path / "b.json"
    assert main(["bench", "--models", "fast", "--sizes", "64x96,70x90", "--backends", "onnxruntime-cpu,torch-cpu,tensorrt",
                 "--iterations", "3", "--budget", "0.05", "--json", str(out)]) == 0
    assert "70x90 rounded up to 96x96 (multiple of 32)" in capsys.readouterr().out
    report = json.loads(out.read_text())
    rows = {(r["backend"], r["requested"]): r for r in report["rows"] if r["status"] == "ok"}
    assert set(rows) == {(b, s) for b in ("onnxruntime-cpu", "torch-cpu") for s in ("64x96", "70x90")}
    assert sorted(calls) == sorted((b, shape) for b in ("onnxruntime-cpu", "torch-cpu")
                                   for shape in ((64, 96, 3), (96, 96, 3)))
    for (_, requested), row in rows.items():
        assert row["size"] == ("64x96" if requested == "64x96" else "96x96")
        assert (row["median_ms"], row["p95_ms"], row["fps"], row["iterations"]) == (2.5, 8.95, 400.0, 4)
        assert row["note"] == ("" if requested == "64x96" else "70x90 rounded up to 96x96 (multiple of 32)")
    skipped = [r for r in report["rows"] if r["backend"] == "tensorrt"]
    from engine.backends import backend_unavailable

    reason = backend_unavailable("tensorrt")
    if reason:
        assert [r["status"] for r in skipped] == ["skipped"] and skipped[0]["note"] == reason


def test_time_backend_warms_up_then_times_the_requested_calls() -> None:
    import numpy as np

    class Counter:
        calls = 0

        def infer(self, batch: np.ndarray) -> None:
            assert batch.shape == (1, 8, 8, 3)
            self.calls += 1

    backend = Counter()
    times = engine.bench.time_backend(backend, np.zeros((8, 8, 3), np.uint8), iterations=5, budget_s=60.0)
    assert len(times) == 5 and backend.calls == 5 + 3  # one warm-up, two more because it was fast
    assert all(t >= 0 for t in times)


def test_size_helpers() -> None:
    assert adjust_size(538, 701, 32) == (544, 704) and adjust_size(538, 701, 16) == (544, 704)
    assert adjust_size(256, 320, 32) == (256, 320)
    assert parse_sizes("256x320, 538x701") == [(256, 320), (538, 701)]
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        parse_sizes("256-320")
    with pytest.raises(ValueError, match="at least 8x8"):
        parse_sizes("256x320,4x4")


def test_gpu_check_runs_on_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU path, on any machine
    out = tmp_path / "gpu"
    code = gpu_check_main(["--out", str(out), "--models", "fast", "--sizes", "64x96", "--iterations", "3",
                           "--budget", "0.05"])
    assert code == 0
    report = json.loads((out / "gpu_check.json").read_text())
    parity = {row["backend"]: row for row in report["parity"]}
    assert set(parity) == {"onnxruntime-cpu", "onnxruntime-cpu/fp16"}
    assert all(row["status"] == "ok" and row["max_abs_diff"] <= row["tolerance"] for row in parity.values())
    assert parity["onnxruntime-cpu/fp16"]["precision"] == "fp16"
    (timing,) = report["timing"]
    assert (timing["backend"], timing["model"], timing["size"], timing["status"]) == ("onnxruntime-cpu", "fast",
                                                                                      "64x96", "ok")
    assert report["messages"] == ["no CUDA device: CUDA parity and timings skipped (CPU rows only)"]
    markdown = (out / "gpu_check.md").read_text()
    assert "| fast | " in markdown and "onnxruntime-cpu/fp16" in markdown and "## Latency" in markdown
    assert "no CUDA device" in capsys.readouterr().out


def test_bench_and_verify_skip_a_backend_that_fails_to_start(checkpoint: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.backends.factory as factory

    real = factory._construct

    def failing(name: str, *args, **kwargs):
        if name == "torch-cpu":
            raise RuntimeError("simulated driver failure")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(factory, "_construct", failing)
    monkeypatch.setattr(engine.bench, "time_backend", lambda *args: [1.0, 1.0, 1.0])
    out = tmp_path / "v.json"
    assert main(["verify", "--checkpoint", str(checkpoint), "--backends", "torch-cpu,onnxruntime-cpu", "--frames", "2",
                 "--json", str(out)]) == 0
    rows = {row["backend"]: row for row in json.loads(out.read_text())}
    assert rows["torch-cpu"]["status"] == "skipped" and rows["onnxruntime-cpu"]["status"] == "ok"
    assert rows["torch-cpu"]["detail"] == "torch-cpu: could not start: RuntimeError: simulated driver failure"
    bench = tmp_path / "b.json"
    assert main(["bench", "--checkpoint", str(checkpoint), "--sizes", "64x96", "--backends", "torch-cpu,onnxruntime-cpu",
                 "--json", str(bench)]) == 0
    status = {row["backend"]: (row["status"], row["note"]) for row in json.loads(bench.read_text())["rows"]}
    assert status["torch-cpu"] == ("skipped", "torch-cpu: could not start: RuntimeError: simulated driver failure")
    assert status["onnxruntime-cpu"][0] == "ok"
