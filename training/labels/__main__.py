"""CLI: ``python -m training.labels import`` annotations into a ``folders`` data set (``OUT/images`` + ``OUT/masks``).

Examples:
  python -m training.labels import --format coco --annotations instances.json --images frames/ --out data/mine
  python -m training.labels import --format labelme --annotations json/ --images frames/ --out data/mine --classes grasper scissors
  python -m training.labels import --format cvat --annotations annotations.xml --images frames/ --out data/mine --overwrite
  python -m training.labels import --format masks --annotations old_masks/ --images frames/ --out data/mine
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from training.labels.importer import FORMATS, import_labels
from training.labels.model import LabelImportError


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with the ``import`` sub-command."""
    parser = argparse.ArgumentParser(
        prog="python -m training.labels",
        description="Turn instrument annotations into the 'folders' data set layout (images/ + masks/).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("import", help="rasterise annotations into OUT/images + OUT/masks")
    cmd.add_argument("--format", required=True, choices=list(FORMATS),
                     help="coco: one instances JSON; labelme: a folder of LabelMe JSON files; cvat: a 'CVAT for images 1.1' XML; "
                     "masks: a folder of binary mask images")
    cmd.add_argument("--annotations", type=Path, required=True, help="the annotation file (coco, cvat) or folder (labelme, masks)")
    cmd.add_argument("--images", type=Path, required=True, help="the folder holding the images the annotations name")
    cmd.add_argument("--out", type=Path, required=True, help="new or empty output folder (gets images/ and masks/)")
    cmd.add_argument("--classes", nargs="+", metavar="NAME",
                     help="the labels that are instruments (default: all); other labels become background")
    cmd.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 for unusable input, nothing written then)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        summary = import_labels(args.format, args.annotations, args.images, args.out, args.classes, args.overwrite)
    except LabelImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"wrote {summary.images} images ({summary.negatives} with an empty mask) to {summary.out}/images and "
        f"{summary.out}/masks; instrument labels: {', '.join(summary.classes) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
