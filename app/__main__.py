"""``python -m app``: segment instruments live, on a window or into files.

With no arguments: the demo video (generated once and cached) through the shipped model on the best
backend; a window when a display is available, else ``out/overlay.mp4`` and the figures printed.

Exit codes: 0 finished (end of stream, q/Esc, Ctrl-C or SIGTERM: outputs finalised), 1 a pipeline stage
failed, 2 bad input found before start (missing file, unopenable camera, bad URL, unwritable or clashing
path, bad option, bad model), 3 a live source lost for good after its --reconnect-attempts, 130/143
Ctrl-C/SIGTERM during start-up (nothing written).
"""

from __future__ import annotations

if __name__ == "__main__":  # before the heavy imports (torch): Ctrl-C there is one line, not a traceback
    from app.startup import install_startup_handlers

    install_startup_handlers()

import argparse
import logging
import math
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2

from app.core.inference_plan import plan_inference
from app.core.overlay import OverlayStyle, parse_color
from app.core.stats import PeriodicWriter, StatsRecorder, format_accounting, frame_accounting
from app.display import KEYS_HELP, Display, display_available
from app.errors import SetupError
from app.outputs.encoders import CODEC_CHOICES
from app.outputs.paths import check_clashes, check_output_file
from app.outputs.recording import partial_path
from app.outputs.writers import MaskWriter, VideoOutput
from app.pipeline import Pipeline, PipelineConfig
from app.redact import install_log_redaction, redact, redact_tree
from app.sources.source import CaptureOptions, FrameSource, open_source
from app.startup import StartupInterrupted, end_startup, raise_on_signal
from engine.backends import BACKEND_NAMES, BackendUnavailable, InferenceBackend, create_backend
from engine.backends.factory import PRECISION_CHOICES, backend_for_precision
from models.checkpoint import DEFAULT_CHECKPOINT, CheckpointError

LOG = logging.getLogger("app")
DEFAULT_OUTPUT = Path("out/overlay.mp4")
#: Exit code when a live source is lost for good after its reconnect attempts.
EXIT_SOURCE_LOST = 3


def _fraction(low: float, high: float, high_open: bool = False) -> Callable[[str], float]:
    expected = f"expected a number in [{low}, {high}{')' if high_open else ']'}"

    def fraction(text: str) -> float:
        value = _number(text, expected)
        if not low <= value <= high or (high_open and value == high):
            raise argparse.ArgumentTypeError(f"{text}: {expected}")
        return value

    return fraction


def _open_fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a probability threshold)."""
    expected = "expected a number between 0 and 1, both excluded"
    value = _number(text, expected)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text}: {expected}")
    return value


def _number(text: str, expected: str) -> float:
    """``float(text)``, finite, or an argparse error in our words."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number ({expected})") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text}: {expected}")
    return value


def _integer(text: str, expected: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ({expected})") from None


def _positive_int(text: str) -> int:
    value = _integer(text, "expected a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = _integer(text, "expected 0 (forever) or a positive integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: expected 0 (forever) or a positive integer")
    return value


def _fps(text: str) -> float:
    expected = "expected frames per second, a number above 0 and at most 1000"
    value = _number(text, expected)
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"{text}: {expected}")
    return value


def _color(text: str) -> tuple[int, int, int]:
    try:
        return parse_color(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _fourcc(text: str) -> str:
    if len(text) != 4:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a 4-character code such as MJPG or YUYV")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="Real-time surgical instrument segmentation overlay.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            f"keys (window): {KEYS_HELP}\n(the view keys also apply to the recorded --output)\n\n"
            "sources: camera index (0), /dev/videoN, video file, image folder (numeric order),\n"
            "rtsp:// http(s):// rtmp:// udp:// URL, or a GStreamer pipeline (needs OpenCV with GStreamer).\n"
            "Files are lossless and ordered unless --realtime (the default with a window).\n\n"
            f"exit codes: 0 done or stopped (q, Ctrl-C, SIGTERM), 1 a stage failed, 2 bad input or option,\n"
            f"{EXIT_SOURCE_LOST} a live source lost for good (after --reconnect-attempts), "
            "130/143 Ctrl-C/SIGTERM during start-up."
        ),
    )
    src = parser.add_argument_group("input")
    src.add_argument("--source", help="what to segment (default: the cached demo video, generated on first run)")
    src.add_argument("--width", type=_positive_int, help="camera frame width")
    src.add_argument("--height", type=_positive_int, help="camera frame height")
    src.add_argument("--fps", type=_fps, help="camera fps (and the fps of an image folder; default 25)")
    src.add_argument("--fourcc", type=_fourcc, help="camera pixel format, e.g. MJPG")
    src.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pace a file at its fps and drop stale frames like a live feed (default: on with a window)",
    )
    src.add_argument("--max-frames", type=_positive_int, help="stop after this many frames")
    src.add_argument(
        "--reconnect-attempts",
        type=_non_negative_int,
        default=0,
        help=f"live sources: attempts per outage (0 = forever); then exit {EXIT_SOURCE_LOST}",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="model checkpoint (.pt) or exported .onnx"
    )
    model.add_argument("--backend", choices=BACKEND_NAMES, default="auto", help="inference backend (default: auto)")
    model.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="auto: fp16 on GPUs; on ONNX Runtime CPU int8 where a cached INT8 build passes its parity record and "
        "was measured faster, else fp32 (the reason logged); int8: ONNX Runtime CPU, calibrated once and cached",
    )
    model.add_argument(
        "--threads",
        type=_positive_int,
        help="CPU threads per inference call (default: the cores split between the inference workers)",
    )
    model.add_argument(
        "--inference-workers",
        type=_positive_int,
        help="concurrent inference threads (default on CPU backends: 2 for files, 1 with all the cores for live "
        "sources and --realtime; 1 on GPU backends)",
    )
    look = parser.add_argument_group("overlay")
    look.add_argument("--color", type=_color, default=(0, 255, 0), help="mask colour: name, #RRGGBB or R,G,B")
    look.add_argument("--alpha", type=_fraction(0.0, 1.0), default=0.45, help="mask opacity 0..1 (default 0.45)")
    look.add_argument("--no-contours", action="store_true", help="start without the contour outline")
    look.add_argument(
        "--smooth", type=_fraction(0.0, 1.0, high_open=True), default=0.0, help="temporal smoothing 0..1 (0 = off)"
    )
    look.add_argument(
        "--threshold",
        type=_open_fraction,
        help="instrument probability threshold, between 0 and 1 (default: the model's own, picked on its validation "
        "frames); higher marks less tissue as instrument, lower misses fewer thin or dark parts",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--window", choices=("auto", "on", "off"), default="auto", help="show a window (auto: when a display exists)"
    )
    out.add_argument(
        "--output",
        type=Path,
        help=f"overlay video (.mp4/.avi); default {DEFAULT_OUTPUT} without window; recorded as NAME.partial.mp4, "
        "which plays after a crash, until finalised",
    )
    out.add_argument(
        "--codec",
        choices=CODEC_CHOICES,
        default="auto",
        help="--output encoder: auto = H.264 (h264_nvenc where the GPU has it, else libx264; .avi: MJPG), "
        "h264 = libx264, h264_nvenc, mp4v = OpenCV MPEG-4 Part 2 (default auto)",
    )
    out.add_argument(
        "--save-masks", type=Path, metavar="DIR", help="one 0/255 PNG per frame, named by frame index (an empty or new folder)"
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="--save-masks may name a folder of an earlier run's masks: they are deleted at the first new mask",
    )
    out.add_argument("--stats", type=Path, metavar="FILE.json", help="timestamps, summary, skipped frames by reason (JSON)")
    out.add_argument("--burn-hud", action="store_true", help="draw the HUD into the output video too")
    out.add_argument("--screenshot-dir", type=Path, default=Path("out/screenshots"), help="where 's' saves PNGs")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def load_backend(
    checkpoint: Path, backend: str, threads: int | None = None, precision: str = "auto"
) -> InferenceBackend:
    """``create_backend`` with its failures turned into one-line :class:`SetupError` messages."""
    if not checkpoint.is_file():
        hint = " (the shipped model is not trained yet; pass --checkpoint)" if checkpoint == DEFAULT_CHECKPOINT else ""
        raise SetupError(f"--checkpoint {checkpoint}: no such file (expected a model checkpoint .pt or .onnx){hint}")
    try:
        return create_backend(checkpoint, backend, precision=precision, threads=threads)
    except (CheckpointError, BackendUnavailable, ValueError) as error:
        raise SetupError(f"--checkpoint {checkpoint} --backend {backend}: {error}") from error


def format_summary(summary: dict[str, Any]) -> str:
    """The figures printed at the end of a run."""
    latency = summary["latency_ms"]

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    fps = summary["throughput_fps"]
    lines = [
        f"backend     {summary['backend']}, {summary['inference_workers']} inference worker(s)",
        f"source      {summary['source']} ({summary['frame_size'][0]}x{summary['frame_size'][1]}, {summary['mode']})",
        f"frames      {summary['frames']} rendered, {summary['captured']} captured, "
        f"{summary['dropped']} dropped, {summary['corrupt']} corrupt",
        f"throughput  {'n/a' if fps is None else f'{fps:.1f}'} frames/s",
        f"latency     p50 {ms(latency['p50'])} ms  p95 {ms(latency['p95'])} ms  p99 {ms(latency['p99'])} ms",
        f"stopped     {summary['stop_reason']}",
    ]
    return "\n".join(lines)


def _install_signal_handlers(pipeline: Pipeline) -> dict[int, Any]:
    def on_signal(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if pipeline.stopping:
            pipeline.abort(name)  # second signal: do not wait for the queues to drain
        else:
            print(f"\n{name}: stopping, finalising outputs ...", file=sys.stderr, flush=True)
            pipeline.request_stop(name)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    return previous


def _local_source(text: str) -> Path | None:
    """The file or folder ``--source`` names, or ``None`` for a camera, URL or pipeline."""
    text = text.strip()
    if not text or text.isdigit() or "!" in text or text.startswith("/dev/video"):
        return None
    if text.startswith("file://"):
        return Path(text[len("file://") :]).expanduser()
    if "://" in text:
        return None
    return Path(text).expanduser()


def check_outputs(args: argparse.Namespace, output: Path | None, show: bool) -> None:
    """Every output path writable and clashing with neither the source nor each other; nothing created."""
    files = {option: path for option, path in (("--output", output), ("--stats", args.stats)) if path is not None}
    for option, path in files.items():
        check_output_file(path, option)
    if output is not None:  # the crash-safe recording in progress (app/outputs/recording.py)
        files["--output's partial recording"] = partial_path(output)
    folders = {"--save-masks": args.save_masks} if args.save_masks is not None else {}
    if show:
        folders["--screenshot-dir"] = args.screenshot_dir
    check_clashes(_local_source(args.source), files, folders)


def build_summary(pipeline: Pipeline, source: FrameSource, video: VideoOutput | None, complete: bool) -> dict[str, Any]:
    """The stats JSON summary (redacted): at the end (``complete``), or a snapshot while the run goes on."""
    summary = pipeline.summary()
    summary["complete"] = complete
    if not complete:
        summary["stop_reason"] = pipeline.stop_reason or "running"
    summary["frames_accounting"] = frame_accounting(
        captured=pipeline.captured,
        rendered=summary["frames"],
        stale=pipeline.to_infer.dropped,
        late=pipeline.capture.pacing_drops,
        skipped=source.skipped,
        resized=source.resized,
        examples=source.examples,
        header_frames=None if source.live else source.frame_count,
    )
    summary["codec"] = video.codec if video is not None else None
    summary["recovered_recording"] = str(video.recovered) if video is not None and video.recovered else None
    return redact_tree(summary)


def run(args: argparse.Namespace) -> int:
    """Set everything up (raising :class:`SetupError` before any thread starts or file exists), then run."""
    if args.window == "on" and not display_available():
        raise SetupError("--window on: no display (DISPLAY/WAYLAND_DISPLAY unset or no window could be opened)")
    show = args.window == "on" or (args.window == "auto" and display_available())
    output = args.output if args.output is not None or show else DEFAULT_OUTPUT
    if args.source is None:
        from app.demo import demo_video

        args.source = str(demo_video())
    check_outputs(args, output, show)
    with ExitStack() as stack:
        options = CaptureOptions(width=args.width, height=args.height, fps=args.fps, fourcc=args.fourcc)
        source: FrameSource = open_source(args.source, options)
        stack.callback(source.close)
        realtime = args.realtime if args.realtime is not None else show
        try:  # a live source (or a realtime file) is planned latency first
            plan = plan_inference(
                backend_for_precision(args.backend, args.precision), args.inference_workers, args.threads,
                live=source.live or bool(realtime),
            )
        except ValueError as error:
            raise SetupError(str(error)) from error
        backend = load_backend(args.checkpoint, args.backend, plan.threads, args.precision)
        stack.callback(backend.close)
        try:
            workers = plan.workers_for(backend)
        except ValueError as error:
            raise SetupError(str(error)) from error
        masks = MaskWriter(args.save_masks, overwrite=args.overwrite) if args.save_masks is not None else None
        video = VideoOutput(output, source.fps, source.frame_size, codec=args.codec) if output is not None else None
        if video is not None:
            stack.callback(video.close)
        config = PipelineConfig(
            realtime=bool(realtime) and not source.live,
            smooth=args.smooth,
            threshold=args.threshold,
            style=OverlayStyle(color=args.color, alpha=args.alpha, contours=not args.no_contours),
            max_frames=args.max_frames,
            show=show,
            burn_hud=args.burn_hud,
            reconnect_attempts=args.reconnect_attempts,
            inference_workers=workers,
        )
        stats = StatsRecorder(keep_frames=args.stats is not None)
        pipeline = Pipeline(source, backend, config, video=video, masks=masks, stats=stats)
        codec = f" ({video.codec})" if video is not None else ""
        print(
            f"{source.description} → {backend.describe()}, {workers} inference worker(s)"
            + (f", threshold {args.threshold:g} (the model's: {backend.threshold:g})" if args.threshold is not None else "")
            + (f" → {output}{codec}" if output else ""),
            flush=True,
        )
        display = Display(pipeline.display, pipeline.view, pipeline, args.screenshot_dir) if pipeline.display else None
        end_startup()
        previous = _install_signal_handlers(pipeline)
        snapshots = None
        if args.stats is not None:  # rewritten every few seconds: a crash keeps the figures up to then
            snapshots = PeriodicWriter(lambda: stats.write_json(args.stats, build_summary(pipeline, source, video, False)))
            stack.callback(snapshots.stop)
        try:
            pipeline.start()
            if snapshots is not None:
                snapshots.start()
            if display is not None:
                display.loop()
            while not pipeline.wait(0.2):
                pass
        finally:
            pipeline.join()
            if display is not None:
                display.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if snapshots is not None:
            snapshots.stop()
        summary = build_summary(pipeline, source, video, complete=True)
        if args.stats is not None:
            stats.write_json(args.stats, summary)
        print(format_summary(summary), flush=True)
        accounted = format_accounting(summary["frames_accounting"])
        if accounted:
            print(f"skipped     {accounted} (see the log, and frames_accounting with --stats)", flush=True)
        if video is not None:
            written = f"{video.path} ({video.frames_written} frames, {video.codec})" if video.frames_written else "none (no frame)"
            print(f"output      {written}", flush=True)
        if masks is not None:
            print(f"masks       {masks.directory} ({masks.count} PNGs)", flush=True)
        if pipeline.error is not None:
            print(f"error: {redact(str(pipeline.error))}", file=sys.stderr, flush=True)
            return 1
        if pipeline.stop_reason == "source lost":
            print(
                f"error: {source.description}: lost for good after {args.reconnect_attempts} reconnect attempt(s) "
                f"(exit {EXIT_SOURCE_LOST})",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_SOURCE_LOST
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    install_log_redaction()
    # OpenCV's own warnings (e.g. probing a missing camera) are noise next to our one-line errors.
    cv2.utils.logging.setLogLevel(
        cv2.utils.logging.LOG_LEVEL_WARNING if args.verbose else cv2.utils.logging.LOG_LEVEL_ERROR
    )
    raise_on_signal()
    try:
        return run(args)
    except SetupError as error:
        print(f"error: {redact(str(error))}", file=sys.stderr, flush=True)
        return 2
    except StartupInterrupted as interrupted:
        print(interrupted, file=sys.stderr, flush=True)
        return interrupted.code
    except KeyboardInterrupt:
        print("interrupted during start-up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
