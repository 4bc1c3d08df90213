"""The per-stage timer: rings, percentiles, thread-per-stage writers, the CUDA-event fallback."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from app.core.stage_timer import STAGES, CudaEventSpan, HostSpan, StageRing, StageTimer


def test_stage_names_cover_the_frame_path() -> None:
    assert STAGES == ("capture", "upload", "preprocess", "inference", "postprocess", "compose", "download", "encode", "display")


def test_percentiles_of_recorded_durations() -> None:
    timer = StageTimer()
    for ms in range(1, 101):  # 1..100 ms
        timer.record("inference", ms * 1_000_000)
    row = timer.summary_ms()["inference"]
    expected = np.percentile(np.arange(1, 101, dtype=np.float64), [50, 95, 99])
    assert row["p50"] == pytest.approx(expected[0])
    assert row["p95"] == pytest.approx(expected[1])
    assert row["p99"] == pytest.approx(expected[2])
    assert row["mean"] == pytest.approx(50.5)
    assert row["count"] == 100


def test_summary_lists_only_stages_with_samples_and_is_json_ready() -> None:
    timer = StageTimer()
    timer.record("capture", 2_000_000)
    timer.record("compose", 500_000)
    summary = timer.summary_ms()
    assert list(summary) == ["capture", "compose"]
    assert summary["compose"]["p99"] == pytest.approx(0.5)
    assert json.loads(json.dumps(summary)) == summary


def test_ring_keeps_the_last_capacity_samples() -> None:
    ring = StageRing(4)
    for value in range(10):
        ring.add(value)
    assert ring.count == 10
    assert sorted(ring.snapshot().tolist()) == [6, 7, 8, 9]
    ring.reset()
    assert ring.snapshot().size == 0


def test_span_is_reused_and_records_non_negative_durations() -> None:
    timer = StageTimer()
    span = timer.span("postprocess")
    assert timer.span("postprocess") is span
    for _ in range(5):
        with span:
            pass
    assert timer.count("postprocess") == 5
    assert (timer.samples_ms("postprocess") >= 0).all()


def test_record_since_chains_stages() -> None:
    timer = StageTimer()
    start = timer.record_since("capture", 0) - 1000
    timer.record_since("upload", start)
    assert timer.count("capture") == 1 and timer.count("upload") == 1
    assert timer.samples_ms("upload")[0] >= 0.001


def test_unknown_stage_is_refused_and_custom_stages_accepted() -> None:
    timer = StageTimer()
    with pytest.raises(ValueError, match="unknown stage 'latency'"):
        timer.record("latency", 1)
    custom = StageTimer(stages=(*STAGES, "latency"))
    custom.record("latency", 3_000_000)
    assert custom.summary_ms()["latency"]["p50"] == pytest.approx(3.0)
    with pytest.raises(ValueError):
        StageTimer(stages=("a", "a"))


def test_one_writer_per_stage_from_many_threads_loses_nothing() -> None:
    timer = StageTimer(capacity=100_000)
    per_stage = 20_000

    def writer(stage: str, value: int) -> None:
        for _ in range(per_stage):
            timer.record(stage, value)

    threads = [threading.Thread(target=writer, args=(stage, (k + 1) * 1_000_000)) for k, stage in enumerate(STAGES)]
    for thread in threads:
        thread.start()
    summaries = [timer.summary_ms() for _ in range(20)]  # concurrent reader
    for thread in threads:
        thread.join()
    summary = timer.summary_ms()
    for k, stage in enumerate(STAGES):
        assert summary[stage]["count"] == per_stage
        assert summary[stage]["p50"] == pytest.approx(k + 1)  # never a torn or foreign value
    for partial in summaries:
        for k, stage in enumerate(STAGES):
            if stage in partial:
                assert partial[stage]["p99"] == pytest.approx(k + 1)


def test_device_span_falls_back_to_the_host_clock_off_cuda() -> None:
    for device in (None, "cpu", torch.device("cpu")):
        timer = StageTimer(device=device)
        assert not timer.uses_cuda_events
        span = timer.device_span("inference")
        assert isinstance(span, HostSpan)
        with span:
            pass
        assert timer.count("inference") == 1


def test_cuda_device_without_cuda_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    timer = StageTimer(device="cuda")
    assert not timer.uses_cuda_events
    assert isinstance(timer.device_span("upload"), HostSpan)


def test_reset_forgets_samples_and_table_lists_stages() -> None:
    timer = StageTimer()
    timer.record("display", 1_500_000)
    assert "display" in timer.format_table()
    timer.reset()
    assert timer.summary_ms() == {}


@pytest.mark.gpu
def test_cuda_event_spans_time_gpu_work() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    timer = StageTimer(device="cuda", event_pool=4)
    span = timer.device_span("inference")
    assert isinstance(span, CudaEventSpan)
    a = torch.randn(2048, 2048, device="cuda")
    for _ in range(10):  # more spans than the pool: the oldest pair is resolved, not lost
        with span:
            a = a @ a
            a = a / a.norm()
    timer.flush()
    summary = timer.summary_ms()
    assert summary["inference"]["count"] == 10
    assert summary["inference"]["p50"] > 0


def test_summary_since_marks_leaves_out_the_warm_up_without_resetting() -> None:
    timer = StageTimer(capacity=8)
    for _ in range(5):
        timer.record("inference", 900_000_000)  # a slow warm-up: 900 ms
    marks = timer.marks()
    for ms in (1, 2, 3):
        timer.record("inference", ms * 1_000_000)
    timer.record("compose", 4_000_000)
    row = timer.summary_ms(since=marks)["inference"]
    assert row["count"] == 3 and row["p50"] == pytest.approx(2.0) and row["p99"] < 3.1
    assert timer.summary_ms(since=marks)["compose"]["count"] == 1
    assert timer.summary_ms()["inference"]["count"] == 8 and timer.summary_ms()["inference"]["p99"] > 800
    for ms in range(10, 20):  # wraps the ring of 8: only the kept samples after the mark count
        timer.record("inference", ms * 1_000_000)
    kept = timer.samples_ms("inference", since=marks["inference"])
    assert sorted(kept.tolist()) == [float(ms) for ms in range(12, 20)]
