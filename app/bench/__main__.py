"""``python -m app.bench``: the threaded pipeline against a naive single-thread loop, same video, same run.

For each size (720p and 1080p by default) a generated video (cached, see :mod:`app.demo`) goes through

* **naive-1t**: the naive loop: the pipeline's own stage objects (read → infer → post-process →
  overlay → write) run frame after frame, all on one thread (inference with 1 CPU thread): the issue's "naive single-thread loop";
* **naive**: the same loop with the backend's default CPU threads (all physical cores), so the
  inference call itself is parallel: the strongest sequential baseline;
* **threaded-1w**: :class:`app.pipeline.Pipeline` in lossless file mode (every frame, in order),
  writing the same overlay video, with one inference worker and the ``naive`` backend (shown when
  the plan has more than one worker);
* **threaded**: the pipeline as the app runs it, with the inference plan of
  :mod:`app.core.inference_plan` (on CPU backends two workers, the cores split between them).

All use the backend ``create_backend`` picks (``--backend``, default ``auto``) and write an mp4.
GPU backends have one thread setting, so there ``naive-1t`` is left out. Throughput is frames /
wall time; latency is per frame from read to written. The speed-ups are ``threaded`` over each
naive loop. Prints a table, and writes JSON with ``--json``. Targets: ≥ 30 frames/s end to end at
720p; threaded ≥ 1.5× the naive single-thread loop. Every mode also reports ``stages_ms`` (per-stage
p50/p95/p99 from :class:`app.core.stage_timer.StageTimer`).

``--live 1080p60 --seconds S``: the live latency bench instead (:mod:`app.bench.live`): a built-in live
source at that size and rate through the real pipeline, capture → overlay-ready latency, drops, per-stage
times and the limiting stage (``--cuda-graphs/--no-cuda-graphs`` on GPU backends, ``--record FILE.mp4``).

``--soak 1080p60 --minutes 30 --output-dir DIR``: the soak test (:mod:`app.bench.soak`): the same live pipeline,
recording to ``DIR``, for that long; a line per minute (RSS, fds, threads, latency, drops, output size), the
report to ``--json`` (default beside the recording) and exit code 1 when a pass rule fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.bench.live import LiveRun, format_report, run_live
from app.bench.soak import SoakRun, format_row, format_verdict, run_soak
from app.core.inference_plan import InferencePlan, plan_inference
from app.core.overlay import ViewState
from app.core.stats import StatsRecorder
from app.demo import generated_video
from app.errors import SetupError
from app.outputs.encoders import CODEC_CHOICES, DEFAULT_X264_PRESET, resolve_codec
from app.outputs.writers import VideoOutput
from app.pipeline import Pipeline, PipelineConfig, build_stages, run_in_one_thread, stage_timer
from app.size import Size
from app.sources.capture import Capture
from app.sources.live import GENERATORS, parse_live_spec
from app.sources.source import open_source
from engine.backends import BACKEND_NAMES, InferenceBackend, create_backend
from models.atomic_io import atomic_write_text
from models.checkpoint import DEFAULT_CHECKPOINT, ModelMeta, build_segmenter, save_checkpoint
from models.cpu import cpu_identity
from models.percentiles import percentiles
from models.unet import preset

SIZES = {"720p": Size(height=720, width=1280), "1080p": Size(height=1080, width=1920)}
TARGET_FPS_720P = 30.0
TARGET_SPEEDUP = 1.5


def naive_loop(
    video: Path, backend: InferenceBackend, output: Path, codec: str = "auto", preset: str | None = None
) -> dict[str, Any]:
    """The pipeline's own stages run frame after frame on one thread; throughput and per-frame latency.

    Same source, stage objects and writer as :func:`threaded_pipeline` (built by
    :func:`app.pipeline.build_stages`), so the difference between the two is the threading only."""
    source = open_source(str(video))
    try:
        writer = VideoOutput(output, source.fps, source.frame_size, codec=codec, preset=preset, threaded=False)  # encoder inline
        stats = StatsRecorder()
        timer = stage_timer(backend)
        size = source.frame_size
        workers, render = build_stages(PipelineConfig(), backend, ViewState(), stats, video=writer, timer=timer, frame_size=size)
        started, cpu_started = time.perf_counter(), process_cpu_seconds()
        frames = run_in_one_thread(Capture(source, stats.now, timer=timer), workers, render, timer)
        wall, cpu = time.perf_counter() - started, process_cpu_seconds() - cpu_started
    finally:
        source.close()
    return {
        "frames": frames,
        "wall_s": wall,
        "throughput_fps": frames / wall,
        "cpu_cores_busy": cpu / wall,
        **_ms(stats.latencies_ms.values()),
        "stages_ms": timer.summary_ms(),
    }


def threaded_pipeline(
    video: Path, backend: InferenceBackend, output: Path, queue_size: int, workers: int = 1, codec: str = "auto", preset: str | None = None
) -> dict[str, Any]:
    """The app's pipeline in lossless file mode on ``video`` with ``workers`` inference threads."""
    source = open_source(str(video))
    writer = VideoOutput(output, source.fps, source.frame_size, codec=codec, preset=preset)
    config = PipelineConfig(queue_size=queue_size, inference_workers=workers)
    pipeline = Pipeline(source, backend, config, video=writer)
    started, cpu_started = time.perf_counter(), process_cpu_seconds()
    try:
        summary = pipeline.run()
    finally:
        source.close()
    if pipeline.error is not None:
        raise RuntimeError(str(pipeline.error))
    wall, cpu = time.perf_counter() - started, process_cpu_seconds() - cpu_started
    latencies = pipeline.stats.latencies_ms.values()
    return {
        "frames": summary["frames"],
        "wall_s": wall,
        "throughput_fps": summary["frames"] / wall,
        "cpu_cores_busy": cpu / wall,
        **_ms(latencies),
        "stages_ms": summary["stages_ms"],
    }


def process_cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (how many cores a mode kept busy)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ms(latencies: np.ndarray) -> dict[str, float | None]:
    return {f"latency_{k}_ms": v for k, v in percentiles(latencies).items()}


def bench_checkpoint(path: Path | None, workdir: Path) -> Path:
    """``path``, else the shipped model, else a random-weights ``fast`` model (same cost as a trained one)."""
    if path is not None:
        if not path.is_file():
            raise SetupError(f"--checkpoint {path}: no such file (expected a model checkpoint .pt or .onnx)")
        return path
    if DEFAULT_CHECKPOINT.is_file():
        return DEFAULT_CHECKPOINT
    meta = ModelMeta(config=preset("fast"))
    print(f"note: {DEFAULT_CHECKPOINT} not found; using a random-weights 'fast' model", file=sys.stderr)
    return save_checkpoint(workdir / "fast-random.pt", build_segmenter(meta), meta)


MODES = ("naive-1t", "naive", "threaded-1w", "threaded")


def format_stages(stages_ms: dict[str, dict[str, float | int]]) -> str:
    """Per-stage p50/p95/p99 as aligned lines."""
    lines = [f"  {'stage':<12} {'p50':>8} {'p95':>8} {'p99':>8} {'frames':>8}"]
    for name, row in stages_ms.items():
        lines.append(f"  {name:<12} {row['p50']:>8.2f} {row['p95']:>8.2f} {row['p99']:>8.2f} {row['count']:>8d}")
    return "\n".join(lines)


def _live_backend(args: argparse.Namespace, workdir: Path) -> tuple[Path, InferencePlan, InferenceBackend, int]:
    """``--live`` / ``--soak``: the checkpoint, inference plan, backend and inference workers from the options."""
    checkpoint = bench_checkpoint(args.checkpoint, workdir)
    plan = plan_inference(args.backend, args.inference_workers, args.threads, live=True)
    backend = create_backend(checkpoint, args.backend, threads=plan.threads)
    return checkpoint, plan, backend, plan.workers_for(backend)


def live_main(args: argparse.Namespace, argv: list[str]) -> int:
    """``--live``: one live latency run (:func:`app.bench.live.run_live`); prints it and writes ``--json``."""
    with tempfile.TemporaryDirectory(prefix="surgseg-bench-") as tmp:
        try:
            spec = parse_live_spec(args.live)
            if args.seconds <= 0 or args.warmup < 0:
                raise ValueError(f"--seconds {args.seconds} / --warmup {args.warmup}: expected > 0 / ≥ 0")
            if args.record is not None and not args.record.parent.is_dir():
                raise ValueError(f"--record {args.record}: folder {args.record.parent} does not exist")
            checkpoint, plan, backend, workers = _live_backend(args, Path(tmp))
        except (SetupError, ValueError, RuntimeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        try:
            config = PipelineConfig(live=True, inference_workers=workers, queue_size=args.queue_size, cuda_graphs=args.cuda_graphs)
            run = LiveRun(spec, args.seconds, args.warmup, args.live_generator, args.record, args.codec)
            report = run_live(run, backend, config)
        finally:
            backend.close()
    report.update(checkpoint=str(checkpoint), inference_plan={"workers": workers, "threads": plan.threads},
                  load_average_after=round(os.getloadavg()[0], 2), cuda_graphs_requested=args.cuda_graphs,
                  command=" ".join(["python -m app.bench", *argv]))
    print(format_report(report))
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def soak_main(args: argparse.Namespace, argv: list[str]) -> int:
    """``--soak``: the soak test (:func:`app.bench.soak.run_soak`); a line per minute, the report to ``--json``.

    Exit code 0 when every pass rule held, 1 when one failed, 2 on a setup error."""
    with tempfile.TemporaryDirectory(prefix="surgseg-bench-") as tmp:
        try:
            spec = parse_live_spec(args.soak)
            if args.minutes <= 0 or args.output_dir is None:
                raise ValueError(f"--soak needs --minutes > 0 (got {args.minutes}) and --output-dir")
            args.output_dir.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            recording = args.output_dir / f"soak-{spec.height}p{spec.fps:g}-{stamp}.mp4"
            run = SoakRun(spec, args.minutes, recording, args.live_generator, args.codec)
            checkpoint, plan, backend, workers = _live_backend(args, Path(tmp))
        except (SetupError, ValueError, RuntimeError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"soak {spec.label} for {args.minutes:g} min, {backend.describe()}, {workers} inference workers, recording {recording}")
        try:
            config = PipelineConfig(live=True, inference_workers=workers, cuda_graphs=args.cuda_graphs)
            report = run_soak(run, backend, config, on_row=lambda row: print(format_row(row, args.minutes), flush=True))
        finally:
            backend.close()
    report.update(checkpoint=str(checkpoint), inference_plan={"workers": workers, "threads": plan.threads},
                  command=" ".join(["python -m app.bench", *argv]))
    path = args.json or recording.with_suffix(".json")
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    print(format_verdict(report))
    print(f"wrote {path}")
    return 0 if report["passed"] else 1


def _ratio(mode: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    return "" if baseline is None else f"{mode['throughput_fps'] / baseline['throughput_fps']:.2f}x"


def format_table(results: list[dict[str, Any]]) -> str:
    """The printed table."""
    header = (
        f"{'video':<8}{'mode':<13}{'frames':>7}{'fps':>8}{'cores':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'vs naive-1t':>13}{'vs naive':>10}"
    )
    lines = [header, "-" * len(header)]
    for row in results:
        for mode in MODES:
            if mode not in row:
                continue
            r = row[mode]
            versus = ["", ""]
            if mode.startswith("threaded"):
                versus = [_ratio(r, row.get(base)) for base in ("naive-1t", "naive")]
            lines.append(
                f"{row['video']:<8}{mode:<13}{r['frames']:>7}{r['throughput_fps']:>8.1f}{r['cpu_cores_busy']:>7.2f}"
                f"{r['latency_p50_ms']:>9.1f}{r['latency_p95_ms']:>9.1f}{r['latency_p99_ms']:>9.1f}{versus[0]:>13}{versus[1]:>10}"
            )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (file mode and ``--live``)."""
    parser = argparse.ArgumentParser(prog="python -m app.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="model (default: shipped model, else random-weights 'fast')")
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="auto", help="inference backend (default auto)")
    parser.add_argument("--sizes", default="720p,1080p", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--frames", type=int, default=300, help="frames per video (default 300)")
    parser.add_argument("--generator", choices=("scene", "shapes"), default="scene", help="video generator (default scene)")
    parser.add_argument("--threads", type=int, help="CPU threads per inference call (default: naive all cores, pipeline as planned)")
    parser.add_argument("--inference-workers", type=int,
                        help="pipeline inference threads (default: 2 on CPU backends, --live/--soak 1 with all the cores; 1 on GPUs)")
    parser.add_argument("--queue-size", type=int, default=1,
                        help="pipeline queue depth (default 1; --live: the queue from inference to rendering)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--codec", choices=CODEC_CHOICES, default="auto", help="video encoder, as the app's --codec (default auto)")
    parser.add_argument("--x264-preset", help=f"libx264 preset (default {DEFAULT_X264_PRESET})")
    live = parser.add_argument_group("live latency bench")
    live.add_argument("--live", metavar="SIZE", help="live source size and rate, e.g. 1080p60, 720p60, 1280x720@50")
    live.add_argument("--seconds", type=float, default=10.0, help="live: measured seconds (default 10)")
    live.add_argument("--warmup", type=float, default=2.0, help="live: seconds run first and left out (default 2)")
    live.add_argument("--live-generator", choices=GENERATORS, default="scene", help="live: what the source shows")
    live.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=True,
                      help="GPU backends: replay CUDA graphs where the backend declares them (default on)")
    live.add_argument("--record", type=Path, metavar="FILE.mp4", help="live: also record the overlay video")
    soak = parser.add_argument_group("soak test (the live source, the options above, recording as the app's --output)")
    soak.add_argument("--soak", metavar="SIZE", help="run the soak test on a live source of that size and rate, e.g. 1080p60")
    soak.add_argument("--minutes", type=float, default=30.0, help="soak: minutes to run, the first is warm-up (default 30)")
    soak.add_argument("--output-dir", type=Path, metavar="DIR", help="soak: folder for the recording (and the JSON without --json)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.soak is not None:
        return soak_main(args, list(sys.argv[1:] if argv is None else argv))
    if args.live is not None:
        return live_main(args, list(sys.argv[1:] if argv is None else argv))
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or args.frames < 10:
        print(f"error: --sizes {args.sizes} / --frames {args.frames}: expected sizes from {list(SIZES)}, frames ≥ 10")
        return 2
    with tempfile.TemporaryDirectory(prefix="surgseg-bench-") as tmp:
        workdir = Path(tmp)
        try:
            checkpoint = bench_checkpoint(args.checkpoint, workdir)
            backend = create_backend(checkpoint, args.backend, threads=args.threads)
            plan = plan_inference(args.backend, args.inference_workers, args.threads)
            workers = plan.workers_for(backend)
            backends = {args.threads: backend}
            if plan.threads not in backends:
                backends[plan.threads] = create_backend(checkpoint, args.backend, threads=plan.threads)
            single = None
            if backend.concurrent_calls:  # a CPU backend: the single-thread loop is a meaningful baseline
                if 1 not in backends:
                    backends[1] = create_backend(checkpoint, args.backend, threads=1)
                single = backends[1]
            pipeline_backend = backends[plan.threads]
            videos = {
                name: generated_video(args.frames, width=SIZES[name].width, height=SIZES[name].height, generator=args.generator)
                for name in sizes
            }
        except (SetupError, ValueError, RuntimeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        described = backend.describe()
        print(
            f"naive: {described}; pipeline: {pipeline_backend.describe()}, {plan.describe()}; "
            f"{os.cpu_count()} CPUs; OpenCV threads {cv2.getNumThreads()}; "
            f"load average {os.getloadavg()[0]:.2f} (other processes share these CPUs)"
        )
        warm = np.zeros((*backend.input_size, 3), np.uint8)
        for candidate in backends.values():
            for _ in range(5):
                candidate.predict(warm)
        encoding = (args.codec, args.x264_preset)
        encoder = resolve_codec(args.codec, workdir / "x.mp4")
        print(f"encoder: {encoder} (--codec {args.codec}), x264 preset {args.x264_preset or DEFAULT_X264_PRESET}")
        results = []
        for name, video in videos.items():
            load = os.getloadavg()[0]
            row: dict[str, Any] = {"video": name, "path": str(video), "size": list(SIZES[name].wh)}  # JSON: width, height
            if single is not None:
                row["naive-1t"] = naive_loop(video, single, workdir / f"naive-1t-{name}.mp4", *encoding)
            row["naive"] = naive_loop(video, backend, workdir / f"naive-{name}.mp4", *encoding)
            if workers > 1:
                row["threaded-1w"] = threaded_pipeline(video, backend, workdir / f"one-{name}.mp4", args.queue_size, 1, *encoding)
            row["threaded"] = threaded_pipeline(
                video, pipeline_backend, workdir / f"threaded-{name}.mp4", args.queue_size, workers, *encoding
            )
            row["speedup_baseline"] = "naive-1t" if "naive-1t" in row else "naive"
            row["speedup"] = row["threaded"]["throughput_fps"] / row[row["speedup_baseline"]]["throughput_fps"]
            row["speedup_vs_naive"] = row["threaded"]["throughput_fps"] / row["naive"]["throughput_fps"]
            row["load_average_before"] = load
            results.append(row)
        for candidate in backends.values():
            candidate.close()
    print(format_table(results))
    for row in results:
        print(f"{row['video']} threaded, per stage (ms):\n{format_stages(row['threaded']['stages_ms'])}")
    checks = []
    for row in results:
        if row["video"] == "720p":
            checks.append(f"720p threaded {row['threaded']['throughput_fps']:.1f} fps (target ≥ {TARGET_FPS_720P:g})")
        checks.append(
            f"{row['video']} speed-up {row['speedup']:.2f}x over {row['speedup_baseline']} (target ≥ {TARGET_SPEEDUP:g}x), "
            f"{row['speedup_vs_naive']:.2f}x over naive ({described})"
        )
    print("; ".join(checks))
    if args.json is not None:
        report = {
            "backend": described,
            "pipeline_backend": pipeline_backend.describe(),
            "inference_plan": {"workers": workers, "threads": plan.threads},
            "checkpoint": str(checkpoint),
            "cpus": os.cpu_count(),
            "machine": platform.platform(),
            "cpu_identity": cpu_identity(),
            "opencv": cv2.__version__,
            "frames_per_video": args.frames,
            "queue_size": args.queue_size,
            "codec": args.codec,
            "x264_preset": args.x264_preset or DEFAULT_X264_PRESET,
            "results": results,
            "targets": {"fps_720p": TARGET_FPS_720P, "speedup": TARGET_SPEEDUP},
        }
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
