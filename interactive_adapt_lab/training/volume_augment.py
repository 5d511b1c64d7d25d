"""Augmentation of 3D training crops: what sites send that Colin27 is not.

Spatial (rotation, scaling, elastic deformation, flips) is one resampling of the crop; appearance covers
contrast remapping per tissue (T2-, PD-, FLAIR-like, as the lab's synthetic contrasts are made), bias
field, gamma, thick slices (3-5 mm, resampled back), blur and noise. All on (C, S, S, S) crops with one
numpy generator, so a training step is reproducible from its seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _rotation(angles: np.ndarray) -> np.ndarray:
    """3x3 rotation from three angles (radians) about the crop's axes."""
    matrix = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = math.cos(angle), math.sin(angle)
        a, b = [d for d in range(3) if d != axis]
        r = np.eye(3)
        r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
        matrix = r @ matrix
    return matrix


def spatial(
    channels: torch.Tensor, rng: np.random.Generator, max_degrees: float = 15.0, elastic: float = 2.0
) -> torch.Tensor:
    """Rotate (up to `max_degrees` about each axis), scale (0.85-1.15), deform (a smooth field of up to
    `elastic` voxels) and flip a (C, S, S, S) crop about its centre; one resampling (trilinear, edges
    replicated). Masks among the channels come back soft: threshold them."""
    size = channels.shape[-1]
    matrix = _rotation(np.radians(rng.uniform(-max_degrees, max_degrees, 3)))
    matrix = matrix @ np.diag(rng.uniform(0.85, 1.15, 3))
    flips = np.where(rng.random(3) < 0.5, -1.0, 1.0)
    matrix = matrix @ np.diag(flips)
    base = torch.linspace(-1, 1, size)
    grid = torch.stack(torch.meshgrid(base, base, base, indexing="ij"), dim=-1)  # (S, S, S, 3) in k, j, i
    grid = grid @ torch.as_tensor(matrix.T, dtype=torch.float32)
    coarse = torch.as_tensor(rng.normal(0, 1, (1, 3, 4, 4, 4)), dtype=torch.float32)
    field = F.interpolate(coarse, size=(size,) * 3, mode="trilinear", align_corners=True)[0]
    grid = grid + field.permute(1, 2, 3, 0) * (elastic * 2 / size)
    grid = grid.flip(-1)  # grid_sample wants (x, y, z) = (i, j, k)
    out = F.grid_sample(
        channels[None], grid[None], mode="bilinear", padding_mode="border", align_corners=True
    )
    return out[0]


def tissue_contrast(image: torch.Tensor, tissue: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A new contrast from soft tissue maps (C = background, grey matter, white matter, CSF), keeping the
    image's fine texture: each tissue gets a random brightness (T1, T2, PD and FLAIR orders all occur),
    outside the brain the image scaled."""
    smooth = F.avg_pool3d(image[None, None], 5, stride=1, padding=2, count_include_pad=False)[0, 0]
    texture = torch.clamp(image - smooth, -1.5, 1.5) * rng.uniform(0.3, 1.0)
    brightness = torch.as_tensor(rng.uniform(-1.5, 1.5, 3), dtype=torch.float32)
    brain = tissue[1:].sum(0).clamp(0, 1)
    inside = (tissue[1:] * brightness[:, None, None, None]).sum(0) / brain.clamp(min=1e-3)
    outside = image * rng.uniform(0.2, 1.0)
    return brain * (inside + texture) + (1 - brain) * outside


def appearance(image: torch.Tensor, voxel_mm: float, rng: np.random.Generator) -> torch.Tensor:
    """Bias field, gamma, thick slices, blur and noise on a (S, S, S) image crop."""
    size = image.shape[-1]
    if rng.random() < 0.5:  # bias field: a smooth multiplicative field, up to about +-30 %
        coarse = torch.as_tensor(rng.normal(0, 1, (1, 1, 3, 3, 3)), dtype=torch.float32)
        field = F.interpolate(coarse, size=(size,) * 3, mode="trilinear", align_corners=True)[0, 0]
        low = image.min()
        image = (image - low) * torch.exp(0.3 * field / field.abs().max().clamp(min=1e-6)) + low
    if rng.random() < 0.3:  # gamma on the intensity range
        low, high = image.min(), image.max()
        unit = (image - low) / (high - low).clamp(min=1e-6)
        image = unit ** float(np.exp(rng.uniform(-0.4, 0.4))) * (high - low) + low
    if rng.random() < 0.35:  # thick slices along one axis: averaged over 3-5 mm, resampled back
        axis = int(rng.integers(3))
        factor = max(1, round(rng.uniform(3.0, 5.0) / voxel_mm))
        if factor > 1:
            kernel = [1, 1, 1]
            kernel[axis] = factor
            coarse = F.avg_pool3d(image[None, None], kernel, stride=kernel, ceil_mode=True)
            image = F.interpolate(coarse, size=(size,) * 3, mode="trilinear", align_corners=False)[0, 0]
    if rng.random() < 0.2:  # blur
        image = F.avg_pool3d(image[None, None], 3, stride=1, padding=1, count_include_pad=False)[0, 0]
    if rng.random() < 0.5:  # noise, relative to the crop's spread
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        image = (
            image + torch.randn(image.shape, generator=generator) * float(rng.uniform(0, 0.15)) * image.std()
        )
    return image
