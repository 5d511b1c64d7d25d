"""Guidance maps (engine/guidance.py; the method in docs/method.md): one Gaussian of sigma 5 px per
click in the channel of its sign, summed and min-max normalised to [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest

from InteractiveAdaptLib.engine.guidance import GUIDANCE_SIGMA_PX, guidance_maps


def gaussian(shape, row, col, sigma=5.0):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * sigma**2))


def test_guidance_sigma_is_five_pixels():
    assert GUIDANCE_SIGMA_PX == 5.0


def test_single_click_gives_the_gaussian_with_value_one_at_the_click():
    maps = guidance_maps([(20, 30, True)], (64, 64)).numpy()
    assert maps.shape == (2, 64, 64)
    assert maps[0, 20, 30] == pytest.approx(1.0)
    assert maps[0, 25, 30] == pytest.approx(np.exp(-25 / 50), abs=1e-6)  # d = 5 px
    assert maps[0, 23, 34] == pytest.approx(np.exp(-25 / 50), abs=1e-6)  # d = 5 px (3-4-5)
    # On a large image the map's minimum is ~0, so min-max normalisation leaves the Gaussian as is.
    np.testing.assert_allclose(maps[0], gaussian((64, 64), 20, 30), atol=1e-6)
    assert not maps[1].any()


def test_two_clicks_are_summed_then_min_max_normalised():
    shape = (9, 11)
    raw = gaussian(shape, 4, 3) + gaussian(shape, 4, 7)
    expected = (raw - raw.min()) / (raw.max() - raw.min())
    maps = guidance_maps([(4, 3, True), (4, 7, True)], shape).numpy()
    np.testing.assert_allclose(maps[0], expected, atol=1e-6)
    assert maps[0].min() == 0.0 and maps[0].max() == pytest.approx(1.0)
    # The two Gaussians overlap: the maximum is between the clicks, not on them.
    assert np.unravel_index(maps[0].argmax(), shape) == (4, 5)
    assert maps[0, 4, 3] < 1.0


def test_min_max_normalisation_of_one_click_on_a_small_image():
    maps = guidance_maps([(2, 2, True)], (5, 5)).numpy()
    raw = gaussian((5, 5), 2, 2)
    np.testing.assert_allclose(maps[0], (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)
    assert maps[0, 0, 0] == 0.0 and maps[0, 2, 2] == pytest.approx(1.0)


def test_no_clicks_give_zero_maps():
    maps = guidance_maps([], (7, 5))
    assert maps.shape == (2, 7, 5)
    assert not maps.any()


def test_positive_and_negative_clicks_go_to_their_own_channel():
    maps = guidance_maps([(3, 4, True), (20, 25, False)], (32, 32)).numpy()
    assert np.unravel_index(maps[0].argmax(), (32, 32)) == (3, 4)
    assert np.unravel_index(maps[1].argmax(), (32, 32)) == (20, 25)
    np.testing.assert_allclose(maps[1], gaussian((32, 32), 20, 25), atol=1e-6)


def test_sub_pixel_click_is_symmetric_between_its_neighbours():
    maps = guidance_maps([(10.5, 10.0, True)], (32, 32)).numpy()
    assert maps[0, 10, 10] == maps[0, 11, 10] == pytest.approx(1.0)  # the maximum, d = 0.5 px
    # d = 1.5 px, divided by the maximum exp(-0.5^2 / 50) by the normalisation
    assert maps[0, 12, 10] == pytest.approx(np.exp(-(1.5**2 - 0.5**2) / 50), abs=1e-6)
    assert maps[0, 9, 10] == pytest.approx(maps[0, 12, 10])
