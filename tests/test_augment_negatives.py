"""Issue 18 item 4: the cholecystectomy and monochrome-sensor augmentations (training/augment_negatives.py).

Labels stay exact (the negatives are drawn behind the instruments, the monochrome sensor never touches the mask),
field-stop surrounds stay black, each operation draws the shape it claims, and every older preset draws exactly
the random stream it drew before these operations existed.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import INSTRUMENT_BGR, draw_frame

from training.augment import AUGMENT_PRESETS, augment, augment_preset, footage
from training.augment_negatives import (
    fat_lobules,
    instrument_tips,
    lobule_cluster,
    monochrome_sensor,
    strand_coverage,
    tip_glare,
    white_strands,
)

NEW_FIELDS = ("p_white_strands", "p_fat_lobules", "p_tip_glare", "p_monochrome_sensor")
PRESET = "footage+negatives+lobes+cholec"


def jaw_frame(height: int = 96, width: int = 128, surround: int = 10) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Reddish tissue, a shaft from the left edge ending in two thin jaws, a black field-stop band on the right:
    (image, 0/1 mask, the two jaw ends)."""
    rng = np.random.default_rng(0)
    image = (np.array([60, 70, 170], np.uint8) + rng.integers(0, 25, (height, width, 3), dtype=np.uint8)).astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    joint = (width // 2, height // 2)
    ends = [(joint[0] + width // 5, joint[1] - height // 10), (joint[0] + width // 5, joint[1] + height // 10)]
    cv2.line(mask, (0, joint[1]), joint, 1, height // 8)
    for end in ends:
        cv2.line(mask, joint, end, 1, 2)
    image[mask > 0] = INSTRUMENT_BGR
    image[:, width - surround :] = 0
    return image, mask, ends


@pytest.mark.parametrize("draw", [white_strands, fat_lobules, tip_glare])
def test_negatives_are_drawn_behind_the_instruments_only(draw) -> None:
    """Never an instrument pixel, never the field-stop surround, never the mask; the background does change."""
    image, mask, _ = jaw_frame()
    before = mask.copy()
    rng = np.random.default_rng(3)
    changed = 0
    for _ in range(12):
        out = draw(image, mask, rng)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert np.array_equal(out[mask == 1], image[mask == 1])
        assert np.array_equal(out[:, -10:], image[:, -10:])
        changed += not np.array_equal(out[mask == 0], image[mask == 0])
    assert np.array_equal(mask, before)
    assert changed >= 10


def test_monochrome_sensor_greys_the_whole_frame_and_never_the_mask() -> None:
    """Grey (equal channels, or one slight tint), bright, grainy; instruments recoloured too; the mask unchanged;
    the field-stop surround stays black."""
    image, mask, _ = jaw_frame()
    config = replace(augment_preset("basic"), p_monochrome_sensor=1.0)
    rng = np.random.default_rng(5)
    flat = np.full_like(image, (60, 70, 170))
    for _ in range(12):
        out, out_mask = footage(image, mask, rng, config)
        assert np.array_equal(out_mask, mask)
        assert np.array_equal(out[:, -10:], image[:, -10:])
        assert not np.array_equal(out[mask == 1], image[mask == 1])  # the whole frame, instruments included
        values = out[:, :-10].astype(np.float32)
        spread = values.max(axis=2) - values.min(axis=2)
        assert (spread <= 0.12 * values.max(axis=2) + 1).all()  # grey, at most a slight tint (gains 1 ± 0.06)
        assert np.median(values) >= 130  # bright
        grainy = monochrome_sensor(flat, np.zeros_like(mask), rng).astype(np.float32)[..., 0]
        assert np.std(grainy - cv2.blur(grainy, (5, 5))) > 1.0  # a flat field comes out grainy
        assert np.std(grainy.mean(axis=0)) > 0.2  # fixed-pattern column offsets


def test_strands_are_thin_curved_and_translucent() -> None:
    """At the training size nine in ten strand pixels lie within 3.5 px of the strand's edge (thin), they cover a small
    part of the frame, and on red tissue they stay warm and translucent: never an opaque grey-white band."""
    half_widths = []
    for seed in range(20):
        cover, sheen = strand_coverage(np.random.default_rng(seed), 256, 320)
        fibres = (cover > 0.5).astype(np.uint8)
        assert 0 < fibres.mean() < 0.06 and sheen.max() <= 1.0
        inside = cv2.distanceTransform(fibres, cv2.DIST_L2, 3)[fibres > 0]
        assert np.percentile(inside, 75) <= 4.0, seed
        half_widths.append(inside)
    assert (np.concatenate(half_widths) <= 3.5).mean() >= 0.9
    tissue = np.full((256, 320, 3), (40, 40, 160), np.uint8)
    rng = np.random.default_rng(1)
    for _ in range(10):
        out = white_strands(tissue, np.zeros((256, 320), np.uint8), rng).astype(np.int16)
        assert (out[..., 2] >= out[..., 0]).all()  # the red tissue shows through: warm, never neutral
        assert out[..., 0].max() <= 0.85 * 255 + 0.15 * 40 + 1 + 0.3 * 255  # translucent (opacity ≤ 0.85, sheen)


def test_fat_lobules_are_yellow_to_orange_rounded_clusters() -> None:
    """Changed pixels have a yellow-to-orange hue (OpenCV 10..30 = 20°..60°) and are saturated (unlike the cream
    plastic shaft); the cluster is several rounded lobules, compact."""
    grey = np.full((256, 320, 3), 128, np.uint8)
    empty = np.zeros((256, 320), np.uint8)
    rng = np.random.default_rng(2)
    for seed in range(10):
        out = fat_lobules(grey, empty, rng)
        changed = np.abs(out.astype(np.int16) - grey).sum(axis=2) > 40
        assert changed.sum() > 500
        hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)[changed]
        assert 10 <= np.median(hsv[:, 0]) <= 30, seed
        assert np.median(hsv[:, 1]) >= 110, seed
        relief, glint = lobule_cluster(np.random.default_rng(seed), 256, 320)
        tops, _ = cv2.connectedComponents((relief >= 0.99).astype(np.uint8))
        assert tops - 1 >= 5  # several lobules, each a dome
        ys, xs = np.nonzero(relief)
        assert np.ptp(xs) * np.ptp(ys) < 0.5 * relief.size and 0 <= glint.min() and glint.max() <= 1


def test_tip_glare_sits_beside_an_instrument_tip() -> None:
    """The tips are the jaw ends (not where the shaft enters the view); the glare is centred near one of them."""
    image, mask, ends = jaw_frame()
    tips = instrument_tips(image, mask)
    for end in ends:
        assert min(np.hypot(*(tip - end)) for tip, _ in tips) <= 3, (end, tips)
    assert all(tip[0] > 40 for tip, _ in tips)  # nothing at the left edge where the shaft comes in
    assert all(pointing[0] > 0 for tip, pointing in tips if min(np.hypot(*(tip - e)) for e in ends) <= 3)
    rng = np.random.default_rng(7)
    for _ in range(10):
        out = tip_glare(image, mask, rng)
        lift = np.clip(out.astype(np.float32) - image, 0, None).sum(axis=2) * (mask == 0)
        assert lift.sum() > 0
        ys, xs = np.nonzero(lift > 0)
        weights = lift[ys, xs]
        centre = np.array([np.average(xs, weights=weights), np.average(ys, weights=weights)])
        assert min(np.hypot(*(centre - end)) for end in ends) < 0.3 * min(mask.shape)
    assert np.array_equal(tip_glare(image, np.zeros_like(mask), rng), image)  # no instrument, no glare


#: For each older preset, a digest of the generator's next draw after ``augment`` for seeds 0..47 on
#: ``draw_frame(6, 64, 80)``, recorded at commit 674d545, before the operations of issue 18 item 4 existed. The
#: draws depend only on the control flow (how many values each operation took), not on OpenCV's arithmetic.
OLDER_STREAMS = {
    "basic": "5e72224af9f244ab",
    "footage": "1318a3a78b5460ca",
    "footage+negatives": "8f62c3d513f24526",
    "footage+negatives+lobes": "a2a03b770a3f77e4",
}


@pytest.mark.parametrize("preset", sorted(OLDER_STREAMS))
def test_older_presets_keep_their_random_streams(preset: str) -> None:
    """An older preset takes exactly the draws it took before (the new operations draw only when their
    probability is > 0), and gives the same frames as the same preset with the new fields written out as 0.
    Switching the new operations on does change what it draws."""
    image, mask = draw_frame(6, 64, 80)
    mask = (mask > 0).astype(np.uint8)
    config = augment_preset(preset)
    assert all(getattr(config, field) == 0 for field in NEW_FIELDS)
    draws = []
    for seed in range(48):
        rng = np.random.default_rng(seed)
        augment(image, mask, rng, config)
        draws.append(int(rng.integers(2**62)))
    assert hashlib.sha256(np.array(draws, np.uint64).tobytes()).hexdigest()[:16] == OLDER_STREAMS[preset]
    explicit = replace(config, **{field: 0.0 for field in NEW_FIELDS})
    for seed in range(4):
        old = augment(image, mask, np.random.default_rng(seed), config)
        new = augment(image, mask, np.random.default_rng(seed), explicit)
        assert np.array_equal(old[0], new[0]) and np.array_equal(old[1], new[1])
    switched_on = replace(config, **{field: 1.0 for field in NEW_FIELDS})
    rng = np.random.default_rng(0)
    augment(image, mask, rng, switched_on)
    assert int(rng.integers(2**62)) != draws[0]


def test_cholec_preset_builds_on_lobes_and_is_deterministic() -> None:
    """The new preset is the lobes preset plus the four new operations; a fixed seed gives the same frames; with
    the new operations off it is exactly the lobes preset."""
    assert PRESET in AUGMENT_PRESETS
    config, lobes = augment_preset(PRESET), augment_preset("footage+negatives+lobes")
    assert all(0 < getattr(config, field) < 0.5 for field in NEW_FIELDS)
    assert replace(config, **{field: 0.0 for field in NEW_FIELDS}) == lobes
    image, mask = draw_frame(7, 96, 128)
    mask = (mask > 0).astype(np.uint8)
    for seed in range(6):
        first = augment(image, mask, np.random.default_rng(seed), config)
        second = augment(image, mask, np.random.default_rng(seed), config)
        assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
        assert set(np.unique(first[1])) <= {0, 1}


def test_gallery_tile_renders_a_generated_scene() -> None:
    """The gallery helper: one augmented generated frame at a small size (the full gallery is the command in
    docs/benchmarks/README.md)."""
    from training.augment_gallery import FORCED, gallery_tile

    config = replace(augment_preset(PRESET), **{f"p_{name}": 1.0 for name in FORCED[-1]})
    tile = gallery_tile(1, config, "test", height=64, width=80)
    assert tile.shape == (64, 80, 3) and tile.dtype == np.uint8
    assert all(f"p_{name}" in NEW_FIELDS for names in FORCED for name in names)
