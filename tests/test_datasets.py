"""Dataset discovery, validation, splitting, caching and augmentation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import INSTRUMENT_BGR, draw_frame, write_dvrk_video

from training.augment import AugmentConfig, augment, geometric
from training.datasets import (
    DatasetError,
    detect_layout,
    discover,
    group_name,
    load_pair,
    split_videos,
    subsample,
)
from training.frame_cache import CachedFrameDataset, build_cache


def test_dvrk_videos_and_frames_in_numeric_order(tmp_path: Path) -> None:
    root = tmp_path / "dvrk"
    names = [f"Video_{i:02d}" for i in range(1, 10)] + [f"Video_0{i}" for i in range(10, 13)]
    for name in reversed(names):
        write_dvrk_video(root / name, [("9", 1), ("10", 2), ("100", 3)], 12, 16)
    write_dvrk_video(root / "others" / "Video_15", [("0", 4), ("1", 5)], 12, 16)
    index = discover(root)
    assert index.layout == "dvrk"
    assert index.video_names() == names + ["Video_15"]
    assert [p.image.name for p in index.videos[0].frames] == ["9.png", "10.png", "100.png"]
    assert all(p.masks[0].parent.name == "ground_truth" for v in index.videos for p in v.frames)
    assert index.num_frames == 12 * 3 + 2


def test_folder_pairs_grouped_by_stem_prefix(tmp_path: Path) -> None:
    root = tmp_path / "folders"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    stems = ["ev17_ds1_frame001", "ev17_ds1_frame000", "lap_image43", "lap_image7"]
    for seed, stem in enumerate(stems):
        image, mask = draw_frame(seed, 12, 16)
        cv2.imwrite(str(root / "images" / f"{stem}.jpg"), image)  # mask extension differs
        cv2.imwrite(str(root / "masks" / f"{stem}.png"), mask)
    index = discover(root)
    assert index.layout == "folders"
    assert index.video_names() == ["ev17_ds1", "lap"]
    assert [p.image.stem for p in index.videos[0].frames] == ["ev17_ds1_frame000", "ev17_ds1_frame001"]
    assert [p.image.stem for p in index.videos[1].frames] == ["lap_image7", "lap_image43"]
    whole = discover(root, group_by=None)
    assert whole.video_names() == ["folders"] and whole.num_frames == 4


def test_group_name_rule() -> None:
    import re

    from training.datasets import DEFAULT_GROUP_BY

    pattern = re.compile(DEFAULT_GROUP_BY)
    assert group_name("ev17_ds1_frame000", pattern, "x") == "ev17_ds1"
    assert group_name("lap_image43", pattern, "x") == "lap"
    assert group_name("seq3_0001", pattern, "x") == "seq3"
    assert group_name("frame000", pattern, "x") == "x"  # no match: fallback group


def test_endovis17_union_of_part_labels(tmp_path: Path) -> None:
    folder = tmp_path / "ev" / "instrument_dataset_1"
    (folder / "left_frames").mkdir(parents=True)
    for part in ("Left_labels", "Right_labels"):
        (folder / "ground_truth" / part).mkdir(parents=True)
    image = np.zeros((10, 12, 3), np.uint8)
    left = np.zeros((10, 12), np.uint8)
    left[:3] = 30
    right = np.zeros((10, 12), np.uint8)
    right[-2:] = 70
    cv2.imwrite(str(folder / "left_frames" / "frame000.png"), image)
    cv2.imwrite(str(folder / "ground_truth" / "Left_labels" / "frame000.png"), left)
    cv2.imwrite(str(folder / "ground_truth" / "Right_labels" / "frame000.png"), right)
    index = discover(tmp_path / "ev")
    assert index.layout == "endovis17"
    _, mask = load_pair(index.videos[0].frames[0])
    assert mask.sum() == 5 * 12 and set(np.unique(mask)) == {0, 1}


def test_image_without_mask_names_file(make_dvrk) -> None:
    root = make_dvrk(2, 2)
    (root / "Video_02" / "ground_truth" / "001.png").unlink()
    with pytest.raises(DatasetError, match=r"Video_02/images/001\.png has no mask"):
        discover(root)


def test_mask_without_image_names_file(make_dvrk) -> None:
    root = make_dvrk(2, 2)
    (root / "Video_01" / "images" / "000.png").unlink()
    with pytest.raises(DatasetError, match=r"Video_01/ground_truth/000\.png has no image"):
        discover(root)


def test_size_mismatch_names_both_files(make_dvrk) -> None:
    root = make_dvrk(2, 2)
    cv2.imwrite(str(root / "Video_01" / "ground_truth" / "000.png"), np.zeros((5, 7), np.uint8))
    with pytest.raises(DatasetError, match=r"Video_01/ground_truth/000\.png is 7x5.*24"):
        discover(root)  # the first pair is checked at construction


def test_unreadable_file_names_file(make_dvrk) -> None:
    root = make_dvrk(2, 2)
    (root / "Video_02" / "images" / "001.png").write_bytes(b"not a png")
    index = discover(root)  # only the first pair is read eagerly
    with pytest.raises(DatasetError, match=r"could not read image .*Video_02/images/001\.png"):
        build_cache(index.videos, (12, 16), workers=1)


def test_non_binary_mask_lists_values(make_dvrk) -> None:
    root = make_dvrk(2, 2)
    bad = np.zeros((24, 32), np.uint8)
    bad[0, :3] = (1, 128, 255)
    cv2.imwrite(str(root / "Video_02" / "ground_truth" / "000.png"), bad)
    index = discover(root)
    with pytest.raises(
        DatasetError, match=r"Video_02/ground_truth/000\.png is not binary: found values \{0, 1, 128, 255\}"
    ):
        load_pair(index.videos[1].frames[0])


@pytest.mark.parametrize("values", [(0, 255), (0, 1), (0,), (255,), (1,)])
def test_accepted_mask_encodings(make_dvrk, values: tuple[int, ...]) -> None:
    root = make_dvrk(1, 1)
    mask = np.full((24, 32), values[0], np.uint8)
    mask[:4] = values[-1]
    cv2.imwrite(str(root / "Video_01" / "ground_truth" / "000.png"), mask)
    _, loaded = load_pair(discover(root).videos[0].frames[0])
    assert loaded.dtype == np.uint8
    assert np.array_equal(loaded, (mask > 0).astype(np.uint8))


def test_empty_dataset_and_missing_root(tmp_path: Path) -> None:
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(DatasetError, match="no image/mask pairs found under .*empty"):
        discover(tmp_path / "empty")
    with pytest.raises(DatasetError, match="nowhere is not a folder"):
        discover(tmp_path / "nowhere")
    (tmp_path / "odd").mkdir()
    with pytest.raises(DatasetError, match="cannot detect the dataset layout"):
        detect_layout(tmp_path / "odd")


def test_split_is_by_video(make_dvrk) -> None:
    videos = discover(make_dvrk(11, 2)).videos
    train, val = split_videos(videos, 3, seed=1)
    assert len(val) == 3 and len(train) == 8
    assert not {v.name for v in train} & {v.name for v in val}
    train_frames = {p.image for v in train for p in v.frames}
    assert not train_frames & {p.image for v in val for p in v.frames}
    assert [v.name for v in split_videos(videos, 3, seed=1)[1]] == [v.name for v in val]  # seeded
    _, named = split_videos(videos, ["Video_010", "Video_02"])
    assert [v.name for v in named] == ["Video_02", "Video_010"]


def test_split_errors(make_dvrk) -> None:
    videos = discover(make_dvrk(3, 1)).videos
    for bad in (0, 3, ["Video_01", "Video_02", "Video_03"], []):
        with pytest.raises(DatasetError, match="split"):
            split_videos(videos, bad)
    with pytest.raises(DatasetError, match=r"\['Video_07'\] not found"):
        split_videos(videos, ["Video_07"])


def test_frame_step_and_cache(make_dvrk) -> None:
    videos = subsample(discover(make_dvrk(2, 5)).videos, 2)
    assert [p.image.stem for p in videos[0].frames] == ["000", "002", "004"]
    cache = build_cache(videos, (12, 20), workers=2)
    assert cache.images.shape == (6, 12, 20, 3) and cache.images.dtype == np.uint8
    assert cache.masks.shape == (6, 12, 20) and set(np.unique(cache.masks)) <= {0, 1}
    assert cache.names[3] == "Video_02/000"


def test_augment_keeps_masks_binary_and_aligned() -> None:
    image, mask = draw_frame(3, 64, 80)
    mask01 = (mask > 0).astype(np.uint8)
    cfg = AugmentConfig()
    for seed in range(20):
        rng = np.random.default_rng(seed)
        warped_image, warped_mask = geometric(image, mask01, rng, cfg)
        assert set(np.unique(warped_mask)) <= {0, 1}
        # The instrument colour marks the instrument: after the warp, colour and mask still agree.
        from_colour = np.all(np.abs(warped_image.astype(int) - INSTRUMENT_BGR) < 30, axis=-1)
        agreement = (from_colour == warped_mask.astype(bool)).mean()
        assert agreement > 0.97, (seed, agreement)
        out_image, out_mask = augment(image, mask01, np.random.default_rng(seed), cfg)
        assert out_image.shape == image.shape and out_image.dtype == np.uint8
        assert set(np.unique(out_mask)) <= {0, 1}


def test_augmented_dataset_is_seeded(make_dvrk) -> None:
    cache = build_cache(discover(make_dvrk(1, 2)).videos, (24, 32))
    a = CachedFrameDataset(cache, AugmentConfig(), seed=5)
    b = CachedFrameDataset(cache, AugmentConfig(), seed=5)
    assert np.array_equal(a[1][0].numpy(), b[1][0].numpy())
    b.set_epoch(1)
    assert not np.array_equal(a[1][0].numpy(), b[1][0].numpy())
    plain = CachedFrameDataset(cache)
    assert np.array_equal(plain[0][0].numpy(), cache.images[0])


def test_weighted_root_sampler_shares_and_ranks() -> None:
    """Each root gets its share per epoch, frames of a root are drawn without repeats before any
    repeat, the draw changes with the epoch, and two ranks split one draw without overlap."""
    from training.frame_cache import FrameCache, WeightedRootSampler

    roots = ["real"] * 3 + ["generated"] * 10
    cache = FrameCache(np.zeros((13, 2, 2, 3), np.uint8), np.zeros((13, 2, 2), np.uint8), roots=roots)
    sampler = WeightedRootSampler(cache, {"real": 1.0, "generated": 1.0}, num_samples=12)
    drawn = list(sampler)
    real = [i for i in drawn if roots[i] == "real"]
    assert len(drawn) == 12 and len(real) == 6
    assert sorted(real) == [0, 0, 1, 1, 2, 2]  # two full passes over the 3 real frames
    assert len({i for i in drawn if roots[i] == "generated"}) == 6  # no repeats while unseen frames remain
    sampler.set_epoch(1)
    assert list(sampler) != drawn
    halves = [list(WeightedRootSampler(cache, {"real": 1.0, "generated": 1.0}, 12, rank, 2)) for rank in (0, 1)]
    assert len(halves[0]) == len(halves[1]) == 6 and sorted(halves[0] + halves[1]) == sorted(drawn)
    with pytest.raises(DatasetError, match="data weights name"):
        WeightedRootSampler(cache, {"real": 1.0}, 12)


def test_count_of_validation_videos_is_taken_from_each_root(tmp_path: Path) -> None:
    from training.datasets import Video, split_videos

    videos = [Video(f"{root}/v{i}", [object()], root) for root in ("a", "b") for i in range(3)]  # type: ignore[list-item]
    train, val = split_videos(videos, 1, seed=0)
    assert sorted(v.root for v in val) == ["a", "b"] and len(train) == 4


def test_footage_augmentations_keep_image_and_mask_consistent() -> None:
    """Field stops black out the image and clear the mask outside the stop; grayscale gives equal
    channels; the other footage operations leave the mask alone."""
    from dataclasses import replace

    from training.augment import AUGMENT_PRESETS, augment_preset, footage

    image, mask = draw_frame(3, 64, 80)
    mask = (mask > 0).astype(np.uint8)
    rng = np.random.default_rng(0)
    off = augment_preset("basic")
    stop = replace(off, p_field_stop=1.0)
    white, full = np.full_like(image, 255), np.ones_like(mask)
    for _ in range(10):
        out, out_mask = footage(white, full, rng, stop)
        assert np.array_equal(out_mask, (out.max(axis=2) > 0).astype(np.uint8))  # mask cleared exactly where blacked out
        assert 0 < out_mask.sum() < full.sum()
    gray, gray_mask = footage(image, mask, rng, replace(off, p_grayscale=1.0))
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    every = replace(augment_preset("footage"), p_field_stop=0.0, p_grayscale=0.0)
    every = replace(every, **{k: 1.0 for k in ("p_color_cast", "p_haze", "p_motion_blur", "p_overexpose", "p_specular")})
    changed, same_mask = footage(image, mask, rng, every)
    assert np.array_equal(same_mask, mask) and not np.array_equal(changed, image)
    assert set(AUGMENT_PRESETS) == {"basic", "footage", "footage+negatives", "footage+negatives+lobes", "footage+negatives+lobes+cholec"}
    with pytest.raises(ValueError, match="augmentation preset 'heavy'"):
        augment_preset("heavy")


def test_hard_negatives_are_drawn_behind_the_instruments_only() -> None:
    """Pale organs, pale lobes and glare change background pixels, never an instrument pixel, never the
    mask, and never the black surround of a field stop."""
    from training.augment import glare, pale_lobe, pale_organ

    image, mask = draw_frame(5, 96, 128)
    mask = (mask > 0).astype(np.uint8)
    image[:, :10] = 0  # a black field-stop surround
    rng = np.random.default_rng(2)
    changed_background = False
    for draw in (pale_organ, pale_lobe, glare) * 10:
        out = draw(image, mask, rng)
        assert np.array_equal(out[mask == 1], image[mask == 1])
        assert np.array_equal(out[:, :10], image[:, :10])
        changed_background |= not np.array_equal(out[mask == 0], image[mask == 0])
    assert changed_background


def test_pale_lobe_is_an_elongated_shape_from_a_frame_edge() -> None:
    """The lobe reaches in from a frame edge and is much longer than it is wide (the shaft-like outline
    it is there to teach apart from a shaft)."""
    from training.augment import _lobe_shape

    rng = np.random.default_rng(4)
    for _ in range(20):
        shape, radius = _lobe_shape(rng, 64, 80)
        assert shape.max() == 1.0
        edges = np.concatenate([shape[0], shape[-1], shape[:, 0], shape[:, -1]])
        assert edges.any(), "the lobe must enter from a frame edge"
        assert shape.sum() < 0.8 * shape.size
        ys, xs = np.nonzero(shape)
        extent = max(np.ptp(xs), np.ptp(ys)) + 1
        assert extent > 3 * radius, (extent, radius)


def test_presets_without_lobes_keep_their_random_streams() -> None:
    """Adding the lobe did not change what the older presets draw: ``footage+negatives`` with the same
    seed gives the same image as the lobe preset with the lobe switched off."""
    from dataclasses import replace

    from training.augment import augment, augment_preset

    image, mask = draw_frame(6, 64, 80)
    mask = (mask > 0).astype(np.uint8)
    old = augment(image, mask, np.random.default_rng(9), augment_preset("footage+negatives"))
    no_lobe = replace(augment_preset("footage+negatives+lobes"), p_pale_lobe=0.0)
    new = augment(image, mask, np.random.default_rng(9), no_lobe)
    assert np.array_equal(old[0], new[0]) and np.array_equal(old[1], new[1])
    lobed = replace(no_lobe, p_pale_lobe=1.0)
    assert augment_preset("footage+negatives+lobes").p_pale_lobe > 0
    assert not np.array_equal(augment(image, mask, np.random.default_rng(9), lobed)[0], old[0])
