"""A PNG gallery of augmented generated frames, to look at what an augmentation preset draws.

``python -m training.augment_gallery --out docs/benchmarks/augment-cholec-gallery.png`` renders 8 generated
scenes (``synthetic/``) at the training input size, augments each with the preset (default
``footage+negatives+lobes+cholec``) and lays them out 2×4, each with its instrument mask outlined in green (the
labels the model is trained on) and the names of the operations forced on that frame. By default each frame
forces one or more of the cholecystectomy / monochrome operations (probability 1, the other three of them off) so
each shows and the label says which are on; the older operations keep the preset's probabilities. ``--as-trained``
keeps the preset's own probabilities for all.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from synthetic.config import SceneConfig
from synthetic.video import SceneRenderer
from training.augment import AUGMENT_PRESETS, AugmentConfig, augment, augment_preset

FORCED: tuple[tuple[str, ...], ...] = (
    ("white_strands",),
    ("fat_lobules",),
    ("tip_glare",),
    ("monochrome_sensor",),
    ("white_strands", "fat_lobules"),
    ("white_strands", "tip_glare"),
    ("fat_lobules", "monochrome_sensor"),
    ("white_strands", "fat_lobules", "tip_glare"),
)
"""The operations forced on each of the 8 frames (unless ``--as-trained``)."""

NEW_OPERATIONS = ("white_strands", "fat_lobules", "tip_glare", "monochrome_sensor")
"""The cholecystectomy / monochrome operations (``training/augment_negatives.py``), as ``AugmentConfig`` names them."""


def gallery_tile(seed: int, config: AugmentConfig, label: str, height: int = 256, width: int = 320) -> np.ndarray:
    """One generated frame (scene ``seed``, frame 30; odd seeds with the extended instruments: white plastic
    shafts), augmented with ``config`` from ``seed``, its mask outlined in green and ``label`` written on it."""
    scene = SceneRenderer(seed, width, height, SceneConfig(extended_instruments=seed % 2 == 1))
    frame, mask = scene.render(30)
    image, out_mask = augment(frame, (mask > 0).astype(np.uint8), np.random.default_rng(seed), config)
    image = image.copy()
    contours, _ = cv2.findContours(out_mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, (0, 255, 0), 1)
    cv2.putText(image, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def render_gallery(preset: str, seed: int = 0, as_trained: bool = False) -> np.ndarray:
    """The 2×4 gallery (BGR ``uint8``) of 8 augmented frames, scenes ``seed`` .. ``seed + 7``."""
    base = augment_preset(preset)
    tiles = []
    for i, forced in enumerate(FORCED):
        config = base if as_trained else replace(base, **{f"p_{name}": float(name in forced) for name in NEW_OPERATIONS})
        tiles.append(gallery_tile(seed + i, config, preset if as_trained else " + ".join(forced)))
    return np.vstack([np.hstack(tiles[:4]), np.hstack(tiles[4:])])


def main(argv: list[str] | None = None) -> int:
    """Write the gallery PNG."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--preset", default="footage+negatives+lobes+cholec", choices=AUGMENT_PRESETS)
    parser.add_argument("--seed", type=int, default=0, help="first scene seed (8 consecutive scenes)")
    parser.add_argument("--as-trained", action="store_true", help="the preset's own probabilities, nothing forced")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), render_gallery(args.preset, args.seed, args.as_trained), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        parser.error(f"could not write {args.out}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
