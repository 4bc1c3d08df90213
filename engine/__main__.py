"""``python -m engine export|build|bench|verify``: ONNX export, TensorRT build, benchmark, parity check."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from engine.backends.base import BackendUnavailable
from engine.backends.factory import CONCRETE_BACKENDS, PRECISION_CHOICES, available_backends, construct
from engine.bench import DEFAULT_SIZES, environment, format_bench, run_bench
from engine.export import EXPORTERS, export_onnx
from engine.int8_data import ACTIVATIONS, VARIANTS, Int8Recipe
from engine.model_source import load_model_source
from engine.onnx_meta import read_onnx_meta
from engine.parity import format_parity, verify
from engine.specs import parse_specs
from engine.synthetic import random_model
from engine.trt_cache import MAX_BATCH
from models.atomic_io import atomic_write_bytes, atomic_write_text
from models.checkpoint import DEFAULT_CHECKPOINT, save_checkpoint
from models.sizes import parse_sizes
from models.unet import preset


def _export_int8(args: argparse.Namespace) -> int:
    from engine import int8
    from engine.int8_record import int8_verdict

    if args.fixed_batch or args.exporter != "torchscript" or args.opset != 17:
        print("error: --precision int8 quantizes the default export (torchscript, opset 17, dynamic batch); "
              "drop --fixed-batch/--exporter/--opset", file=sys.stderr)
        return 2
    chosen = {"variant": args.int8_variant, "activations": args.int8_activations}
    recipe = replace(int8.DEFAULT_RECIPE, **{key: value for key, value in chosen.items() if value is not None})
    path, meta, info = int8.ensure_int8(args.checkpoint, recipe)
    atomic_write_bytes(args.out, path.read_bytes())
    record = info["int8"]
    calibration = record["calibration"]
    print(f"wrote {args.out}: int8 ({record['recipe']['variant']}, activations {record['recipe']['activations']}), "
          f"input frames uint8 Nx{meta.input_height}x{meta.input_width}x3 BGR, model hash {info['model_hash']} "
          f"(cached as {path})")
    print(f"calibration: {calibration['generated']['frames']} generated frames; real frames: "
          f"{calibration['real']['frames']} ({calibration['real']['reason']})")
    for name, root in record["parity"]["roots"].items():
        print(f"parity {name}: INT8 vs FP32 mask IoU {root['iou']:.4f} over {root['frames']} frames ({root['source']})")
    if "speed" in record:
        speed = record["speed"]
        print(f"speed at build: fp32 {speed['fp32_ms']:.2f} ms, int8 {speed['int8_ms']:.2f} ms "
              f"({speed['threads']} threads, load {speed['load_avg_1m']})")
    usable, why = int8_verdict(record)
    print(f"auto would use {'int8' if usable else 'fp32'}: {why}")
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.precision == "int8":
        return _export_int8(args)
    if args.exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        print("error: --exporter dynamo needs the onnxscript package (pip install onnxscript, "
              "or pip install -r requirements.txt); --exporter torchscript works without it", file=sys.stderr)
        return 2
    model, meta = load_model_source(args.checkpoint)
    path = export_onnx(model, meta, args.out, precision=args.precision, opset=args.opset,
                       dynamic_batch=not args.fixed_batch, exporter=args.exporter)
    _, info = read_onnx_meta(path)
    print(f"wrote {path}: {info['precision']}, input frames uint8 "
          f"{'N' if info['dynamic_batch'] else 1}x{meta.input_height}x{meta.input_width}x3 BGR, "
          f"model hash {info['model_hash']}, {info['exporter']}, opset {info['opset']}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from engine.backends.tensorrt_backend import TensorRTBackend

    try:
        backend = construct("tensorrt", lambda: TensorRTBackend(args.checkpoint, precision=args.precision))
    except BackendUnavailable as error:
        print(f"error: cannot build a TensorRT engine: {error}", file=sys.stderr)
        return 2
    print(f"{backend.describe()}: engine cached in {backend.cache_dir}")
    backend.close()
    return 0


def _verify(args: argparse.Namespace) -> int:
    specs = parse_specs(args.backends, [*CONCRETE_BACKENDS, "onnxruntime-cpu/fp16", "torch-cuda+graphs"])
    with tempfile.TemporaryDirectory(prefix="surgseg-verify-") as tmp:
        model_path = args.checkpoint
        if model_path is None:
            model, meta = random_model(preset(args.model), (args.height, args.width), seed=args.seed)
            model_path = save_checkpoint(Path(tmp) / "random.pt", model, meta)
            print(f"no --checkpoint: random-weight '{args.model}' model, calibrated for non-trivial masks")
        rows = verify(model_path, specs, frames=args.frames, seed=args.seed)
    print(format_parity(rows))
    if args.json:
        atomic_write_text(args.json, json.dumps([r.to_dict() for r in rows], indent=2))
    failed = [r.backend for r in rows if r.status == "FAIL"]
    ran = [r for r in rows if r.status == "ok"]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    if not ran:
        print("no backend could run", file=sys.stderr)
        return 1
    print(f"parity ok for {len(ran)} backend(s); skipped {sum(r.status == 'skipped' for r in rows)}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    specs = parse_specs(args.backends, list(CONCRETE_BACKENDS))
    specs = [replace(spec, precision=args.precision) if spec.precision == "auto" else spec for spec in specs]
    sizes = parse_sizes(args.sizes) if args.sizes else list(DEFAULT_SIZES)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    rows = run_bench(specs, models, sizes, iterations=args.iterations, budget_s=args.budget,
                     checkpoint=args.checkpoint)
    print()
    print(format_bench(rows))
    if args.json:
        atomic_write_text(args.json, json.dumps({"environment": environment(), "rows": [r.to_dict() for r in rows]},
                                                indent=2))
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="export a checkpoint to ONNX (uint8 frames in, float32 logits out)")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                   help="int8: static QDQ quantization for ONNX Runtime CPU, calibrated on training frames, "
                        "with its INT8-vs-FP32 parity record in the metadata (engine/int8.py)")
    p.add_argument("--int8-variant", choices=VARIANTS,
                   help=f"what is quantized: conv-lowres = Conv nodes at 1/4 of the input size or less, "
                        f"conv = every Conv, conv-noends = every Conv but the first and last, all = every op "
                        f"(default {Int8Recipe.variant}, the variant auto and --precision int8 use)")
    p.add_argument("--int8-activations", choices=ACTIVATIONS, help=f"default {Int8Recipe.activations}")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--exporter", choices=EXPORTERS, default="torchscript")
    p.add_argument("--fixed-batch", action="store_true", help="batch axis fixed to 1 instead of dynamic")
    p.set_defaults(func=_export)

    p = sub.add_parser("build", help=f"build the TensorRT engine into the cache (batch profile 1..{MAX_BATCH}, "
                                     "the key the app looks up)")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help=".pt checkpoint or exported .onnx")
    p.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    p.set_defaults(func=_build)

    p = sub.add_parser("verify", help="parity of every available backend against PyTorch CPU FP32")
    p.add_argument("--checkpoint", type=Path, default=None, help="default: a random-weight calibrated model")
    p.add_argument("--model", default="fast", help="preset for the random model")
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backends", help="comma-separated specs name[/fp32|fp16][+graphs]; default: all")
    p.add_argument("--json", type=Path)
    p.set_defaults(func=_verify)

    p = sub.add_parser("bench", help="latency per backend, model and size")
    p.add_argument("--checkpoint", type=Path, default=None, help="default: presets with random weights")
    p.add_argument("--models", default="fast,classic")
    p.add_argument("--sizes", help="comma-separated HxW; default 256x320,512x640,538x701")
    p.add_argument("--backends", help="comma-separated specs; default: all available")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help="precision of the specs that name none (a backend that does not run it is skipped)")
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--budget", type=float, default=2.0, help="seconds of timed calls per combination (min 3 calls)")
    p.add_argument("--json", type=Path)
    p.set_defaults(func=_bench)

    p = sub.add_parser("backends", help="list backends and why unavailable ones are")
    p.set_defaults(func=lambda _args: print("\n".join(f"{k:22} {v or 'available'}"
                                                       for k, v in available_backends().items())) or 0)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return int(args.func(args))
    except (ValueError, BackendUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
