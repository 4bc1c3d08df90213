"""The stats JSON: every input frame counted once, under one reason; latencies kept compactly, readable while a run goes on."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.core.stats import LatencyLog, StatsRecorder, frame_accounting


def test_a_stale_frame_is_counted_once_as_stale_not_again_as_not_rendered() -> None:
    block = frame_accounting(captured=100, rendered=60, stale=40, late=3, skipped={}, resized={}, examples=[], header_frames=None)
    assert block["skipped"] == {"late": 3, "stale": 40}
    assert block["skipped_total"] == 43


def test_frames_captured_but_never_rendered_after_an_abort_are_not_rendered() -> None:
    block = frame_accounting(captured=100, rendered=90, stale=4, late=0, skipped={"corrupt": 2}, resized={}, examples=[],
                             header_frames=120)
    assert block["skipped"] == {"corrupt": 2, "not_rendered": 6, "stale": 4}
    assert block["captured"] == 100 and block["rendered"] == 90 and block["header_frames"] == 120


class SmallChunks(LatencyLog):
    CHUNK = 7


def test_the_latency_log_slices_like_a_list_across_chunks() -> None:
    log, reference = SmallChunks(), []
    for k in range(30):
        log.append(k * 1.5)
        reference.append(k * 1.5)
    assert len(log) == 30
    assert log.values().tolist() == reference
    for start, stop in ((0, 7), (3, 18), (6, 8), (14, 30), (29, 30), (10, 10), (25, 100)):
        assert log[start:stop].tolist() == reference[start:stop], (start, stop)
    assert log[-4:].tolist() == reference[-4:]
    with pytest.raises(TypeError):
        log[3]  # noqa: B018 - the access itself is the test
    with pytest.raises(ValueError, match="step"):
        log[::2]  # noqa: B018


def test_a_reader_sees_a_complete_prefix_while_the_render_thread_appends() -> None:
    log, done, bad = SmallChunks(), threading.Event(), []

    def read() -> None:
        while not done.is_set():
            values = log.values()
            if not np.array_equal(values, np.arange(len(values), dtype=np.float64)):
                bad.append(len(values))

    reader = threading.Thread(target=read)
    reader.start()
    for k in range(20000):
        log.append(float(k))
    done.set()
    reader.join()
    assert not bad, f"a reader saw unwritten samples at lengths {bad[:5]}"
    assert len(log) == 20000 and log.values()[-1] == 19999.0


def test_the_summary_percentiles_come_from_the_log() -> None:
    stats = StatsRecorder()
    for value in range(1, 101):
        stats.latencies_ms.append(float(value))
    stats.rendered = 100
    assert stats.summary()["latency_ms"]["p50"] == 50.5
