"""The 3D network's window on a volume: a cube of CROP_SIZE^3 voxels around the structure, at a voxel size
that grows with the structure (1.5 mm for a caudate, several mm for a whole brain).

A crop is an axis-aligned box of whole native voxels, so sampling the volume into it and mapping the
network's result back are exact inverses (trilinear resizing of the box, no rotation); a box that
reaches past the volume's edge is padded (the image with its edge values, masks with zeros). Clicks and
masks are in the engine's (K, J, I) voxel order. Training (the lab) and the product sample crops with
these same functions, so the network sees at a site what it saw in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

CROP_SIZE = 64
BASE_VOXEL_MM = 1.5  # the crop's voxel size for a structure that fits 96 mm (caudate, hippocampus)
ZOOM = 1.5  # each level's voxel is this much larger (AutoZoom: grow x1.5 when the result is cut off)
LEVELS = 5  # 1.5 to 7.6 mm voxels: 96 mm to 486 mm across, a whole head at the last level
FILL = 0.7  # a structure takes at most this share of the crop's side when the crop is chosen
BALL_RADIUS = 2  # click balls, in crop voxels


def level_voxel_mm(level: int) -> float:
    """The crop's voxel size in mm at a zoom level."""
    return BASE_VOXEL_MM * ZOOM**level


@dataclass(frozen=True)
class Crop:
    """A box of native voxels [start, start + extent) per axis, seen by the network as size^3 voxels."""

    start: tuple[int, int, int]
    extent: tuple[int, int, int]
    level: int
    size: int = CROP_SIZE

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Native (K, J, I) voxel coordinates (n, 3) -> crop voxel coordinates (voxel centres line up)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        scale = self.size / np.asarray(self.extent, dtype=np.float64)
        return (points - np.asarray(self.start) + 0.5) * scale - 0.5

    def to_native(self, points: np.ndarray) -> np.ndarray:
        """Crop voxel coordinates (n, 3) -> native (K, J, I) voxel coordinates (the inverse of `to_crop`)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        scale = np.asarray(self.extent, dtype=np.float64) / self.size
        return (points + 0.5) * scale - 0.5 + np.asarray(self.start)

    def voxel_mm(self, spacing: tuple[float, float, float]) -> np.ndarray:
        """The crop voxel's size in mm along K, J and I."""
        return np.asarray(self.extent) * np.asarray(spacing) / self.size

    def inside(self, shape: tuple[int, int, int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """(native slices, box slices) of the part of the box that lies inside a volume of `shape`."""
        return part_inside(self.start, self.extent, shape)


def part_inside(
    start: tuple[int, ...], extent: tuple[int, ...], shape: tuple[int, ...]
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(native slices, box slices) of the part of a box of native voxels [start, start + extent) that
    lies inside an array of `shape` (any number of dimensions)."""
    native, box = [], []
    for first, size, n in zip(start, extent, shape, strict=True):
        low, high = max(first, 0), min(first + size, n)
        native.append(slice(low, max(low, high)))
        box.append(slice(low - first, max(low, high) - first))
    return tuple(native), tuple(box)


def make_crop(
    center: np.ndarray, level: int, spacing: tuple[float, float, float], size: int = CROP_SIZE
) -> Crop:
    """The crop of a zoom level centred (to the nearest voxel) on native coordinates `center` (K, J, I)."""
    mm = size * level_voxel_mm(level)
    extent = tuple(max(1, round(mm / s)) for s in spacing)
    start = tuple(int(np.floor(c + 0.5 - e / 2)) for c, e in zip(center, extent, strict=True))
    return Crop(start, extent, level, size)


def choose_crop(
    points: np.ndarray, spacing: tuple[float, float, float], min_level: int = 0, size: int = CROP_SIZE
) -> Crop:
    """The smallest crop (from `min_level` up) centred on the bounding box of native `points` (n, 3), in
    which that box takes at most FILL of the crop's side."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    low, high = points.min(axis=0), points.max(axis=0)
    needed = float(((high - low + 1) * np.asarray(spacing)).max()) / FILL
    level = min_level
    while level < LEVELS - 1 and size * level_voxel_mm(level) < needed:
        level += 1
    return make_crop((low + high) / 2, level, spacing, size)


def _resize(box: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """(1, C, *box) -> (1, C, *size): averaging where the box shrinks (no aliasing of a 1 mm image into
    5 mm voxels), trilinear where it grows."""
    shrunk = tuple(min(b, s) for b, s in zip(box.shape[2:], size, strict=True))
    if shrunk != tuple(box.shape[2:]):
        box = F.adaptive_avg_pool3d(box, shrunk)
    if shrunk != tuple(size):
        box = F.interpolate(box, size=size, mode="trilinear", align_corners=False)
    return box


def sample(volume: torch.Tensor, crop: Crop, edge: bool) -> torch.Tensor:
    """The crop of a (C, K, J, I) tensor as float (C, size, size, size). Past the volume's edge: its edge
    values (`edge`, for images) or zeros (masks). Only the part inside the volume is resized (to its
    share of the crop), then padded: a whole-head crop never builds its padded box at full resolution."""
    native, box = crop.inside(tuple(volume.shape[1:]))
    part = volume[(slice(None), *native)][None].float()
    if min(part.shape[2:]) == 0:  # the crop lies outside the volume
        return torch.zeros((volume.shape[0],) + (crop.size,) * 3, device=volume.device)
    scale = [crop.size / extent for extent in crop.extent]
    low = [min(crop.size - 1, round(b.start * f)) for b, f in zip(box, scale, strict=True)]
    high = [max(lo + 1, min(crop.size, round(b.stop * f))) for lo, b, f in zip(low, box, scale, strict=True)]
    part = _resize(part, tuple(h - lo for lo, h in zip(low, high, strict=True)))
    pads = [v for lo, h in reversed(list(zip(low, high, strict=True))) for v in (lo, crop.size - h)]
    if any(pads):
        part = F.pad(part, pads, mode="replicate") if edge else F.pad(part, pads, mode="constant", value=0.0)
    return part[0]


def _linear_weights(low: int, high: int, start: int, extent: int, size: int) -> torch.Tensor:
    """(high - low, size): native voxels [low, high) of an axis as weights over the crop's voxels, as
    trilinear resizing of the crop onto its box does it (voxel centres aligned, edges clamped)."""
    native = torch.arange(low, high, dtype=torch.float64)
    position = ((native - start + 0.5) * size / extent - 0.5).clamp(0, size - 1)
    below = position.floor().long()
    above = (below + 1).clamp(max=size - 1)
    weight = (position - below).float()
    rows = torch.arange(high - low)
    matrix = torch.zeros(high - low, size)
    matrix.index_put_((rows, below), 1 - weight, accumulate=True)
    matrix.index_put_((rows, above), weight, accumulate=True)
    return matrix


def paste(crop_values: torch.Tensor, crop: Crop, shape: tuple[int, int, int]):
    """The crop's (size, size, size) values resized (trilinear) back onto its box, only for the voxels
    inside the volume (one weight matrix per axis: a whole-head crop costs the head, not its box).

    Returns:
        (native slices, values on those voxels) as a float tensor.
    """
    native, _ = crop.inside(shape)
    size = crop.size
    values = crop_values.float().cpu()
    k, j, i = (
        _linear_weights(n.start, n.stop, start, extent, size)
        for n, start, extent in zip(native, crop.start, crop.extent, strict=True)
    )
    along_k = (k @ values.reshape(size, size * size)).reshape(-1, size, size)
    along_j = torch.einsum("js,ksi->kji", j, along_k)
    return native, along_j @ i.T


def click_balls(points: np.ndarray, positive: np.ndarray, size: int = CROP_SIZE) -> torch.Tensor:
    """(2, size, size, size): 1 inside a ball of BALL_RADIUS crop voxels around each positive click (channel
    0) and each negative one (channel 1). `points` in crop voxel coordinates; clicks outside the crop are
    left out."""
    balls = torch.zeros(2, size, size, size)
    axis = torch.arange(size, dtype=torch.float32)
    for point, is_positive in zip(
        np.asarray(points).reshape(-1, 3), np.asarray(positive).reshape(-1), strict=True
    ):
        if np.any(point < -BALL_RADIUS) or np.any(point > size - 1 + BALL_RADIUS):
            continue
        k, j, i = (float(v) for v in point)
        lows = [max(0, int(np.floor(v - BALL_RADIUS))) for v in (k, j, i)]
        highs = [min(size, int(np.ceil(v + BALL_RADIUS)) + 1) for v in (k, j, i)]
        dk = (axis[lows[0] : highs[0]] - k)[:, None, None] ** 2
        dj = (axis[lows[1] : highs[1]] - j)[None, :, None] ** 2
        di = (axis[lows[2] : highs[2]] - i)[None, None, :] ** 2
        region = balls[0 if is_positive else 1, lows[0] : highs[0], lows[1] : highs[1], lows[2] : highs[2]]
        region[(dk + dj + di) <= BALL_RADIUS**2] = 1.0
    return balls


def touches_border(mask: torch.Tensor, crop: Crop, shape: tuple[int, int, int], margin: int = 1) -> bool:
    """Whether a crop's (size^3) result reaches the crop's faces where the volume goes on beyond them (the
    structure may be cut off: AutoZoom grows the crop)."""
    size = crop.size
    for axis in range(3):
        moved = mask.movedim(axis, 0)
        # A face lies inside the volume when the box goes past it: the structure may go on there.
        low_open = crop.start[axis] > 0
        high_open = crop.start[axis] + crop.extent[axis] < shape[axis]
        if low_open and bool(moved[:margin].any()):
            return True
        if high_open and bool(moved[size - margin :].any()):
            return True
    return False


def normalize_crop(image: torch.Tensor) -> torch.Tensor:
    """The crop's image z-scored over the crop: a site's global intensity scale and offset do not matter."""
    mean, std = image.mean(), image.std()
    return (image - mean) / torch.clamp(std, min=1e-6)
