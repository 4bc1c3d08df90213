"""Training precision: what ``--precision auto`` picks on each kind of machine, and that each mode trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.checkpoint import ModelMeta, build_segmenter
from models.cpu import cpu_flags, cpu_identity, cpu_model_name
from models.unet import preset
from training.losses import segmentation_loss
from training.precision import PrecisionError, cpu_has_native_bf16, resolve_precision
from training.step_bench import time_steps

CPU = torch.device("cpu")


def test_auto_picks_bf16_only_on_cpus_with_native_bf16() -> None:
    assert resolve_precision("auto", CPU, {"avx2", "avx512f", "avx512_bf16"}).name == "bf16"
    assert resolve_precision("auto", CPU, {"avx2", "amx_bf16", "amx_tile"}).name == "bf16"
    plain = resolve_precision("auto", CPU, {"avx2", "avx512f", "avx512_vnni"})
    assert plain.name == "fp32" and "no native bfloat16" in plain.reason
    assert resolve_precision("auto", torch.device("cuda"), set()).name == "fp16"


def test_forced_choices_and_refusals() -> None:
    forced = resolve_precision("bf16", CPU, {"avx2"})
    assert forced.name == "bf16" and "slower" in forced.reason, "forcing bf16 without native support warns"
    assert resolve_precision("fp32", CPU, {"avx512_bf16"}).name == "fp32"
    with pytest.raises(PrecisionError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU, set())
    with pytest.raises(PrecisionError, match="--precision must be one of"):
        resolve_precision("int8", CPU, set())


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()
    assert cpu_has_native_bf16({"avx512_bf16"}) and not cpu_has_native_bf16({"avx512f"})


@pytest.mark.parametrize("name", ["fp32", "bf16"])
def test_each_cpu_precision_trains_and_keeps_float32_weights(name: str) -> None:
    precision = resolve_precision(name, CPU, set())
    torch.manual_seed(0)
    model = precision.prepare_model(build_segmenter(ModelMeta(config=preset("fast"), input_height=32, input_width=48)))
    frames = torch.randint(0, 256, (2, 32, 48, 3), dtype=torch.uint8)
    masks = torch.zeros(2, 1, 32, 48)
    masks[:, :, 8:20, 10:40] = 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad(), precision.autocast():
        loss_before = float(segmentation_loss(model(frames).float(), masks))
    time_steps(model, precision, frames, masks, steps=3)
    with torch.no_grad(), precision.autocast():
        logits = model(frames)
    assert logits.dtype == (torch.bfloat16 if name == "bf16" else torch.float32)
    assert float(segmentation_loss(logits.float(), masks)) < loss_before, "a few steps on one batch lower its loss"
    assert all(v.dtype == before[k].dtype for k, v in model.state_dict().items()), "weights stay float32"
    assert model.unet.inc[0].weight.is_contiguous(memory_format=torch.channels_last) == (name == "bf16")


def _cpuinfo(path: Path, family: int, model: int, flags: str) -> Path:
    path.write_text(f"processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: {family}\nmodel\t\t: {model}\n"
                    f"model name\t: AMD EPYC\nstepping\t: 2\nflags\t\t: fpu sse2 {flags}\n\n"
                    f"processor\t: 1\ncpu family\t: 99\nmodel\t\t: 99\n")
    return path


def test_cpu_identity_tells_apart_generations_that_share_a_model_name(tmp_path: Path) -> None:
    # Cloud VMs report "AMD EPYC" for every generation; INT8 and bf16 speed records must not travel between them.
    old = cpu_identity(_cpuinfo(tmp_path / "zen1", 23, 1, "avx2 fma"))
    new = cpu_identity(_cpuinfo(tmp_path / "zen4", 25, 17, "avx2 fma avx512f avx512_vnni avx512_bf16"))
    assert old == "AMD EPYC · family 23 model 1 stepping 2 · avx2 fma"
    assert new == "AMD EPYC · family 25 model 17 stepping 2 · avx2 fma avx512f avx512_vnni avx512_bf16"
    assert cpu_model_name(tmp_path / "zen1") == cpu_model_name(tmp_path / "zen4")
    assert cpu_identity(tmp_path / "missing").endswith("no AVX2 or newer SIMD flags")
