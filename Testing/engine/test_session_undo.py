"""Undo takes the weights back bit for bit at any depth: past the kept snapshots the session replays the
case's remaining mid-interaction steps from the case start (real Colin27 slices, real tiny network)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
from InteractiveAdaptLib.interaction import Click
from InteractiveAdaptLib.model.base_model import load_base_model, save_base_model
from InteractiveAdaptLib.model.network import NetworkConfig, build_network

TINY = NetworkConfig("tiny", (8, 16, 32), 0)
AXIAL, CORONAL = 90, 110  # Colin27 slices through the middle of the brain


@pytest.fixture(scope="module")
def colin(engine_domain):
    return engine_domain("colin27")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.manual_seed(0)
    return save_base_model(build_network(TINY), tmp_path_factory.mktemp("model"), {"name": "tiny"})


def make_session(base, colin, undo_depth: int) -> InteractiveSession:
    config = SessionConfig(adaptation=AdaptationConfig(lr=1e-3), undo_depth=undo_depth)
    # Each session gets its own network (a loaded base model is one network object).
    session = InteractiveSession(load_base_model(base.directory), config, site="Test hospital")
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    return session


def state(session) -> list[torch.Tensor]:
    """Weights and every tensor of the Adam state, in a fixed order."""
    tensors = [v.clone() for v in session.network.state_dict().values()]
    for _, slot in sorted(session.adapter.optimizer.state_dict()["state"].items()):
        tensors += [v.clone() for _, v in sorted(slot.items()) if isinstance(v, torch.Tensor)]
    return tensors


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def clicks(n: int) -> list[Click]:
    """n clicks on two slices of two orientations, mostly positive."""
    return [
        Click(0, AXIAL, 96 + 3 * k, 80 + 2 * k, k % 3 != 2)
        if k % 2
        else Click(1, CORONAL, 60 + k, 70 + k, True)
        for k in range(n)
    ]


def test_twelve_clicks_and_twelve_undos_give_the_case_start_back(base, colin):
    session = make_session(base, colin, undo_depth=8)
    history = [state(session)]
    for click in clicks(12):
        session.add_click(click)
        session.learn_pending()  # as the module does right after showing the prediction
        history.append(state(session))
    assert not same(history[0], history[-1])
    for n in range(12, 0, -1):
        session.undo()
        assert same(state(session), history[n - 1]), f"after undoing click {n} the weights differ"
    assert session.clicks == []


def test_replay_matches_kept_snapshots_through_undos(base, colin):
    """The same edits with every snapshot kept (the oracle) and with two kept: the same state each time."""
    kept_all, kept_two = make_session(base, colin, undo_depth=100), make_session(base, colin, undo_depth=2)
    ops = [("click", c) for c in clicks(7)] + [("undo",), ("undo",)]
    ops += [("click", c) for c in clicks(10)[7:]] + [("undo",)] * 6
    for op in ops:
        for session in (kept_all, kept_two):
            if op[0] == "click":
                session.add_click(op[1])
                session.learn_pending()
            else:
                session.undo()
        assert session.clicks == kept_all.clicks
        assert same(state(kept_all), state(kept_two)), f"states differ after {op[0]}"


def test_undo_of_a_click_whose_step_is_pending_changes_no_weights(base, colin):
    session = make_session(base, colin, undo_depth=1)
    start = state(session)
    for click in clicks(3):
        session.add_click(click)  # each add_click runs the previous click's step first
    before = state(session)
    session.undo()  # the third click's step never ran
    assert same(state(session), before)
    session.undo()  # the second click's step ran, and its snapshot is the one kept
    session.undo()  # the first click's step ran; its snapshot is gone: replayed from the case start
    assert session.clicks == [] and same(state(session), start)


def test_post_interaction_starts_from_the_first_positive_click(base, colin):
    """A case that began with a negative click: PI's stage-1 click is the first positive one."""
    session = make_session(base, colin, undo_depth=8)
    negative, positive = Click(0, AXIAL, 40, 40, False), Click(0, AXIAL, 110, 90, True)
    session.add_click(negative)
    session.add_click(positive)
    mask = np.zeros(colin.image[AXIAL].shape, bool)
    mask[100:120, 80:100] = True
    assert session._first_click((0, AXIAL), mask) == (110, 90, True)
    session.undo()  # only the negative click is left: the accepted mask's centre stands in
    row, col, positive = session._first_click((0, AXIAL), mask)
    assert positive and 109 <= row <= 110 and 89 <= col <= 90  # the centre of the 20 x 20 square
