"""Per-frame timestamps and the run summary (frames, drops, corrupt frames, latency percentiles, throughput)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.atomic_io import atomic_write_text
from models.percentiles import percentiles

LOG = logging.getLogger(__name__)
#: Seconds between the stats JSON snapshots written while a run goes on (``--stats``).
SNAPSHOT_INTERVAL_S = 2.0
#: A snapshot may take at most this share of the time: the interval grows with the cost of one.
SNAPSHOT_SHARE = 0.1


@dataclass
class FrameTimes:
    """Timestamps of one frame, seconds since the pipeline started (``time.perf_counter`` based)."""

    index: int
    capture: float
    infer_start: float = 0.0
    infer_end: float = 0.0
    render_end: float = 0.0

    @property
    def latency_ms(self) -> float:
        """End-to-end latency: frame captured → rendered and written."""
        return (self.render_end - self.capture) * 1000.0


class LatencyLog:
    """Append-only latency samples (ms) in fixed-size ``float64`` chunks: 8 bytes a frame, so a 10-hour run
    at 60 frames/s holds 17 MB, where a list of Python floats held about 70 MB.

    One thread appends (the render stage); others may read at the same time (the stats snapshot, the soak):
    a sample is written before the count that publishes it, and a chunk is added before it is written, so a
    reader that took the count sees every sample below it. ``len`` and slicing behave like a list's; a slice
    is a new ``numpy`` array."""

    CHUNK = 65536

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = [np.empty(self.CHUNK)]
        self._count = 0

    def append(self, value: float) -> None:
        """Add one sample (from one thread only)."""
        chunk, offset = divmod(self._count, self.CHUNK)
        if chunk == len(self._chunks):
            self._chunks.append(np.empty(self.CHUNK))
        self._chunks[chunk][offset] = value
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice):
            raise TypeError(f"LatencyLog takes a slice, not {type(index).__name__}")
        start, stop, step = index.indices(self._count)
        if step != 1:
            raise ValueError(f"LatencyLog slices take no step (got {step})")
        return self.values(start, stop)

    def values(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """A copy of samples ``start`` to ``stop`` (default: all recorded so far)."""
        stop = self._count if stop is None else min(stop, self._count)
        if stop <= start:
            return np.empty(0)
        first, last = start // self.CHUNK, (stop - 1) // self.CHUNK
        parts = [self._chunks[k] for k in range(first, last + 1)]
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
        offset = first * self.CHUNK
        return joined[start - offset : stop - offset].copy()


@dataclass
class StatsRecorder:
    """Collects frame timestamps (only when ``keep_frames``) and latencies; builds the summary."""

    keep_frames: bool = False
    t0: float = field(default_factory=time.perf_counter)
    frames: list[FrameTimes] = field(default_factory=list)
    #: one per rendered frame; read by the periodic stats snapshot while the render thread appends
    latencies_ms: LatencyLog = field(default_factory=LatencyLog)
    rendered: int = 0
    first_capture: float | None = None
    last_render: float | None = None

    def now(self) -> float:
        """Seconds since the recorder was created."""
        return time.perf_counter() - self.t0

    def add(self, times: FrameTimes) -> None:
        """Record a rendered frame (called by the render stage only)."""
        self.rendered += 1
        self.latencies_ms.append(times.latency_ms)
        if self.first_capture is None:
            self.first_capture = times.capture
        self.last_render = times.render_end
        if self.keep_frames:
            self.frames.append(times)

    def summary(self, **extra: Any) -> dict[str, Any]:
        """Frames, throughput and latency percentiles, plus ``extra`` (drops, corrupt, backend, ...)."""
        span = (self.last_render or 0.0) - (self.first_capture or 0.0)
        throughput = round(self.rendered / span, 2) if self.rendered and span > 0 else None
        latency = {k: (round(v, 2) if v is not None else None) for k, v in percentiles(self.latencies_ms.values()).items()}
        return {
            "frames": self.rendered,
            "throughput_fps": throughput,
            "latency_ms": latency,
            "wall_s": round(self.now(), 3),
            **extra,
        }

    def write_json(self, path: str | os.PathLike[str], summary: dict[str, Any]) -> None:
        """Atomically write ``{"summary": ..., "frames": [...]}`` (also while frames are still being added)."""
        frames = [
            {
                "index": f.index,
                "capture_s": round(f.capture, 6),
                "infer_start_s": round(f.infer_start, 6),
                "infer_end_s": round(f.infer_end, 6),
                "render_end_s": round(f.render_end, 6),
                "latency_ms": round(f.latency_ms, 3),
            }
            for f in list(self.frames)
        ]
        atomic_write_text(path, json.dumps({"summary": summary, "frames": frames}, indent=1, allow_nan=False) + "\n")


class PeriodicWriter:
    """Calls ``write`` every ``interval_s`` seconds on a thread of its own until :meth:`stop`.

    Used for the stats JSON snapshots, so a crash keeps the figures up to the last one. The interval grows
    so that writing takes at most :data:`SNAPSHOT_SHARE` of the time (the per-frame list grows with the
    run); a failed write is logged once and retried at the next interval.
    """

    def __init__(self, write: Callable[[], None], interval_s: float = SNAPSHOT_INTERVAL_S, name: str = "surgseg-stats") -> None:
        self._write = write
        self.interval_s = interval_s
        self.written = 0
        self._failed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> PeriodicWriter:
        """Start the thread; returns ``self``."""
        self._thread.start()
        return self

    def _run(self) -> None:
        interval = self.interval_s
        while not self._stop.wait(interval):
            started = time.perf_counter()
            try:
                self._write()
                self.written += 1
            except Exception as error:  # noqa: BLE001 - a snapshot must never stop the run
                if not self._failed:
                    LOG.warning("could not write the stats snapshot: %s (retrying every %.0f s)", error, interval)
                self._failed = True
            interval = max(self.interval_s, (time.perf_counter() - started) / SNAPSHOT_SHARE)

    def stop(self) -> None:
        """Stop the thread (a write in progress completes first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def frame_accounting(
    *,
    captured: int,
    rendered: int,
    stale: int,
    late: int,
    skipped: dict[str, int],
    resized: dict[str, int],
    examples: list[str],
    header_frames: int | None,
) -> dict[str, Any]:
    """Where every input frame went: the ``frames_accounting`` block of the stats JSON.

    ``skipped`` reasons: ``corrupt`` (undecodable), ``truncated`` (a file ended before its header's frame
    count), ``stale`` (live mode: a newer frame replaced it before inference), ``late`` (``--realtime``:
    decoding fell behind the clock), ``not_rendered`` (captured, not stale, but never rendered: the run was aborted).
    ``resized``: frames of another size than the first, delivered resized (``size_mismatch``).
    """
    reasons = dict(skipped)
    # a stale frame was captured and then replaced before inference: counted once, as stale (late frames are
    # dropped before they count as captured)
    for reason, count in (("stale", stale), ("late", late), ("not_rendered", max(0, captured - rendered - stale))):
        if count:
            reasons[reason] = reasons.get(reason, 0) + count
    return {
        "header_frames": header_frames,
        "captured": captured,
        "rendered": rendered,
        "skipped": dict(sorted(reasons.items())),
        "skipped_total": sum(reasons.values()),
        "resized": dict(sorted(resized.items())),
        "truncated": bool(skipped.get("truncated")),
        "examples": list(examples),
    }


def format_accounting(accounting: dict[str, Any]) -> str | None:
    """One console line for skipped/resized frames (``None`` when every frame went through as it was)."""
    parts = [f"{count} {reason}" for reason, count in accounting["skipped"].items()]
    parts += [f"{count} resized ({reason})" for reason, count in accounting["resized"].items()]
    return ", ".join(parts) if parts else None
