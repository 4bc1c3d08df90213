"""Measure the INT8 variants of a checkpoint against its FP32 export (docs/benchmarks/int8-cpu.json).

``python -m tools.int8_report speed --checkpoint CK --json OUT``: median latency of FP32 and every INT8
variant, batch 1, interleaved rounds (the order reversed every other round), the load average after
each round. ``python -m tools.int8_report accuracy --checkpoint CK --json OUT``: IoU against the ground
truth per source of ``../shared/realdev`` (evaluation only: scored after the default variant was chosen)
and of the ROBUST-MIS validation operations, scored like ``python -m training.evaluate``: the model at its
input size, probabilities upsampled bilinearly to the mask, thresholded, pixels pooled per source.
Both read the INT8 files from the cache; build them first with
``python -m engine export --precision int8 --int8-variant V [--int8-activations A] --checkpoint CK --out F``.
Each command replaces its own section of the JSON and records its command line. (A tool, not a
package layer: it uses ``training`` for the data discovery and metrics that ``training.evaluate`` uses.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine import int8
from engine.bench import environment
from engine.int8_data import real_train_root
from engine.int8_record import cpu_session, run_logits
from engine.synthetic import draw_frames
from models.atomic_io import atomic_write_text
from models.checkpoint import DEFAULT_CHECKPOINT
from models.frame_model import resize_to_input
from training.datasets import discover, load_pair
from training.metrics import ConfusionCounts, confusion

REALDEV = Path(__file__).resolve().parents[2] / "shared" / "realdev"
VARIANTS = "conv-lowres,conv-lowres:quint8,conv,conv-noends,all"


def int8_models(checkpoint: Path, variants: str) -> tuple[dict[str, Path], dict[str, Any], Any]:
    """``{"fp32": path, "<variant>[:<activations>]": path}``, the INT8 records, and the model meta."""
    models: dict[str, Path] = {}
    records: dict[str, Any] = {}
    for spec in [v.strip() for v in variants.split(",") if v.strip()]:
        variant, _, activations = spec.partition(":")
        recipe = replace(int8.DEFAULT_RECIPE, variant=variant, activations=activations or "qint8")
        plan = int8.plan_int8(checkpoint, recipe)
        cached = int8.cached_int8(plan)
        if cached is None:
            raise ValueError(f"no cached INT8 build for {spec}: run python -m engine export --precision int8 "
                             f"--int8-variant {variant} --int8-activations {recipe.activations} "
                             f"--checkpoint {checkpoint} --out /tmp/{variant}.onnx first")
        models["fp32"] = plan.fp32_path
        models[spec] = cached[0]
        record = cached[2]["int8"]
        records[spec] = {"file": cached[0].name,
                         "build_command": f"python -m engine export --precision int8 --int8-variant {variant} "
                                          f"--int8-activations {recipe.activations} --checkpoint {checkpoint} --out F",
                         "parity": record["parity"], "speed_at_build": record.get("speed"),
                         "calibration": record["calibration"], "auto_verdict": int8.int8_verdict(record)[1]}
    return {"fp32": models.pop("fp32"), **models}, records, plan.meta


def sgemm_gflops() -> float:
    """A machine-state figure beside the latencies: numpy float32 1024² matmul GFLOP/s (best of 3)."""
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    best = float("inf")
    for _ in range(3):
        tick = time.perf_counter()
        for _ in range(5):
            a @ a
        best = min(best, time.perf_counter() - tick)
    return round(5 * 2 * 1024**3 / best / 1e9, 1)


def speed(models: dict[str, Path], size: tuple[int, int], rounds: int, calls: int, threads: int) -> dict[str, Any]:
    """Interleaved rounds of ``calls`` single-frame runs per model; medians and quartiles in ms."""
    gflops = sgemm_gflops()
    sessions = {name: cpu_session(str(path), threads) for name, path in models.items()}
    feed = {"frames": draw_frames(1, *size, seed=1)}
    for session in sessions.values():
        for _ in range(3):
            session.run(None, feed)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    loads = []
    for index in range(rounds):
        for name in (list(sessions) if index % 2 == 0 else list(sessions)[::-1]):
            for _ in range(calls):
                tick = time.perf_counter()
                sessions[name].run(None, feed)
                times[name].append((time.perf_counter() - tick) * 1e3)
        loads.append(round(os.getloadavg()[0], 2))
    fp32 = statistics.median(times["fp32"])
    rows = {name: {"median_ms": round(statistics.median(t), 2), "p25_ms": round(float(np.percentile(t, 25)), 2),
                   "p75_ms": round(float(np.percentile(t, 75)), 2), "n": len(t),
                   "speedup_vs_fp32": round(fp32 / statistics.median(t), 3)} for name, t in times.items()}
    return {"size": f"{size[0]}x{size[1]}", "batch": 1, "threads": threads, "rounds": rounds,
            "numpy_sgemm_gflops_before": gflops, "numpy_sgemm_gflops_after": sgemm_gflops(),
            "calls_per_round": calls, "load_avg_1m_after_each_round": loads, "rows": rows}


def profile(models: dict[str, Path], size: tuple[int, int], rounds: int, threads: int) -> dict[str, Any]:
    """ONNX Runtime's own per-node kernel times (median per node, interleaved rounds of 3 runs), summed per
    U-Net level (``inc``, ``downs.i``, ``ups.i``, ``head``; ``other``: the input wrapper and the layout
    transposes/reorders ONNX Runtime inserts), per model."""
    import onnxruntime as ort

    feed = {"frames": draw_frames(1, *size, seed=1)}
    with tempfile.TemporaryDirectory(prefix="surgseg-profile-") as tmp:
        sessions = {}
        for name, path in models.items():
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.enable_profiling, options.profile_file_prefix = True, str(Path(tmp) / name.replace(":", "-"))
            sessions[name] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for index in range(rounds):
            for name in (list(sessions) if index % 2 == 0 else list(sessions)[::-1]):
                for _ in range(3):
                    sessions[name].run(None, feed)
        result = {}
        for name, session in sessions.items():
            per_node: dict[str, list[float]] = {}
            for event in json.loads(Path(session.end_profiling()).read_text()):
                if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                    per_node.setdefault(event["name"], []).append(event["dur"] / 1e3)
            levels: dict[str, float] = {}
            for node, durations in per_node.items():
                match = re.search(r"/(inc|downs\.\d+|ups\.\d+|head)/", node)
                level = match.group(1) if match else "other"
                levels[level] = levels.get(level, 0.0) + statistics.median(durations)
            result[name] = {"nodes_total_ms": round(sum(levels.values()), 2),
                            "levels_ms": {k: round(v, 2) for k, v in sorted(levels.items())}}
    return {"threads": threads, "rounds": rounds, "load_avg_1m_after": round(os.getloadavg()[0], 2), "models": result}


def score(sessions: dict[str, Any], root: Path, sources: list[str] | None, meta: Any) -> dict[str, Any]:
    """IoU against the ground truth per source and overall, per model (``training.evaluate``'s scoring)."""
    index = discover(root, "folders")
    videos = [v for v in index.videos if sources is None or v.name in sources]
    result: dict[str, Any] = {}
    for name, session in sessions.items():
        overall, per_source = ConfusionCounts(), {}
        for video in videos:
            counts = ConfusionCounts()
            for pair in video.frames:
                image, mask = load_pair(pair)
                logits = run_logits(session, resize_to_input(image, meta.input_size)[None])
                prob = torch.sigmoid(torch.from_numpy(logits))
                full = F.interpolate(prob, size=mask.shape, mode="bilinear", align_corners=False)[0, 0]
                counts += confusion((full >= meta.threshold).numpy(), mask)
            per_source[video.name] = round(counts.metrics()["iou"], 4)
            overall += counts
        result[name] = {"sources": per_source, "overall": round(overall.metrics()["iou"], 4),
                        "frames": sum(len(v.frames) for v in videos)}
    return result


def _update(path: Path, section: str, value: Any, append: bool = False) -> None:
    """Replace ``section`` of the JSON report at ``path`` (``append``: add ``value`` to the list ``section``)."""
    report = json.loads(path.read_text()) if path.is_file() else {}
    if append:
        report.setdefault(section, []).append(value)
    else:
        report[section] = value
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m tools.int8_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("speed", "profile", "accuracy"))
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--variants", default=VARIANTS, help="variant[:activations], comma-separated")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        models, records, meta = int8_models(args.checkpoint, args.variants)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    command = "python -m tools.int8_report " + shlex.join(argv)
    if args.what == "speed":
        result = speed(models, meta.input_size, args.rounds, args.calls, args.threads)
        _update(args.json, "environment", environment())
        _update(args.json, "int8_records", records)
    elif args.what == "profile":
        result = profile(models, meta.input_size, args.rounds, args.threads)
    else:
        sessions = {name: cpu_session(str(path), args.threads) for name, path in models.items()}
        result = {"scoring": "model at its input size; probabilities upsampled bilinearly to the mask; threshold "
                             f"{meta.threshold}; pixels pooled per source (as python -m training.evaluate)",
                  "realdev": score(sessions, REALDEV, None, meta),
                  "robustmis_val": score(sessions, real_train_root(), ["prokto3", "rektum3"], meta)}
    if args.what == "speed":  # every run is kept: the machine is noisy, one run is not the answer
        _update(args.json, "speed_runs", {"command": command, **result}, append=True)
    else:
        _update(args.json, args.what, {"command": command, **result})
    print(json.dumps(result, indent=1)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
