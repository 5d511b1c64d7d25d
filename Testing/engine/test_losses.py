"""Losses of docs/method.md checked against values computed by hand: CCG, DF and their sum."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
from InteractiveAdaptLib.engine.losses import CCG_SIGMA_PX, DFLoss, SegmentationLoss, ccg_loss, ccg_weight_map

LN2 = math.log(2)


def gauss_sum_1d(sigma: float, half: int) -> float:
    return sum(math.exp(-(d**2) / (2 * sigma**2)) for d in range(-half, half + 1))


def ccg_by_hand(logits: np.ndarray, labels: np.ndarray, clicks: list, sigma: float) -> float:
    """Plain-Python CCG of one image: sum over pixels of window weight x cross-entropy, / pixels."""
    h, w = labels.shape
    total = 0.0
    for r in range(h):
        for c in range(w):
            weight = 0.0
            for cr, cc, positive in clicks:
                inside = abs(r - cr) <= 3 * sigma and abs(c - cc) <= 3 * sigma
                if inside and labels[r, c] == (1 if positive else 0):
                    weight += math.exp(-((r - cr) ** 2 + (c - cc) ** 2) / (2 * sigma**2))
            s0, s1 = float(logits[0, r, c]), float(logits[1, r, c])
            ce = math.log(math.exp(s0) + math.exp(s1)) - (s1 if labels[r, c] == 1 else s0)
            total += weight * ce
    return total / (h * w)


def test_ccg_defaults_follow_the_paper():
    assert CCG_SIGMA_PX == 3.0
    assert SegmentationLoss().ccg_weight == 200.0


def test_ccg_of_uniform_logits_is_ln2_times_the_window_sum():
    labels = torch.ones(1, 7, 7, dtype=torch.long)
    logits = torch.zeros(1, 2, 7, 7)
    loss = ccg_loss(logits, labels, [[(3, 3, True)]], sigma=1.0)
    # Every pixel is inside the +-3 sigma window and of the click's class; CE = ln 2 everywhere.
    assert float(loss) == pytest.approx(LN2 * gauss_sum_1d(1.0, 3) ** 2 / 49, rel=1e-6)


def test_ccg_counts_only_pixels_of_the_clicks_class():
    labels = torch.ones(1, 7, 7, dtype=torch.long)
    labels[0, 3, 4] = 0  # a background pixel right next to the positive click
    logits = torch.zeros(1, 2, 7, 7, requires_grad=True)
    loss = ccg_loss(logits, labels, [[(3, 3, True)]], sigma=1.0)
    expected = LN2 * (gauss_sum_1d(1.0, 3) ** 2 - math.exp(-0.5)) / 49
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    weights = ccg_weight_map([(3, 3, True)], labels[0], sigma=1.0)
    assert weights[3, 4] == 0 and float(weights[3, 2]) == pytest.approx(math.exp(-0.5))
    loss.backward()
    assert not logits.grad[0, :, 3, 4].any()  # it contributes nothing, not even a gradient


def test_negative_click_counts_only_background_pixels():
    labels = torch.zeros(7, 7, dtype=torch.long)
    labels[:, 5:] = 1
    weights = ccg_weight_map([(3, 3, False)], labels, sigma=1.0).numpy()
    assert not weights[:, 5:].any()
    assert weights[3, 3] == pytest.approx(1.0) and weights[3, 4] == pytest.approx(math.exp(-0.5))


def test_ccg_window_is_cut_at_three_sigma():
    labels = torch.ones(9, 9, dtype=torch.long)
    weights = ccg_weight_map([(4, 4, True)], labels, sigma=1.0).numpy()
    assert weights[4, 7] == pytest.approx(math.exp(-4.5))  # 3 sigma: inside
    assert weights[4, 8] == 0 and weights[0, 4] == 0  # 4 sigma: the Gaussian is > 0 but cut
    assert weights[1, 1] == pytest.approx(math.exp(-9))  # the corner of the square window counts
    loss = ccg_loss(torch.zeros(1, 2, 9, 9), labels[None], [[(4, 4, True)]], sigma=1.0)
    assert float(loss) == pytest.approx(LN2 * gauss_sum_1d(1.0, 3) ** 2 / 81, rel=1e-6)


@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_ccg_matches_plain_math_on_random_logits_and_two_clicks(sigma):
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, size=(2, 7, 7)).astype(np.float32)
    labels = (rng.random((7, 7)) < 0.5).astype(np.int64)
    clicks = [(2, 2, True), (5, 4, False)]
    loss = ccg_loss(torch.from_numpy(logits)[None], torch.from_numpy(labels)[None], [clicks], sigma=sigma)
    assert float(loss) == pytest.approx(ccg_by_hand(logits, labels, clicks, sigma), rel=1e-5)


def test_ccg_batch_mean_is_over_all_pixels_and_uses_each_images_clicks():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 1, size=(2, 2, 7, 7)).astype(np.float32)
    labels = (rng.random((2, 7, 7)) < 0.5).astype(np.int64)
    clicks = [[(1, 5, True), (4, 1, False)], []]  # the second image has no click: it adds 0
    loss = ccg_loss(torch.from_numpy(logits), torch.from_numpy(labels), clicks, sigma=1.0)
    expected = ccg_by_hand(logits[0], labels[0], clicks[0], 1.0) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def df_by_hand(logits: np.ndarray, labels: np.ndarray) -> float:
    """0.7 * focal (gamma 2: -(1 - p_true)^2 log p_true, averaged over the batch's pixels) + 0.3 * Dice
    of the target class."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    pt = np.where(labels == 1, p[:, 1], p[:, 0])
    focal = float((-((1 - pt) ** 2) * np.log(pt)).mean())  # per pixel, not per pixel and class
    smooth = 1e-5  # MONAI's default smoothing terms
    dice = [
        1 - (2 * (p[b, 1] * labels[b]).sum() + smooth) / (p[b, 1].sum() + labels[b].sum() + smooth)
        for b in range(len(labels))
    ]
    return 0.7 * focal + 0.3 * float(np.mean(dice))


def test_df_is_0p7_focal_plus_0p3_dice():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, size=(2, 2, 6, 5)).astype(np.float64)
    labels = (rng.random((2, 6, 5)) < 0.4).astype(np.int64)
    loss = DFLoss()(torch.from_numpy(logits), torch.from_numpy(labels))
    assert float(loss) == pytest.approx(df_by_hand(logits, labels), rel=1e-5)


def test_df_is_near_zero_for_a_confident_correct_prediction():
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, 2:6, 2:6] = 1
    logits = torch.stack([1 - labels, labels], dim=1).float() * 20
    assert float(DFLoss()(logits, labels)) < 1e-6
    assert float(DFLoss()(-logits, labels)) > 0.9


def test_segmentation_loss_is_df_plus_200_ccg():
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 1, size=(1, 2, 20, 20)).astype(np.float32)
    labels = np.zeros((1, 20, 20), np.int64)
    labels[0, 5:15, 6:14] = 1
    clicks = [[(9, 9, True), (2, 17, False)]]
    t_logits, t_labels = torch.from_numpy(logits), torch.from_numpy(labels)
    loss = float(SegmentationLoss()(t_logits, t_labels, clicks))
    expected = df_by_hand(logits, labels) + 200 * ccg_by_hand(logits[0], labels[0], clicks[0], 3.0)
    assert loss == pytest.approx(expected, rel=1e-5)
    assert float(SegmentationLoss(ccg_weight=0)(t_logits, t_labels, clicks)) == pytest.approx(
        df_by_hand(logits, labels), rel=1e-5
    )


def test_ccg_per_reference_pixels_means_the_same_on_a_slice_of_any_size():
    """The same click neighbourhood on a small and a 4x larger slice: the mean over the slice gives a
    4x weaker pull on the large one; per reference pixels, the same pull."""
    rng = np.random.default_rng(5)
    small_logits = rng.normal(0, 1, size=(1, 2, 32, 32)).astype(np.float32)
    small_labels = np.zeros((1, 32, 32), np.int64)
    small_labels[0, 8:24, 8:24] = 1
    large_logits = np.zeros((1, 2, 64, 64), np.float32)
    large_logits[:, :, :32, :32] = small_logits
    large_labels = np.zeros((1, 64, 64), np.int64)
    large_labels[:, :32, :32] = small_labels
    click = [[(16, 16, True)]]
    args = lambda z, y: (torch.from_numpy(z), torch.from_numpy(y), click)  # noqa: E731
    mean_small, mean_large = (
        ccg_loss(*args(small_logits, small_labels)),
        ccg_loss(*args(large_logits, large_labels)),
    )
    assert float(mean_small) == pytest.approx(4 * float(mean_large), rel=1e-5)
    per_small = ccg_loss(*args(small_logits, small_labels), reference_pixels=1000)
    per_large = ccg_loss(*args(large_logits, large_labels), reference_pixels=1000)
    assert float(per_small) == pytest.approx(float(per_large), rel=1e-5)
    assert float(per_small) == pytest.approx(float(mean_small) * 32 * 32 / 1000, rel=1e-5)
    assert AdaptationConfig().ccg_reference_pixels == 256 * 256  # online steps use the paper's slice size
