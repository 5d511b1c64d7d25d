"""The click-conditioned U-Nets: 2D (image + positive and negative guidance maps, the paper's network) or
3D (image + positive and negative click balls + the current 3D result, the product's); 2-class logits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from monai.networks.layers import Norm
from monai.networks.nets import UNet

IN_CHANNELS = 3  # 2D: image, positive guidance, negative guidance
VOLUME_IN_CHANNELS = 4  # 3D: image, positive balls, negative balls, the current result
OUT_CHANNELS = 2  # background, target


@dataclass(frozen=True)
class NetworkConfig:
    """Plain-data description of the U-Net; saved in model.json so weights can be rebuilt."""

    name: str
    channels: tuple[int, ...]
    num_res_units: int
    dropout: float = 0.0
    strides: tuple[int, ...] = field(default=())
    spatial_dims: int = 2
    in_channels: int = IN_CHANNELS

    def __post_init__(self) -> None:
        if not self.strides:
            object.__setattr__(self, "strides", (2,) * (len(self.channels) - 1))

    @property
    def size_multiple(self) -> int:
        """Input sides must be a multiple of this (pad and crop back)."""
        m = 1
        for s in self.strides:
            m *= s
        return m

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetworkConfig:
        return cls(
            name=data["name"],
            channels=tuple(data["channels"]),
            num_res_units=int(data["num_res_units"]),
            dropout=float(data.get("dropout", 0.0)),
            strides=tuple(data.get("strides", ())),
            spatial_dims=int(data.get("spatial_dims", 2)),
            in_channels=int(data.get("in_channels", IN_CHANNELS)),
        )


CONFIGS = {
    # Fast enough for interactive CPU use (see benchmarks/results/speed.json).
    "default": NetworkConfig(name="default", channels=(16, 32, 64, 128, 256), num_res_units=1),
    # Same widths without residual units (0.66M): about 30 % less compute per click; the size
    # ablation (benchmarks/results/training-ablations*.md) compares its Dice with `default`.
    "compact": NetworkConfig(name="compact", channels=(16, 32, 64, 128, 256), num_res_units=0),
    # The paper's 5-level 12/72/144/288/576 network; two residual units per level gives 8.1M
    # parameters, the closest MONAI U-Net to the paper's 9.8M.
    "paper": NetworkConfig(name="paper", channels=(12, 72, 144, 288, 576), num_res_units=2),
    # The 3D network on a 64^3 crop (engine/volume_predictor.py): four levels, 0.49 M parameters, about
    # 20 ms a forward pass and 0.1 s a training step of two crops on 2 cores (one residual unit per level
    # would cost about 4x the time).
    "volume": NetworkConfig(
        name="volume",
        channels=(16, 32, 64, 128),
        num_res_units=0,
        spatial_dims=3,
        in_channels=VOLUME_IN_CHANNELS,
    ),
    # Half the widths (0.12 M, half the time): the size ablation of the 3D design.
    "volume-small": NetworkConfig(
        name="volume-small",
        channels=(8, 16, 32, 64),
        num_res_units=0,
        spatial_dims=3,
        in_channels=VOLUME_IN_CHANNELS,
    ),
}


class ClickUNet(torch.nn.Module):
    """MONAI U-Net that accepts any image size: pads to the stride multiple and crops back."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        self.unet = UNet(
            spatial_dims=config.spatial_dims,
            in_channels=config.in_channels,
            out_channels=OUT_CHANNELS,
            channels=config.channels,
            strides=config.strides,
            num_res_units=config.num_res_units,
            norm=Norm.INSTANCE,  # MONAI's InstanceNorm has no affine parameters, as in the paper
            dropout=config.dropout,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = x.shape[2:]
        m = self.config.size_multiple
        pads = [(-n) % m for n in sizes]
        if all(n + p == m for n, p in zip(sizes, pads, strict=True)):
            pads[-1] += m  # instance norm needs more than one voxel at the bottom of the U
        if any(pads):
            # Reflect keeps instance-norm statistics close to the unpadded image.
            mode = "reflect" if all(p < n for n, p in zip(sizes, pads, strict=True)) else "replicate"
            x = F.pad(x, [v for p in reversed(pads) for v in (p // 2, p - p // 2)], mode=mode)
        y = self.unet(x)
        if any(pads):
            y = y[(..., *(slice(p // 2, p // 2 + n) for n, p in zip(sizes, pads, strict=True)))]
        return y


def build_network(config: NetworkConfig | str) -> ClickUNet:
    """Build a network from a config or the name of a built-in config."""
    if isinstance(config, str):
        config = CONFIGS[config]
    return ClickUNet(config)


def count_parameters(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
