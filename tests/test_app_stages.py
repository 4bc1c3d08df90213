"""Every pipeline stage on its own, and the contract all of them share (like the backends' contract test)."""

from __future__ import annotations

import inspect
import itertools
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import decode_video

import app.core.stages
import app.gpu.stage
import app.outputs.sinks
from app.core.overlay import OverlayStyle, ViewState
from app.core.stage import BaseStage, Frame, Stage, close_all, run_chain
from app.core.stage_timer import StageTimer
from app.core.stages import Compose, Hud, Infer, PostProcess, Reorder
from app.core.stats import FrameTimes, StatsRecorder
from app.outputs.writers import MaskWriter, VideoOutput
from app.pipeline import PipelineConfig, build_stages
from app.size import Size
from app.sources.capture import Capture
from app.sources.source import ImageFolderSource
from engine.backends import InferenceBackend, create_backend
from engine.backends.torch_backend import TorchBackend
from models.checkpoint import ModelMeta, build_segmenter, save_checkpoint
from models.unet import preset
from synthetic.shapes import render_frame

SIZE = Size(height=48, width=64)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> InferenceBackend:
    """A real ONNX Runtime backend of a random ``fast`` model that marks every pixel "instrument"."""
    meta = ModelMeta(config=preset("fast"))
    model = build_segmenter(meta)
    model.unet.head.bias.data.fill_(6.0)
    checkpoint = save_checkpoint(tmp_path_factory.mktemp("model") / "all.pt", model, meta)
    created = create_backend(checkpoint, "onnxruntime-cpu", threads=1)
    yield created
    created.close()


def ticking(step: float = 0.1) -> Callable[[], float]:
    """A clock that advances ``step`` seconds per reading (deterministic figures, no sleeping)."""
    counter = itertools.count()
    return lambda: next(counter) * step


def frame(index: int = 0, sequence: int = 0, probability: float | None = None, mask: bool = False) -> Frame:
    """A shapes picture at :data:`SIZE` with as much filled in as a stage at that point sees."""
    item = Frame(FrameTimes(index=index, capture=0.0), render_frame(index, SIZE.width, SIZE.height), sequence)
    if probability is not None:
        item.probability = np.full((16, 16), probability, np.float32)
    if mask:
        item.mask = np.zeros(SIZE, np.uint8)
        item.mask[10:30, 20:40] = 255
        item.output = item.image
    return item


# -- the contract ---------------------------------------------------------------------------------

#: Every stage class, with a factory and a frame that is ready for it.
CASES: dict[type, Callable[[InferenceBackend, Path], tuple[Stage, Frame]]] = {
    Infer: lambda b, _: (Infer(b, ticking()), frame()),
    Reorder: lambda b, _: (Reorder(), frame()),
    PostProcess: lambda b, _: (PostProcess(0.5, b.threshold), frame(probability=0.9)),
    Compose: lambda b, _: (Compose(OverlayStyle(), ViewState()), frame(mask=True)),
    Hud: lambda b, _: (Hud(b.name, ticking(), ViewState(), lambda: 0), frame(mask=True)),
    app.outputs.sinks.VideoSink: lambda b, d: (app.outputs.sinks.VideoSink(VideoOutput(d / "v.mp4", 25.0, SIZE)), frame(mask=True)),
    app.outputs.sinks.MaskSink: lambda b, d: (app.outputs.sinks.MaskSink(MaskWriter(d / "masks")), frame(mask=True)),
    app.outputs.sinks.StatsSink: lambda b, _: (app.outputs.sinks.StatsSink(StatsRecorder()), frame(mask=True)),
    app.outputs.sinks.DisplaySink: lambda b, _: (app.outputs.sinks.DisplaySink(SIZE), frame(mask=True)),
    app.gpu.stage.GpuInferCompose: lambda b, _: (
        app.gpu.stage.GpuInferCompose(torch_cpu(b), SIZE, OverlayStyle(), ViewState(), 0.5, ticking()),
        frame(),
    ),
}


def torch_cpu(backend: InferenceBackend) -> TorchBackend:
    """The same model on torch-cpu (it runs on tensors: the GPU stage's contract on CPU tensors)."""
    return TorchBackend(build_segmenter(backend.meta), backend.meta, device="cpu", threads=1)


def test_every_stage_class_is_in_the_contract() -> None:
    found = {
        cls
        for module in (app.core.stages, app.outputs.sinks, app.gpu.stage)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseStage) and cls is not BaseStage
    }
    assert found == set(CASES), "a new stage class needs an entry in CASES"


@pytest.mark.parametrize("cls", list(CASES), ids=lambda cls: cls.__name__)
def test_stage_contract(cls: type, backend: InferenceBackend, tmp_path: Path) -> None:
    stage, item = CASES[cls](backend, tmp_path)
    assert isinstance(stage, Stage) and isinstance(stage.name, str) and stage.name
    assert inspect.signature(stage.process).parameters.keys() == {"frame"}
    handed = stage.process(item)
    assert isinstance(handed, list) and handed == [item], "a ready frame in order is handed on as it is"
    stage.close()
    stage.close()  # idempotent


def test_stage_names_are_unique(backend: InferenceBackend, tmp_path: Path) -> None:
    names = [CASES[cls](backend, tmp_path / cls.__name__)[0].name for cls in CASES]
    assert len(names) == len(set(names))


# -- each stage -----------------------------------------------------------------------------------


def test_infer_sets_probability_and_timestamps(backend: InferenceBackend) -> None:
    (item,) = Infer(backend, ticking()).process(frame())
    assert item.probability is not None and item.probability.shape == backend.input_size
    assert item.probability.min() > 0.9  # the model marks everything
    assert (item.times.infer_start, item.times.infer_end) == (0.0, 0.1)


def test_infer_times_resize_and_model_apart(backend: InferenceBackend) -> None:
    timer = StageTimer()
    for _ in range(3):
        Infer(backend, ticking(), timer).process(frame())
    stages = timer.summary_ms()
    assert set(stages) == {"preprocess", "inference"}  # the base predict: resize, then model + sigmoid
    assert stages["inference"]["count"] == stages["preprocess"]["count"] == 3


def test_run_chain_times_stages_that_name_a_timing(backend: InferenceBackend) -> None:
    timer = StageTimer()
    stages = [PostProcess(0.0, 0.5), Compose(OverlayStyle(), ViewState()), Reorder()]
    for k in range(2):
        assert run_chain(stages, frame(index=k, sequence=k, probability=0.9), timer=timer)
    summary = timer.summary_ms()
    assert set(summary) == {"postprocess", "compose"}  # Reorder names no timing
    assert summary["compose"]["count"] == 2


def test_reorder_restores_sequence_order() -> None:
    reorder = Reorder()
    items = {k: frame(index=k, sequence=k) for k in range(4)}
    assert reorder.process(items[2]) == []
    assert reorder.process(items[1]) == []
    assert [f.sequence for f in reorder.process(items[0])] == [0, 1, 2]
    assert [f.sequence for f in reorder.process(items[3])] == [3]


def test_post_process_smooths_then_thresholds_at_frame_size() -> None:
    smoothed, plain = PostProcess(0.5, 0.5), PostProcess(0.0, 0.5)
    for stage in (smoothed, plain):
        (first,) = stage.process(frame(probability=1.0))
        assert first.mask is not None and Size.of(first.mask) == SIZE and first.mask.min() == 255
    # One frame of 0 after a frame of 1: the average (0.5) still passes the threshold; unsmoothed it does not.
    assert smoothed.process(frame(probability=0.0))[0].mask.min() == 255
    assert plain.process(frame(probability=0.0))[0].mask.max() == 0


def test_compose_follows_the_view() -> None:
    view = ViewState()
    compose = Compose(OverlayStyle(color=(255, 0, 0), alpha=1.0, contours=False), view)
    item = frame(mask=True)
    original = item.image.copy()
    (out,) = compose.process(item)
    assert tuple(out.output[20, 30]) == (255, 0, 0) and np.array_equal(out.output[0:5, 0:5], original[0:5, 0:5])
    view.mask_only = True
    (only,) = compose.process(frame(mask=True))
    assert tuple(only.output[20, 30]) == (255, 0, 0) and only.output[0:5, 0:5].max() == 0
    view.mask_only, view.overlay = False, False
    plain = frame(mask=True)
    untouched = plain.image.copy()
    assert np.array_equal(compose.process(plain)[0].output, untouched)


def test_hud_draws_figures_from_its_clock() -> None:
    hud = Hud("onnxruntime-cpu", ticking(0.1), ViewState(), lambda: 7)
    first, second = frame(mask=True), frame(mask=True)
    before = second.image.copy()
    hud.process(first)
    hud.process(second)
    assert hud.info.fps == pytest.approx(10.0) and hud.info.dropped == 7
    assert hud.info.latency_ms == pytest.approx(100.0)  # captured at 0, drawn at the clock's 0.1
    assert not np.array_equal(second.output[0:20, 0:60], before[0:20, 0:60]), "the HUD is drawn top-left"


def test_video_and_mask_sinks_write_real_files(tmp_path: Path) -> None:
    video = app.outputs.sinks.VideoSink(VideoOutput(tmp_path / "out.mp4", 25.0, SIZE))
    masks = app.outputs.sinks.MaskSink(MaskWriter(tmp_path / "masks"))
    for index in (3, 4):
        run_chain([video, masks], frame(index=index, mask=True))
    close_all([video, masks])
    assert [f.shape for f in decode_video(tmp_path / "out.mp4")] == [(*SIZE, 3)] * 2
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["000003.png", "000004.png"]
    written = cv2.imread(str(tmp_path / "masks" / "000003.png"), cv2.IMREAD_UNCHANGED)
    assert written[20, 30] == 255 and written[0, 0] == 0


def test_stats_sink_records_latency_from_capture() -> None:
    stats = StatsRecorder()
    item = frame(mask=True)
    item.times.capture = stats.now()
    app.outputs.sinks.StatsSink(stats).process(item)
    assert stats.rendered == 1 and item.times.render_end >= item.times.capture
    assert stats.latencies_ms.values().tolist() == [item.times.latency_ms]


def test_display_sink_keeps_the_newest_and_finishes_after_close() -> None:
    sink = app.outputs.sinks.DisplaySink(SIZE)
    old, new = frame(index=1, mask=True), frame(index=2, mask=True)
    sink.process(old)
    sink.process(new)
    assert sink.next_image(0.0) is new.output and sink.next_image(0.0) is None
    sink.set_no_signal("camera: reconnecting")
    assert sink.no_signal == "camera: reconnecting"
    assert not sink.finished
    sink.close()
    assert sink.finished


def test_capture_reads_a_folder_in_order_and_ends(tmp_path: Path) -> None:
    for index in (2, 10, 1):
        cv2.imwrite(str(tmp_path / f"{index}.png"), render_frame(index, SIZE.width, SIZE.height))
    capture = Capture(ImageFolderSource(tmp_path), ticking())
    stop = threading.Event()
    frames = [capture.read(stop) for _ in range(4)]
    assert [f.index for f in frames[:3]] == [0, 1, 2] and frames[3] is None
    assert [f.times.capture for f in frames[:3]] == [0.0, 0.1, 0.2] and not capture.lost


def test_build_stages_order(backend: InferenceBackend, tmp_path: Path) -> None:
    video = VideoOutput(tmp_path / "o.mp4", 25.0, SIZE)
    extra = app.outputs.sinks.StatsSink(StatsRecorder())
    extra.name = "network"
    display = app.outputs.sinks.DisplaySink(SIZE)

    def names(config: PipelineConfig) -> list[str]:
        workers, render = build_stages(config, backend, ViewState(), StatsRecorder(), video=video, display=display, sinks=[extra])
        assert [s.name for s in workers] == ["inference"]
        return [s.name for s in render]

    head = ["reorder", "post-process", "compose"]
    assert names(PipelineConfig(show=True)) == [*head, "video", "stats", "network", "hud", "display"]
    assert names(PipelineConfig(show=True, burn_hud=True)) == [*head, "hud", "video", "stats", "network", "display"]
    video.close()
