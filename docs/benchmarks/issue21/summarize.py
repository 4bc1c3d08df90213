"""Medians of the issue-21 live bench runs in this folder, as markdown tables.

``python docs/benchmarks/issue21/summarize.py``: one row per variant (before/after × size × recording,
and the scheduling variants), the median over its rounds of frames/s, dropped, capture → overlay
p50/p95/p99 and each stage's p50/p99, with the load averages seen before the runs and the range of
``probe.py``'s figures (``probes.txt``: pure-Python loop ms / memory-bound step ms, lower is a faster host).
"""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
STAGES = ("capture", "preprocess", "inference", "postprocess", "compose", "encode")


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _rows() -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(HERE.glob("*.json")):
        variant = re.sub(r"-r\d+$", "", path.stem)
        if variant != "stages-ab":
            groups[variant].append(json.loads(path.read_text()))
    return groups


def _probes() -> dict[str, list[tuple[float, float]]]:
    found: dict[str, list[tuple[float, float]]] = defaultdict(list)
    path = HERE / "probes.txt"
    for line in path.read_text().splitlines() if path.is_file() else []:
        name, _, loop, _, memory = line.split()
        found[re.sub(r"-r\d+$", "", name)].append((float(loop), float(memory)))
    return found


def _line(variant: str, runs: list[dict], probes: list[tuple[float, float]]) -> str:
    latency = {q: _median([r["latency_ms"][q] for r in runs]) for q in ("p50", "p95", "p99")}
    stages = []
    for stage in STAGES:
        rows = [r["stages_ms"][stage] for r in runs if stage in r["stages_ms"]]
        if rows:
            stages.append(f"{stage} {_median([x['p50'] for x in rows]):.1f} / {_median([x['p99'] for x in rows]):.1f}")
    loads = sorted(r["load_average_before"] for r in runs)
    probe = "–"
    if probes:
        loops, memories = sorted(p[0] for p in probes), sorted(p[1] for p in probes)
        probe = f"{loops[0]:.0f}–{loops[-1]:.0f} / {memories[0]:.0f}–{memories[-1]:.0f}"
    return (
        f"| {variant} | {len(runs)} | {_median([r['throughput_fps'] for r in runs]):.1f} | "
        f"{_median([r['dropped'] for r in runs]):.0f} of {_median([r['emitted'] for r in runs]):.0f} | "
        f"{latency['p50']:.1f} / {latency['p95']:.1f} / {latency['p99']:.1f} | {' · '.join(stages)} | "
        f"{loads[0]:.2f}–{loads[-1]:.2f} | {probe} |"
    )


def main() -> None:
    """Print the table."""
    print("| variant | runs | frames/s | dropped | capture → overlay p50 / p95 / p99 ms | stage p50 / p99 ms | load before | probe ms |")
    print("|---|---:|---:|---:|---|---|---|---|")
    probes = _probes()
    for variant, runs in sorted(_rows().items()):
        print(_line(variant, runs, probes.get(variant, [])))


if __name__ == "__main__":
    main()
