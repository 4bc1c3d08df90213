"""INT8 on the CPU (engine/int8.py): cache, parity record in the metadata, the ``auto`` choice, the
uint8 input contract, corrupt cache entries, and calibration that never reads ``realdev``.

One small random-weights ``fast`` checkpoint at 64×96 that "trained on" a fake ROBUST-MIS folder of
generated pictures (so the real-frame calibration path runs without the real data), built once per module.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import engine.int8
import engine.int8_data
from engine.__main__ import main as engine_main
from engine.backends import create_backend
from engine.int8 import auto_cpu_model, ensure_int8, plan_int8, read_int8_record
from engine.int8_data import Int8Recipe, calibration_set, check_not_realdev, trained_on_real
from engine.int8_record import int8_verdict
from engine.onnx_meta import PREFIX, read_onnx_meta
from engine.synthetic import draw_frames, random_model
from models.checkpoint import ModelMeta, save_checkpoint, weights_digest
from models.unet import preset

SIZE = (64, 96)
SMALL = Int8Recipe(generated_scenes=4, val_generated_scenes=2, speed_rounds=2)
FAKE_REAL = {"prokto1": 2, "rektum2": 2, "prokto3": 1, "rektum3": 1}  # training ops, then validation ops


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("int8")


@pytest.fixture(scope="module", autouse=True)
def _env(workdir: Path):
    real = workdir / "realtrain" / "robustmis"
    (real / "images").mkdir(parents=True)
    index = 0
    for operation, count in FAKE_REAL.items():
        for frame in draw_frames(count, 120, 160, seed=50 + index):
            assert cv2.imwrite(str(real / "images" / f"{operation}_f{index:06d}.jpg"), frame)
            index += 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SURGSEG_CACHE_DIR", str(workdir / "cache"))
        patch.setenv("SURGSEG_REALTRAIN_DIR", str(real))
        patch.setattr(engine.int8, "DEFAULT_RECIPE", SMALL)  # what --precision int8 / auto use, kept small here
        yield


@pytest.fixture(scope="module")
def checkpoint(workdir: Path) -> Path:
    model, meta = random_model(preset("fast"), SIZE, seed=4)
    meta.data = {"roots": [{"root": "/data/robustmis", "layout": "folders"}, {"root": "/data/synth_a", "layout": "dvrk"}]}
    return save_checkpoint(workdir / "model.pt", model, meta)


@pytest.fixture(scope="module")
def built(checkpoint: Path) -> dict[str, Any]:
    """The INT8 build (default recipe), with every image path calibration/parity read."""
    read: list[str] = []
    original = cv2.imread

    def spy(path: str, *args: Any) -> Any:
        read.append(str(path))
        return original(path, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.int8_data.cv2, "imread", spy)
        path, meta, info = ensure_int8(checkpoint)
    return {"path": path, "meta": meta, "info": info, "read": read}


def _model(checkpoint: Path) -> Any:
    from engine.model_source import load_model_source

    return load_model_source(checkpoint)[0]


def _edit_record(path: Path, change: Any) -> None:
    """Rewrite the INT8 record stored in ``path`` with ``change(record)``."""
    proto = onnx.load(str(path))
    for prop in proto.metadata_props:
        if prop.key == PREFIX + "int8":
            record = json.loads(prop.value)
            change(record)
            prop.value = json.dumps(record)
    onnx.save(proto, str(path))


def test_built_file_is_cached_and_reused_without_recalibrating(built: dict[str, Any], checkpoint: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = built["path"]
    assert path.parent.name == "onnx" and path.name.startswith(f"int8-{built['info']['model_hash']}-64x96-")
    monkeypatch.setattr(engine.int8, "_quantize", lambda *a: pytest.fail("recalibrated a cached INT8 model"))
    again, _, info = ensure_int8(checkpoint)
    assert again == path and info["int8"] == built["info"]["int8"]


def test_metadata_holds_the_parity_record_and_calibration(built: dict[str, Any], checkpoint: Path) -> None:
    meta, info = read_onnx_meta(built["path"])
    assert info["precision"] == "int8" and info["model_hash"] == weights_digest(_model(checkpoint))
    record = read_int8_record(built["path"])
    parity = record["parity"]
    assert set(parity["roots"]) == {"generated-val", "robustmis-val"}
    assert parity["roots"]["robustmis-val"]["frames"] == FAKE_REAL["prokto3"] + FAKE_REAL["rektum3"]
    assert all(0.0 <= root["iou"] <= 1.0 and root["source"] for root in parity["roots"].values())
    assert parity["min_iou"] == 0.98 and isinstance(parity["passed"], bool)
    calibration = record["calibration"]
    assert calibration["real"]["used"] and calibration["real"]["operations"] == ["prokto1", "rektum2"]
    assert calibration["generated"]["frames"] == 2 * SMALL.generated_scenes
    assert record["recipe"]["variant"] == "conv-lowres" and record["speed"]["threads"] >= 1


def test_calibration_reads_training_frames_only_never_realdev(built: dict[str, Any], workdir: Path) -> None:
    read = built["read"]
    assert read and not any("realdev" in path for path in read)
    calibration = [p for p in read if "prokto1" in p or "rektum2" in p]
    assert len(calibration) == FAKE_REAL["prokto1"] + FAKE_REAL["rektum2"]  # validation ops only for parity
    with pytest.raises(ValueError, match="realdev"):
        check_not_realdev(workdir / "shared" / "realdev" / "images")
    meta = ModelMeta(config=preset("fast"), data={"roots": [{"root": "/x/robustmis"}]})
    with pytest.raises(ValueError, match="realdev is for evaluation only"):
        calibration_set(meta, Int8Recipe(), workdir / "realdev")


def test_generated_only_checkpoint_is_calibrated_on_generated_frames_only(workdir: Path) -> None:
    meta = ModelMeta(config=preset("fast"), data={"roots": [{"root": "/data/synthetic_gpu", "layout": "dvrk"}]})
    assert not trained_on_real(meta)
    files, description = calibration_set(meta, Int8Recipe(), workdir / "realtrain" / "robustmis")
    assert files == [] and not description["real"]["used"] and "generated frames only" in description["real"]["reason"]


def test_uint8_input_contract_is_kept(built: dict[str, Any]) -> None:
    session = ort.InferenceSession(str(built["path"]), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("frames", "tensor(uint8)", [*SIZE, 3])
    assert (out.name, out.type) == ("logits", "tensor(float)")
    with create_backend(built["path"], "onnxruntime-cpu") as backend:
        assert backend.precision == "int8"
        logits = backend.infer(draw_frames(2, *SIZE, seed=9))
    assert logits.dtype == np.float32 and logits.shape == (2, 1, *SIZE)


def _passing(record: dict[str, Any]) -> None:
    record["speed"].update(fp32_ms=2.0, int8_ms=1.0, speedup=2.0)
    for root in record["parity"]["roots"].values():
        root["iou"] = 0.999


def test_auto_picks_int8_only_when_the_record_passes(built: dict[str, Any], checkpoint: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    path = built["path"]
    _edit_record(path, _passing)
    with caplog.at_level(logging.INFO, logger="engine"):
        assert auto_cpu_model(checkpoint)[0] == path
        with create_backend(checkpoint, "onnxruntime-cpu") as backend:
            assert backend.precision == "int8"
    assert "precision int8 (auto)" in caplog.text
    caplog.clear()
    _edit_record(path, lambda record: record["parity"]["roots"]["robustmis-val"].update(iou=0.95))
    with caplog.at_level(logging.INFO, logger="engine"):
        with create_backend(checkpoint, "onnxruntime-cpu") as backend:
            assert backend.precision == "fp32"
    assert "precision fp32 (auto): INT8 vs FP32 mask IoU below 0.98: robustmis-val 0.9500" in caplog.text


def test_verdict_needs_parity_and_speed_measured_here(built: dict[str, Any]) -> None:
    record = json.loads(json.dumps(built["info"]["int8"]))
    _passing(record)
    assert int8_verdict(record)[0]
    assert not int8_verdict(record, min_iou=0.9999)[0]  # a threshold the record cannot reach
    record["speed"].update(int8_ms=2.0, speedup=1.0)
    assert int8_verdict(record)[1].startswith("INT8 is not faster here")
    record["speed"].update(cpu="another CPU", speedup=2.0)
    assert "another CPU" in int8_verdict(record)[1]
    del record["speed"]
    assert "speed was not measured" in int8_verdict(record)[1]


def test_auto_without_a_cached_build_runs_fp32_and_says_why(tmp_path: Path, checkpoint: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SURGSEG_CACHE_DIR", str(tmp_path / "fresh"))
    monkeypatch.setattr(engine.int8, "_quantize", lambda *a: pytest.fail("auto calibrated at start-up"))
    with caplog.at_level(logging.INFO, logger="engine"):
        with create_backend(checkpoint, "onnxruntime-cpu") as backend:
            assert backend.precision == "fp32"
    assert "precision fp32 (auto): no INT8 build of this model is cached" in caplog.text


def test_corrupt_cache_entry_is_rebuilt(tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SURGSEG_CACHE_DIR", str(tmp_path / "cache"))
    recipe = Int8Recipe(generated_scenes=2, real_frames=1, val_generated_scenes=1, val_real_frames=1, speed_rounds=0)
    target = plan_int8(checkpoint, recipe).target
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"not an onnx file")
    with caplog.at_level(logging.WARNING, logger="engine"):
        path, _, info = ensure_int8(checkpoint, recipe)
    assert path == target and "unusable" in caplog.text and read_onnx_meta(path)[1]["precision"] == "int8"
    assert "speed" not in info["int8"]


def test_int8_is_refused_where_it_cannot_run(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="int8 runs on onnxruntime-cpu"):
        create_backend(checkpoint, "torch-cpu", precision="int8")


def test_export_and_bench_take_precision_int8(built: dict[str, Any], checkpoint: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m-int8.onnx"
    assert engine_main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--precision", "int8"]) == 0
    text = capsys.readouterr().out
    assert read_onnx_meta(out)[1]["precision"] == "int8" and "parity robustmis-val" in text and "auto would use" in text
    assert engine_main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--precision", "int8",
                        "--fixed-batch"]) == 2
    report = tmp_path / "bench.json"
    assert engine_main(["bench", "--checkpoint", str(checkpoint), "--sizes", "64x96", "--backends",
                        "onnxruntime-cpu,torch-cpu", "--precision", "int8", "--iterations", "3", "--budget", "0.1",
                        "--json", str(report)]) == 0
    rows = {row["backend"]: row for row in json.loads(report.read_text())["rows"]}
    assert rows["onnxruntime-cpu/int8"]["status"] == "ok"
    assert rows["torch-cpu/int8"]["status"] == "skipped" and "does not run int8" in rows["torch-cpu/int8"]["note"]


def test_app_runs_int8_and_refuses_it_on_a_backend_without_it(built: dict[str, Any], checkpoint: Path,
                                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.__main__ import main as app_main

    frames = tmp_path / "frames"
    frames.mkdir()
    for index, frame in enumerate(draw_frames(2, 120, 160, seed=3)):
        assert cv2.imwrite(str(frames / f"{index:03d}.png"), frame)
    common = ["--source", str(frames), "--checkpoint", str(checkpoint), "--window", "off",
              "--output", str(tmp_path / "out.mp4"), "--codec", "mp4v"]
    assert app_main([*common, "--precision", "int8", "--stats", str(tmp_path / "s.json")]) == 0
    assert "int8" in json.loads((tmp_path / "s.json").read_text())["summary"]["backend"]
    assert app_main([*common, "--backend", "torch-cpu", "--precision", "int8"]) == 2
    assert "torch-cpu does not run int8" in capsys.readouterr().err
