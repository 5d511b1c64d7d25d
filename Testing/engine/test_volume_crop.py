"""The 3D network's crops (engine/volume_crop.py): geometry, sampling and mapping back, click balls."""

from __future__ import annotations

import numpy as np
import torch

from InteractiveAdaptLib.engine.volume_crop import (
    BALL_RADIUS,
    CROP_SIZE,
    LEVELS,
    choose_crop,
    click_balls,
    level_voxel_mm,
    make_crop,
    paste,
    sample,
    touches_border,
)
from InteractiveAdaptLib.engine.volume_predictor import crop_to_native


def ellipsoid(shape, center, radii_vox) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii_vox, strict=True)) <= 1


def dice(a, b) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_a_small_structure_gets_the_finest_crop_and_a_large_one_a_coarser_one():
    spacing = (1.0, 1.0, 1.0)
    small = choose_crop(np.array([[50, 50, 50], [70, 60, 65]]), spacing)
    assert small.level == 0 and small.extent == (96, 96, 96)
    large = choose_crop(np.array([[10, 10, 10], [180, 200, 170]]), spacing)
    assert large.level > 0
    assert CROP_SIZE * level_voxel_mm(large.level) * 0.7 >= 190  # the whole box fits with room
    assert choose_crop(np.array([[0, 0, 0], [5000, 0, 0]]), spacing).level == LEVELS - 1


def test_an_anisotropic_volume_gets_a_cube_in_millimetres():
    crop = make_crop(np.array([10.0, 100.0, 100.0]), 0, (4.0, 1.0, 1.0))
    assert crop.extent == (24, 96, 96)
    assert np.allclose(crop.voxel_mm((4.0, 1.0, 1.0)), 1.5)


def test_a_structure_sampled_into_its_crop_and_pasted_back_keeps_its_shape():
    # A 1 x 1 x 4 mm series (the common clinical case): an ellipsoid of 12 x 20 x 15 mm radii.
    spacing = (4.0, 1.0, 1.0)
    shape = (40, 160, 150)
    truth = ellipsoid(shape, (20, 80, 70), (3, 20, 15))
    crop = choose_crop(np.argwhere(truth)[[0, -1]], spacing)
    inside = sample(torch.from_numpy(truth)[None], crop, edge=False)[0]
    assert inside.shape == (CROP_SIZE,) * 3
    native, values = paste(inside * 2 - 1, crop, shape)
    back = np.zeros(shape, bool)
    back[native] = (values > 0).numpy()
    assert dice(back, truth) > 0.9


def test_a_crop_past_the_volume_edge_is_padded_with_the_image_edge_and_empty_masks():
    volume = torch.arange(20, dtype=torch.float32).reshape(20, 1, 1).expand(20, 30, 30).contiguous()
    crop = make_crop(np.array([0.0, 15.0, 15.0]), 0, (1.0, 1.0, 1.0), size=16)
    image = sample(volume[None], crop, edge=True)[0]
    before = crop.to_crop(np.array([[-0.5, 0, 0]]))[0, 0]  # where the volume starts in the crop
    inside = int(np.ceil(before))
    assert torch.equal(image[0], image[inside])  # the volume's edge repeats before it
    assert float(image[inside].max()) < 1.0 < float(image[-1].min())  # and the image goes on inside
    mask = sample(torch.ones(1, 20, 30, 30), crop, edge=False)[0]
    assert float(mask[0].max()) == 0.0 and float(mask[-1].min()) > 0.99
    native, values = paste(mask, crop, (20, 30, 30))
    assert values.shape == tuple(s.stop - s.start for s in native)  # only the voxels of the volume


def test_crop_coordinates_map_voxel_centres_both_ways():
    crop = make_crop(np.array([30.0, 40.0, 50.0]), 1, (1.0, 1.0, 1.0))
    centre = crop.to_crop(np.array([30.0, 40.0, 50.0]))[0]
    assert np.allclose(centre, (CROP_SIZE - 1) / 2, atol=CROP_SIZE / crop.extent[0])
    mask = np.zeros((CROP_SIZE,) * 3, bool)
    k, j, i = np.round(centre).astype(int)
    mask[k, j, i] = True
    corners = crop_to_native(crop, mask)
    assert np.allclose(corners[0], [30, 40, 50], atol=1.5)


def test_click_balls_mark_each_click_in_its_own_channel():
    balls = click_balls(
        np.array([[10.0, 10.0, 10.0], [40.0, 50.0, 20.0], [-30.0, 5.0, 5.0]]), [True, False, True]
    )
    assert balls[0, 10, 10, 10] == 1 and balls[1, 40, 50, 20] == 1
    assert balls[0, 40, 50, 20] == 0 and balls[1, 10, 10, 10] == 0
    volume = 4 / 3 * np.pi * BALL_RADIUS**3
    assert 0.5 * volume <= float(balls[1].sum()) <= 2 * volume
    assert float(balls[0].sum()) == float(balls[1].sum())  # the click outside the crop is left out


def test_a_result_cut_off_by_the_crop_asks_for_a_larger_one_unless_the_volume_ends_there():
    shape = (300, 300, 300)
    middle = make_crop(np.array([150.0, 150.0, 150.0]), 0, (0.5, 0.5, 0.5))  # 192 voxels: inside
    touching = torch.zeros((CROP_SIZE,) * 3, dtype=torch.bool)
    touching[0, 30, 30] = True
    assert touches_border(touching, middle, shape)
    assert not touches_border(torch.zeros_like(touching), middle, shape)
    edge = make_crop(np.array([10.0, 150.0, 150.0]), 0, (1.0, 1.0, 1.0))  # starts before the volume
    assert not touches_border(touching, edge, shape)


def test_pasting_back_is_trilinear_resizing_of_the_crop_onto_its_box():
    spacing = (1.0, 1.2, 0.9)
    crop = make_crop(np.array([60.0, 70.0, 80.0]), 1, spacing)
    values = torch.randn(CROP_SIZE, CROP_SIZE, CROP_SIZE)
    native, pasted = paste(values, crop, (200, 200, 200))
    whole = torch.nn.functional.interpolate(values[None, None], size=crop.extent, mode="trilinear")[0, 0]
    _, box = crop.inside((200, 200, 200))
    assert torch.allclose(pasted, whole[box], atol=1e-4)
    head = make_crop(np.array([90.0, 108.0, 90.0]), 3, (1.0, 1.0, 1.0))  # a box far larger than the head
    native, pasted = paste(values, head, (181, 217, 181))
    assert pasted.shape == (181, 217, 181) and native == (slice(0, 181), slice(0, 217), slice(0, 181))
