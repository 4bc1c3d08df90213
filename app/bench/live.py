"""``python -m app.bench --live 1080p60``: capture → overlay-ready latency of the real pipeline on a live source.

A :class:`app.sources.live.LiveSource` emits frames of the stated size at the stated rate from its own
thread, each stamped with its capture time; :class:`LiveFrameSource` hands them to the app's
:class:`app.pipeline.Pipeline` in live mode (latest frame wins at the source and before inference),
with the backend's stages (the GPU frame path on GPU backends) and, with ``--record``, the video sink.
After a warm-up (left out of every figure) the bench runs for ``seconds`` and reports:

* ``latency_ms``: capture (emission) → overlay ready, measured at the stats sink, i.e. after compose
  and, when recording, after the frame was handed to the video writer;
* ``frames`` rendered, ``dropped`` (frames the pipeline never rendered: overwritten in the source's
  slot, replaced in the queue to inference, or ticks the emitting thread could not keep, ``drops``
  gives each);
* ``stages_ms`` per stage and ``limiting_stage``: the stage with the highest p50;
* ``budget``: the frame budget at the source's rate (16.7 ms at 60 fps) and each stage's p50/p99 as a
  share of it (:func:`stage_budget`).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from app.core.stats import StatsRecorder
from app.outputs.writers import VideoOutput
from app.pipeline import Pipeline, PipelineConfig
from app.sources.live import LiveSource, LiveSpec
from app.sources.source import FrameSource
from engine.backends import InferenceBackend
from models.cpu import cpu_identity
from models.percentiles import percentiles

#: Issue 12's goal on a GPU backend at 1080p60.
GOAL_P50_MS = 8.0
GOAL_P99_MS = 16.7
POLL_S = 0.1


class LiveFrameSource(FrameSource):
    """A :class:`LiveSource` as the pipeline's :class:`FrameSource`; each frame keeps the source's capture time.

    :attr:`last_capture_ns` is the ``perf_counter_ns`` stamp of the frame last read (the capture stage
    uses it as the frame's capture time). :meth:`read` waits for the next frame and returns ``None``
    once the live source has stopped and its slot is empty."""

    live = True

    def __init__(self, source: LiveSource) -> None:
        super().__init__()
        self.source = source
        self.fps = source.fps
        self.frame_size = source.frame_size
        self.description = source.description
        self.last_capture_ns: int | None = None

    def _next_valid(self) -> np.ndarray | None:
        while True:
            item = self.source.read(timeout=POLL_S)
            if item is not None:
                self.index = item.index
                self.last_capture_ns = item.capture_ns
                return item.image
            if self.source.slot.closed and not self.source.slot.pending:
                return None

    def close(self) -> None:
        """Stop the live source."""
        self.source.stop()


@dataclass(frozen=True)
class LiveRun:
    """One live bench run."""

    spec: LiveSpec
    seconds: float
    warmup_s: float = 2.0
    generator: str = "scene"  #: what the source shows (the project's scene generator, or a cheap pattern)
    record: Path | None = None  #: also write the overlay video here (the video sink is then in the path)
    codec: str = "auto"  #: the recording's encoder, as the app's ``--codec``


def _counters(live: LiveSource, pipeline: Pipeline) -> dict[str, int]:
    return {
        "emitted": live.emitted,
        "source_slot": live.dropped,
        "pipeline_queue": pipeline.dropped,
        "missed_ticks": live.missed_ticks,
    }


def limiting_stage(stages_ms: dict[str, dict[str, float | int]]) -> str | None:
    """The stage with the highest p50 (``None`` without stages)."""
    return max(stages_ms, key=lambda name: stages_ms[name]["p50"], default=None)


@dataclass
class LiveSession:
    """The real pipeline running on a live source (from :func:`start_live`); :meth:`stop` ends it."""

    live: LiveSource
    source: LiveFrameSource
    pipeline: Pipeline
    video: VideoOutput | None
    stats: StatsRecorder

    def counters(self) -> dict[str, int]:
        """``emitted`` and the drop counters so far (``source_slot``, ``pipeline_queue``, ``missed_ticks``)."""
        return _counters(self.live, self.pipeline)

    def stop(self) -> None:
        """Stop the source, let the pipeline drain and finalise its outputs. Raises ``RuntimeError`` on a stage error."""
        try:
            self.pipeline.request_stop("time up")
            self.live.stop()
            while not self.pipeline.wait(0.2):
                pass
            self.pipeline.join()
        finally:
            self.live.stop()
            self.source.close()
        if self.pipeline.error is not None:
            raise RuntimeError(str(self.pipeline.error))


def start_live(run: LiveRun, backend: InferenceBackend, config: PipelineConfig, keep_frames: bool = True) -> LiveSession:
    """Build the app's :class:`Pipeline` on a :class:`LiveSource` (recording to ``run.record`` through the app's
    :class:`VideoOutput` with ``run.codec``) and start both. ``keep_frames``: keep every frame's times in the stats."""
    live = LiveSource(run.spec, generator=run.generator)
    source = LiveFrameSource(live)
    video = VideoOutput(run.record, run.spec.fps, source.frame_size, codec=run.codec) if run.record is not None else None
    stats = StatsRecorder(keep_frames=keep_frames)
    pipeline = Pipeline(source, backend, replace(config, live=True, show=False), video=video, stats=stats)
    live.start()
    pipeline.start()
    return LiveSession(live, source, pipeline, video, stats)


def run_live(run: LiveRun, backend: InferenceBackend, config: PipelineConfig) -> dict[str, Any]:
    """Run the live bench once; the report (see the module docstring). Raises ``RuntimeError`` on a stage error."""
    spec = run.spec
    load = os.getloadavg()[0]
    session = start_live(run, backend, config)
    pipeline, stats, video = session.pipeline, session.stats, session.video
    try:
        time.sleep(run.warmup_s)
        before, marks = session.counters(), pipeline.timer.marks()
        time.sleep(run.seconds)
    finally:
        session.stop()
    after = session.counters()
    delta = {name: after[name] - before[name] for name in after}
    measured = [f.latency_ms for f in stats.frames if f.index >= before["emitted"]]
    stages = pipeline.timer.summary_ms(since=marks)
    latency = {k: None if v is None else round(v, 3) for k, v in percentiles(measured).items()}
    dropped = delta["source_slot"] + delta["pipeline_queue"] + delta["missed_ticks"]
    return {
        "backend": backend.describe(),
        "backend_name": backend.name,
        "source": {"width": spec.width, "height": spec.height, "fps": spec.fps, "generator": run.generator},
        "seconds": run.seconds,
        "warmup_s": run.warmup_s,
        "frames": len(measured),
        "emitted": delta["emitted"],
        "dropped": dropped,
        "drops": {k: delta[k] for k in ("source_slot", "pipeline_queue", "missed_ticks")},
        "throughput_fps": round(len(measured) / run.seconds, 2),
        "latency_ms": {**latency, "max": round(max(measured), 3) if measured else None},
        "stages_ms": stages,
        "limiting_stage": limiting_stage(stages),
        "budget": stage_budget(stages, spec.fps),
        "goal": goal(latency, dropped),
        "gpu_path": pipeline.gpu_path,
        "inference_workers": config.inference_workers,
        "queue_size": config.queue_size,
        "recording": str(run.record) if run.record is not None else None,
        "recording_codec": video.codec if video is not None else None,  # h264_nvenc, libx264, mp4v or MJPG
        "cpus": os.cpu_count(),
        "load_average_before": round(load, 2),
        "machine": platform.platform(),
        "cpu_identity": cpu_identity(),
    }


def stage_budget(stages_ms: dict[str, dict[str, float | int]], fps: float) -> dict[str, Any]:
    """The frame budget at ``fps`` (``frame_ms`` = 1000 / fps) and each stage's p50/p99 with its share of it.

    A share above 1 means the stage alone takes longer than a frame period: it keeps up only when it runs
    on several threads at once (the inference workers) or frames are dropped."""
    frame_ms = 1000.0 / fps
    rows = {
        name: {
            "p50": row["p50"],
            "p99": row["p99"],
            "p50_share": round(float(row["p50"]) / frame_ms, 3),
            "p99_share": round(float(row["p99"]) / frame_ms, 3),
        }
        for name, row in stages_ms.items()
    }
    return {"fps": fps, "frame_ms": round(frame_ms, 3), "stages": rows}


def goal(latency: dict[str, float | None], dropped: int) -> dict[str, Any]:
    """Issue 12's goal (p50 ≤ 8 ms, p99 ≤ 16.7 ms, no drops) and whether this run met it."""
    p50, p99 = latency.get("p50"), latency.get("p99")
    met = p50 is not None and p99 is not None and p50 <= GOAL_P50_MS and p99 <= GOAL_P99_MS and dropped == 0
    return {"p50_ms": GOAL_P50_MS, "p99_ms": GOAL_P99_MS, "dropped": 0, "met": met}


def format_report(report: dict[str, Any]) -> str:
    """The console lines for one live run."""
    latency, source = report["latency_ms"], report["source"]
    lines = [
        f"live {source['width']}x{source['height']}@{source['fps']:g}, {report['backend']}: "
        f"{report['frames']} frames in {report['seconds']:g} s ({report['throughput_fps']:.1f}/s), "
        f"{report['dropped']} dropped {report['drops']}",
        f"capture -> overlay ready: p50 {_ms(latency['p50'])}, p95 {_ms(latency['p95'])}, p99 {_ms(latency['p99'])} ms",
        f"{'stage':<12} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'frames':>8}"
        f" {'p50 %':>7} {'p99 %':>7}  of the {report['budget']['frame_ms']:.1f} ms frame budget",
    ]
    shares = report["budget"]["stages"]
    for name, row in report["stages_ms"].items():
        share = shares[name]
        lines.append(
            f"{name:<12} {row['p50']:>8.2f} {row['p95']:>8.2f} {row['p99']:>8.2f} {row['count']:>8d}"
            f" {share['p50_share']:>7.0%} {share['p99_share']:>7.0%}"
        )
    lines.append(f"limiting stage (highest p50): {report['limiting_stage']}; goal met: {report['goal']['met']}")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
