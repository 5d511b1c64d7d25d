"""Losses of docs/method.md (section 4): DF (0.7 focal + 0.3 Dice) and the Click-Centered Gaussian
loss (CCG)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss, FocalLoss

CCG_SIGMA_PX = 3.0
CCG_WINDOW_SIGMAS = 3.0  # the Gaussian window is cut at +-3 sigma
# Online steps divide the CCG sum by the pixels of the paper's 256 x 256 slices, whatever the size of
# the slice at hand, so a CCG weight means what it means in the paper.
CCG_REFERENCE_PIXELS = 256 * 256


class DFLoss(torch.nn.Module):
    """0.7 * Focal(gamma=2) + 0.3 * Dice on 2-class logits and an integer label map (B, H, W)."""

    def __init__(self, focal_weight: float = 0.7, dice_weight: float = 0.3):
        super().__init__()
        self.focal_weight, self.dice_weight = focal_weight, dice_weight
        # Per channel, then summed over the channels: MONAI's mean would also average over the two
        # channels, of which only the true class's is non-zero, and so halve the focal term.
        self.focal = FocalLoss(gamma=2.0, to_onehot_y=True, use_softmax=True, reduction="none")
        # Dice on the target channel only: the background Dice is ~1 and would dilute it.
        self.dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=False)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = labels[:, None].long()
        focal = self.focal(logits, y).sum(1).mean()  # the standard focal loss, averaged over pixels
        return self.focal_weight * focal + self.dice_weight * self.dice(logits, y)


def ccg_weight_map(
    clicks: list[tuple],
    labels: torch.Tensor,
    sigma: float = CCG_SIGMA_PX,
) -> torch.Tensor:
    """Weights of the shape of `labels` (2D or 3D): for each click, (row, col, positive) or (k, j, i,
    positive), a Gaussian window (cut at +-3 sigma) over the pixels whose label equals the click's class
    (1 for a positive click, 0 for a negative one), summed over clicks."""
    grids = [
        torch.arange(n, device=labels.device, dtype=torch.float32).reshape(
            [n if a == d else 1 for a in range(labels.ndim)]
        )
        for d, n in enumerate(labels.shape)
    ]
    weights = torch.zeros(labels.shape, device=labels.device)
    half = CCG_WINDOW_SIGMAS * sigma
    for *point, positive in clicks:
        offsets = [grid - float(p) for grid, p in zip(grids, point, strict=True)]
        window = torch.ones((), dtype=torch.bool, device=labels.device)
        squared = torch.zeros((), device=labels.device)
        for offset in offsets:
            window = window & (offset.abs() <= half)
            squared = squared + offset**2
        same_class = labels == (1 if positive else 0)
        weights += torch.exp(-squared / (2 * sigma**2)) * window * same_class
    return weights


def ccg_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    clicks: list[list[tuple]],
    sigma: float = CCG_SIGMA_PX,
    reference_pixels: int | None = None,
) -> torch.Tensor:
    """Click-Centered Gaussian loss: cross-entropy weighted by `ccg_weight_map`.

    logits (B, 2, H, W), labels (B, H, W), clicks[b] = [(row, col, positive), ...] (or one more
    dimension: (B, 2, D, H, W), (k, j, i, positive)). With
    `reference_pixels` None the weighted sum is averaged over all pixels of the batch (pre-training:
    every crop has the same size); with a number it is divided by that many pixels per image, so that
    one CCG weight pulls a click's neighbourhood equally hard on a slice of any size.
    """
    ce = F.cross_entropy(logits, labels.long(), reduction="none")  # (B, *spatial)
    weights = torch.stack([ccg_weight_map(c, labels[b], sigma) for b, c in enumerate(clicks)])
    if reference_pixels is None:
        return (weights * ce).mean()
    return (weights * ce).sum() / (len(clicks) * reference_pixels)


class SegmentationLoss(torch.nn.Module):
    """The pre-training and adaptation loss: DF + ccg_weight * CCG."""

    def __init__(
        self,
        ccg_weight: float = 200.0,
        ccg_sigma: float = CCG_SIGMA_PX,
        ccg_reference_pixels: int | None = None,
    ):
        super().__init__()
        self.df = DFLoss()
        self.ccg_weight, self.ccg_sigma = ccg_weight, ccg_sigma
        self.ccg_reference_pixels = ccg_reference_pixels

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, clicks: list[list[tuple[float, float, bool]]]
    ) -> torch.Tensor:
        loss = self.df(logits, labels)
        if self.ccg_weight:
            ccg = ccg_loss(logits, labels, clicks, self.ccg_sigma, self.ccg_reference_pixels)
            loss = loss + self.ccg_weight * ccg
        return loss
