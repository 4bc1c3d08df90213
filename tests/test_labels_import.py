"""python -m training.labels import: COCO, LabelMe, CVAT and mask folders to the ``folders`` layout (small made-up files)."""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from training.datasets import discover, load_pair
from training.labels import LabelImportError, import_labels
from training.labels.__main__ import main

H, W = 40, 48


# ---------------------------------------------------------------- helpers


def write_image(path: Path, height: int = H, width: int = W, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 255, (height, width, 3), np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


def read_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert mask is not None and mask.ndim == 2 and mask.dtype == np.uint8, path
    assert set(np.unique(mask).tolist()) <= {0, 255}
    return mask > 0


def box(x0: int, y0: int, x1: int, y1: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """The pixels of the rectangle with edges at x0..x1, y0..y1 (pixel-edge coordinates)."""
    mask = np.zeros(size, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def ring_mask(size: tuple[int, int] = (H, W)) -> np.ndarray:
    """Two blobs, one with a hole: the known mask the RLE tests must reproduce exactly."""
    mask = box(4, 5, 20, 25, size)
    mask[10:18, 9:14] = False  # the hole
    mask[30:36, 28:45] = True
    mask[2, 40] = True  # a lone pixel
    return mask


def coco_runs(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts (column-major, background first), written without pycocotools."""
    flat = mask.T.reshape(-1).astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat[0] else runs


def cvat_runs(patch: np.ndarray) -> str:
    """CVAT mask RLE (row-major over the box, background first)."""
    flat = patch.reshape(-1).astype(np.int8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ", ".join(str(v) for v in (([0] + runs) if flat[0] else runs))


def flat(points: list[tuple[float, float]]) -> list[float]:
    return [float(v) for point in points for v in point]


def corners(x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def coco_file(path: Path, images: list[dict], annotations: list[dict], categories: dict[int, str]) -> Path:
    cats = [{"id": i, "name": n} for i, n in categories.items()]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
    return path


def labelme_shape(label: str, kind: str, points: list[tuple[float, float]], **extra: object) -> dict:
    return {"label": label, "shape_type": kind, "points": [list(p) for p in points], "group_id": None, "flags": {}, **extra}


def labelme_file(folder: Path, stem: str, shapes: list[dict], image_path: str | None = None, size: tuple[int, int] = (H, W)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path or f"{stem}.png",
            "imageData": None, "imageHeight": size[0], "imageWidth": size[1]}
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(data))
    return path


def png_base64(mask: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".png", mask.astype(np.uint8))
    assert ok
    return base64.b64encode(encoded.tobytes()).decode()


def cvat_file(path: Path, images: list[str]) -> Path:
    header = '<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n<version>1.1</version>\n'
    path.write_text(header + "\n".join(images) + "\n</annotations>\n")
    return path


def cvat_image(index: int, name: str, shapes: str = "", size: tuple[int, int] = (H, W)) -> str:
    return f'<image id="{index}" name="{name}" width="{size[1]}" height="{size[0]}">{shapes}</image>'


def pts(points: list[tuple[float, float]]) -> str:
    return ";".join(f"{x:.2f},{y:.2f}" for x, y in points)


# ---------------------------------------------------------------- COCO


def test_coco_polygons_rle_crowd_negative_and_a_class_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    images = tmp_path / "frames"
    write_image(images / "a.png")
    write_image(images / "sub" / "b.jpg", seed=1)
    write_image(images / "c.png", seed=2)
    known = ring_mask()
    crowd = box(30, 2, 38, 8)
    compressed = coco_mask.encode(np.asfortranarray(known.astype(np.uint8)))
    annotations = coco_file(
        tmp_path / "instances.json",
        [{"id": 1, "file_name": "a.png", "height": H, "width": W},
         {"id": 2, "file_name": "sub/b.jpg", "height": H, "width": W},
         {"id": 3, "file_name": "c.png", "height": H, "width": W}],
        [  # image 1: one object in two polygons, a second object, and a needle (not an instrument here)
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0,
             "segmentation": [flat(corners(2, 2, 10, 12)), flat(corners(12, 2, 16, 6))]},
            {"id": 11, "image_id": 1, "category_id": 2, "iscrowd": 0, "segmentation": [flat(corners(20, 20, 30, 35))]},
            {"id": 12, "image_id": 1, "category_id": 3, "iscrowd": 0, "segmentation": [flat(corners(35, 5, 45, 15))]},
            # image 2: compressed RLE with a hole, plus an uncompressed crowd RLE
            {"id": 13, "image_id": 2, "category_id": 1, "iscrowd": 0,
             "segmentation": {"size": [H, W], "counts": compressed["counts"].decode()}},
            {"id": 14, "image_id": 2, "category_id": 2, "iscrowd": 1, "segmentation": {"size": [H, W], "counts": coco_runs(crowd)}},
        ],
        {1: "grasper", 2: "scissors", 3: "needle"},
    )
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="training.labels"):
        summary = import_labels("coco", annotations, images, out, classes=["grasper", "scissors"])
    assert "grasper (2), needle (1), scissors (2)" in caplog.text
    assert (summary.images, summary.negatives, summary.classes) == (3, 1, ["grasper", "scissors"])
    assert np.array_equal(read_mask(out / "masks" / "a.png"), box(2, 2, 10, 12) | box(12, 2, 16, 6) | box(20, 20, 30, 35))
    assert np.array_equal(read_mask(out / "masks" / "b.png"), known | crowd)
    assert not read_mask(out / "masks" / "c.png").any()
    assert (out / "images" / "b.jpg").read_bytes() == (images / "sub" / "b.jpg").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["images", "masks"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("kind", ["compressed", "uncompressed"])
def test_coco_rle_round_trips_exactly(tmp_path: Path, kind: str) -> None:
    known = ring_mask((37, 53))
    write_image(tmp_path / "frames" / "f.png", 37, 53)
    counts = coco_mask.encode(np.asfortranarray(known.astype(np.uint8)))["counts"].decode() if kind == "compressed" else coco_runs(known)
    annotations = coco_file(
        tmp_path / "i.json", [{"id": 7, "file_name": "f.png", "height": 37, "width": 53}],
        [{"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": {"size": [37, 53], "counts": counts}}],
        {1: "tool"},
    )
    import_labels("coco", annotations, tmp_path / "frames", tmp_path / "out")
    assert np.array_equal(read_mask(tmp_path / "out" / "masks" / "f.png"), known)


# ---------------------------------------------------------------- LabelMe


def test_labelme_shapes_mask_with_hole_negative_and_ignored_shapes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    images, folder = tmp_path / "frames", tmp_path / "json"
    for stem in ("a", "b"):
        write_image(images / f"{stem}.png")
    write_image(tmp_path / "elsewhere" / "c.png")  # found through imagePath relative to the JSON file
    patch = box(0, 0, 12, 10, (10, 12))
    patch[3:7, 4:8] = False  # a hole
    labelme_file(folder, "a", [
        labelme_shape("grasper", "polygon", corners(2, 2, 10, 12)),
        labelme_shape("grasper", "rectangle", [(30, 20), (22, 14)]),  # corners in any order
        labelme_shape("hook", "mask", [(30, 25), (41, 34)], mask=png_base64(patch)),
        labelme_shape("gauze", "polygon", corners(0, 30, 15, 40)),  # left out with --classes
        labelme_shape("grasper", "linestrip", [(0, 0), (5, 5), (9, 0)]),
        labelme_shape("grasper", "point", [(3, 3)]),
    ])
    labelme_file(folder, "b", [])
    labelme_file(folder, "c", [labelme_shape("hook", "circle", [(24, 20), (24, 30)])], image_path="../elsewhere/c.png")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="training.labels"):
        summary = import_labels("labelme", folder, images, out, classes=["grasper", "hook"])
    assert "skipped 2 LabelMe shapes that have no area: linestrip (1), point (1)" in caplog.text
    assert summary.label_counts == {"gauze": 1, "grasper": 2, "hook": 2}
    expected = box(2, 2, 10, 12) | box(22, 14, 30, 20)
    expected[25:35, 30:42] |= patch
    assert np.array_equal(read_mask(out / "masks" / "a.png"), expected)
    assert not read_mask(out / "masks" / "b.png").any()
    circle = read_mask(out / "masks" / "c.png")
    assert abs(int(circle.sum()) - math.pi * 100) < 12 and circle[20, 24] and not circle[20, 35]
    assert summary.negatives == 1


# ---------------------------------------------------------------- CVAT


def test_cvat_polygon_box_mask_with_hole_and_negative(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    images = tmp_path / "frames"
    for stem in ("a", "b"):
        write_image(images / f"{stem}.png")
    patch = box(0, 0, 10, 9, (9, 10))
    patch[2:6, 3:7] = False  # a hole: CVAT masks carry them
    shapes = (
        f'<polygon label="grasper" occluded="0" source="manual" points="{pts(corners(2, 2, 10, 12))}" z_order="0"/>'
        '<box label="grasper" occluded="0" source="manual" xtl="20" ytl="14" xbr="28" ybr="22" z_order="0"/>'
        f'<mask label="hook" source="manual" occluded="0" rle="{cvat_runs(patch)}" left="30" top="25" width="10" height="9" z_order="0"/>'
        f'<polygon label="gauze" points="{pts(corners(0, 30, 15, 40))}"/>'
        '<polyline label="grasper" points="1,1;5,5"/>'
    )
    annotations = cvat_file(tmp_path / "annotations.xml", [cvat_image(0, "a.png", shapes), cvat_image(1, "b.png")])
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="training.labels"):
        summary = import_labels("cvat", annotations, images, out, classes=["grasper", "hook"])
    assert "polyline (1)" in caplog.text and "labels taken as background: gauze" in caplog.text
    expected = box(2, 2, 10, 12) | box(20, 14, 28, 22)
    expected[25:34, 30:40] |= patch
    assert np.array_equal(read_mask(out / "masks" / "a.png"), expected)
    assert not read_mask(out / "masks" / "b.png").any()
    assert (summary.images, summary.negatives) == (2, 1)


def test_cvat_rotated_box_keeps_its_area(tmp_path: Path) -> None:
    write_image(tmp_path / "f" / "a.png", 64, 64)
    shape = '<box label="tool" xtl="12" ytl="26" xbr="52" ybr="38" rotation="30"/>'
    import_labels("cvat", cvat_file(tmp_path / "a.xml", [cvat_image(0, "a.png", shape, (64, 64))]), tmp_path / "f", tmp_path / "o")
    mask = read_mask(tmp_path / "o" / "masks" / "a.png")
    assert abs(int(mask.sum()) - 40 * 12) <= 12
    assert mask[32, 32] and mask[41, 47] and not mask[23, 47]  # clockwise on screen: the right end goes down
    assert not mask[28, 50]  # inside the box before it turned


# ---------------------------------------------------------------- mask folders


def test_mask_folder_is_binarised_and_bad_values_refused(tmp_path: Path) -> None:
    images, masks = tmp_path / "frames", tmp_path / "old"
    masks.mkdir()
    expected = {}
    for index, value in enumerate((255, 1, 38)):
        write_image(images / f"f{index}.png", seed=index)
        mask = box(3 + index, 4, 20, 30)
        expected[f"f{index}"] = mask
        cv2.imwrite(str(masks / f"f{index}.png"), mask.astype(np.uint8) * value)
    write_image(images / "unlabelled.png")
    import_labels("masks", masks, images, tmp_path / "out")
    for stem, mask in expected.items():
        assert np.array_equal(read_mask(tmp_path / "out" / "masks" / f"{stem}.png"), mask)
    assert not (tmp_path / "out" / "images" / "unlabelled.png").exists()

    three = np.zeros((H, W), np.uint8)
    three[:5], three[5:10] = 1, 2
    cv2.imwrite(str(masks / "f1.png"), three)
    with pytest.raises(LabelImportError, match=r"f1\.png holds the values \{0, 1, 2\}"):
        import_labels("masks", masks, images, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    cv2.imwrite(str(masks / "f1.png"), np.zeros((H, W + 1), np.uint8))
    with pytest.raises(LabelImportError, match=r"f1\.png: the mask is 49x40 \(WxH\) but the image is 48x40"):
        import_labels("masks", masks, images, tmp_path / "out2")
    cv2.imwrite(str(masks / "f1.png"), np.zeros((H, W), np.uint8))
    cv2.imwrite(str(masks / "nopicture.png"), np.zeros((H, W), np.uint8))
    with pytest.raises(LabelImportError, match=r"image .*nopicture\.png \(listed in mask .*nopicture\.png\) does not exist"):
        import_labels("masks", masks, images, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


# ---------------------------------------------------------------- round trip of a thin instrument


def instrument_polygon() -> np.ndarray:
    """A 6-px-wide shaft ending in an open jaw, turned 30 degrees."""
    shape = np.array([(0, -3), (50, -3), (64, -9), (65, -6), (54, 0), (65, 6), (64, 9), (50, 3), (0, 3)], np.float64)
    angle = math.radians(30)
    turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return shape @ turn.T + (14.3, 17.6)


def supersampled_reference(polygon: np.ndarray, size: tuple[int, int], factor: int = 8) -> np.ndarray:
    fine = np.zeros((size[0] * factor, size[1] * factor), np.uint8)
    shift = 8
    cv2.fillPoly(fine, [np.round((polygon * factor - 0.5) * (1 << shift)).astype(np.int32)], 1, shift=shift)
    return fine.reshape(size[0], factor, size[1], factor).mean(axis=(1, 3)) >= 0.5


@pytest.mark.parametrize("fmt", ["coco", "labelme", "cvat"])
def test_thin_instrument_polygon_matches_a_supersampled_fill(tmp_path: Path, fmt: str) -> None:
    polygon, size = instrument_polygon(), (64, 80)
    write_image(tmp_path / "f" / "tool.png", *size)
    if fmt == "coco":
        annotations = coco_file(tmp_path / "c.json", [{"id": 1, "file_name": "tool.png", "height": 64, "width": 80}],
                                [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [polygon.reshape(-1).tolist()]}],
                                {1: "tool"})
    elif fmt == "labelme":
        annotations = tmp_path / "j"
        labelme_file(annotations, "tool", [labelme_shape("tool", "polygon", [tuple(p) for p in polygon.tolist()])], size=size)
    else:
        shape = f'<polygon label="tool" points="{pts(polygon.tolist())}"/>'
        annotations = cvat_file(tmp_path / "c.xml", [cvat_image(0, "tool.png", shape, size)])
    import_labels(fmt, annotations, tmp_path / "f", tmp_path / "out")
    mask, reference = read_mask(tmp_path / "out" / "masks" / "tool.png"), supersampled_reference(polygon, size)
    iou = (mask & reference).sum() / (mask | reference).sum()
    assert iou >= 0.93, iou


# ---------------------------------------------------------------- the output is a training data set


def test_output_reads_as_a_folders_data_set(tmp_path: Path) -> None:
    images = tmp_path / "frames"
    stems = ["lap_frame1", "lap_frame2", "other_frame1"]
    for index, stem in enumerate(stems):
        write_image(images / f"{stem}.jpg", seed=index)
    shape = f'<polygon label="tool" points="{pts(corners(5, 5, 30, 20))}"/>'
    annotations = cvat_file(tmp_path / "a.xml", [cvat_image(i, f"{s}.jpg", shape if i else "") for i, s in enumerate(stems)])
    import_labels("cvat", annotations, images, tmp_path / "data")
    index = discover(tmp_path / "data", "folders")
    assert index.layout == "folders" and index.video_names() == ["lap", "other"] and index.num_frames == 3
    image, mask = load_pair(index.videos[0].frames[1])
    assert image.shape == (H, W, 3) and mask.dtype == np.uint8 and np.array_equal(mask, box(5, 5, 30, 20).astype(np.uint8))


# ---------------------------------------------------------------- bad input: exit 2, nothing written


def one_coco_image(tmp_path: Path, name: str = "a.png", size: tuple[int, int] = (H, W), label: str = "tool") -> Path:
    return coco_file(tmp_path / "c.json", [{"id": 1, "file_name": name, "height": size[0], "width": size[1]}],
                     [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [flat(corners(1, 1, 9, 9))]}], {1: label})


def bad_inputs(tmp_path: Path, case: str) -> tuple[list[str], str]:
    """CLI arguments for one kind of bad input and a regex the error must match."""
    images = tmp_path / "frames"
    write_image(images / "a.png")
    if case == "image missing":
        return ["--format", "coco", "--annotations", str(one_coco_image(tmp_path, "gone.png"))], r"image .*gone\.png .*does not exist"
    if case == "coco size":
        return ["--format", "coco", "--annotations", str(one_coco_image(tmp_path, size=(30, W)))], r"image size as 48x30 .* is 48x40"
    if case == "labelme size":
        labelme_file(tmp_path / "j", "a", [], size=(H, 50))
        return ["--format", "labelme", "--annotations", str(tmp_path / "j")], r"a\.json gives the image size as 50x40 .* is 48x40"
    if case == "cvat size":
        cvat_file(tmp_path / "a.xml", [cvat_image(0, "a.png", size=(H + 1, W))])
        return ["--format", "cvat", "--annotations", str(tmp_path / "a.xml")], r"image size as 48x41"
    if case == "unknown class":
        args = ["--format", "coco", "--annotations", str(one_coco_image(tmp_path, label="grasper")), "--classes", "grasper", "scalpel"]
        return args, r"--classes scalpel: no shape in .*c\.json has this label .*; the labels found are grasper \(1\)"
    if case == "malformed json":
        (tmp_path / "c.json").write_text('{"images": [}')
        return ["--format", "coco", "--annotations", str(tmp_path / "c.json")], r"c\.json is not valid JSON: .* line 1 column"
    if case == "malformed labelme json":
        (tmp_path / "j").mkdir()
        (tmp_path / "j" / "a.json").write_text("{'shapes': []}")
        return ["--format", "labelme", "--annotations", str(tmp_path / "j")], r"a\.json is not valid JSON"
    if case == "malformed xml":
        (tmp_path / "a.xml").write_text("<annotations><image id='0' name='a.png'></annotations>")
        return ["--format", "cvat", "--annotations", str(tmp_path / "a.xml")], r"a\.xml is not valid XML \(mismatched tag: line 1"
    if case == "bad cvat rle":
        shape = '<mask label="t" rle="3, 4" left="0" top="0" width="3" height="3"/>'
        cvat_file(tmp_path / "a.xml", [cvat_image(0, "a.png", shape)])
        return ["--format", "cvat", "--annotations", str(tmp_path / "a.xml")], r"rle runs add up to 7 pixels; expected width x height = 9"
    if case == "bad coco rle size":
        annotations = coco_file(tmp_path / "c.json", [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
                                [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"size": [H, 9], "counts": [3]}}], {1: "t"})
        return ["--format", "coco", "--annotations", str(annotations)], r"RLE size \[40, 9\] .* differs from the image's \[40, 48\]"
    raise AssertionError(case)


BAD = ["image missing", "coco size", "labelme size", "cvat size", "unknown class", "malformed json", "malformed labelme json",
       "malformed xml", "bad cvat rle", "bad coco rle size"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_exits_2_names_the_problem_and_writes_nothing(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    args, message = bad_inputs(tmp_path, case)
    out = tmp_path / "out"
    assert main(["import", *args, "--images", str(tmp_path / "frames"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_unknown_format_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["import", "--format", "yolo", "--annotations", str(tmp_path), "--images", str(tmp_path), "--out", str(tmp_path / "o")])
    assert raised.value.code == 2 and "invalid choice: 'yolo'" in capsys.readouterr().err


def test_library_raises_the_project_error_type(tmp_path: Path) -> None:
    write_image(tmp_path / "frames" / "a.png")
    with pytest.raises(LabelImportError, match=r"unknown format 'yolo'; expected one of coco, labelme, cvat, masks"):
        import_labels("yolo", tmp_path, tmp_path / "frames", tmp_path / "out")
    with pytest.raises(LabelImportError, match="does not apply to --format masks"):
        import_labels("masks", tmp_path / "frames", tmp_path / "frames", tmp_path / "out", classes=["x"])


def test_a_failure_after_the_first_image_leaves_nothing_behind(tmp_path: Path) -> None:
    write_image(tmp_path / "frames" / "a.png")
    annotations = coco_file(tmp_path / "c.json", [{"id": 1, "file_name": "a.png", "height": H, "width": W},
                                                  {"id": 2, "file_name": "b.png", "height": H, "width": W}], [], {})
    with pytest.raises(LabelImportError, match=r"b\.png .*does not exist"):
        import_labels("coco", annotations, tmp_path / "frames", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "frames"]


def test_existing_output_needs_overwrite_and_never_holds_the_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image(tmp_path / "frames" / "a.png")
    annotations = one_coco_image(tmp_path)
    out = tmp_path / "out"
    (out / "masks").mkdir(parents=True)
    (out / "old.txt").write_text("keep")
    args = ["import", "--format", "coco", "--annotations", str(annotations), "--images", str(tmp_path / "frames"), "--out", str(out)]
    assert main(args) == 2
    assert "already holds 2 entries" in capsys.readouterr().err and (out / "old.txt").exists()
    assert main([*args, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["images", "masks"] and read_mask(out / "masks" / "a.png").sum() == 64
    assert "wrote 1 images (0 with an empty mask)" in capsys.readouterr().out
    assert main([*args[:-1], str(tmp_path), "--overwrite"]) == 2
    assert "holds the input" in capsys.readouterr().err and annotations.exists()
    (tmp_path / "empty").mkdir()
    assert main([*args[:-1], str(tmp_path / "empty")]) == 0 and (tmp_path / "empty" / "masks" / "a.png").exists()
