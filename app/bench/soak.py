"""``python -m app.bench --soak 1080p60 --minutes 30 --output-dir DIR``: the real pipeline for minutes, watched for leaks.

The live bench's pipeline (:func:`app.bench.live.start_live`: the built-in live source, the app's
:class:`app.pipeline.Pipeline` in live mode, recording through the app's :class:`app.outputs.writers.VideoOutput`
exactly as ``python -m app --output`` does) runs for ``minutes``. Every minute a row is taken: RSS, open
file descriptors and threads of this process (read from ``/proc/self``, Linux only), capture →
overlay-ready latency p50/p99 of that minute, frames, drops, the recording's size on disk and the load
average. The first minute is the warm-up (half the run when it is shorter than two minutes); the pass
rules (:class:`SoakRules`) compare the end of the run with the end of the warm-up:

* RSS growth after warm-up < 5 %;
* p99 latency of the last 5 minutes within 20 % of the first 5 minutes after warm-up (when less than 10
  minutes follow the warm-up: the first and last fifth of them), windows counted in frames;
* no growth in open file descriptors or threads.

The latencies are the app's own :class:`app.core.stats.StatsRecorder` list (about 32 bytes a frame, as in the
app), so their growth is part of what is measured.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.bench.live import LiveRun, LiveSession, start_live
from app.core.stats import LatencyLog
from app.pipeline import PipelineConfig
from app.sources.live import LiveSpec
from engine.backends import InferenceBackend
from models.cpu import cpu_identity, physical_cores, usable_cores
from models.percentiles import percentiles

MINUTE_S = 60.0
WARMUP_S = 60.0  #: the first minute is left out of the rules (half the run when shorter than two minutes)
DROP_KEYS = ("source_slot", "pipeline_queue", "missed_ticks")


@dataclass(frozen=True)
class SoakRules:
    """The pass rules' thresholds (written to the JSON as ``rules``)."""

    rss_growth_percent_max: float = 5.0  #: RSS at the end vs. at the end of the warm-up, must stay below
    p99_drift_percent_max: float = 20.0  #: |p99 last window − p99 first window| / p99 first window
    p99_window_s: float = 300.0  #: the first and last 5 minutes after warm-up ...
    p99_window_below_s: float = 600.0  #: ... when at least this long follows the warm-up; else its first/last fifth
    fd_growth_max: int = 0
    thread_growth_max: int = 0


@dataclass(frozen=True)
class SoakRun:
    """One soak run: the live source, how long, where the recording goes and with which encoder."""

    spec: LiveSpec
    minutes: float
    recording: Path
    generator: str = "scene"
    codec: str = "auto"
    rules: SoakRules = field(default_factory=SoakRules)


def process_sample() -> dict[str, int]:
    """``rss_kib``, open ``fds`` and ``threads`` of this process, from ``/proc/self``. Raises ``OSError`` off Linux."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {
        "rss_kib": int(status["VmRSS"].split()[0]),
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": int(status["Threads"]),
    }


def machine() -> dict[str, Any]:
    """The CPU (model name, generation and SIMD flags: :func:`models.cpu.cpu_identity`), core counts and platform."""
    return {
        "cpu_model": cpu_identity(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cores(),
        "physical_cores": physical_cores(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def output_bytes(recording: Path) -> int:
    """Bytes on disk of the recording: every file in its folder whose name holds its stem (also a temporary one)."""
    total = 0
    for path in recording.parent.iterdir():
        if recording.stem in path.name:
            try:
                total += path.stat().st_size
            except FileNotFoundError:  # renamed into place meanwhile
                pass
    return total


def judge(baseline: dict[str, Any], final: dict[str, Any], p99_first: float | None, p99_last: float | None,
          rules: SoakRules) -> dict[str, Any]:
    """The pass rules on two rows (``rss_kib``, ``fds``, ``threads``: end of warm-up and end of run) and the p99 of
    the first and last window: the growths, ``passed`` and ``failures`` (one reason each)."""
    rss_growth = 100.0 * (final["rss_kib"] - baseline["rss_kib"]) / baseline["rss_kib"]
    fd_growth = final["fds"] - baseline["fds"]
    thread_growth = final["threads"] - baseline["threads"]
    drift = None if not p99_first or p99_last is None else 100.0 * (p99_last - p99_first) / p99_first
    failures = []
    if rss_growth >= rules.rss_growth_percent_max:
        failures.append(f"RSS grew {rss_growth:.1f} % after warm-up (limit < {rules.rss_growth_percent_max:g} %)")
    if drift is None:
        failures.append("no latency samples in the p99 windows (no frame rendered after warm-up)")
    elif abs(drift) > rules.p99_drift_percent_max:
        failures.append(f"p99 drifted {drift:+.1f} % ({p99_first:.1f} → {p99_last:.1f} ms; limit ±{rules.p99_drift_percent_max:g} %)")
    if fd_growth > rules.fd_growth_max:
        failures.append(f"open file descriptors grew by {fd_growth} ({baseline['fds']} → {final['fds']})")
    if thread_growth > rules.thread_growth_max:
        failures.append(f"threads grew by {thread_growth} ({baseline['threads']} → {final['threads']})")
    return {
        "rss_growth_percent": round(rss_growth, 2),
        "p99_drift_percent": None if drift is None else round(drift, 2),
        "fd_growth": fd_growth,
        "thread_growth": thread_growth,
        "passed": not failures,
        "failures": failures,
    }


def _snapshot(session: LiveSession, recording: Path, started: float) -> dict[str, Any]:
    counters = session.counters()
    return {
        "t_s": time.monotonic() - started,
        "latencies": len(session.stats.latencies_ms),
        "emitted": counters["emitted"],
        "dropped": sum(counters[key] for key in DROP_KEYS),
        **process_sample(),
        "output_bytes": output_bytes(recording),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def minute_row(minute: int, prev: dict[str, Any], now: dict[str, Any], latencies: LatencyLog, warmup_s: float) -> dict[str, Any]:
    """One per-minute row from the snapshots at its start and end; ``latencies``: the app's latency list."""
    seconds = now["t_s"] - prev["t_s"]
    chunk = latencies[prev["latencies"] : now["latencies"]]
    latency = percentiles(chunk, (50, 99))
    return {
        "minute": minute,
        "t_s": round(now["t_s"], 1),
        "seconds": round(seconds, 1),
        "after_warmup": prev["t_s"] >= warmup_s - 0.5,
        "rss_kib": now["rss_kib"],
        "rss_mib": round(now["rss_kib"] / 1024, 1),
        "fds": now["fds"],
        "threads": now["threads"],
        "frames": len(chunk),
        "fps": round(len(chunk) / seconds, 2) if seconds > 0 else None,
        "latency_p50_ms": None if latency["p50"] is None else round(latency["p50"], 2),
        "latency_p99_ms": None if latency["p99"] is None else round(latency["p99"], 2),
        "emitted": now["emitted"] - prev["emitted"],
        "dropped": now["dropped"] - prev["dropped"],
        "output_bytes": now["output_bytes"],
        "load_average": now["load_average"],
    }


def format_row(row: dict[str, Any], minutes: float) -> str:
    """The console line for one per-minute row."""
    p50, p99 = row["latency_p50_ms"], row["latency_p99_ms"]
    return (
        f"minute {row['minute']}/{math.ceil(minutes)}{'' if row['after_warmup'] else ' (warm-up)'}: "
        f"RSS {row['rss_mib']:.1f} MiB, fds {row['fds']}, threads {row['threads']}, "
        f"{row['frames']} frames ({row['fps'] or 0:.1f}/s), p50 {p50 or 0:.1f} / p99 {p99 or 0:.1f} ms, "
        f"dropped {row['dropped']}, output {row['output_bytes'] / 2**20:.1f} MiB, load {row['load_average'][0]:.2f}"
    )


def p99_windows(latencies: Sequence[float] | np.ndarray, measured_s: float, rules: SoakRules) -> dict[str, Any]:
    """The p99 of the first and last window of the latencies after warm-up (see :class:`SoakRules`)."""
    window_s = rules.p99_window_s if measured_s >= rules.p99_window_below_s else measured_s / 5
    frames = max(1, round(len(latencies) * window_s / measured_s)) if measured_s > 0 and len(latencies) else 0
    first, last = percentiles(latencies[:frames], (99,))["p99"], percentiles(latencies[-frames:] if frames else [], (99,))["p99"]
    return {
        "seconds": round(window_s, 1),
        "frames": frames,
        "rule": "first/last 5 minutes after warm-up" if window_s == rules.p99_window_s else "first/last fifth after warm-up",
        "p99_first_ms": None if first is None else round(first, 2),
        "p99_last_ms": None if last is None else round(last, 2),
    }


def _run_minutes(session: LiveSession, run: SoakRun, warmup_s: float, on_row: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Sample at the end of the warm-up and of every minute until the end; the snapshots, rows and how it ended."""
    total_s = run.minutes * MINUTE_S
    marks = sorted({warmup_s, total_s, *(MINUTE_S * k for k in range(1, math.ceil(total_s / MINUTE_S)))})
    started = time.monotonic()
    prev = _snapshot(session, run.recording, started)
    baseline: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = []
    stop_reason = "time up"
    try:
        for mark in marks:
            while (left := started + mark - time.monotonic()) > 0 and session.pipeline.error is None:
                time.sleep(min(left, 1.0))
            if session.pipeline.error is not None:
                stop_reason = "stage error"
                break
            now = _snapshot(session, run.recording, started)
            if mark == warmup_s:
                baseline = now
            if mark == total_s or mark % MINUTE_S == 0:
                rows.append(minute_row(len(rows) + 1, prev, now, session.stats.latencies_ms, warmup_s))
                on_row(rows[-1])
                prev = now
    except KeyboardInterrupt:
        stop_reason = "interrupted"
    return {"baseline": baseline, "final": prev, "rows": rows, "stop_reason": stop_reason}


def run_soak(run: SoakRun, backend: InferenceBackend, config: PipelineConfig,
             on_row: Callable[[dict[str, Any]], None] = lambda row: None) -> dict[str, Any]:
    """Run the soak test; the report (module docstring), ``on_row`` called with each per-minute row as it is taken."""
    if run.minutes <= 0:
        raise ValueError(f"minutes must be positive, got {run.minutes}")
    warmup_s = min(WARMUP_S, run.minutes * MINUTE_S / 2)
    live = LiveRun(run.spec, run.minutes * MINUTE_S, warmup_s, run.generator, run.recording, run.codec)
    session = start_live(live, backend, config, keep_frames=False)
    error = None
    try:
        sampled = _run_minutes(session, run, warmup_s, on_row)
    finally:
        try:
            session.stop()
        except RuntimeError as stage_error:
            error = str(stage_error)
    baseline, final, rows = sampled["baseline"], sampled["final"], sampled["rows"]
    windows: dict[str, Any] | None = None
    verdict: dict[str, Any] = {"rss_growth_percent": None, "p99_drift_percent": None, "fd_growth": None,
                               "thread_growth": None, "passed": False, "failures": []}  # fmt: skip
    if baseline is not None:
        measured = session.stats.latencies_ms[baseline["latencies"] : final["latencies"]]
        windows = p99_windows(measured, final["t_s"] - warmup_s, run.rules)
        verdict = judge(baseline, final, windows["p99_first_ms"], windows["p99_last_ms"], run.rules)
    if sampled["stop_reason"] != "time up" or error:
        verdict["passed"] = False
        verdict["failures"].append(f"stopped early: {error or sampled['stop_reason']} after {final['t_s'] / MINUTE_S:.1f} min")
    video = session.video
    return {
        "minutes": run.minutes,
        "minutes_run": round(final["t_s"] / MINUTE_S, 2),
        **verdict,
        "rules": {**asdict(run.rules), "warmup": "the first minute (half the run when shorter than two minutes)"},
        "warmup_s": warmup_s,
        "warmup_end": None if baseline is None else {k: baseline[k] for k in ("rss_kib", "fds", "threads", "output_bytes")},
        "p99_window": windows,
        "per_minute": rows,
        "stop_reason": sampled["stop_reason"],
        "error": error,
        "source": {"width": run.spec.width, "height": run.spec.height, "fps": run.spec.fps, "generator": run.generator},
        "backend": backend.describe(),
        "inference_workers": config.inference_workers,
        "gpu_path": session.pipeline.gpu_path,
        "recording": str(run.recording),
        "recording_codec": video.codec if video is not None else None,
        "recording_frames": video.frames_written if video is not None else 0,
        "recording_bytes": run.recording.stat().st_size if run.recording.is_file() else None,
        "frames": len(session.stats.latencies_ms),
        "dropped": sum(row["dropped"] for row in rows),
        "machine": machine(),
    }


def format_verdict(report: dict[str, Any]) -> str:
    """The closing console line: the growths and drift, and passed or why not."""
    summary = (
        f"soak {report['minutes_run']:g} min: RSS {report['rss_growth_percent']} % after warm-up, "
        f"p99 drift {report['p99_drift_percent']} %, fds {report['fd_growth']:+}, threads {report['thread_growth']:+}"
        if report["fd_growth"] is not None else f"soak {report['minutes_run']:g} min: ended before the warm-up did"
    )
    return f"{summary}: {'PASSED' if report['passed'] else 'FAILED: ' + '; '.join(report['failures'])}"
