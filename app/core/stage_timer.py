"""Per-stage timing on every frame, cheap enough to leave on.

Each stage owns a preallocated ring of ``int64`` nanosecond durations; recording one sample is a
``perf_counter_ns`` call, one array store and one integer increment (no allocation). The rings keep
the last ``capacity`` samples per stage and :meth:`StageTimer.summary_ms` turns them into
percentiles for the stats JSON and the bench output::

    timer = StageTimer()
    span = timer.span("inference")      # preallocated, reusable: fetch it once per stage thread
    with span:
        probability = backend.predict(frame)
    timer.summary_ms()                  # {"inference": {"p50": 3.1, "p95": 3.4, "p99": 3.9, "mean": 3.2, "count": 900}}

Thread safety: one writer per stage (the stage's own thread), any number of readers. A reader may
miss the sample being written at that instant, never sees a torn one.

GPU stages: :meth:`StageTimer.device_span` on a CUDA device records a pair of CUDA events on the
current stream instead of reading the host clock, so the time is what the GPU spent between the two
points, not how long the host took to enqueue the work. Event pairs come from a preallocated pool and
are resolved lazily (when completed, checked at the next span of that stage or by
:meth:`StageTimer.flush`), so timing never synchronises the stream. On the CPU (or without CUDA) a
device span is an ordinary host span.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

#: The stages of the frame path, in order.
STAGES: tuple[str, ...] = (
    "capture",
    "upload",
    "preprocess",
    "inference",
    "postprocess",
    "compose",
    "download",
    "encode",
    "display",
)
DEFAULT_CAPACITY = 8192  #: samples kept per stage (over 2 minutes at 60 frames/s)
DEFAULT_EVENT_POOL = 64  #: CUDA event pairs per stage that may be in flight


class StageRing:
    """The last ``capacity`` durations (ns) of one stage; one writer thread."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._values = np.zeros(capacity, np.int64)
        self.count = 0  #: samples recorded since the last reset (may exceed the capacity)

    def add(self, duration_ns: int) -> None:
        """Record one duration in nanoseconds."""
        self._values[self.count % self.capacity] = duration_ns
        self.count += 1  # after the store: a reader never counts a slot that is not written yet

    def snapshot(self, since: int = 0) -> np.ndarray:
        """A copy of the samples kept (oldest first not guaranteed; order does not matter to percentiles).

        ``since``: only the samples recorded after :attr:`count` was ``since`` (those still kept)."""
        count = self.count
        first = max(since, count - self.capacity, 0)
        if first == 0:
            return self._values[: min(count, self.capacity)].copy()
        slots = np.arange(first, count) % self.capacity
        return self._values[slots]

    def reset(self) -> None:
        """Forget every sample."""
        self.count = 0


class HostSpan:
    """Reusable ``with`` block timing one stage with the host clock (one writer thread)."""

    __slots__ = ("_ring", "_start")

    def __init__(self, ring: StageRing) -> None:
        self._ring = ring
        self._start = 0

    def __enter__(self) -> HostSpan:
        self._start = time.perf_counter_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ring.add(time.perf_counter_ns() - self._start)


class CudaEventSpan:
    """Reusable ``with`` block timing one stage with CUDA events on the current stream (one writer thread).

    A pool of preallocated event pairs is used round-robin; a pair is resolved (``elapsed_time``)
    once its end event has completed. Only when every pair is still in flight does a new span wait
    for the oldest one, so a stage queued far ahead of the GPU is timed without stalling it otherwise.
    """

    def __init__(self, ring: StageRing, device: Any, pool: int = DEFAULT_EVENT_POOL) -> None:
        import torch  # noqa: PLC0415 - only CUDA timing needs torch

        if pool < 1:
            raise ValueError(f"event pool must be at least 1, got {pool}")
        self._torch = torch
        self._ring = ring
        self._device = device
        with torch.cuda.device(device):
            self._starts = [torch.cuda.Event(enable_timing=True) for _ in range(pool)]
            self._ends = [torch.cuda.Event(enable_timing=True) for _ in range(pool)]
        self._pool = pool
        self._next = 0  #: index of the next pair to record
        self._oldest = 0  #: index of the oldest pair not yet resolved
        self._pending = 0

    def __enter__(self) -> CudaEventSpan:
        self.poll()
        if self._pending == self._pool:
            self._resolve_oldest(wait=True)
        self._starts[self._next].record(self._torch.cuda.current_stream(self._device))
        return self

    def __exit__(self, *exc: object) -> None:
        self._ends[self._next].record(self._torch.cuda.current_stream(self._device))
        self._next = (self._next + 1) % self._pool
        self._pending += 1

    def _resolve_oldest(self, wait: bool) -> bool:
        end = self._ends[self._oldest]
        if not wait and not end.query():
            return False
        end.synchronize()
        milliseconds = self._starts[self._oldest].elapsed_time(end)
        self._ring.add(int(milliseconds * 1e6))
        self._oldest = (self._oldest + 1) % self._pool
        self._pending -= 1
        return True

    def poll(self) -> None:
        """Record every pair that has completed (does not wait)."""
        while self._pending and self._resolve_oldest(wait=False):
            pass

    def flush(self) -> None:
        """Wait for and record every pair in flight."""
        while self._pending:
            self._resolve_oldest(wait=True)


def _is_cuda(device: Any) -> bool:
    if device is None:
        return False
    kind = getattr(device, "type", None) or str(device).split(":")[0]
    if kind != "cuda":
        return False
    try:
        import torch  # noqa: PLC0415

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


class StageTimer:
    """Durations of every stage of every frame, as rings of nanoseconds; percentiles on demand.

    ``stages``: the stage names accepted (default :data:`STAGES`; add e.g. ``"latency"`` for the
    capture → overlay-ready time measured with :meth:`record`). ``device``: where device spans run;
    CUDA spans use CUDA events, anything else falls back to the host clock.
    """

    def __init__(
        self,
        stages: Iterable[str] = STAGES,
        capacity: int = DEFAULT_CAPACITY,
        device: Any = None,
        event_pool: int = DEFAULT_EVENT_POOL,
    ) -> None:
        names = tuple(stages)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"stage names must be non-empty and distinct, got {list(names)}")
        self.stages = names
        self._rings = {name: StageRing(capacity) for name in names}
        self._host_spans = {name: HostSpan(ring) for name, ring in self._rings.items()}
        self._device = device
        self.uses_cuda_events = _is_cuda(device)
        self._event_pool = event_pool
        self._device_spans: dict[str, CudaEventSpan] = {}
        self._lock = threading.Lock()  # guards creating device spans only

    def _ring(self, stage: str) -> StageRing:
        try:
            return self._rings[stage]
        except KeyError:
            raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(self.stages)}") from None

    def record(self, stage: str, duration_ns: int) -> None:
        """Record one duration (nanoseconds) for ``stage``."""
        self._ring(stage).add(duration_ns)

    def record_since(self, stage: str, start_ns: int) -> int:
        """Record ``perf_counter_ns() - start_ns`` for ``stage``; returns the clock reading (the next start)."""
        now = time.perf_counter_ns()
        self._ring(stage).add(now - start_ns)
        return now

    def span(self, stage: str) -> HostSpan:
        """The reusable host-clock ``with`` block of ``stage`` (fetch once, reuse every frame)."""
        self._ring(stage)
        return self._host_spans[stage]

    def device_span(self, stage: str) -> HostSpan | CudaEventSpan:
        """The reusable ``with`` block of a device stage: CUDA events on a CUDA device, else the host clock."""
        ring = self._ring(stage)
        if not self.uses_cuda_events:
            return self._host_spans[stage]
        with self._lock:
            span = self._device_spans.get(stage)
            if span is None:
                span = self._device_spans[stage] = CudaEventSpan(ring, self._device, self._event_pool)
            return span

    def flush(self) -> None:
        """Resolve every CUDA event pair still in flight (waits for the GPU).

        Call from the stage's own thread, or once the stage threads have stopped, before the final summary:
        pairs are otherwise resolved by the writer at its next span.
        """
        for span in list(self._device_spans.values()):
            span.flush()

    def count(self, stage: str) -> int:
        """Samples recorded for ``stage`` since the last reset."""
        return self._ring(stage).count

    def samples_ms(self, stage: str, since: int = 0) -> np.ndarray:
        """The kept samples of ``stage`` in milliseconds (a copy); ``since``: see :meth:`StageRing.snapshot`."""
        return self._ring(stage).snapshot(since) / 1e6

    def marks(self) -> dict[str, int]:
        """Every stage's sample count now: pass to :meth:`summary_ms` to leave out what came before (a warm-up)
        without resetting the rings under their writers."""
        return {name: ring.count for name, ring in self._rings.items()}

    def summary_ms(
        self, qs: tuple[int, ...] = (50, 95, 99), digits: int = 3, since: dict[str, int] | None = None
    ) -> dict[str, dict[str, float | int]]:
        """``{stage: {"p50": .., "p95": .., "p99": .., "mean": .., "count": n}}`` in ms, for stages with samples.

        Percentiles and mean cover the last ``capacity`` samples; ``count`` is every sample recorded.
        ``since`` (from :meth:`marks`): only the samples recorded after it, and ``count`` counts those.
        """
        summary: dict[str, dict[str, float | int]] = {}
        for name in self.stages:
            start = (since or {}).get(name, 0)
            values = self.samples_ms(name, start)
            if values.size == 0:
                continue
            row: dict[str, float | int] = {f"p{q}": round(float(v), digits) for q, v in zip(qs, np.percentile(values, qs), strict=True)}
            row["mean"] = round(float(values.mean()), digits)
            row["count"] = self._rings[name].count - start
            summary[name] = row
        return summary

    def reset(self) -> None:
        """Forget every sample (e.g. after a warm-up); CUDA pairs in flight are resolved first."""
        self.flush()
        for ring in self._rings.values():
            ring.reset()

    def format_table(self) -> str:
        """The summary as aligned text lines for the console."""
        lines = [f"{'stage':<12} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'frames':>8}"]
        for name, row in self.summary_ms().items():
            lines.append(f"{name:<12} {row['p50']:>8.2f} {row['p95']:>8.2f} {row['p99']:>8.2f} {row['count']:>8d}")
        return "\n".join(lines)
