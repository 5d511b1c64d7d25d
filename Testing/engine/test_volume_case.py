"""A case with a 3D base model (engine/volume_network.py, volume_learning.py): the whole structure from
each click in any view, shown in two steps; MI after each click, PI on the accepted 3D mask, bit-for-bit
undo and a saved version. A small real 3D network (random weights) on a real Colin27 block around the
left caudate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
from InteractiveAdaptLib.engine.volume_learning import volume_loss
from InteractiveAdaptLib.engine.volume_network import VolumeNetwork, click_voxel
from InteractiveAdaptLib.errors import InvalidClickError, WeightsError
from InteractiveAdaptLib.interaction import Click, FillOptions
from InteractiveAdaptLib.model.base_model import load_base_model, save_base_model
from InteractiveAdaptLib.model.network import VOLUME_IN_CHANNELS, NetworkConfig, build_network
from InteractiveAdaptLib.store.site_store import SiteStore

TINY_3D = NetworkConfig("tiny-3d", (8, 16, 32), 0, spatial_dims=3, in_channels=VOLUME_IN_CHANNELS)


@pytest.fixture(scope="module")
def block(caudate_block):
    """The Colin27 block around the left caudate (conftest_engine.py)."""
    return caudate_block


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.manual_seed(0)
    return save_base_model(build_network(TINY_3D), tmp_path_factory.mktemp("model"), {"name": "tiny-3d"})


def open_case(base, block, store=None, undo_depth: int = 8, **adaptation):
    session = InteractiveSession(
        load_base_model(base.directory),
        SessionConfig(adaptation=AdaptationConfig(lr=1e-3, **adaptation), undo_depth=undo_depth),
        store=store,
        site="Test hospital",
    )
    image, spacing, _ = block
    return session.open_case(image, spacing, "Caudate", normalized=True)


def clicks(truth: np.ndarray) -> list[Click]:
    """An axial click in the caudate, a negative coronal one beside it, a sagittal one in it."""
    k, j, i = np.argwhere(truth).mean(axis=0).astype(int)
    return [Click(0, k, j, i, True), Click(1, j, k, i + 12, False), Click(2, i, k + 2, j, True)]


def state(session) -> list[torch.Tensor]:
    tensors = [v.clone() for v in session.network.state_dict().values()]
    for _, slot in sorted(session.adapter.optimizer.state_dict()["state"].items()):
        tensors += [v.clone() for _, v in sorted(slot.items()) if isinstance(v, torch.Tensor)]
    return tensors


def same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_3d_base_model_gives_a_case_the_3d_network(base, block):
    case = open_case(base, block)
    assert isinstance(case.network, VolumeNetwork)


def test_a_click_shows_its_slice_first_then_everything_it_changed(base, block):
    case = open_case(base, block, mid_interaction=False)
    first = clicks(block[2])[0]
    update = case.click(first, FillOptions(), fill_now=False)
    assert [(b.axis, b.first, b.data.shape) for b in update.blocks] == [(0, first.index, (1, 80, 70))]
    np.testing.assert_array_equal(case.mask[first.index], case.network.result[first.index])
    case.fill()
    np.testing.assert_array_equal(case.mask, case.network.result)
    assert case.fill().blocks == []  # nothing left to show


def test_clicks_in_every_view_reach_the_network_as_balls(base, block):
    case = open_case(base, block, mid_interaction=False)
    for click in clicks(block[2]):
        case.click(click, FillOptions())
    session = case.session
    image = case.network.image
    points = np.array([click_voxel(c) for c in case.clicks])
    signs = np.array([c.positive for c in case.clicks])
    prediction = session.volume_predictor.predict(image, session.spacing, points, signs, None)
    for point, positive in zip(prediction.crop.to_crop(points), signs, strict=True):
        k, j, i = np.round(point).astype(int)
        assert prediction.inputs[0, 1 if positive else 2, k, j, i] == 1
    np.testing.assert_array_equal(case.mask, case.network.result)


def test_mid_interaction_pulls_the_previous_answer_towards_the_new_one(base, block):
    case = open_case(base, block)
    first, second, _ = clicks(block[2])
    case.click(first, FillOptions())
    case.learn_pending()
    case.click(second, FillOptions())
    session = case.session
    step = session._pending
    loss = volume_loss(session)

    def step_loss() -> float:
        inputs = session.volume_predictor.inputs(
            step.image, step.crop, step.points, step.signs, step.previous
        )
        with torch.no_grad():
            return float(loss(session.network(inputs), step.labels[None], [[step.newest]]))

    before = step_loss()
    assert case.learn_pending()
    assert step_loss() < before


def test_undo_gives_the_result_and_the_weights_back_bit_for_bit_past_the_kept_snapshots(base, block):
    case = open_case(base, block, undo_depth=1)
    session = case.session
    history = [(case.mask.copy(), state(session))]
    for click in clicks(block[2]):
        case.click(click, FillOptions())
        case.learn_pending()
        history.append((case.mask.copy(), state(session)))
    history.pop()
    while history:
        case.undo()
        mask, weights = history.pop()
        np.testing.assert_array_equal(case.mask, mask)
        assert same(state(session), weights)
    assert case.clicks == []


def test_finish_learns_the_accepted_structure_and_saves_a_version(base, block, tmp_path):
    store = SiteStore(tmp_path / "store")
    case = open_case(base, block, store=store, mid_interaction=False)
    session = case.session
    case.click(clicks(block[2])[0], FillOptions())
    before = state(session)
    summary = case.finish(block[2])
    assert summary.steps_applied >= 1 and summary.slices_learned == 1 and summary.version == 1
    assert not same(before, state(session))
    loaded = store.profile("Test hospital", "Caudate").load(base.sha256)
    learned = [v for v in session.network.state_dict().values()]
    assert all(torch.equal(a, b) for a, b in zip(loaded.model_state.values(), learned, strict=True))


def test_finish_without_learning_leaves_the_weights_as_the_case_found_them(base, block):
    case = open_case(base, block)
    session = case.session
    before = state(session)
    for click in clicks(block[2]):
        case.click(click, FillOptions())
    summary = case.finish(None, learn=False)
    assert summary.version is None and summary.steps_applied == 0
    assert same(state(session), before)


def test_a_click_outside_the_image_changes_nothing(base, block):
    case = open_case(base, block)
    with pytest.raises(InvalidClickError, match="outside"):
        case.click(Click(0, 500, 10, 10, True), FillOptions())
    assert case.clicks == [] and not case.mask.any()


def test_the_slice_range_bounds_the_3d_result(base, block):
    case = open_case(base, block, mid_interaction=False)
    first = clicks(block[2])[0]
    case.click(first, FillOptions(bounds=(first.index - 2, first.index + 2)))
    outside = np.ones(len(case.mask), bool)
    outside[first.index - 2 : first.index + 3] = False
    assert not case.mask[outside].any()


def test_removing_an_earlier_click_places_the_later_ones_again(base, block):
    case = open_case(base, block, mid_interaction=False)
    first, second, third = clicks(block[2])
    for click in (first, second, third):
        case.click(click, FillOptions())
    result = case.remove(second)
    assert result.kind.name == "REDONE" and case.clicks == [first, third]
    again = open_case(base, block, mid_interaction=False)
    for click in (first, third):
        again.click(click, FillOptions())
    np.testing.assert_array_equal(case.mask, again.mask)


def test_the_forgetting_guard_is_refused_for_a_3d_model_with_a_clear_message(base):
    with pytest.raises(WeightsError, match="3D network"):
        InteractiveSession(load_base_model(base.directory), SessionConfig(forgetting_guard=True))
