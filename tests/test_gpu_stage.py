"""The GPU infer + compose stage in the real pipeline, run on CPU tensors, against the CPU path's stages."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_gpu_compose import BOUNDS, image_differences

from app.core.overlay import OverlayStyle, ViewState
from app.core.stage import BaseStage, Frame
from app.core.stages import Compose, Infer, PostProcess
from app.core.stats import StatsRecorder
from app.gpu.stage import GpuInferCompose, graphs_reason, uses_gpu_path
from app.outputs.writers import MaskWriter
from app.pipeline import Pipeline, PipelineConfig
from app.size import Size
from app.sources.live import scene_frames
from app.sources.source import ImageFolderSource
from engine.backends import InferenceBackend, create_backend
from models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, save_checkpoint

SCENE_SEED = 12
FRAMES = 4
#: The frame size of tests/test_gpu_compose.py's bound (360×640) as near as the U-Net takes it (a multiple of 32):
#: the bound covers contour pixels, whose share of the image grows as the frame shrinks.
MODEL_INPUT = (352, 640)


class Keep(BaseStage):
    """A sink that keeps a copy of every composed frame (the GPU path reuses its output buffers)."""

    name = "keep"

    def __init__(self) -> None:
        self.outputs: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []

    def process(self, frame: Frame) -> list[Frame]:
        assert frame.output is not None and frame.mask is not None
        self.outputs.append(frame.output.copy())
        self.masks.append(frame.mask.copy())
        return [frame]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> InferenceBackend:
    """The shipped weights on torch-cpu at a :data:`MODEL_INPUT` input (the U-Net is fully convolutional):
    torch-cpu has ``infer_tensor``, so the GPU stage runs it on CPU tensors."""
    model, meta = load_checkpoint(DEFAULT_CHECKPOINT)
    meta = replace(meta, input_height=MODEL_INPUT[0], input_width=MODEL_INPUT[1])
    checkpoint = save_checkpoint(tmp_path_factory.mktemp("model") / "wide.pt", model, meta)
    created = create_backend(checkpoint, "torch-cpu", threads=1)
    yield created
    created.close()


def scene_folder(folder: Path, width: int, height: int) -> Path:
    """Consecutive frames of the project's scene generator, as PNGs."""
    folder.mkdir()
    for k, image in enumerate(scene_frames(width, height, FRAMES, seed=SCENE_SEED)):
        cv2.imwrite(str(folder / f"{k}.png"), image)
    return folder


def run(folder: Path, backend: InferenceBackend, gpu: bool, smooth: float, thickness: int) -> tuple[Pipeline, Keep]:
    keep = Keep()
    style = OverlayStyle(contour_thickness=thickness)
    config = PipelineConfig(gpu_path=gpu, smooth=smooth, style=style, cuda_graphs=True)
    masks_dir = folder.parent / f"masks-{gpu}-{smooth}-{thickness}"
    pipeline = Pipeline(ImageFolderSource(folder), backend, config, masks=MaskWriter(masks_dir), sinks=[keep])
    pipeline.run()
    assert pipeline.error is None
    return pipeline, keep


@pytest.mark.parametrize(("smooth", "thickness"), [(0.0, 2), (0.6, 1), (0.6, 3)])
def test_gpu_stage_through_the_pipeline_matches_the_cpu_path(
    backend: InferenceBackend, tmp_path: Path, smooth: float, thickness: int
) -> None:
    """Frames at the model's input size: both paths feed the model the same pixels, so they differ only by the
    compose functions, and stay within the bound of tests/test_gpu_compose.py."""
    height, width = backend.input_size
    folder = scene_folder(tmp_path / "frames", width, height)
    cpu_pipeline, cpu = run(folder, backend, False, smooth, thickness)
    gpu_pipeline, gpu = run(folder, backend, True, smooth, thickness)
    assert [type(s) for s in cpu_pipeline.worker_stages] == [Infer]
    assert [type(s) for s in gpu_pipeline.worker_stages] == [GpuInferCompose]
    assert not any(isinstance(s, PostProcess | Compose) for s in gpu_pipeline.render_stages)
    assert len(cpu.outputs) == len(gpu.outputs) == FRAMES
    max_mean, max_far, max_near = BOUNDS[thickness]
    for got, want, got_mask, want_mask in zip(gpu.outputs, cpu.outputs, gpu.masks, cpu.masks, strict=True):
        assert (want_mask > 0).mean() > 0.02  # the shipped model finds instruments: real overlay area compared
        assert ((got_mask > 0) != (want_mask > 0)).mean() <= 0.0005
        mean, far, near = image_differences(got, want)
        assert mean <= max_mean and far <= max_far and near <= max_near, (mean, far, near)
    gpu_info = gpu_pipeline.summary()["gpu_path"]
    assert gpu_info["device"] == "cpu" and gpu_info["cuda_graphs"] is False
    assert "does not declare" in gpu_info["cuda_graphs_off"]  # torch-cpu declares no CUDA graphs: logged reason
    assert cpu_pipeline.summary()["gpu_path"] is None


def test_gpu_stage_upsamples_larger_frames_like_the_cpu_path(backend: InferenceBackend, tmp_path: Path) -> None:
    """Frames twice the input size: the resize differs (antialiased bilinear on the device, area on the CPU),
    so the model sees slightly different pixels; the masks still agree on all but a thin boundary (measured:
    at most 0.08 % of the pixels) and the composed images stay within the thickness-2 bound."""
    height, width = backend.input_size
    folder = scene_folder(tmp_path / "frames", 2 * width, 2 * height)
    _, cpu = run(folder, backend, False, 0.0, 2)
    _, gpu = run(folder, backend, True, 0.0, 2)
    for got, want, got_mask, want_mask in zip(gpu.outputs, cpu.outputs, gpu.masks, cpu.masks, strict=True):
        assert got.shape == want.shape == (2 * height, 2 * width, 3)
        assert (want_mask > 0).mean() > 0.02
        assert ((got_mask > 0) != (want_mask > 0)).mean() <= 0.002
        mean, far, near = image_differences(got, want)
        max_mean, max_far, max_near = BOUNDS[2]
        assert mean <= max_mean and far <= max_far and near <= max_near, (mean, far, near)


def test_gpu_stage_times_its_steps_in_the_pipeline_timer(backend: InferenceBackend, tmp_path: Path) -> None:
    height, width = backend.input_size
    folder = scene_folder(tmp_path / "frames", 2 * width, 2 * height)
    pipeline, _ = run(folder, backend, True, 0.0, 2)
    stages = pipeline.summary()["stages_ms"]
    assert {"capture", "upload", "preprocess", "inference", "postprocess", "compose", "download"} <= set(stages)
    assert all(stages[name]["count"] == FRAMES for name in ("upload", "inference", "download"))


def test_gpu_path_is_chosen_from_the_declared_capabilities(backend: InferenceBackend) -> None:
    assert not uses_gpu_path(backend)  # torch-cpu: device cpu
    assert graphs_reason(backend, requested=False) == "CUDA graphs disabled (--no-cuda-graphs)"
    assert graphs_reason(backend, requested=True) == "backend torch-cpu does not declare CUDA graph support"


def test_gpu_stage_needs_a_backend_with_device_tensors() -> None:
    onnx = create_backend(DEFAULT_CHECKPOINT, "onnxruntime-cpu", threads=1)
    try:
        with pytest.raises(ValueError, match="no infer_tensor"):
            GpuInferCompose(onnx, Size(height=64, width=64), OverlayStyle(), ViewState(), 0.0, StatsRecorder().now)
    finally:
        onnx.close()
