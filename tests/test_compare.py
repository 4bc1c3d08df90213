"""``training.compare``: per-source tables from real evaluation reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_evaluate import constant_checkpoint

from training.compare import _pooled, comparison_table, main
from training.evaluate import evaluate_checkpoint


def test_pooled_subset_matches_the_overall_score_and_table_rows(make_dvrk, tmp_path: Path, capsys) -> None:
    """Pooling every source from the per-source figures gives the report's own overall IoU and precision."""
    data = make_dvrk(3, 2, height=24, width=32)
    report = evaluate_checkpoint(constant_checkpoint(tmp_path / "ones.pt", 8.0), data, tmp_path / "eval")
    sources = list(report["videos"])
    assert float(_pooled(report, sources, "iou")) == pytest.approx(report["overall"]["iou"], abs=1e-3)
    assert float(_pooled(report, sources, "precision")) == pytest.approx(report["overall"]["precision"], abs=1e-3)
    table = comparison_table([("ones", report)], ["Video_02", "Video_01"])
    assert table.splitlines()[0] == "| model | Video_02 | Video_01 | overall IoU | overall precision | threshold |"
    assert f"| ones | {report['videos']['Video_02']['iou']:.3f} | {report['videos']['Video_01']['iou']:.3f} |" in table
    assert main([f"ones={tmp_path / 'eval' / 'report.json'}"]) == 0
    assert "| ones |" in capsys.readouterr().out
    assert main(["no-equals-sign"]) == 2
    assert "expected NAME=REPORT.json" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    assert main([f"bad={tmp_path / 'bad.json'}"]) == 2 and "bad.json" in capsys.readouterr().err
