"""Per-source comparison of evaluation reports: ``python -m training.compare NAME=REPORT.json ...``.

Prints a Markdown table with one row per report and one IoU column per video/source (plus the
overall IoU and precision), so the rows of an ablation can be read side by side. ``--sources``
restricts and orders the columns (e.g. the validation operations of a training set).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def load_reports(pairs: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """``NAME=PATH`` pairs → (name, report dict); errors name the argument and the file."""
    reports = []
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{pair!r}: expected NAME=REPORT.json")
        try:
            reports.append((name, json.loads(Path(path).read_text())))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{name}: cannot read the report {path}: {error}") from error
    return reports


def comparison_table(reports: list[tuple[str, dict[str, Any]]], sources: list[str] | None = None) -> str:
    """Markdown table: model | IoU per source | overall IoU | overall precision | threshold."""
    if sources is None:
        sources = list(dict.fromkeys(s for _, report in reports for s in report["videos"]))
    lines = [
        "| model | " + " | ".join(sources) + " | overall IoU | overall precision | threshold |",
        "|---|" + "---:|" * (len(sources) + 3),
    ]
    for name, report in reports:
        cells = [f"{report['videos'][s]['iou']:.3f}" if s in report["videos"] else "–" for s in sources]
        if set(sources) == set(report["videos"]):
            overall = report["overall"]
            totals = [f"{overall['iou']:.3f}", f"{overall['precision']:.3f}"]
        else:  # a subset of the sources: pool their confusion counts
            totals = [_pooled(report, sources, "iou"), _pooled(report, sources, "precision")]
        lines.append(f"| {name} | " + " | ".join(cells + totals) + f" | {report['threshold']:.2f} |")
    return "\n".join(lines)


def _pooled(report: dict[str, Any], sources: list[str], metric: str) -> str:
    """IoU or precision pooled over ``sources`` from their per-source pixel counts."""
    tp = fp = fn = 0.0
    for source in sources:
        m = report["videos"].get(source)
        if m is None:
            return "–"
        pixels, positives = m["pixels"], m["pixels"] * (1 - m["background_accuracy"])
        recall, precision = m["recall"], m["precision"]
        true_pos = recall * positives
        tp += true_pos
        fn += positives - true_pos
        fp += true_pos / precision - true_pos if precision > 0 else pixels - positives
    value = tp / max(tp + fp + fn, 1e-9) if metric == "iou" else tp / max(tp + fp, 1e-9)
    return f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m training.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", help="NAME=REPORT.json (a report.json written by training.evaluate)")
    parser.add_argument("--sources", help="comma-separated sources to show, in this order (default: all)")
    args = parser.parse_args(argv)
    try:
        reports = load_reports(args.reports)
        sources = [s.strip() for s in args.sources.split(",")] if args.sources else None
        print(comparison_table(reports, sources))
    except (ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
