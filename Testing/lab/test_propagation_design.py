"""The 2.5D design of the 2D-versus-3D comparison (training/propagation_inference.py, propagation_training.py)
on a real Colin27 block around the left caudate: what the network sees on a clicked slice, where slice by
slice propagation stops, slices between two clicked slices, training samples, and a resumed training run
that ends on the weights of an uninterrupted one. The input checks and training use a small real network;
the propagation checks use a stand-in network with a known answer, so that the walk itself is tested."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from interactive_adapt_lab.training.propagation_inference import (
    PropagationPredictor,
    sample_window,
    window_around,
)
from interactive_adapt_lab.training.propagation_training import (
    CHECKPOINT,
    LOG,
    PropagationTrainConfig,
    SliceSource,
    train_propagation,
    training_sample,
)
from InteractiveAdaptLib.model.checkpoint import load_state
from InteractiveAdaptLib.model.network import NetworkConfig, build_network

TINY = NetworkConfig("tiny-propagation", (8, 16, 32), 0, in_channels=6)


@pytest.fixture(scope="module")
def block(caudate_block):
    """The Colin27 block around the left caudate (conftest_engine.py)."""
    return caudate_block


@pytest.fixture
def tiny_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(TINY).eval()


class Recorder(torch.nn.Module):
    """Passes its input to a network and keeps a copy of each input."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network, self.inputs = network, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return self.network(x)


class KnownAnswer(torch.nn.Module):
    """A stand-in network: on a clicked slice a square of 17 window pixels around each positive click; on
    other slices its prior, shrunk by `shrink` pixels on every side."""

    def __init__(self, shrink: int = 0) -> None:
        super().__init__()
        self.shrink = shrink

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        found = F.max_pool2d(x[:, 3:4], 17, stride=1, padding=8) > 0.5
        prior = x[:, 5:6]
        if self.shrink:
            size = 2 * self.shrink + 1
            prior = -F.max_pool2d(-prior, size, stride=1, padding=self.shrink)
        found = (found | (prior > 0.5)).float()
        return torch.cat([1 - found, found], dim=1)


def centre_of(truth: np.ndarray) -> tuple[int, int, int]:
    k, j, i = np.argwhere(truth).mean(axis=0).astype(int)
    return int(k), int(j), int(i)


def test_a_clicked_slice_sees_its_own_clicks_its_neighbours_and_the_current_result(block, tiny_network):
    image, spacing, truth = block
    k, j, i = centre_of(truth)
    recorder = Recorder(tiny_network)
    predictor = PropagationPredictor(recorder)
    points = np.array([[k, j, i], [k, j + 12, i + 12], [k + 4, j, i]], float)
    signs = np.array([True, False, False])
    predictor.propagate(image, spacing, points, signs, truth)
    first = recorder.inputs[0][0]  # the clicked slices come first, the lower one first
    window = window_around(points[:2, 1:], truth[k], spacing[1:])
    for (row, col), channel in zip(window.to_window(points[:2, 1:]), (3, 4), strict=True):
        r, c = np.rint([row, col]).astype(int)
        assert first[channel, r, c] == 1 and first[7 - channel, r, c] == 0
    # One disk each: the negative click on slice k + 4 is not drawn here.
    assert ndimage.label(first[3].numpy())[1] == ndimage.label(first[4].numpy())[1] == 1
    expected_prior = sample_window(torch.from_numpy(truth[k])[None], window, edge=False)[0]
    torch.testing.assert_close(first[5], expected_prior)
    # The context channels are the neighbouring slices in the same window.
    for channel, neighbour in ((1, k - 1), (2, k + 1)):
        alone = sample_window(torch.from_numpy(image[neighbour])[None], window, edge=True)[0]
        correlation = np.corrcoef(first[channel].flatten().numpy(), alone.flatten().numpy())[0, 1]
        assert correlation > 0.999
    second = recorder.inputs[1][0]  # slice k + 4: its negative click only
    assert second[3].sum() == 0 and second[4].sum() > 0


def test_a_propagated_slice_has_no_clicks_and_its_neighbours_new_mask_as_prior(block):
    image, spacing, truth = block
    k, j, i = centre_of(truth)
    recorder = Recorder(KnownAnswer(shrink=1))
    mask, _ = PropagationPredictor(recorder).propagate(image, spacing, [[k, j, i]], [True])
    below = recorder.inputs[1][0]  # the first slice carried downwards, from slice k
    assert below[3:5].sum() == 0
    window = window_around(np.empty((0, 2)), mask[k], spacing[1:])
    expected_prior = sample_window(torch.from_numpy(mask[k])[None], window, edge=False)[0]
    torch.testing.assert_close(below[5], expected_prior)


def test_propagation_stops_at_the_first_empty_slice(block):
    image, spacing, truth = block
    k, j, i = centre_of(truth)
    recorder = Recorder(KnownAnswer(shrink=1))
    mask, source = PropagationPredictor(recorder).propagate(image, spacing, [[k, j, i]], [True])
    filled = np.flatnonzero(mask.any(axis=(1, 2)))
    assert filled[0] < k - 2 and filled[-1] > k + 2  # it did carry the square a few slices...
    assert filled[0] > 0 and filled[-1] < len(mask) - 1  # ...and stopped before the block ends
    np.testing.assert_array_equal(filled, np.arange(filled[0], filled[-1] + 1))
    # One look per filled slice and one at the empty slice on either side, none beyond.
    assert len(recorder.inputs) == len(filled) + 2
    np.testing.assert_array_equal(np.flatnonzero(source >= 0), filled)


def test_slices_between_two_clicked_slices_come_from_the_nearer_one(block):
    image, spacing, truth = block
    k, j, i = centre_of(truth)
    points = [[k, j, i - 10], [k + 6, j, i + 10]]
    mask, source = PropagationPredictor(KnownAnswer()).propagate(image, spacing, points, [True, True])
    # The middle slice is as near to both: the lower source, carried first, keeps it.
    np.testing.assert_array_equal(source[k : k + 7], [k, k, k, k, k + 6, k + 6, k + 6])
    assert source[k - 5] == k and source[k + 11] == k + 6
    assert mask[k + 2, j, i - 10] and not mask[k + 2, j, i + 10]
    assert mask[k + 4, j, i + 10] and not mask[k + 4, j, i - 10]


def test_training_samples_click_the_truth_and_propagated_ones_have_no_clicks(engine_domain, tiny_network):
    source = SliceSource(engine_domain("colin27"))
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(40):
        inputs, label, clicks = training_sample(source, tiny_network, PropagationTrainConfig(), rng)
        assert inputs.shape == (1, 6, 96, 96) and label.shape == (96, 96)
        for row, col, positive in clicks:
            assert bool(label[row, col]) == positive
            assert inputs[0, 3 if positive else 4, row, col] == 1
        if not clicks:
            assert inputs[0, 3:5].sum() == 0 and inputs[0, 5].sum() > 0
        kinds.add((bool(clicks), bool(label.any())))
    assert (True, True) in kinds and (False, True) in kinds
    assert (False, False) in kinds  # past the structure's end: the answer is empty


def test_a_resumed_training_run_ends_on_the_weights_of_an_uninterrupted_one(engine_domain, tmp_path):
    colin = engine_domain("colin27")

    def run(folder, steps):
        config = PropagationTrainConfig(max_steps=steps, batch_size=2, seed=3)
        return train_propagation(config, folder, colin, validation=[], network_config=TINY)

    run(tmp_path / "straight", 4)
    run(tmp_path / "resumed", 2)
    assert load_state(tmp_path / "resumed" / CHECKPOINT)["progress"]["step"] == 2
    run(tmp_path / "resumed", 4)
    straight = load_state(tmp_path / "straight" / CHECKPOINT)
    resumed = load_state(tmp_path / "resumed" / CHECKPOINT)
    assert resumed["progress"]["step"] == straight["progress"]["step"] == 4
    assert straight["model"].keys() == resumed["model"].keys()
    for name, weights in straight["model"].items():
        assert torch.equal(weights, resumed["model"][name]), name
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / LOG).read_text().splitlines()]
    assert steps == [2, 4]
