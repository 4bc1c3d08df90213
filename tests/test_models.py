"""Network shapes, presets, the frame contract and self-describing checkpoints."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from models.checkpoint import (
    CheckpointError,
    ModelMeta,
    build_segmenter,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    weights_digest,
)
from models.frame_model import FrameSegmenter
from models.unet import PRESETS, UNet, UNetConfig, count_parameters, preset


@pytest.mark.parametrize("size", [(37, 53), (64, 80), (1, 1), (538, 701)])
@pytest.mark.parametrize("upsample", ["bilinear", "transpose"])
def test_unet_output_matches_any_input_size(size: tuple[int, int], upsample: str) -> None:
    model = UNet(UNetConfig(base_width=2, depth=3, upsample=upsample)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 1, *size)
    assert torch.isfinite(out).all()


def test_classic_preset_is_the_31m_parameter_unet() -> None:
    assert count_parameters(UNet(preset("classic"))) == pytest.approx(31.04e6, rel=0.01)


def test_fast_preset_is_small_and_has_no_forced_positive_layer() -> None:
    model = UNet(preset("fast"))
    assert count_parameters(model) < 3e6
    # The head is a plain 1-channel conv: no ReLU before the sigmoid that would clamp logits to >= 0.
    assert isinstance(model.head, torch.nn.Conv2d) and model.head.out_channels == 1
    with torch.no_grad():
        model.head.bias.fill_(-5.0)
        out = model.eval()(torch.randn(1, 3, 64, 64))
    assert (out < 0).all(), "a negative bias must be able to produce all-background"


def test_unet_rejects_wrong_channel_count() -> None:
    with pytest.raises(ValueError, match="N×3×H×W"):
        UNet(UNetConfig(base_width=2, depth=2))(torch.zeros(1, 1, 16, 16))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"base_width": 0}, "base_width"), ({"depth": 9}, "depth"), ({"upsample": "nearest"}, "upsample")],
)
def test_config_validation_names_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UNetConfig(**kwargs)


def test_unknown_preset_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="classic"):
        preset("huge")


def test_frame_segmenter_normalises_bgr_uint8_like_the_documented_formula() -> None:
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.125)
    segmenter = FrameSegmenter(UNet(UNetConfig(base_width=2, depth=2)), mean, std)
    frame = torch.randint(0, 256, (1, 8, 8, 3), dtype=torch.uint8)
    rgb = frame.flip(-1).permute(0, 3, 1, 2).float() / 255.0
    expected = (rgb - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(segmenter.normalise(frame), expected, atol=1e-5, rtol=1e-5)


def test_checkpoint_round_trip_restores_weights_and_metadata(tmp_path) -> None:
    meta = ModelMeta(config=preset("fast"), input_height=64, input_width=96, threshold=0.4, metrics={"iou": 0.9})
    model = build_segmenter(meta)
    path = save_checkpoint(tmp_path / "m.pt", model, meta)
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded_meta.to_dict() == meta.to_dict()
    assert weights_digest(loaded) == weights_digest(model)
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 64, 96, 3), dtype=np.uint8))
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames), model.eval()(frames))
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file"


def test_checkpoint_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        read_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt"):
        read_checkpoint(foreign)


def test_checkpoint_with_mismatched_weights_is_rejected(tmp_path) -> None:
    meta = ModelMeta(config=preset("fast"))
    path = save_checkpoint(tmp_path / "m.pt", build_segmenter(meta), meta)
    payload = torch.load(path, weights_only=True)
    payload["meta_json"] = payload["meta_json"].replace('"base_width": 8', '"base_width": 4')
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(path)


def test_all_presets_are_valid_configs() -> None:
    for name, config in PRESETS.items():
        assert UNetConfig.from_dict(config.to_dict()) == config, name


def test_atomic_write_gives_normal_permissions(tmp_path) -> None:
    from models.atomic_io import atomic_write_text

    path = atomic_write_text(tmp_path / "report.json", "{}")
    assert path.read_text() == "{}"
    mode = path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
