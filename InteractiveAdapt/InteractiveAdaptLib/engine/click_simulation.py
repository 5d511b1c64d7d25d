"""The simulated user of training, evaluation and post-interaction learning: where the next click goes.

The first click lands in the largest component of the target; each next one in the largest error
region (a false negative gives a positive click, a false positive a negative one), docs/method.md.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

ClickMode = Literal["random", "center"]


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def deepest_point(mask: np.ndarray) -> tuple[int, int]:
    """The pixel of a non-empty 2D mask farthest from its edge (the image border counts as edge; the
    first such pixel in row order). Only the mask's bounding box is measured: the result is the same."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    depth = ndimage.distance_transform_edt(np.pad(box, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(depth)), box.shape)
    return int(row + rows[0]), int(col + cols[0])


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The slices of a non-empty mask's bounding box, one per axis."""
    box = []
    for d in range(mask.ndim):
        along = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != d)))
        box.append(slice(int(along[0]), int(along[-1]) + 1))
    return tuple(box)


def _pick_pixel(region: np.ndarray, mode: ClickMode, rng: np.random.Generator) -> tuple[int, ...]:
    """A pixel (2D) or voxel (3D) of `region`: uniformly random (the paper) or its most interior one (a
    clinician)."""
    if mode == "center":
        # Only the region's bounding box is measured, padded so that the image border counts as edge.
        box = bounding_box(region)
        inner = (slice(1, -1),) * region.ndim
        dist = ndimage.distance_transform_edt(np.pad(region[box], 1))[inner]
        best = np.flatnonzero(dist == dist.max())
        flat = int(best[rng.integers(len(best))]) if len(best) > 1 else int(best[0])
        return tuple(int(v) + b.start for v, b in zip(np.unravel_index(flat, dist.shape), box, strict=True))
    pixels = np.flatnonzero(region)
    flat = int(pixels[rng.integers(len(pixels))])
    return tuple(int(v) for v in np.unravel_index(flat, region.shape))


def first_click(target: np.ndarray, mode: ClickMode, rng: np.random.Generator) -> tuple | None:
    """A positive click inside the largest component of the target, as (row, col, True) on a slice or
    (k, j, i, True) in a volume; None for an empty target."""
    region = _largest_component(target.astype(bool))
    if not region.any():
        return None
    return (*_pick_pixel(region, mode, rng), True)


def error_regions(prediction: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false negatives, false positives) as boolean masks."""
    prediction = prediction.astype(bool)
    target = target.astype(bool)
    return target & ~prediction, prediction & ~target


def next_click(
    prediction: np.ndarray, target: np.ndarray, mode: ClickMode, rng: np.random.Generator
) -> tuple | None:
    """A click in the largest error component: positive on a false negative, negative on a false
    positive, as (row, col, positive) on a slice or (k, j, i, positive) in a volume. None when the
    prediction is perfect."""
    fn, fp = error_regions(prediction, target)
    fn_region, fp_region = _largest_component(fn), _largest_component(fp)
    n_fn, n_fp = int(fn_region.sum()), int(fp_region.sum())
    if n_fn == 0 and n_fp == 0:
        return None
    positive = n_fn >= n_fp
    return (*_pick_pixel(fn_region if positive else fp_region, mode, rng), positive)


def error_clicks(
    prediction: np.ndarray, target: np.ndarray, count: int, mode: ClickMode, rng: np.random.Generator
) -> list[tuple]:
    """Up to `count` clicks on the error components, largest first, one per component (2D or 3D).

    Used for training (N ~ U{1..10} clicks from a 1-click prediction) and for the second stage of
    post-interaction learning.
    """
    fn, fp = error_regions(prediction, target)
    components: list[tuple[int, np.ndarray, bool]] = []
    for mask, positive in ((fn, True), (fp, False)):
        labels, n = ndimage.label(mask)
        if n:
            sizes = np.bincount(labels.ravel())[1:]
            components += [(int(sizes[i]), labels == i + 1, positive) for i in range(n)]
    components.sort(key=lambda item: -item[0])
    return [(*_pick_pixel(region, mode, rng), positive) for _, region, positive in components[:count]]
