"""``python -m app.bench``: end to end on a short generated video, and its two loops on the same stages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import decode_video, fast_checkpoint

from app.bench.__main__ import MODES, format_table, main, naive_loop, threaded_pipeline
from engine.backends import create_backend
from synthetic.shapes import write_test_video


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weights ``fast`` model whose head bias makes every pixel "instrument"."""
    return fast_checkpoint(tmp_path_factory.mktemp("model"), instrument_bias=2.0)


def test_bench_writes_json_for_naive_and_threaded(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SURGSEG_CACHE_DIR", str(tmp_path / "cache"))
    report = tmp_path / "bench.json"
    args = ["--sizes", "720p", "--frames", "12", "--generator", "shapes", "--checkpoint", str(checkpoint)]
    assert main([*args, "--inference-workers", "2", "--threads", "1", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "720p    threaded " in out and "speed-up" in out
    data = json.loads(report.read_text())
    assert data["inference_plan"] == {"workers": 2, "threads": 1}
    (row,) = data["results"]
    assert row["video"] == "720p" and row["size"] == [1280, 720]
    # A CPU backend with two workers: every mode runs, each on all 12 frames.
    assert [mode for mode in MODES if mode in row] == ["naive-1t", "naive", "threaded-1w", "threaded"]
    for mode in MODES:
        assert row[mode]["frames"] == 12
        assert row[mode]["latency_p50_ms"] is not None and row[mode]["latency_p50_ms"] <= row[mode]["latency_p99_ms"]
    assert row["speedup_baseline"] == "naive-1t"
    assert "1 thread" in data["pipeline_backend"] and "2 threads" not in data["pipeline_backend"]
    assert list((tmp_path / "cache").glob("shapes-*-12f-1280x720-*.mp4"))  # cached for the next run


def test_naive_and_threaded_loops_write_the_same_video(checkpoint: Path, tmp_path: Path) -> None:
    """Both loops run the same stages: same frames, same order, same overlay (only the threading differs)."""
    video = write_test_video(tmp_path / "in.mp4", num_frames=10, width=160, height=120)
    backend = create_backend(checkpoint, "onnxruntime-cpu", threads=1)
    try:
        naive = naive_loop(video, backend, tmp_path / "naive.mp4")
        threaded = threaded_pipeline(video, backend, tmp_path / "threaded.mp4", queue_size=1, workers=2)
    finally:
        backend.close()
    assert naive["frames"] == threaded["frames"] == 10
    naive_frames, threaded_frames = decode_video(tmp_path / "naive.mp4"), decode_video(tmp_path / "threaded.mp4")
    inputs = decode_video(video)
    assert len(naive_frames) == len(threaded_frames) == 10
    def diff(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(int) - b.astype(int)).mean())

    for index, (source, naive_frame) in enumerate(zip(inputs, naive_frames, strict=True)):
        assert diff(naive_frame, source) > 10.0, "the overlay must be drawn"
        distances = [diff(naive_frame, other) for other in threaded_frames]
        assert distances[index] < 1.0 and int(np.argmin(distances)) == index, "same frame, same place"


def test_format_table_ratios_against_both_baselines() -> None:
    def mode(fps: float) -> dict[str, float]:
        return {"frames": 10, "throughput_fps": fps, "cpu_cores_busy": 1.0,
                "latency_p50_ms": 1.0, "latency_p95_ms": 2.0, "latency_p99_ms": 3.0}  # fmt: skip

    table = format_table([{"video": "720p", "naive-1t": mode(10.0), "naive": mode(16.0), "threaded": mode(20.0)}])
    threaded = next(line for line in table.splitlines() if " threaded " in line)
    assert threaded.split()[-2:] == ["2.00x", "1.25x"]
    naive = next(line for line in table.splitlines() if " naive " in line)
    assert "x" not in naive.split()[-1]
