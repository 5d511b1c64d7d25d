"""Clicks: guidance maps for the network and the simulated user of training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy import ndimage

GUIDANCE_SIGMA_PX = 5.0  # METHOD.md: each click is a Gaussian with sigma 5 px


@dataclass(frozen=True)
class Click:
    """One click on a slice of a (K, J, I) volume."""

    axis: int  # array axis held fixed by the slice (0 = K, 1 = J, 2 = I)
    index: int  # slice index along that axis
    row: int  # pixel row in np.take(volume, index, axis)
    col: int  # pixel column in that slice
    positive: bool


def guidance_maps(
    clicks: list[tuple[float, float, bool]],
    shape: tuple[int, int],
    sigma: float = GUIDANCE_SIGMA_PX,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(2, H, W) positive/negative maps: a Gaussian per click, summed, min-max normalised to [0, 1].

    `clicks` are (row, col, positive) in pixel coordinates of `shape` (floats allowed, so a click
    keeps its true position after in-plane resampling).
    """
    h, w = shape
    maps = torch.zeros(2, h, w, device=device)
    if clicks:
        # The 2D Gaussian is separable: exp(-(dr^2 + dc^2)/2s^2) = exp(-dr^2/2s^2) * exp(-dc^2/2s^2), so
        # the sum over a channel's clicks is one (H x n) @ (n x W) product instead of n full-size exps.
        at = torch.tensor([(r, c) for r, c, _ in clicks], device=device, dtype=torch.float32)
        positive = torch.tensor([bool(p) for _, _, p in clicks], device=device)
        rows = torch.arange(h, device=device, dtype=torch.float32)
        cols = torch.arange(w, device=device, dtype=torch.float32)
        along_rows = torch.exp(-((rows[None, :] - at[:, :1]) ** 2) / (2 * sigma**2))  # (n, H)
        along_cols = torch.exp(-((cols[None, :] - at[:, 1:]) ** 2) / (2 * sigma**2))  # (n, W)
        for channel, chosen in ((0, positive), (1, ~positive)):
            if chosen.any():
                maps[channel] = along_rows[chosen].T @ along_cols[chosen]
    for c in range(2):
        lo, hi = maps[c].min(), maps[c].max()
        if hi > lo:
            maps[c] = (maps[c] - lo) / (hi - lo)
    return maps


ClickMode = Literal["random", "center"]


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


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
