"""The simulated user (engine/click_simulation.py): the first click lands in the largest target
component and every next click inside the largest error it corrects (at its most interior pixel in
centre mode), one click per error component, largest first."""

from __future__ import annotations

import numpy as np
import pytest
from conftest_engine import disk
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from InteractiveAdaptLib.engine.click_simulation import deepest_point, error_clicks, first_click, next_click

FUZZ = settings(max_examples=150, deadline=None)


def component_of(mask: np.ndarray, row: int, col: int) -> np.ndarray:
    labels, _ = ndimage.label(mask)
    assert labels[row, col] > 0, "the click is not on the mask"
    return labels == labels[row, col]


def component_sizes(mask: np.ndarray) -> list[int]:
    labels, n = ndimage.label(mask)
    return [int((labels == i).sum()) for i in range(1, n + 1)]


def distance_to_outside(region: np.ndarray) -> np.ndarray:
    """Brute force: Euclidean distance of each region pixel to the nearest pixel outside it (the image
    border counts as outside)."""
    padded = np.pad(region, 1)
    outside = np.argwhere(~padded)
    dist = np.zeros(region.shape)
    for r, c in np.argwhere(region):
        dist[r, c] = np.sqrt(((outside - (r + 1, c + 1)) ** 2).sum(axis=1)).min()
    return dist


def assert_most_interior(region: np.ndarray, row: int, col: int) -> None:
    dist = distance_to_outside(region)
    assert dist[row, col] == pytest.approx(dist.max())


masks = st.tuples(st.integers(1, 12), st.integers(1, 12)).flatmap(
    lambda shape: st.tuples(arrays(np.bool_, shape), arrays(np.bool_, shape))
)
modes = st.sampled_from(["random", "center"])
seeds = st.integers(0, 2**32 - 1)


# ---------------------------------------------------------------------------------------- first click
def test_center_mode_first_click_is_the_centre_of_the_largest_component():
    target = disk((50, 60), (10, 10), 4) | disk((50, 60), (30, 40), 8)
    for seed in range(5):
        assert first_click(target, "center", np.random.default_rng(seed)) == (30, 40, True)


def test_first_click_on_an_empty_target_is_none():
    assert first_click(np.zeros((8, 8), bool), "random", np.random.default_rng(0)) is None


@FUZZ
@given(masks, modes, seeds)
def test_first_click_lands_in_the_largest_target_component(pair, mode, seed):
    target = pair[0]
    click = first_click(target, mode, np.random.default_rng(seed))
    if not target.any():
        assert click is None
        return
    row, col, positive = click
    assert positive and target[row, col]
    region = component_of(target, row, col)
    assert region.sum() == max(component_sizes(target))
    if mode == "center":
        assert_most_interior(region, row, col)


def test_random_mode_first_click_visits_the_whole_largest_component():
    target = disk((20, 20), (10, 10), 2)  # 13 pixels
    rng = np.random.default_rng(0)
    seen = {first_click(target, "random", rng)[:2] for _ in range(400)}
    assert seen == {tuple(p) for p in np.argwhere(target)}


# ---------------------------------------------------------------------------------------- next click
@FUZZ
@given(masks, modes, seeds)
def test_next_click_lands_inside_the_largest_error_it_corrects(pair, mode, seed):
    target, prediction = pair
    click = next_click(prediction, target, mode, np.random.default_rng(seed))
    if np.array_equal(target, prediction):
        assert click is None
        return
    assert click is not None
    row, col, positive = click
    false_negative, false_positive = target & ~prediction, prediction & ~target
    if positive:
        assert false_negative[row, col]
        region = component_of(false_negative, row, col)
    else:
        assert false_positive[row, col]
        region = component_of(false_positive, row, col)
    assert region.sum() == max(component_sizes(false_negative) + component_sizes(false_positive))
    if mode == "center":
        assert_most_interior(region, row, col)


def test_next_click_corrects_a_missed_part_with_a_positive_click():
    target = disk((40, 40), (20, 20), 10)
    prediction = target.copy()
    prediction[:, 20:] = False  # the right half is missed
    prediction |= disk((40, 40), (3, 3), 2)  # and a small false positive
    row, col, positive = next_click(prediction, target, "center", np.random.default_rng(0))
    assert positive and col >= 20 and target[row, col]


def test_next_click_removes_a_leak_with_a_negative_click():
    target = disk((40, 40), (20, 20), 5)
    prediction = target | disk((40, 40), (20, 32), 6)
    row, col, positive = next_click(prediction, target, "random", np.random.default_rng(0))
    assert not positive and prediction[row, col] and not target[row, col]


# ---------------------------------------------------------------------------------------- error clicks
@FUZZ
@given(masks, modes, seeds, st.integers(0, 6))
def test_error_clicks_one_per_component_largest_first(pair, mode, seed, count):
    target, prediction = pair
    clicks = error_clicks(prediction, target, count, mode, np.random.default_rng(seed))
    false_negative, false_positive = target & ~prediction, prediction & ~target
    all_sizes = sorted(component_sizes(false_negative) + component_sizes(false_positive), reverse=True)
    assert len(clicks) == min(count, len(all_sizes))
    regions = []
    for row, col, positive in clicks:
        error = false_negative if positive else false_positive
        assert error[row, col]
        regions.append(component_of(error, row, col))
        if mode == "center":
            assert_most_interior(regions[-1], row, col)
    sizes = [int(r.sum()) for r in regions]
    assert sizes == all_sizes[: len(clicks)]
    for i, a in enumerate(regions):  # never two clicks on the same component
        for b in regions[i + 1 :]:
            assert not (a & b).any()


def test_error_clicks_on_a_perfect_prediction_are_empty():
    target = disk((16, 16), (8, 8), 4)
    assert error_clicks(target, target, 10, "random", np.random.default_rng(0)) == []


def test_deepest_point_measures_only_the_box_and_finds_the_same_pixel_as_the_whole_slice():
    rng = np.random.default_rng(1)
    for _ in range(100):
        mask = rng.random((40, 50)) < rng.uniform(0.05, 0.9)
        mask[0, 0] = True  # a piece in the corner: the box reaches the border
        depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        assert deepest_point(mask) == np.unravel_index(int(np.argmax(depth)), mask.shape)
    blob = np.zeros((30, 30), bool)
    blob[10:19, 5:12] = True
    assert deepest_point(blob) == (13, 8)  # rows 13-15 of column 8 tie at depth 4: the first wins
