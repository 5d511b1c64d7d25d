"""Guidance maps: how the network sees the clicks (one Gaussian per click, positive and negative channels)."""

from __future__ import annotations

import torch

GUIDANCE_SIGMA_PX = 5.0  # each click is a Gaussian with sigma 5 px (docs/method.md)


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
