"""The GPU frame path's torch functions, run on CPU tensors, against the CPU overlay (app.core.overlay); CUDA-graph fallback."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch

from app.core.overlay import Overlayer, OverlayStyle, Smoother, ViewState
from app.core.stage_timer import StageTimer
from app.gpu import compose as g
from app.gpu.compose import CudaGraphRunner, GpuFramePath, ViewFlags
from app.size import Size
from app.sources.live import pattern_frames

HEIGHT, WIDTH = 360, 640  # frame
INPUT = (128, 160)  # model input (h, w)
THRESHOLD = 0.5


def probability_map(seed: int, size: tuple[int, int] = INPUT) -> np.ndarray:
    """A model-like probability: two blurred instrument shafts and a tip, with a little noise."""
    h, w = size
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), np.float32)
    for _ in range(2):
        cv2.line(m, (w - 1, h - 1), (int(rng.integers(0, w)), int(rng.integers(0, h))), 1.0, int(rng.integers(4, 14)))
    cv2.circle(m, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(5, 18)), 1.0, -1)
    m = cv2.GaussianBlur(m, (0, 0), 1.5)
    return np.clip(m * 1.1 - 0.05 + rng.normal(0, 0.02, m.shape), 0, 1).astype(np.float32)


def frames(count: int) -> list[np.ndarray]:
    return pattern_frames(WIDTH, HEIGHT, count)


def cpu_reference(images: list[np.ndarray], probs: list[np.ndarray], style: OverlayStyle, smooth: float, view: ViewState):
    """What the CPU pipeline's render stage draws (Smoother → Overlayer.mask → Overlayer.draw)."""
    smoother, overlayer = Smoother(smooth), Overlayer(style, THRESHOLD)
    out = []
    for image, prob in zip(images, probs, strict=True):
        mask = overlayer.mask(smoother(prob), Size(height=HEIGHT, width=WIDTH))
        out.append((overlayer.draw(image.copy(), mask, view), mask > 0))
    return out


def torch_path(images: list[np.ndarray], probs: list[np.ndarray], style: OverlayStyle, smooth: float, view: ViewFlags):
    """The same frames through the torch functions on CPU tensors."""
    state, keep = torch.zeros(INPUT), torch.zeros(())
    out = []
    for image, prob in zip(images, probs, strict=True):
        g.smooth_(state, torch.from_numpy(prob), keep)
        keep.fill_(smooth)
        mask = g.upsample_mask(state, (HEIGHT, WIDTH), THRESHOLD)
        composed = g.compose(torch.from_numpy(image), mask, style, view.overlay, view.mask_only, view.contours)
        out.append((composed.numpy(), mask.numpy()))
    return out


#: thickness → (max mean abs diff in levels, max fraction of pixels off by > 64 levels, by > 8 levels)
BOUNDS = {1: (1.0, 0.010, 0.025), 2: (0.6, 0.005, 0.020), 3: (1.0, 0.010, 0.025)}


def image_differences(image: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """Mean absolute difference (levels), fraction of pixels off by > 64 and by > 8 levels in any channel."""
    diff = np.abs(image.astype(np.int16) - reference.astype(np.int16))
    worst = diff.max(axis=2)
    return float(diff.mean()), float((worst > 64).mean()), float((worst > 8).mean())


@pytest.mark.parametrize("smooth", [0.0, 0.6])
@pytest.mark.parametrize("thickness", [1, 2, 3])
def test_compose_matches_the_cpu_overlay_within_the_bound(smooth: float, thickness: int) -> None:
    """GPU compose vs CPU overlay: 360×640 frames, 128×160 probabilities, 4 frames, default alpha and colour.

    Bound, and why:

    * masks: at most 0.05 % of pixels differ. Both quantise the probability to uint8 and up-sample it
      bilinearly with pixel-centre alignment; OpenCV's uint8 bilinear uses 11-bit fixed-point weights,
      torch float32, so a pixel whose interpolated value lies within a level of the threshold can flip
      (measured 0.001–0.009 % at 720p).
    * composed image (:data:`BOUNDS`): for the default thickness 2, mean absolute difference ≤ 0.6
      levels, ≤ 0.5 % of pixels off by more than 64 levels and ≤ 2 % by more than 8; thickness 1 and 3:
      ≤ 1.0 level, ≤ 1 %, ≤ 2.5 %. Inside the blend both compute ``round((1−α)·frame + α·colour)``
      (exact where the masks agree: next test). The contour is where they differ: OpenCV draws an
      anti-aliased polyline along the outer contour (partial coverage at its edges, nothing around
      holes), the GPU path a solid morphological band of the widths that match OpenCV's coverage
      best (``contour_radii``). Measured on these frames (max over frames): thickness 2 mean 0.48,
      0.41 % > 64, 1.74 % > 8; thickness 1: 0.47, 0.40 %, 2.0 %; thickness 3: 0.84, 0.87 %, 2.1 %. At
      720p (longer shapes, less contour per pixel) thickness 2 measured mean ≤ 0.15, ≤ 0.7 % > 8.
      The band the brief names first (mask minus its erosion, no outer ring) gives mean 1.98 and
      1.85 % > 64 at thickness 2 and fails (test_a_wrong_contour_width_fails_the_bound).
    """
    style = OverlayStyle(contour_thickness=thickness)
    images = frames(4)
    probs = [probability_map(k) for k in range(4)]
    ref = cpu_reference(images, probs, style, smooth, ViewState())
    got = torch_path(images, probs, style, smooth, ViewFlags())
    max_mean, max_far, max_near = BOUNDS[thickness]
    for (ref_image, ref_mask), (image, mask) in zip(ref, got, strict=True):
        assert ref_mask.mean() > 0.03  # the comparison covers real instrument area
        assert (mask != ref_mask).mean() <= 0.0005
        mean, far, near = image_differences(image, ref_image)
        assert mean <= max_mean and far <= max_far and near <= max_near, (mean, far, near)


def test_a_wrong_contour_width_fails_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound can fail: a band of the mask's boundary pixels only (no outer ring) breaks it at thickness 2."""
    style = OverlayStyle(contour_thickness=2)
    images, probs = frames(1), [probability_map(0)]
    monkeypatch.setattr(g, "contour_radii", lambda thickness: (1, 0))
    ref_image, _ = cpu_reference(images, probs, style, 0.0, ViewState())[0]
    image, _ = torch_path(images, probs, style, 0.0, ViewFlags())[0]
    mean, far, near = image_differences(image, ref_image)
    max_mean, max_far, max_near = BOUNDS[2]
    assert mean > max_mean or far > max_far or near > max_near


def test_blend_is_exact_where_the_masks_agree() -> None:
    style = OverlayStyle(alpha=0.37, color=(10, 200, 90))
    images, probs = frames(2), [probability_map(5), probability_map(6)]
    ref = cpu_reference(images, probs, style, 0.0, ViewState(contours=False))
    got = torch_path(images, probs, style, 0.0, ViewFlags(contours=False))
    for (ref_image, ref_mask), (image, mask) in zip(ref, got, strict=True):
        agree = mask == ref_mask
        diff = np.abs(image.astype(np.int16) - ref_image.astype(np.int16)).max(axis=2)
        assert diff[agree].max() <= 1  # float rounding of the blend at most one level
        assert (diff[agree] > 0).mean() < 0.001


def test_mask_only_and_overlay_off_views_match() -> None:
    style = OverlayStyle()
    images, probs = frames(1), [probability_map(8)]
    for view, flags in ((ViewState(mask_only=True), ViewFlags(mask_only=True)), (ViewState(overlay=False), ViewFlags(overlay=False))):
        ref_image, ref_mask = cpu_reference(images, probs, style, 0.0, view)[0]
        image, mask = torch_path(images, probs, style, 0.0, flags)[0]
        agree = mask == ref_mask
        assert np.array_equal(image[agree], ref_image[agree])


def test_smoothing_follows_the_cpu_smoother() -> None:
    smoother = Smoother(0.7)
    state, keep = torch.zeros(INPUT), torch.zeros(())
    for k in range(5):
        prob = probability_map(k)
        expected = smoother(prob)
        g.smooth_(state, torch.from_numpy(prob), keep)
        keep.fill_(0.7)
        np.testing.assert_allclose(state.numpy(), expected, atol=1e-6)


def test_threshold_level_and_mask_agree_with_the_overlay_at_model_size() -> None:
    prob = probability_map(11)
    for threshold in (0.0, 0.3, 0.5, 0.99, 1.0):
        expected = Overlayer(OverlayStyle(), threshold).mask(prob, Size(*INPUT)) > 0
        got = g.upsample_mask(torch.from_numpy(prob), INPUT, threshold).numpy()
        assert np.array_equal(got, expected)  # no resampling: exactly the same decision


def test_resize_frame_is_close_to_the_cpu_backends_resize() -> None:
    image = torch.from_numpy(frames(1)[0])
    got = g.resize_frame(image, INPUT)
    assert got.dtype == torch.uint8 and tuple(got.shape) == (*INPUT, 3)
    area = cv2.resize(frames(1)[0], (INPUT[1], INPUT[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(got.numpy().astype(int) - area).mean() < 3.0  # the CPU backends' resize, close but not equal


def test_contour_band_of_a_square() -> None:
    mask = torch.zeros(20, 20, dtype=torch.bool)
    mask[5:15, 5:15] = True
    band = g.contour_band(mask, 2)  # inner 2 rings, outer 1 ring
    assert band[4, 4:16].all() and band[5, 5:15].all() and band[6, 6:14].all()
    assert not band[7, 7:13].any() and not band[3].any()
    edge = torch.zeros(8, 8, dtype=torch.bool)
    edge[:, :4] = True  # touches the frame border: the border pixels are part of the contour (as findContours)
    assert g.contour_band(edge, 1)[:, 0].all()
    assert not g.contour_band(mask, 0).any()


def _stub_infer(prob: np.ndarray):
    logits = torch.from_numpy(np.log(np.clip(prob, 1e-6, 1 - 1e-6) / np.clip(1 - prob, 1e-6, 1)))[None, None]
    seen: list[torch.Tensor] = []

    def infer(model_input: torch.Tensor | None) -> torch.Tensor:
        if model_input is not None:
            seen.append(model_input.clone())
        return logits.half().float()  # any float dtype is accepted

    return infer, seen


def test_frame_path_on_cpu_reuses_its_buffers_and_matches_the_functions() -> None:
    prob = probability_map(4)
    infer, seen = _stub_infer(prob)
    style = OverlayStyle()
    path = GpuFramePath((WIDTH, HEIGHT), INPUT, infer, style, THRESHOLD, smooth=0.5, device="cpu", out_slots=2)
    buffers = [t.data_ptr() for t in (path.frame, path.model_input, path.state, path.mask, path.composed)]
    images = frames(3)
    outputs = [path.process(image).copy() for image in images]
    assert [t.data_ptr() for t in (path.frame, path.model_input, path.state, path.mask, path.composed)] == buffers
    assert torch.equal(seen[0][0], g.resize_frame(torch.from_numpy(images[0]), INPUT))
    probs = [torch.sigmoid(infer(None)[0, 0]).numpy()] * 3
    expected = torch_path(images, probs, style, 0.5, ViewFlags())
    for got, (want, _) in zip(outputs, expected, strict=True):
        assert np.array_equal(got, want)
    first, second, third = (path.download() for _ in range(3))
    assert np.shares_memory(first, third) and not np.shares_memory(first, second)  # ring of 2 host outputs
    with pytest.raises(ValueError, match="uint8 frame"):
        path.upload(np.zeros((HEIGHT, WIDTH), np.uint8))


def test_reset_smoothing_takes_the_next_frame_as_is() -> None:
    prob = probability_map(2)
    infer, _ = _stub_infer(prob)
    path = GpuFramePath((WIDTH, HEIGHT), INPUT, infer, OverlayStyle(), THRESHOLD, smooth=0.9)
    path.state.fill_(1.0)
    path.process(frames(1)[0])
    np.testing.assert_allclose(path.state.numpy(), torch.sigmoid(infer(None)[0, 0]).numpy(), atol=1e-6)
    path.state.fill_(0.0)
    path.process(frames(1)[0])
    assert path.state.max() < 0.2  # blended with the (zeroed) state: smoothing is on after the first frame
    path.reset_smoothing()
    path.process(frames(1)[0])
    np.testing.assert_allclose(path.state.numpy(), torch.sigmoid(infer(None)[0, 0]).numpy(), atol=1e-6)


def test_timed_process_records_each_step_and_draws_the_same() -> None:
    prob = probability_map(6)
    plain = GpuFramePath((WIDTH, HEIGHT), INPUT, _stub_infer(prob)[0], OverlayStyle(), THRESHOLD, smooth=0.4)
    timed = GpuFramePath((WIDTH, HEIGHT), INPUT, _stub_infer(prob)[0], OverlayStyle(), THRESHOLD, smooth=0.4)
    timer = StageTimer(device="cpu")
    for image in frames(3):
        assert np.array_equal(plain.process(image), timed.process_timed(image, timer, runner=CudaGraphRunner("cpu")))
    summary = timer.summary_ms()
    assert set(summary) == {"upload", "preprocess", "inference", "postprocess", "compose", "download"}
    assert all(row["count"] == 3 for row in summary.values())


def test_graph_runner_falls_back_on_cpu_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="app.gpu.compose"):
        runner = CudaGraphRunner("cpu")
    assert not runner.active and "CUDA device" in (runner.reason or "")
    assert "CUDA graphs off" in caplog.text
    assert CudaGraphRunner("cuda", enabled=False).reason == "CUDA graphs disabled"
    calls = []
    runner.run("k", lambda: calls.append(1))
    runner.run("k", lambda: calls.append(1))
    assert calls == [1, 1] and runner.captured == 0
    prob = probability_map(1)
    images = frames(2)
    eager = GpuFramePath((WIDTH, HEIGHT), INPUT, _stub_infer(prob)[0], OverlayStyle(), THRESHOLD, smooth=0.3)
    graphed = GpuFramePath((WIDTH, HEIGHT), INPUT, _stub_infer(prob)[0], OverlayStyle(), THRESHOLD, smooth=0.3)
    for image in images:
        assert np.array_equal(eager.process(image), graphed.process(image, runner=runner))


def test_graph_runner_without_cuda_runtime_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runner = CudaGraphRunner("cuda")
    assert not runner.active and "is_available" in (runner.reason or "")


@pytest.mark.gpu
def test_cuda_path_with_graphs_matches_eager_and_the_cpu_tensors() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    prob = probability_map(9)
    images = frames(4)
    logits_cpu = torch.from_numpy(np.log(np.clip(prob, 1e-6, 1 - 1e-6) / np.clip(1 - prob, 1e-6, 1)))[None, None]
    logits = logits_cpu.cuda()

    def infer(model_input: torch.Tensor) -> torch.Tensor:
        return logits + model_input.float().mean() * 0  # reads the static input, as a model does

    style = OverlayStyle()
    cpu = GpuFramePath((WIDTH, HEIGHT), INPUT, lambda x: logits_cpu + x.float().mean() * 0, style, THRESHOLD, smooth=0.5)
    eager = GpuFramePath((WIDTH, HEIGHT), INPUT, infer, style, THRESHOLD, smooth=0.5, device="cuda")
    graphed = GpuFramePath((WIDTH, HEIGHT), INPUT, infer, style, THRESHOLD, smooth=0.5, device="cuda")
    runner = CudaGraphRunner("cuda")
    for image in images:
        want = cpu.process(image).copy()
        got_eager = eager.process(image).copy()
        got_graph = graphed.process(image, runner=runner).copy()
        assert np.array_equal(got_eager, got_graph)
        assert (np.abs(got_eager.astype(int) - want).max(axis=2) > 1).mean() < 0.001
    assert runner.active and runner.captured == 1


@pytest.mark.gpu
def test_cuda_graph_capture_failure_falls_back_with_a_reason() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    buffer = torch.zeros(4, device="cuda")
    runner = CudaGraphRunner("cuda", warmup=1)
    runner.run("k", lambda: buffer.add_(1).sum().item())  # .item() synchronises: not capturable
    assert not runner.active and "capture failed" in (runner.reason or "")
    runner.run("k", lambda: buffer.add_(1))
    assert runner.captured == 0


def test_live_source_frame_path_and_timer_fit_together() -> None:
    """The three issue-12 modules as the live bench chains them, with a real (tiny, random) FrameSegmenter on CPU."""
    from app.sources.live import LiveSource, LiveSpec
    from models.frame_model import FrameSegmenter
    from models.unet import UNet, UNetConfig

    torch.manual_seed(0)
    model = FrameSegmenter(UNet(UNetConfig(base_width=2, depth=2))).eval()
    spec = LiveSpec(96, 64, 500.0)
    path = GpuFramePath((spec.width, spec.height), (32, 48), model, OverlayStyle(), THRESHOLD, smooth=0.2)
    timer = StageTimer(device="cpu")
    source = LiveSource(spec, generator="pattern", count=2, copy=False, max_frames=12)
    composed = 0
    with source:
        while (frame := source.read(5.0)) is not None:
            out = path.process_timed(frame.image, timer)
            assert out.shape == (64, 96, 3) and out.dtype == np.uint8
            composed += 1
    assert composed == source.taken and source.taken + source.dropped == 12
    assert timer.summary_ms()["inference"]["count"] == composed
