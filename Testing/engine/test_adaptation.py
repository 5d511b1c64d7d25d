"""The online adapter's guarded step on a real Colin27 slice: every guard path and the snapshot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interactive_adapt_lab.data.datasets import load_domain
from InteractiveAdaptLib.engine.adaptation import AdaptationConfig, OnlineAdapter
from InteractiveAdaptLib.engine.predictor import Predictor
from InteractiveAdaptLib.model.network import NetworkConfig, build_network

TINY = NetworkConfig("tiny", (8, 16, 32), 0)
CLICKS = [(60.0, 70.0, True)]


@pytest.fixture(scope="module")
def prepared_slice():
    colin = load_domain("colin27")
    predictor = Predictor(build_network(TINY))
    return predictor.prepare(colin.image[90], colin.spacing_kji[1:])


@pytest.fixture
def adapter():
    torch.manual_seed(0)
    adapter = OnlineAdapter(Predictor(build_network(TINY)), AdaptationConfig(lr=1e-3))
    return adapter


def state(adapter) -> tuple[dict, dict]:
    weights = {k: v.clone() for k, v in adapter.network.state_dict().items()}
    optimizer = adapter.optimizer.state_dict()
    moments = {i: {k: v.clone() for k, v in e.items()} for i, e in optimizer["state"].items()}
    return weights, moments


def same_state(a, b) -> bool:
    (wa, ma), (wb, mb) = a, b
    same_weights = all(torch.equal(wa[k], wb[k]) for k in wa)
    same_moments = ma.keys() == mb.keys() and all(torch.equal(ma[i][k], mb[i][k]) for i in ma for k in ma[i])
    return same_weights and same_moments


def mean_logit_loss(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, 1].mean()


def test_a_finite_step_changes_the_weights(adapter, prepared_slice):
    before = state(adapter)
    applied, _ = adapter.slice_update(prepared_slice, CLICKS, mean_logit_loss)
    assert applied and adapter.steps_applied == 1
    assert not same_state(before, state(adapter))


def test_a_non_finite_gradient_leaves_weights_and_optimizer_untouched(adapter, prepared_slice):
    adapter.slice_update(prepared_slice, CLICKS, mean_logit_loss)  # the optimiser has moments now
    before = state(adapter)

    def nan_gradient(logits):  # finite loss (0), but d sqrt(x)/dx at 0 is infinite: 0 * inf = nan
        return (logits * 0).sqrt().sum()

    applied, _ = adapter.slice_update(prepared_slice, CLICKS, nan_gradient)
    assert not applied and adapter.steps_rejected == 1
    assert same_state(before, state(adapter))
    assert all(p.grad is None for p in adapter.network.parameters())


@pytest.mark.parametrize("caller_snapshot", [False, True])
def test_non_finite_weights_after_a_step_are_rolled_back(adapter, prepared_slice, caller_snapshot):
    adapter.slice_update(prepared_slice, CLICKS, mean_logit_loss)
    before = state(adapter)
    snapshot = adapter.snapshot() if caller_snapshot else None
    for group in adapter.optimizer.param_groups:
        group["lr"] = float("inf")  # a finite gradient, an infinite update
    applied, _ = adapter.slice_update(prepared_slice, CLICKS, mean_logit_loss, snapshot)
    assert not applied and adapter.steps_rejected == 1
    assert same_state(before, state(adapter))


def test_snapshot_is_a_copy_that_restores_bit_for_bit(adapter, prepared_slice):
    adapter.slice_update(prepared_slice, CLICKS, mean_logit_loss)
    before, snapshot = state(adapter), adapter.snapshot()
    for _ in range(2):
        adapter.slice_update(prepared_slice, CLICKS, mean_logit_loss)
    assert not same_state(before, state(adapter))
    adapter.restore(snapshot)
    assert same_state(before, state(adapter))
    adapter.slice_update(prepared_slice, CLICKS, mean_logit_loss)  # restoring twice works too
    adapter.restore(snapshot)
    assert same_state(before, state(adapter))


def test_mid_interaction_labels_are_the_argmax_of_the_prediction(adapter, prepared_slice):
    logits = adapter.predictor.logits(prepared_slice, CLICKS)
    captured = {}

    def capture(prepared, previous, loss_clicks, labels, before=None):
        captured["labels"] = labels
        return True, logits

    adapter.step = capture
    adapter.mid_interaction(prepared_slice, [], CLICKS[0], logits)
    assert torch.equal(captured["labels"], logits[0].argmax(0))
    assert np.unique(captured["labels"].numpy()).tolist() in ([0], [1], [0, 1])


def test_a_loaded_optimizer_state_keeps_this_sessions_lr(adapter, prepared_slice):
    adapter.slice_update(prepared_slice, CLICKS, mean_logit_loss)
    saved = adapter.optimizer.state_dict()
    other = OnlineAdapter(Predictor(build_network(TINY)), AdaptationConfig(lr=2e-5))
    other.load_optimizer_state(saved)
    assert [g["lr"] for g in other.optimizer.param_groups] == [2e-5]
    assert all(g["foreach"] for g in other.optimizer.param_groups)
    moments = other.optimizer.state_dict()["state"]
    assert all(torch.equal(moments[i]["exp_avg"], saved["state"][i]["exp_avg"]) for i in saved["state"])
