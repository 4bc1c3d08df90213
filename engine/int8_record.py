"""The parity record an INT8 file carries, its build-time speed check, and the verdict ``auto`` reads.

Parity: INT8 vs FP32 masks (``sigmoid(logits) >= threshold`` at the model input size) on each
validation root, pooled IoU over its frames. Speed: median latency of the FP32 and the INT8 graph
on one generated frame, interleaved rounds, on the machine that builds the file (the cache is
local to it). ``auto`` uses INT8 only when every root reaches :data:`MIN_IOU` **and** INT8 was
measured at least :data:`MIN_SPEEDUP` times faster on this CPU with the same thread count.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.onnx_meta import INPUT_NAME, OUTPUT_NAME
from engine.parity import logit_threshold, mask_iou
from models.cpu import cpu_identity, physical_cores

MIN_IOU = 0.98  #: INT8-vs-FP32 mask IoU every validation root must reach
MIN_SPEEDUP = 1.05  #: INT8 must be measured this many times faster than FP32 for ``auto`` to pick it
BATCH = 4


def cpu_session(model: str | bytes, threads: int) -> Any:
    """An ONNX Runtime CPU session with the backend's settings (all graph optimisations, no spinning)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def run_logits(session: Any, frames: np.ndarray) -> np.ndarray:
    """``float32`` logits of ``frames`` (``uint8`` N×H×W×3), in batches of :data:`BATCH`."""
    out = [session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(frames[i : i + BATCH])})[0]
           for i in range(0, len(frames), BATCH)]
    return np.concatenate(out).astype(np.float32)


def root_parity(fp32: Any, int8: Any, frames: np.ndarray, threshold: float) -> dict[str, Any]:
    """Pooled mask IoU, worst frame IoU and max |Δlogit| of INT8 against FP32 on ``frames``."""
    cut = logit_threshold(threshold)
    reference, quantized = run_logits(fp32, frames), run_logits(int8, frames)
    a, b = reference >= cut, quantized >= cut
    per_frame = [mask_iou(a[i], b[i]) for i in range(len(frames))]
    return {"frames": len(frames), "iou": round(mask_iou(a, b), 5), "min_frame_iou": round(min(per_frame), 5),
            "max_abs_logit_diff": round(float(np.abs(reference - quantized).max()), 4),
            "fp32_positive_fraction": round(float(a.mean()), 4)}


def parity_record(fp32_path: Path, int8_bytes: bytes, threshold: float, roots: dict[str, tuple[np.ndarray, str]],
                  min_iou: float = MIN_IOU) -> dict[str, Any]:
    """The parity part of the record: per root (name → (frames, description)) IoU and the pass flag."""
    threads = physical_cores()
    fp32, int8 = cpu_session(str(fp32_path), threads), cpu_session(int8_bytes, threads)
    results = {}
    for name, (frames, description) in roots.items():
        if len(frames):
            results[name] = {**root_parity(fp32, int8, frames, threshold), "source": description}
    passed = bool(results) and all(r["iou"] >= min_iou for r in results.values())
    return {"metric": "INT8 vs FP32 mask IoU at the model input size, pooled per root",
            "threshold": threshold, "min_iou": min_iou, "passed": passed, "roots": results}


def measure_speed(fp32_path: Path, int8_bytes: bytes, frame: np.ndarray, rounds: int, calls: int = 5,
                  threads: int | None = None) -> dict[str, Any]:
    """Median per-call latency (ms) of FP32 and INT8 on one frame: ``rounds`` interleaved rounds of ``calls``."""
    threads = threads or physical_cores()
    sessions = {"fp32": cpu_session(str(fp32_path), threads), "int8": cpu_session(int8_bytes, threads)}
    batch = {INPUT_NAME: np.ascontiguousarray(frame[None])}
    for session in sessions.values():
        for _ in range(3):
            session.run([OUTPUT_NAME], batch)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for index in range(rounds):
        for name in (list(sessions) if index % 2 == 0 else list(sessions)[::-1]):
            for _ in range(calls):
                tick = time.perf_counter()
                sessions[name].run([OUTPUT_NAME], batch)
                times[name].append((time.perf_counter() - tick) * 1e3)
    fp32_ms, int8_ms = statistics.median(times["fp32"]), statistics.median(times["int8"])
    return {"fp32_ms": round(fp32_ms, 3), "int8_ms": round(int8_ms, 3), "speedup": round(fp32_ms / int8_ms, 3),
            "threads": threads, "rounds": rounds, "calls_per_round": calls, "cpu": cpu_identity(),
            "load_avg_1m": round(os.getloadavg()[0], 2), "size": list(frame.shape[:2])}


def parity_problem(record: dict[str, Any], min_iou: float = MIN_IOU) -> str | None:
    """Why the record's parity fails (no root, or a root below ``min_iou``), or ``None`` when it passes."""
    roots = record.get("parity", {}).get("roots", {})
    if not roots:
        return "the INT8 parity record holds no validation root"
    failing = [f"{name} {r['iou']:.4f}" for name, r in roots.items() if r["iou"] < min_iou]
    return f"INT8 vs FP32 mask IoU below {min_iou}: {', '.join(failing)}" if failing else None


def int8_verdict(record: dict[str, Any], min_iou: float = MIN_IOU, min_speedup: float = MIN_SPEEDUP) -> tuple[bool, str]:
    """Whether ``auto`` may use this INT8 file, and why (one line)."""
    problem = parity_problem(record, min_iou)
    if problem:
        return False, problem
    roots = record["parity"]["roots"]
    agreement = ", ".join(f"{name} {r['iou']:.4f}" for name, r in roots.items())
    speed = record.get("speed")
    if not speed:
        return False, f"INT8 parity passes ({agreement}) but its speed was not measured"
    if speed.get("cpu") != cpu_identity() or speed.get("threads") != physical_cores():
        return False, (f"INT8 speed was measured on another CPU or thread count ({speed.get('cpu')}, "
                       f"{speed.get('threads')} threads), not this one")
    if speed["speedup"] < min_speedup:
        return False, (f"INT8 is not faster here: {speed['int8_ms']:.2f} ms against FP32 {speed['fp32_ms']:.2f} ms "
                       f"(x{speed['speedup']:.2f}, needs x{min_speedup:.2f}); parity {agreement}")
    return True, (f"INT8 parity {agreement} (>= {min_iou}) and {speed['int8_ms']:.2f} ms against FP32 "
                  f"{speed['fp32_ms']:.2f} ms (x{speed['speedup']:.2f})")
