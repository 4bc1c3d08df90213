"""Two-process DistributedDataParallel training on the CPU (gloo) through ``torchrun``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from models.checkpoint import load_checkpoint, weights_digest


@pytest.mark.slow
def test_torchrun_two_processes_gloo(make_dvrk, tmp_path: Path) -> None:
    data = make_dvrk(3, 4)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "training.train", "--data", str(data), "--out", str(out), "--input-size", "24x32"]
    command += ["--width", "4", "--depth", "2", "--epochs", "2", "--batch-size", "2", "--val-videos", "1"]
    command += ["--device", "cpu", "--workers", "1", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # A new session, so that a hang can be cleaned up by killing torchrun AND its workers.
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"torchrun did not finish in 240 s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    log = stdout[-3000:] + stderr[-3000:]  # in every message: a failure under load must be diagnosable
    assert process.returncode == 0, log
    assert stdout.count("epoch   1") == 1, log  # only rank 0 logs
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs_done"] == 2, (summary, log)
    # 8 training frames over 2 ranks x batch 2 = 2 steps per rank per epoch, all 8 images seen once.
    assert summary["epochs"][0]["train_images"] == 8, (summary["epochs"][0], log)
    digests = summary["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1], f"DDP ranks ended with different weights {digests}\n{log}"
    model, meta = load_checkpoint(out / "last.pt")
    assert weights_digest(model) == digests[0]
    assert meta.training["world_size"] == 2 and meta.training["command"].startswith("torchrun --nproc_per_node 2")
    assert sorted(p.name for p in out.glob("*.pt")) == ["best.pt", "last.pt"]
