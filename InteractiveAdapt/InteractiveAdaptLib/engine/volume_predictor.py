"""The 3D click network on a volume: a crop around the clicks and the current result, the network's
answer in it, and that answer on the volume's own grid.

The crop (engine/volume_crop.py) is the smallest zoom level that holds the clicks and the current result;
when the answer reaches the crop's faces (the structure is cut off) the crop grows a level and the
network looks again (AutoZoom), up to a whole head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from InteractiveAdaptLib.engine.click_simulation import bounding_box
from InteractiveAdaptLib.engine.volume_crop import (
    LEVELS,
    Crop,
    choose_crop,
    click_balls,
    normalize_crop,
    paste,
    sample,
    touches_border,
)


@dataclass
class VolumePrediction:
    """The network's answer for one set of clicks: where it looked, what it saw and what it said."""

    crop: Crop
    inputs: torch.Tensor  # (1, 4, S, S, S): image, positive balls, negative balls, the current result
    logits: torch.Tensor  # (1, 2, S, S, S)
    mask: np.ndarray  # bool (K, J, I): the structure on the volume's grid (nothing outside the crop)
    looks: int  # forward passes it took (1 + the times the crop grew)

    @property
    def crop_mask(self) -> torch.Tensor:
        """The answer on the crop's grid, bool (S, S, S)."""
        return self.logits[0, 1] > self.logits[0, 0]


def network_input(image: torch.Tensor, balls: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """(1, 4, S, S, S) from a crop's image (S, S, S), its click balls (2, S, S, S) and the current result
    sampled into it (S, S, S); the same in training and in the product."""
    return torch.cat([normalize_crop(image)[None], balls, previous[None]])[None]


def click_points(points: np.ndarray) -> np.ndarray:
    """(n, 3) float native coordinates, also from an empty list."""
    return np.asarray(points, dtype=np.float64).reshape(-1, 3)


class VolumePredictor:
    """Runs the 3D click network (model/network.py, `spatial_dims` 3) on crops of one volume at a time."""

    def __init__(self, network: torch.nn.Module, device: torch.device | str = "cpu") -> None:
        self.network = network
        self.device = torch.device(device)

    def prepare(self, volume: np.ndarray) -> torch.Tensor:
        """A normalised (K, J, I) volume as the (1, K, J, I) tensor crops are sampled from."""
        return torch.as_tensor(np.ascontiguousarray(volume, dtype=np.float32), device=self.device)[None]

    def inputs(
        self,
        image: torch.Tensor,
        crop: Crop,
        points: np.ndarray,
        positive: np.ndarray,
        previous: np.ndarray | None,
    ) -> torch.Tensor:
        """The network's input for native clicks (n, 3) and the current result (bool (K, J, I) or None)."""
        balls = click_balls(crop.to_crop(click_points(points)), np.asarray(positive, bool)).to(self.device)
        if previous is None:
            current = torch.zeros((crop.size,) * 3, device=self.device)
        else:
            current = sample(torch.from_numpy(np.asarray(previous, bool))[None], crop, edge=False)[0]
        return network_input(sample(image, crop, edge=True)[0], balls, current.to(self.device))

    def predict(
        self,
        image: torch.Tensor,
        spacing: tuple[float, float, float],
        points: np.ndarray,
        positive: np.ndarray,
        previous: np.ndarray | None = None,
    ) -> VolumePrediction:
        """The structure for native clicks (n, 3) with their signs, given the current result `previous`.

        Raises:
            ValueError: no click is given.
        """
        points = click_points(points)
        if not len(points):
            raise ValueError("The 3D network needs at least one click.")
        shape = tuple(image.shape[1:])
        region = points if previous is None else np.vstack([points, mask_corners(previous)])
        crop = choose_crop(region, spacing)
        looks = 0
        while True:
            inputs = self.inputs(image, crop, points, positive, previous)
            with torch.inference_mode():
                logits = self.network(inputs)
            looks += 1
            found = logits[0, 1] > logits[0, 0]
            if crop.level >= LEVELS - 1 or not touches_border(found, crop, shape):
                break
            seen = crop_to_native(crop, found.cpu().numpy())
            crop = choose_crop(np.vstack([points, seen]), spacing, min_level=crop.level + 1)
        return VolumePrediction(crop, inputs, logits, self.to_native(logits, crop, shape), looks)

    @staticmethod
    def to_native(logits: torch.Tensor, crop: Crop, shape: tuple[int, int, int]) -> np.ndarray:
        """The crop's answer on the volume's grid, bool (K, J, I), empty outside the crop."""
        native, values = paste((logits[0, 1] - logits[0, 0]).float(), crop, shape)
        mask = np.zeros(shape, bool)
        mask[native] = (values > 0).cpu().numpy()
        return mask


def mask_corners(mask: np.ndarray) -> np.ndarray:
    """The two corners (first and last voxel) of a mask's bounding box, (2, ndim); none when it is empty."""
    if not mask.any():
        return np.empty((0, mask.ndim))
    box = bounding_box(mask)
    return np.array([[b.start for b in box], [b.stop - 1 for b in box]], dtype=np.float64)


def crop_to_native(crop: Crop, mask: np.ndarray) -> np.ndarray:
    """The two corners of a crop mask's bounding box in native coordinates, (2, 3)."""
    return crop.to_native(mask_corners(mask))
