"""Predictor (in-plane resampling to 1 mm, click mapping, back to the native grid), dice, evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest_engine import disk
from scipy import ndimage

from interactive_adapt_lab.data.cases import aal_targets_of_split, enumerate_cases, spread_order
from interactive_adapt_lab.evaluation.simulated_user import click_dice_curve, evaluate
from InteractiveAdaptLib.engine.guidance import guidance_maps
from InteractiveAdaptLib.engine.predictor import Predictor, dice


def ramp(shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return (3.0 * rows + 5.0 * cols).astype(np.float32)


class GuidanceThreshold(torch.nn.Module):
    """A real (parameter-free) model: target where the positive guidance exceeds 0.5. It makes the
    simulated user's stopping rule testable independently of any trained weights."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.stack([torch.zeros_like(x[:, 1]), x[:, 1] - 0.5], dim=1)


# ---------------------------------------------------------------------------------------- resampling
@pytest.mark.parametrize(
    ("spacing", "grid_shape"),
    [((0.5, 0.5), (32, 45)), ((1.0, 0.5), (64, 45)), ((1.5, 1.5), (96, 135)), ((1.0, 1.0), (64, 90))],
)
def test_slice_is_resampled_to_1mm_and_the_mask_comes_back_native(tiny_network, spacing, grid_shape):
    predictor = Predictor(tiny_network)
    image = np.random.default_rng(0).normal(size=(64, 90)).astype(np.float32)
    prepared = predictor.prepare(image, spacing)
    assert prepared.shape == grid_shape and prepared.native_shape == (64, 90)
    mask = predictor.predict(image, spacing, [(30, 40, True)])
    assert mask.shape == (64, 90) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}


def test_1mm_slice_is_not_interpolated(tiny_network):
    image = ramp((40, 30))
    prepared = Predictor(tiny_network).prepare(image, (1.0, 1.0))
    assert prepared.scale == (1.0, 1.0)
    np.testing.assert_array_equal(prepared.image[0].numpy(), image)
    assert prepared.to_grid([(7, 9, True)]) == [(7.0, 9.0, True)]


@pytest.mark.parametrize("spacing", [0.5, 1.5])
def test_to_grid_keeps_pixel_centres(tiny_network, spacing):
    """A native click maps to the grid position where the resampled image has the native pixel's value."""
    image = ramp((40, 60))
    prepared = Predictor(tiny_network).prepare(image, (spacing, spacing))
    grid = prepared.image[0].numpy()
    clicks = [(10, 20, True), (21, 33, False), (30, 11, True)]  # away from the borders
    for (row, col, _), (grid_row, grid_col, _) in zip(clicks, prepared.to_grid(clicks), strict=True):
        value = ndimage.map_coordinates(grid, [[grid_row], [grid_col]], order=1)[0]
        assert value == pytest.approx(image[row, col], abs=1e-3)


def test_half_millimetre_click_maps_between_grid_pixels(tiny_network):
    prepared = Predictor(tiny_network).prepare(np.zeros((64, 90), np.float32), (0.5, 0.5))
    # native pixels 2 and 3 are the two halves of grid pixel 1
    assert prepared.to_grid([(2, 3, True)]) == [(0.75, 1.25, True)]


def test_network_input_has_guidance_at_the_mapped_click(tiny_network):
    predictor = Predictor(tiny_network)
    prepared = predictor.prepare(np.zeros((64, 90), np.float32), (0.5, 0.5))
    grid_clicks = prepared.to_grid([(20, 40, True), (50, 10, False)])
    x = predictor.network_input(prepared, grid_clicks)
    assert x.shape == (1, 3, 32, 45)
    torch.testing.assert_close(x[0, 1:], guidance_maps(grid_clicks, (32, 45)))


def test_labels_to_grid_resamples_a_mask_to_the_network_grid(tiny_network):
    prepared = Predictor(tiny_network).prepare(np.zeros((64, 90), np.float32), (0.5, 0.5))
    mask = disk((64, 90), (32, 45), 20)
    grid_mask = prepared.labels_to_grid(mask)
    assert grid_mask.shape == (32, 45) and grid_mask.dtype == torch.long
    assert abs(int(grid_mask.sum()) - mask.sum() / 4) < 0.05 * mask.sum() / 4


# ---------------------------------------------------------------------------------------- dice
def test_dice_values():
    a = np.zeros((4, 4), bool)
    a[0, :4] = True
    b = np.zeros((4, 4), bool)
    b[0, :2] = True
    assert dice(a, a) == 1.0
    assert dice(a, b) == pytest.approx(2 * 2 / (4 + 2))
    assert dice(a, ~a) == 0.0
    assert dice(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0  # nothing to find, nothing found
    assert dice(a, np.zeros((4, 4))) == 0.0


# ---------------------------------------------------------------------------------------- evaluation
def test_dice_curve_stops_clicking_at_a_perfect_prediction():
    net = GuidanceThreshold()
    # The disk where one click's Gaussian (sigma 5) exceeds 0.5: d^2 < 50 ln 2.
    target = disk((48, 48), (24, 24), np.sqrt(50 * np.log(2)))
    scores = click_dice_curve(
        Predictor(net), np.zeros((48, 48)), (1.0, 1.0), target, 5, "center", np.random.default_rng(0)
    )
    np.testing.assert_array_equal(scores, np.ones(5))
    assert net.calls == 1  # perfect after the first click: no more predictions


def test_dice_curve_keeps_clicking_while_errors_remain():
    net = GuidanceThreshold()
    target = np.zeros((48, 48), bool)
    target[4:44, 4:44] = True  # larger than any guidance blob can cover
    scores = click_dice_curve(
        Predictor(net), np.zeros((48, 48)), (1.0, 1.0), target, 4, "center", np.random.default_rng(0)
    )
    assert net.calls == 4 and scores.shape == (4,)
    assert ((scores > 0) & (scores < 1)).all()


@pytest.mark.slow
def test_evaluate_on_real_colin27_cases_gives_dice_per_case_and_click(tiny_network, engine_domain):
    colin = engine_domain("colin27")
    cases = spread_order(enumerate_cases(colin, aal_targets_of_split(colin, "test")), seed=0, count=3)
    result = evaluate(Predictor(tiny_network), colin, cases, n_clicks=4, seed=0)
    assert result.dice.shape == (3, 4)
    assert ((result.dice >= 0) & (result.dice <= 1)).all()
    summary = result.summary(clicks=(1, 4))
    assert summary["cases"] == 3 and set(summary) == {"dice@1", "dice@4", "cases"}
