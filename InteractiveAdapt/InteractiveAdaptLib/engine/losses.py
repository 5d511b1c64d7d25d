"""Losses of docs/method.md (section 4): DF (0.7 focal + 0.3 Dice) and the Click-Centered Gaussian
loss (CCG)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss, FocalLoss

CCG_SIGMA_PX = 3.0
CCG_WINDOW_SIGMAS = 3.0  # the Gaussian window is cut at +-3 sigma


class DFLoss(torch.nn.Module):
    """0.7 * Focal(gamma=2) + 0.3 * Dice on 2-class logits and an integer label map (B, H, W)."""

    def __init__(self, focal_weight: float = 0.7, dice_weight: float = 0.3):
        super().__init__()
        self.focal_weight, self.dice_weight = focal_weight, dice_weight
        self.focal = FocalLoss(gamma=2.0, to_onehot_y=True, use_softmax=True)
        # Dice on the target channel only: the background Dice is ~1 and would dilute it.
        self.dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=False)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = labels[:, None].long()
        return self.focal_weight * self.focal(logits, y) + self.dice_weight * self.dice(logits, y)


def ccg_weight_map(
    clicks: list[tuple[float, float, bool]],
    labels: torch.Tensor,
    sigma: float = CCG_SIGMA_PX,
) -> torch.Tensor:
    """(H, W) weights: for each click a Gaussian window (cut at +-3 sigma) over the pixels whose label
    equals the click's class (1 for a positive click, 0 for a negative one), summed over clicks."""
    h, w = labels.shape
    rows = torch.arange(h, device=labels.device, dtype=torch.float32)[:, None]
    cols = torch.arange(w, device=labels.device, dtype=torch.float32)[None, :]
    weights = torch.zeros(h, w, device=labels.device)
    half = CCG_WINDOW_SIGMAS * sigma
    for row, col, positive in clicks:
        dr, dc = rows - row, cols - col
        window = (dr.abs() <= half) & (dc.abs() <= half)
        same_class = labels == (1 if positive else 0)
        gauss = torch.exp(-(dr**2 + dc**2) / (2 * sigma**2))
        weights += gauss * window * same_class
    return weights


def ccg_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    clicks: list[list[tuple[float, float, bool]]],
    sigma: float = CCG_SIGMA_PX,
) -> torch.Tensor:
    """Click-Centered Gaussian loss: cross-entropy weighted by `ccg_weight_map`, averaged over all
    pixels of the batch (so the paper's weight of 200 balances it against DF).

    logits (B, 2, H, W), labels (B, H, W), clicks[b] = [(row, col, positive), ...].
    """
    ce = F.cross_entropy(logits, labels.long(), reduction="none")  # (B, H, W)
    weights = torch.stack([ccg_weight_map(c, labels[b], sigma) for b, c in enumerate(clicks)])
    return (weights * ce).mean()


class SegmentationLoss(torch.nn.Module):
    """The pre-training and adaptation loss: DF + ccg_weight * CCG."""

    def __init__(self, ccg_weight: float = 200.0, ccg_sigma: float = CCG_SIGMA_PX):
        super().__init__()
        self.df = DFLoss()
        self.ccg_weight, self.ccg_sigma = ccg_weight, ccg_sigma

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, clicks: list[list[tuple[float, float, bool]]]
    ) -> torch.Tensor:
        loss = self.df(logits, labels)
        if self.ccg_weight:
            loss = loss + self.ccg_weight * ccg_loss(logits, labels, clicks, self.ccg_sigma)
        return loss
