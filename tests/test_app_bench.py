"""``python -m app.bench`` end to end on a short generated video (figures are printed, never asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.bench import MODES, main
from models.checkpoint import ModelMeta, build_segmenter, save_checkpoint
from models.unet import preset


def test_bench_writes_json_for_naive_and_threaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SURGSEG_CACHE_DIR", str(tmp_path / "cache"))
    meta = ModelMeta(config=preset("fast"))
    checkpoint = save_checkpoint(tmp_path / "fast.pt", build_segmenter(meta), meta)
    report = tmp_path / "bench.json"
    args = ["--sizes", "720p", "--frames", "12", "--generator", "shapes", "--checkpoint", str(checkpoint)]
    assert main([*args, "--json", str(report)]) == 0
    assert "threaded" in capsys.readouterr().out
    data = json.loads(report.read_text())
    (row,) = data["results"]
    assert row["video"] == "720p" and row["size"] == [1280, 720]
    plan = data["inference_plan"]
    expected = ["naive-1t", "naive", *(["threaded-1w"] if plan["workers"] > 1 else []), "threaded"]
    assert [mode for mode in MODES if mode in row] == expected  # the CPU backend: the single-thread loop too
    for mode in expected:
        assert row[mode]["frames"] == 12 and row[mode]["cpu_cores_busy"] > 0
        assert row[mode]["throughput_fps"] > 0
        assert row[mode]["latency_p50_ms"] <= row[mode]["latency_p99_ms"]
    assert row["speedup_baseline"] == "naive-1t"
    assert row["speedup"] == pytest.approx(row["threaded"]["throughput_fps"] / row["naive-1t"]["throughput_fps"])
    assert row["speedup_vs_naive"] > 0 and data["backend"] and data["pipeline_backend"]
    assert list((tmp_path / "cache").glob("shapes-*-12f-1280x720-*.mp4"))  # cached for the next run
