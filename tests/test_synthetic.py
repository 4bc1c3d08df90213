"""Tests for the procedural surgical video generator (synthetic) and its CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import decode_video

from synthetic import SceneConfig, generate_video, write_dataset, write_demo_video
from synthetic.mp4 import write_mp4

W, H = 160, 128


def _frames(seed: int, n: int, config: SceneConfig | None = None, w: int = W, h: int = H):
    return list(generate_video(seed, n, w, h, config))


def test_determinism_and_seed_dependence():
    a = _frames(3, 3)
    b = _frames(3, 3)
    c = _frames(4, 3)
    for (fa, ma), (fb, mb) in zip(a, b, strict=False):
        assert np.array_equal(fa, fb) and np.array_equal(ma, mb)
    assert not np.array_equal(a[0][0], c[0][0])
    # frame i does not depend on the requested length
    longer = _frames(3, 5)
    assert np.array_equal(longer[2][0], a[2][0]) and np.array_equal(longer[2][1], a[2][1])


def test_frame_and_mask_format():
    for frame, mask in _frames(1, 2, w=97, h=61):
        assert frame.dtype == np.uint8 and frame.shape == (61, 97, 3)
        assert mask.dtype == np.uint8 and mask.shape == (61, 97)
        assert set(np.unique(mask).tolist()) <= {0, 255}


def test_instrument_statistics_across_videos():
    coverages, multi = [], 0
    for seed in range(8):
        for _frame, mask in _frames(seed, 40, w=120, h=96)[::8]:
            coverages.append(np.count_nonzero(mask) / mask.size)
            n, _ = cv2.connectedComponents((mask > 0).astype(np.uint8))
            multi += (n - 1) >= 2
    cov = np.array(coverages)
    assert (cov > 0).mean() >= 0.7, "instruments should be visible in most frames"
    assert 0.03 <= np.median(cov[cov > 0]) <= 0.4
    assert cov.max() < 0.75
    assert multi >= 2, "some frames should show 2+ separate instruments"


def test_withdrawals_give_some_empty_frames():
    empty = total = 0
    for seed in range(12):
        scene_masks = [m for _, m in _frames(seed, 300, SceneConfig().without_post_effects(), w=48, h=40)[::10]]
        empty += sum(not m.any() for m in scene_masks)
        total += len(scene_masks)
    assert 0 < empty / total < 0.25


@pytest.mark.parametrize("seed", [0, 5, 11, 23])
def test_mask_is_exactly_the_visible_instrument(seed):
    """Same scene with and without instruments (post-effects off): the images differ only at masked pixels
    (plus a ≤2 px anti-aliasing band), and nearly every masked pixel differs."""
    clean = SceneConfig().without_post_effects()
    plate = SceneConfig(draw_instruments=False).without_post_effects()
    kernel = np.ones((5, 5), np.uint8)  # 2 px dilation (chessboard distance)
    checked = 0
    for (f1, m1), (f0, m0) in zip(_frames(seed, 12, clean, 200, 150)[::3], _frames(seed, 12, plate, 200, 150)[::3], strict=False):
        assert not m0.any(), "background plate must have an empty mask"
        diff = np.abs(f1.astype(np.int16) - f0.astype(np.int16)).max(-1) > 0
        band = cv2.dilate(m1, kernel) > 0
        assert not (diff & ~band).any(), f"{int((diff & ~band).sum())} changed pixels outside the dilated mask"
        inside = m1 > 0
        if inside.sum() > 50:
            assert diff[inside].mean() > 0.97
            checked += 1
    assert checked > 0


def test_occluders_cut_instruments_from_mask():
    """Blood / tissue drawn over instruments removes them from the mask (mask ⊂ instrument coverage)."""
    no_occ = SceneConfig(occluders=False).without_post_effects()
    found = False
    for seed in range(30):
        with_occ = _frames(seed, 1, SceneConfig().without_post_effects())[0][1]
        without = _frames(seed, 1, no_occ)[0][1]
        extra = (with_occ > 0) & (without == 0)
        assert extra.sum() <= 0.002 * extra.size
        if ((without > 0) & (with_occ == 0)).sum() > 20:
            found = True
            break
    assert found, "no seed in 0..29 had an occluder over an instrument"


def test_write_dataset_layout(tmp_path: Path):
    root = tmp_path / "synthetic"
    summary = write_dataset(root, num_videos=11, frames_per_video=2, seed=7, width=64, height=48, workers=1,
                            progress=False)
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    expected = [f"Video_0{n}" for n in range(1, 12)]
    assert sorted(names) == sorted(expected)
    assert (root / "Video_010").is_dir() and (root / "Video_011").is_dir() and (root / "Video_09").is_dir()
    for name in expected:
        for sub in ("images", "ground_truth"):
            assert sorted(p.name for p in (root / name / sub).iterdir()) == ["000.png", "001.png"]
    img = cv2.imread(str(root / "Video_010" / "images" / "001.png"), cv2.IMREAD_UNCHANGED)
    gt = cv2.imread(str(root / "Video_010" / "ground_truth" / "001.png"), cv2.IMREAD_UNCHANGED)
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    assert gt.shape == (48, 64) and set(np.unique(gt).tolist()) <= {0, 255}
    on_disk = json.loads((root / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["videos"] == 11 and summary["frames"] == 22 and summary["seed"] == 7
    assert summary["width"] == 64 and summary["height"] == 48 and summary["generator_version"]
    assert set(summary["video_seeds"]) == set(expected) and len(set(summary["video_seeds"].values())) == 11
    assert summary["seconds"] >= 0
    # the written frames are exactly what generate_video yields for that video seed
    f, m = next(iter(generate_video(summary["video_seeds"]["Video_03"], 1, 64, 48)))
    assert np.array_equal(cv2.imread(str(root / "Video_03" / "images" / "000.png")), f)
    assert np.array_equal(cv2.imread(str(root / "Video_03" / "ground_truth" / "000.png"), cv2.IMREAD_UNCHANGED), m)


def test_write_dataset_multiprocess_matches_inprocess(tmp_path: Path):
    a = write_dataset(tmp_path / "a", 2, 2, seed=1, width=48, height=40, workers=1, progress=False)
    b = write_dataset(tmp_path / "b", 2, 2, seed=1, width=48, height=40, workers=2, progress=False)
    assert a["video_seeds"] == b["video_seeds"]
    for p in (tmp_path / "a").rglob("*.png"):
        q = tmp_path / "b" / p.relative_to(tmp_path / "a")
        assert p.read_bytes() == q.read_bytes()


def test_write_demo_video(tmp_path: Path):
    out = write_demo_video(tmp_path / "demo.mp4", seed=2, num_frames=12, width=128, height=96, fps=25.0)
    assert out == tmp_path / "demo.mp4" and out.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == ["demo.mp4"], "temp file must be gone"
    decoded = decode_video(out)
    assert len(decoded) == 12 and all(frame.shape == (96, 128, 3) for frame in decoded)


def test_write_demo_video_bad_path_raises(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FileExistsError):  # the folder cannot be made: a file is in the way
        write_demo_video(blocker / "demo.mp4", num_frames=2, width=64, height=48)
    assert [p.name for p in tmp_path.iterdir()] == ["file"], "nothing half-written is left"


def test_write_mp4_unopenable_writer_raises_oserror_and_leaves_nothing(tmp_path: Path):
    frames = [np.zeros((48, 64, 3), np.uint8)] * 2
    with pytest.raises(OSError, match="could not open an mp4v writer"):
        write_mp4(tmp_path / "clip.mp4", (np.zeros((0, 0, 3), np.uint8) for _ in range(1)), 25.0)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no frames"):
        write_mp4(tmp_path / "clip.mp4", [], 25.0)
    assert len(decode_video(write_mp4(tmp_path / "clip.mp4", frames, 25.0))) == 2


def test_invalid_arguments():
    with pytest.raises(ValueError, match="seed must be >= 0"):
        generate_video(-1, 2)
    with pytest.raises(ValueError, match="num_frames must be >= 0"):
        list(generate_video(0, -1))
    with pytest.raises(ValueError, match="width and height must be >= 16"):
        generate_video(0, 2, width=8, height=48)
    with pytest.raises(ValueError, match="min_instruments <= max_instruments"):
        SceneConfig(min_instruments=3, max_instruments=1)
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        write_demo_video(Path("unused.mp4"), num_frames=0)


def test_instrument_count_knob():
    for seed in range(4):
        _, m = _frames(seed, 1, SceneConfig(min_instruments=0, max_instruments=0))[0]
        assert not m.any()


def test_cli_dataset(tmp_path: Path):
    root = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "training.generate", "dataset", "--out", str(root), "--videos", "2", "--frames", "2",
         "--seed", "0", "--width", "64", "--height", "48", "--workers", "1", "--no-progress"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote 4 frames" in proc.stdout
    assert (root / "Video_02" / "ground_truth" / "001.png").is_file()
    assert json.loads((root / "summary.json").read_text())["frames"] == 4


def test_cli_help():
    proc = subprocess.run([sys.executable, "-m", "training.generate", "--help"], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0 and "dataset" in proc.stdout and "video" in proc.stdout


def test_field_stop_excluded_and_close_instruments_occur():
    """Mask is zero wherever the field stop blacks out the image; some scenes show a very wide (close) shaft."""
    from synthetic.video import SceneRenderer

    wide = stopped = 0
    for seed in range(12):
        scene = SceneRenderer(seed, W, H, SceneConfig(withdrawals=False))
        _, mask = scene.render(0)
        if scene.stop is not None:
            assert not mask[scene.stop < 0.5].any(), "instrument mask inside the black field-stop area"
            stopped += 1
        dist = cv2.distanceTransform((mask > 0).astype(np.uint8), cv2.DIST_L2, 5)
        wide += dist.max() >= 0.05 * W  # shaft ≥ 10 % of the frame width across
    assert stopped >= 3 and wide >= 2
