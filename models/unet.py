"""U-Net for binary instrument segmentation, with named configurations.

The network maps a normalised RGB tensor ``N×3×H×W`` to one channel of logits ``N×1×H×W``
(apply a sigmoid for probabilities). Any input size works: the input is padded by edge
replication to a multiple of ``2**depth`` and the output is cropped back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

UPSAMPLE_MODES = ("bilinear", "transpose")


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a :class:`UNet`.

    base_width: channels of the first level; level ``i`` has ``base_width * 2**i``.
    depth: number of 2× down-samplings (the input is padded to a multiple of ``2**depth``).
    upsample: ``"bilinear"`` (interpolate + 1×1 conv, light) or ``"transpose"`` (learned 2×2
        transposed convolution, as in the original U-Net).
    in_channels: input channels (3 for RGB).
    """

    base_width: int = 8
    depth: int = 4
    upsample: str = "bilinear"
    in_channels: int = 3

    def __post_init__(self) -> None:
        if self.base_width < 1:
            raise ValueError(f"UNetConfig.base_width must be >= 1, got {self.base_width}")
        if not 1 <= self.depth <= 6:
            raise ValueError(f"UNetConfig.depth must be between 1 and 6, got {self.depth}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"UNetConfig.upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")
        if self.in_channels < 1:
            raise ValueError(f"UNetConfig.in_channels must be >= 1, got {self.in_channels}")

    @property
    def size_multiple(self) -> int:
        """Inputs are padded to a multiple of this many pixels on each side."""
        return 2**self.depth

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, stored in checkpoints and ONNX metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> UNetConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown UNetConfig keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**values)


PRESETS: dict[str, UNetConfig] = {
    # Fast CPU default: meets 40 frames/s at 256x320 in ONNX Runtime on 2 cores.
    "fast": UNetConfig(base_width=8, depth=5, upsample="bilinear"),
    # A wider variant for machines with a little more headroom.
    "balanced": UNetConfig(base_width=16, depth=5, upsample="bilinear"),
    # The classic U-Net (Ronneberger et al.): width 64, 4 down-samplings, transposed convs; 31 M parameters.
    "classic": UNetConfig(base_width=64, depth=4, upsample="transpose"),
}


def preset(name: str) -> UNetConfig:
    """Return the named configuration (``fast``, ``balanced`` or ``classic``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; expected one of {sorted(PRESETS)}") from None


class DoubleConv(nn.Sequential):
    """Two 3×3 convolutions, each followed by batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """2× up-sampling, concatenation with the skip connection, then a :class:`DoubleConv`."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, mode: str) -> None:
        super().__init__()
        if mode == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, in_channels // 2, 1, bias=False),
            )
        self.conv = DoubleConv(in_channels // 2 + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNet(nn.Module):
    """U-Net producing one channel of instrument logits at the input resolution."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        widths = [self.config.base_width * 2**level for level in range(self.config.depth + 1)]
        self.inc = DoubleConv(self.config.in_channels, widths[0])
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(widths[i], widths[i + 1])) for i in range(self.config.depth)
        )
        self.ups = nn.ModuleList(
            Up(widths[i + 1], widths[i], widths[i], self.config.upsample) for i in reversed(range(self.config.depth))
        )
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``N×1×H×W`` for a normalised input ``N×C×H×W`` of any size."""
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"UNet expects input of shape N×{self.config.in_channels}×H×W, got {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        multiple = self.config.size_multiple
        pad_h = (multiple - height % multiple) % multiple
        pad_w = (multiple - width % multiple) % multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        logits = self.head(y)
        if pad_h or pad_w:
            logits = logits[..., :height, :width]
        return logits


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
