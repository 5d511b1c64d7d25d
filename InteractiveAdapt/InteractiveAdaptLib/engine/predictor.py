"""Pre- and post-processing around the network: in-plane resampling to a fixed spacing, guidance
maps, inference, and the mapping of the result back to the slice's own grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from InteractiveAdaptLib.engine.guidance import GUIDANCE_SIGMA_PX, guidance_maps

ClickTuple = tuple[float, float, bool]  # (row, col, positive) in pixels


@dataclass
class PreparedSlice:
    """A slice on the network's grid (fixed mm per pixel), and how to map clicks onto it."""

    image: torch.Tensor  # (1, h, w) normalised intensities
    native_shape: tuple[int, int]
    scale: tuple[float, float]  # network pixels per native pixel, (rows, cols)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.image.shape[-2:])

    def to_grid(self, clicks: list[ClickTuple]) -> list[ClickTuple]:
        """Native pixel coordinates -> network grid coordinates (pixel centres line up)."""
        sr, sc = self.scale
        return [((r + 0.5) * sr - 0.5, (c + 0.5) * sc - 0.5, p) for r, c, p in clicks]

    def labels_to_grid(self, mask: np.ndarray) -> torch.Tensor:
        """A native-grid mask resampled (nearest) onto the network grid, as (h, w) long."""
        if self.scale == (1.0, 1.0):
            return torch.as_tensor(np.asarray(mask), dtype=torch.long, device=self.image.device)
        t = torch.as_tensor(np.asarray(mask, dtype=np.float32), device=self.image.device)[None, None]
        return (F.interpolate(t, size=self.shape, mode="bilinear", align_corners=False)[0, 0] > 0.5).long()


class Predictor:
    """Runs the click-conditioned network on one slice at a time."""

    def __init__(
        self,
        network: torch.nn.Module,
        target_spacing_mm: float = 1.0,
        sigma: float = GUIDANCE_SIGMA_PX,
        device: torch.device | str = "cpu",
    ):
        self.network = network
        self.target_spacing_mm = target_spacing_mm
        self.sigma = sigma
        self.device = torch.device(device)

    def prepare(self, image: np.ndarray, spacing_rc: tuple[float, float]) -> PreparedSlice:
        """Resample a native slice in-plane to the fixed spacing."""
        h, w = image.shape
        t = torch.as_tensor(np.ascontiguousarray(image, dtype=np.float32), device=self.device)[None, None]
        size = (
            max(1, round(h * spacing_rc[0] / self.target_spacing_mm)),
            max(1, round(w * spacing_rc[1] / self.target_spacing_mm)),
        )
        if size != (h, w):
            t = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
        return PreparedSlice(image=t[0], native_shape=(h, w), scale=(size[0] / h, size[1] / w))

    def network_input(self, prepared: PreparedSlice, grid_clicks: list[ClickTuple]) -> torch.Tensor:
        """(1, 3, h, w): image + positive and negative guidance, clicks already on the grid."""
        guidance = guidance_maps(grid_clicks, prepared.shape, self.sigma, self.device)
        return torch.cat([prepared.image, guidance])[None]

    def logits(self, prepared: PreparedSlice, clicks: list[ClickTuple]) -> torch.Tensor:
        """(1, 2, h, w) logits on the network grid for native-grid clicks (no gradient)."""
        with torch.inference_mode():
            return self.network(self.network_input(prepared, prepared.to_grid(clicks)))

    @staticmethod
    def to_native(logits: torch.Tensor, prepared: PreparedSlice) -> np.ndarray:
        """uint8 mask on the slice's own grid from grid logits."""
        if prepared.shape != prepared.native_shape:
            logits = F.interpolate(logits, size=prepared.native_shape, mode="bilinear", align_corners=False)
        return (logits[0, 1] > logits[0, 0]).to(torch.uint8).cpu().numpy()

    def predict(
        self, image: np.ndarray, spacing_rc: tuple[float, float], clicks: list[ClickTuple]
    ) -> np.ndarray:
        """The binary mask for a native slice and native-grid clicks."""
        prepared = self.prepare(image, spacing_rc)
        return self.to_native(self.logits(prepared, clicks), prepared)


def dice(prediction: np.ndarray, target: np.ndarray) -> float:
    """Dice overlap of two binary masks (1.0 when both are empty)."""
    p, t = prediction.astype(bool), target.astype(bool)
    denom = p.sum() + t.sum()
    return 1.0 if denom == 0 else float(2 * (p & t).sum() / denom)
