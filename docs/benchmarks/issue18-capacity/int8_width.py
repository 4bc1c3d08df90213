"""Issue 18, item 3: does INT8 pay for a wider U-Net on this CPU? FP32 against INT8, widths 8, 12 and 16.

``PYTHONPATH=. python docs/benchmarks/issue18-capacity/int8_width.py --rounds 8 --json docs/benchmarks/issue18-capacity/int8-width.json``

For each base width of the ``fast`` preset (random weights: speed does not depend on them) at 256×320:
the FP32 export and the project's INT8 builds (``engine.int8``: ONNX Runtime static QDQ, per-channel
INT8 weights; variants ``conv`` = every Conv and ``all`` = every op the quantizer takes), calibrated on
16 generated scenes (no real frames: a random model has nothing to learn from them). Each file runs in
ONNX Runtime on **one thread** (the CPU plan of a live source gives the call two; one keeps the
comparison clean on a shared host), batch 1; the files are timed in interleaved rounds (order reversed
every other round), medians. The issue's premise was measured on an AVX-512 VNNI CPU (width 16: 47 ms
FP32 → 20 ms INT8 on 2 threads); this script says what holds on the machine it runs on.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from engine.bench import environment
from engine.int8 import ensure_int8
from engine.int8_data import Int8Recipe
from engine.onnx_cache import ensure_onnx
from engine.paths import CACHE_ENV
from engine.synthetic import draw_frames, random_model
from models.checkpoint import save_checkpoint
from models.unet import preset

WIDTHS = (8, 12, 16)
VARIANTS = ("conv", "all")
SIZE = (256, 320)


def _session(path: Path, frame: np.ndarray) -> Callable[[], object]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda: session.run(None, {name: frame})


def main() -> None:
    """Build, time, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    frame = draw_frames(1, *SIZE, seed=5)
    runs: dict[str, Callable[[], object]] = {}
    with tempfile.TemporaryDirectory(prefix="int8-width-") as tmp:
        os.environ[CACHE_ENV] = str(Path(tmp) / "cache")  # the throwaway models stay out of the user's cache
        no_real = Path(tmp) / "no-real-frames"
        no_real.mkdir()
        for width in WIDTHS:
            model, meta = random_model(replace(preset("fast"), base_width=width), SIZE, seed=0)
            checkpoint = Path(tmp) / f"fast-w{width}.pt"
            save_checkpoint(checkpoint, model, meta)
            for variant in VARIANTS:
                recipe = Int8Recipe(variant=variant, real_frames=0, val_real_frames=0, val_generated_scenes=2,
                                    speed_rounds=0)
                path, _, _ = ensure_int8(checkpoint, recipe, real_root=no_real)
                runs.setdefault(f"w{width}-fp32", _session(ensure_onnx(checkpoint, "fp32")[0], frame))
                runs[f"w{width}-int8-{variant}"] = _session(path, frame)
            print(f"built width {width}", flush=True)
        times: dict[str, list[float]] = {key: [] for key in runs}
        keys = list(runs)
        for round_index in range(args.rounds):
            for key in keys if round_index % 2 == 0 else keys[::-1]:
                runs[key]()  # warm, then time the second call
                start = time.perf_counter()
                runs[key]()
                times[key].append((time.perf_counter() - start) * 1e3)
    medians = {key: round(float(np.median(values)), 1) for key, values in times.items()}
    rows = []
    for width in WIDTHS:
        fp32 = medians[f"w{width}-fp32"]
        row = {"width": width, "fp32_ms": fp32}
        for variant in VARIANTS:
            row[f"int8_{variant}_ms"] = medians[f"w{width}-int8-{variant}"]
            row[f"int8_{variant}_speedup"] = round(fp32 / medians[f"w{width}-int8-{variant}"], 2)
        rows.append(row)
        print(row)
    report = {"command": "PYTHONPATH=. python docs/benchmarks/issue18-capacity/int8_width.py "
                         f"--rounds {args.rounds}", "threads": 1, "rounds": args.rounds, "rows": rows,
              "load_average_after": round(os.getloadavg()[0], 2), "environment": environment()}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
