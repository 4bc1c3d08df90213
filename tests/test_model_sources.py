"""Every backend that runs here accepts both a ``.pt`` checkpoint and the ``.onnx`` exported from it (issue 11).

The checkpoint is "trained" (BatchNorm ``num_batches_tracked`` counters are not zero), which is what
made a valid export fail on torch-cpu with "weights do not match the stored model hash": the
counters are not part of the graph, so they are stored in the ONNX metadata and restored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.__main__ import main as app_main
from engine.__main__ import main as engine_main
from engine.backends import CONCRETE_BACKENDS, available_backends, create_backend
from engine.model_source import load_model_source
from engine.synthetic import draw_frames, random_model
from models.checkpoint import save_checkpoint, weights_digest
from models.unet import preset
from synthetic.shapes import write_test_video

SIZE = (64, 96)
RUNNABLE = [name for name, reason in available_backends().items() if reason is None]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sources")
    model, meta = random_model(preset("fast"), SIZE, seed=11)
    for name, buffer in model.named_buffers():
        if name.endswith("num_batches_tracked"):
            buffer.fill_(1234)  # as after training
    checkpoint = save_checkpoint(folder / "trained.pt", model, meta)
    assert engine_main(["export", "--checkpoint", str(checkpoint), "--out", str(folder / "trained.onnx")]) == 0
    return {".pt": checkpoint, ".onnx": folder / "trained.onnx"}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURGSEG_CACHE_DIR", str(tmp_path / "cache"))


def test_onnx_rebuilds_the_checkpoint_exactly(sources: dict[str, Path]) -> None:
    from_pt, _ = load_model_source(sources[".pt"])
    from_onnx, _ = load_model_source(sources[".onnx"])
    assert weights_digest(from_onnx) == weights_digest(from_pt)


@pytest.mark.parametrize("suffix", [".pt", ".onnx"])
@pytest.mark.parametrize("backend", RUNNABLE)
def test_every_runnable_backend_accepts_pt_and_onnx(backend: str, suffix: str, sources: dict[str, Path]) -> None:
    assert backend in CONCRETE_BACKENDS
    frames = draw_frames(2, *SIZE, seed=3)
    model, _ = load_model_source(sources[".pt"])
    with torch.no_grad():
        reference = model(torch.from_numpy(frames)).numpy()
    with create_backend(sources[suffix], backend) as runner:
        logits = runner.infer(frames)
    tolerance = 2e-2 if getattr(runner, "precision", "fp32") == "fp16" or getattr(runner, "half", False) else 1e-3
    assert np.abs(logits - reference).max() <= tolerance * max(1.0, float(np.abs(reference).max()))


def test_app_runs_an_exported_onnx_on_torch_cpu(sources: dict[str, Path], tmp_path: Path) -> None:
    video = write_test_video(tmp_path / "in.mp4", num_frames=4, width=96, height=64)
    status = app_main(["--checkpoint", str(sources[".onnx"]), "--backend", "torch-cpu", "--source", str(video),
                       "--output", str(tmp_path / "o.mp4"), "--window", "off"])
    assert status == 0 and (tmp_path / "o.mp4").stat().st_size > 0
