"""The threaded pipeline on real files and real sources: lossless file mode, live dropping, reconnects, errors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import decode_video, fast_checkpoint

from app.__main__ import main
from app.core.inference_plan import InferencePlan, plan_inference
from app.core.overlay import Overlayer, OverlayStyle, ViewState, parse_color
from app.core.stats import StatsRecorder
from app.errors import SetupError
from app.outputs.writers import VideoOutput
from app.pipeline import FrameQueue, Pipeline, PipelineConfig
from app.size import Size
from app.sources.source import FrameSource, ImageFolderSource, open_source
from engine.backends import InferenceBackend, create_backend
from models.checkpoint import load_checkpoint
from synthetic.shapes import render_frame, write_test_video


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weights ``fast`` model whose head bias makes every pixel "instrument"."""
    return fast_checkpoint(tmp_path_factory.mktemp("model"), instrument_bias=2.0)


@pytest.fixture(scope="module")
def backend(checkpoint: Path) -> InferenceBackend:
    return create_backend(checkpoint, "auto")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 40-frame 320×240 mp4."""
    return write_test_video(tmp_path_factory.mktemp("video") / "in.mp4", num_frames=40, width=320, height=240)


def count_frames(path: Path) -> tuple[int, tuple[int, int]]:
    """Decode a video to the end: (frames, (width, height) of the last frame)."""
    frames = decode_video(path)
    return len(frames), ((frames[-1].shape[1], frames[-1].shape[0]) if frames else (0, 0))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def test_file_mode_writes_every_frame_masks_and_stats(video: Path, checkpoint: Path, tmp_path: Path) -> None:
    out, masks, stats = tmp_path / "out.mp4", tmp_path / "masks", tmp_path / "stats.json"
    code = main(
        [
            "--source", str(video), "--checkpoint", str(checkpoint), "--window", "off",
            "--output", str(out), "--save-masks", str(masks), "--stats", str(stats), "--smooth", "0.5",
        ]
    )  # fmt: skip
    assert code == 0
    assert count_frames(out) == (40, (320, 240))
    pngs = sorted(masks.glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(40)]
    mask = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (240, 320) and set(np.unique(mask)) <= {0, 255} and mask.max() == 255
    report = json.loads(stats.read_text())
    summary = report["summary"]
    assert summary["frames"] == 40 and summary["captured"] == 40
    assert summary["dropped"] == 0 and summary["corrupt"] == 0
    assert set(summary["latency_ms"]) == {"p50", "p95", "p99"} and summary["latency_ms"]["p50"] > 0
    assert summary["throughput_fps"] > 0 and summary["backend"]
    frames = report["frames"]
    assert [f["index"] for f in frames] == list(range(40))
    for f in frames:
        assert f["capture_s"] <= f["infer_start_s"] <= f["infer_end_s"] <= f["render_end_s"]


def test_threshold_option_decides_which_pixels_are_instrument(video: Path, checkpoint: Path, tmp_path: Path) -> None:
    """``--threshold`` replaces the model's threshold in the masks the app writes: a lower one marks a superset."""
    marked, thresholds = {}, {}
    for name, extra in {"low": ["--threshold", "0.05"], "model": [], "high": ["--threshold", "0.95"]}.items():
        masks = tmp_path / name
        args = ["--source", str(video), "--checkpoint", str(checkpoint), "--window", "off", "--max-frames", "5"]
        assert main([*args, "--save-masks", str(masks), "--stats", str(tmp_path / f"{name}.json"), *extra]) == 0
        thresholds[name] = json.loads((tmp_path / f"{name}.json").read_text())["summary"]["threshold"]
        stack = np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(masks.glob("*.png"))])
        marked[name] = stack > 0
    assert len(marked["low"]) == len(marked["high"]) == 5
    assert not np.any(marked["high"] & ~marked["model"]) and not np.any(marked["model"] & ~marked["low"])
    assert marked["low"].sum() > marked["high"].sum()
    assert thresholds == {"low": 0.05, "model": load_checkpoint(checkpoint)[1].threshold, "high": 0.95}


def test_image_folder_numeric_order_and_corrupt_frames(backend: InferenceBackend, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (1, 2, 10, 11):
        cv2.imwrite(str(folder / f"{i}.png"), render_frame(i, 160, 120))
    (folder / "3.png").write_bytes(b"not a png")  # unreadable
    cv2.imwrite(str(folder / "4.png"), render_frame(4, 80, 60))  # wrong size
    source = open_source(str(folder))
    assert isinstance(source, ImageFolderSource)
    assert [p.name for p in source.paths] == ["1.png", "2.png", "3.png", "4.png", "10.png", "11.png"]
    video = VideoOutput(tmp_path / "o.avi", source.fps, source.frame_size)
    pipeline = Pipeline(source, backend, PipelineConfig(), video=video)
    summary = pipeline.run()
    # 3.png is skipped (corrupt, named); 4.png is resized to the first frame's size (named), not lost.
    assert summary["frames"] == 5 and summary["corrupt"] == 1 and pipeline.error is None
    assert source.skipped == {"corrupt": 1} and source.resized == {"size_mismatch": 1}
    assert any("3.png" in line for line in source.examples) and any("4.png" in line for line in source.examples)
    assert count_frames(tmp_path / "o.avi") == (5, (160, 120))


VGA = Size(height=480, width=640)


class FastLiveSource(FrameSource):
    """A live source producing frames as fast as it can (far faster than inference)."""

    live = True
    description = "synthetic live source"

    def __init__(self, total: int, size: Size = VGA, outage_after: int | None = None) -> None:
        super().__init__()
        self.total = total
        self.outage_after = outage_after
        self.frame_size = size
        self.base = render_frame(0, *size.wh)
        self.reconnect_calls = 0

    def _next_valid(self) -> np.ndarray | None:
        if self.index + 1 >= self.total:
            return None
        if self.outage_after is not None and self.index + 1 == self.outage_after and self.reconnect_calls < 2:
            return None  # the "cable" is pulled until two reconnect attempts were made
        self.index += 1
        return self.base.copy()

    def reconnect(self) -> bool:
        self.reconnect_calls += 1
        return self.reconnect_calls == 2  # the second attempt succeeds; after the end nothing comes back


def test_live_source_faster_than_inference_drops_and_stays_bounded(backend: InferenceBackend) -> None:
    source = FastLiveSource(total=600)
    config = PipelineConfig(reconnect_attempts=1, backoff_initial_s=0.01)
    pipeline = Pipeline(source, backend, config)
    before = rss_mb()
    pipeline.start()
    peak = 0
    while not pipeline.wait(0.01):
        peak = max(peak, len(pipeline.to_infer), len(pipeline.to_render))
    pipeline.join()
    summary = pipeline.summary()
    assert pipeline.live and summary["dropped"] > 0
    assert summary["captured"] == 600 and summary["frames"] + summary["dropped"] == 600
    assert pipeline.to_infer.high_water == 1 and pipeline.to_render.high_water <= config.queue_size
    assert peak <= config.queue_size
    # 600 frames of 640×480 are 550 MB; bounded queues keep only a handful alive.
    assert rss_mb() - before < 150


def test_live_source_outage_shows_no_signal_and_reconnects(backend: InferenceBackend) -> None:
    source = FastLiveSource(total=30, size=Size(height=120, width=160), outage_after=10)
    pipeline = Pipeline(source, backend, PipelineConfig(backoff_initial_s=0.1, reconnect_attempts=2))
    pipeline.start()
    seen_no_signal = None
    while not pipeline.wait(0.01):
        seen_no_signal = seen_no_signal or pipeline.no_signal
    pipeline.join()
    assert seen_no_signal is not None and "reconnecting" in seen_no_signal
    # One outage healed on the 2nd attempt; after the last frame both attempts fail and the run ends.
    assert pipeline.reconnects == 1 and source.reconnect_calls == 4
    summary = pipeline.summary()
    assert pipeline.error is None and summary["captured"] == 30 and summary["stop_reason"] == "source lost"


def test_realtime_file_is_paced_and_drops(backend: InferenceBackend, tmp_path: Path) -> None:
    fast = write_test_video(tmp_path / "fast.mp4", num_frames=60, width=320, height=240, fps=500.0)
    source = open_source(str(fast))
    assert not source.live and source.frame_count == 60
    pipeline = Pipeline(source, backend, PipelineConfig(realtime=True))
    summary = pipeline.run()
    assert pipeline.live and summary["dropped"] > 0 and summary["frames"] + summary["dropped"] == 60
    assert pipeline.to_infer.high_water == 1


class FailingBackend(InferenceBackend):
    """A real backend that fails on one frame (to test error reporting)."""

    name = "failing"

    def __init__(self, inner: InferenceBackend, fail_at: int) -> None:
        super().__init__(inner.meta)
        self.inner, self.fail_at, self.calls = inner, fail_at, 0

    def infer(self, frames: np.ndarray) -> np.ndarray:
        if self.calls == self.fail_at:
            raise RuntimeError("device lost")
        self.calls += 1
        return self.inner.infer(frames)


def test_stage_error_names_stage_and_frame_and_finalises_output(
    backend: InferenceBackend, video: Path, tmp_path: Path
) -> None:
    source = open_source(str(video))
    out = VideoOutput(tmp_path / "partial.mp4", source.fps, source.frame_size)
    pipeline = Pipeline(source, FailingBackend(backend, fail_at=5), PipelineConfig(), video=out)
    summary = pipeline.run()
    assert pipeline.error is not None
    assert pipeline.error.stage == "inference" and pipeline.error.frame_index == 5
    assert "inference stage failed at frame 5" in summary["error"] and "device lost" in summary["error"]
    assert not [t for t in threading.enumerate() if t.name.startswith("surgseg-")]
    frames, _ = count_frames(tmp_path / "partial.mp4")
    assert frames == out.frames_written and 0 < frames <= 5


def test_frame_queue_latest_wins_and_blocking() -> None:
    cancel = threading.Event()
    latest = FrameQueue(1, latest_wins=True)
    for i in range(5):
        assert latest.put(i, cancel)
    assert latest.dropped == 4 and latest.get() == 4
    blocking = FrameQueue(2)
    assert blocking.put(1, cancel) and blocking.put(2, cancel)
    cancel.set()
    started = time.perf_counter()
    assert not blocking.put(3, cancel)  # full: gives up once cancelled instead of growing
    assert time.perf_counter() - started < 1.0 and len(blocking) == 2


def test_overlay_blends_only_the_mask() -> None:
    frame = np.full((120, 160, 3), 100, np.uint8)
    probability = np.zeros((60, 80), np.float32)
    probability[10:30, 20:40] = 0.9
    overlayer = Overlayer(OverlayStyle(color=parse_color("blue"), alpha=0.5), threshold=0.5)
    mask = overlayer.mask(probability, Size(height=120, width=160))
    assert mask.shape == (120, 160) and mask[40, 60] == 255 and mask[100, 10] == 0
    out = overlayer.draw(frame, mask, ViewState(contours=False))
    assert tuple(out[40, 60]) == (178, 50, 50)  # 0.5·100 + 0.5·(255, 0, 0)
    assert tuple(out[100, 10]) == (100, 100, 100)
    with pytest.raises(ValueError, match="R,G,B"):
        parse_color("chartreuse-ish")


def test_setup_error_is_a_value_error() -> None:
    # Callers that catch ValueError (the bench, argument checks) must see setup failures as bad values.
    with pytest.raises(ValueError, match="no such file") as caught:
        open_source("/nonexistent/clip.mp4")
    assert type(caught.value) is SetupError
    message = str(caught.value)
    assert "/nonexistent/clip.mp4" in message and "\n" not in message  # one line naming the value


def test_corrupt_frame_mid_file_is_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (160, 120))
    for i in range(20):
        writer.write(render_frame(i, 160, 120))
    writer.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]  # JPEG SOI markers
    assert len(starts) == 20
    data[starts[10] : starts[10] + 600] = bytes(600)  # wipe frame 10's JPEG header: that read fails
    path.write_bytes(bytes(data))
    source = open_source(str(path))
    indices = []
    while (frame := source.read()) is not None:
        assert frame.shape == (120, 160, 3)
        indices.append(source.index)
    assert source.corrupt == 1
    assert indices == [i for i in range(20) if i != 10]


def test_http_stream_that_ends_is_reconnected(backend: InferenceBackend, tmp_path: Path) -> None:
    """A real HTTP stream (an MJPG AVI served by http.server): when it ends, the app reconnects."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (160, 120))
    for i in range(15):
        writer.write(render_frame(i, 160, 120))
    writer.release()

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, name="test-http", daemon=True).start()
    try:
        source = open_source(f"http://127.0.0.1:{server.server_address[1]}/clip.avi")
        assert source.live and source.frame_size == Size(height=120, width=160)
        config = PipelineConfig(max_frames=40, backoff_initial_s=0.05)
        pipeline = Pipeline(source, backend, config)
        summary = pipeline.run()
        source.close()
    finally:
        server.shutdown()
        server.server_close()
    assert pipeline.error is None and summary["captured"] == 40
    assert summary["reconnects"] >= 2  # 15-frame clip, 40 frames wanted
    assert summary["stop_reason"] == "max frames"


class UnevenBackend(InferenceBackend):
    """A real CPU backend whose every third call is slow, so concurrent workers finish out of order."""

    name = "uneven"
    concurrent_calls = True

    def __init__(self, inner: InferenceBackend) -> None:
        super().__init__(inner.meta)
        self.inner = inner
        self.calls = 0
        self.lock = threading.Lock()

    def infer(self, frames: np.ndarray) -> np.ndarray:
        with self.lock:
            call = self.calls
            self.calls += 1
        if call % 3 == 0:
            time.sleep(0.03)
        return self.inner.infer(frames)


def test_several_inference_workers_keep_file_order(backend: InferenceBackend, video: Path, tmp_path: Path) -> None:
    assert backend.concurrent_calls  # the CPU backends chosen here allow concurrent calls
    outputs = {}
    for workers in (1, 3):
        source = open_source(str(video))
        out = VideoOutput(tmp_path / f"w{workers}.mp4", source.fps, source.frame_size)
        stats = StatsRecorder(keep_frames=True)
        config = PipelineConfig(inference_workers=workers, queue_size=2)
        pipeline = Pipeline(source, UnevenBackend(backend), config, video=out, stats=stats)
        summary = pipeline.run()
        source.close()
        assert pipeline.error is None and summary["frames"] == 40 and summary["inference_workers"] == workers
        assert [f.index for f in stats.frames] == list(range(40))  # rendered in input order
        finished = [f.index for f in sorted(stats.frames, key=lambda f: f.infer_end)]
        if workers > 1:
            assert finished != sorted(finished)  # workers really did finish out of order
        outputs[workers] = decode_video(tmp_path / f"w{workers}.mp4")
    assert len(outputs[1]) == len(outputs[3]) == 40
    for one, three in zip(outputs[1], outputs[3], strict=True):
        assert np.array_equal(one, three)


def test_several_workers_need_a_backend_that_allows_concurrent_calls(backend: InferenceBackend, video: Path) -> None:
    source = open_source(str(video))
    try:
        with pytest.raises(ValueError, match="does not support concurrent calls"):
            Pipeline(source, FailingBackend(backend, fail_at=99), PipelineConfig(inference_workers=2))
        with pytest.raises(ValueError, match="at least 1"):
            Pipeline(source, backend, PipelineConfig(inference_workers=0))
    finally:
        source.close()


def test_inference_plan(backend: InferenceBackend) -> None:
    cpu = plan_inference("onnxruntime-cpu", None, None, cores=2)
    assert (cpu.workers, cpu.threads) == (2, 1)
    assert plan_inference("onnxruntime-cpu", None, None, cores=16) == InferencePlan("onnxruntime-cpu", 2, 8)
    assert plan_inference("torch-cpu", None, None, cores=1) == InferencePlan("torch-cpu", 1, 1)
    assert plan_inference("onnxruntime-cpu", 1, None, cores=8) == InferencePlan("onnxruntime-cpu", 1, None, True)
    assert plan_inference("onnxruntime-cpu", 3, 2, cores=8) == InferencePlan("onnxruntime-cpu", 3, 2, True)
    assert plan_inference("tensorrt", None, None, cores=8) == InferencePlan("tensorrt", 1, None)
    # a live source is latency first (issue 21): one worker with all the cores, unless told otherwise
    assert plan_inference("onnxruntime-cpu", None, None, cores=2, live=True) == InferencePlan("onnxruntime-cpu", 1, 2)
    assert plan_inference("onnxruntime-cpu", 2, 1, cores=2, live=True) == InferencePlan("onnxruntime-cpu", 2, 1, True)
    assert plan_inference("tensorrt", None, None, cores=8, live=True) == InferencePlan("tensorrt", 1, None)
    with pytest.raises(ValueError, match="runs on a GPU"):
        plan_inference("torch-cuda", 2, None)
    with pytest.raises(ValueError, match="--threads 0"):
        plan_inference("onnxruntime-cpu", None, 0)
    # The plan meets the backend actually built: a defaulted plan drops to one worker, a requested one refuses.
    failing = FailingBackend(backend, fail_at=0)  # no concurrent calls
    assert cpu.workers_for(backend) == 2 and cpu.workers_for(failing) == 1
    with pytest.raises(ValueError, match="--inference-workers 3: backend failing takes one worker"):
        plan_inference("onnxruntime-cpu", 3, 1, cores=2).workers_for(failing)
    # "auto" is resolved as the factory resolves it: the plan is made for the backend create_backend builds.
    auto = plan_inference("auto", None, None, cores=4)
    expected = InferencePlan(backend.name, 2, 2) if backend.concurrent_calls else InferencePlan(backend.name, 1, None)
    assert auto == expected
