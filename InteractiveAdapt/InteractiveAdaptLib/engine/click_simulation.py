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


def _pick_pixel(region: np.ndarray, mode: ClickMode, rng: np.random.Generator) -> tuple[int, int]:
    """A pixel of `region`: uniformly random (the paper) or its most interior pixel (a clinician)."""
    if mode == "center":
        # Pad so that the image border counts as the region's edge.
        dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        best = np.flatnonzero(dist == dist.max())
        flat = int(best[rng.integers(len(best))]) if len(best) > 1 else int(best[0])
    else:
        pixels = np.flatnonzero(region)
        flat = int(pixels[rng.integers(len(pixels))])
    r, c = np.unravel_index(flat, region.shape)
    return int(r), int(c)


def first_click(
    target: np.ndarray, mode: ClickMode, rng: np.random.Generator
) -> tuple[int, int, bool] | None:
    """A positive click inside the largest component of the target; None for an empty target."""
    region = _largest_component(target.astype(bool))
    if not region.any():
        return None
    r, c = _pick_pixel(region, mode, rng)
    return (r, c, True)


def error_regions(prediction: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false negatives, false positives) as boolean masks."""
    prediction = prediction.astype(bool)
    target = target.astype(bool)
    return target & ~prediction, prediction & ~target


def next_click(
    prediction: np.ndarray, target: np.ndarray, mode: ClickMode, rng: np.random.Generator
) -> tuple[int, int, bool] | None:
    """A click in the largest error component: positive on a false negative, negative on a false
    positive. None when the prediction is perfect."""
    fn, fp = error_regions(prediction, target)
    fn_region, fp_region = _largest_component(fn), _largest_component(fp)
    n_fn, n_fp = int(fn_region.sum()), int(fp_region.sum())
    if n_fn == 0 and n_fp == 0:
        return None
    positive = n_fn >= n_fp
    r, c = _pick_pixel(fn_region if positive else fp_region, mode, rng)
    return (r, c, positive)


def error_clicks(
    prediction: np.ndarray, target: np.ndarray, count: int, mode: ClickMode, rng: np.random.Generator
) -> list[tuple[int, int, bool]]:
    """Up to `count` clicks on the error components, largest first, one per component.

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
    clicks = []
    for _, region, positive in components[:count]:
        r, c = _pick_pixel(region, mode, rng)
        clicks.append((r, c, positive))
    return clicks
