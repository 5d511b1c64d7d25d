"""The shipped base model (model/base_model.py): weights of a different network are refused, a saved
base model loads back with the same outputs, card and checksum, and weights that do not match their
model card or a missing or damaged card are clear errors. Shared helpers are fixtures of conftest.py."""

from __future__ import annotations

import json

import pytest
import torch
from conftest_engine import TINY_CONFIG

from InteractiveAdaptLib.errors import WeightsError
from InteractiveAdaptLib.model.base_model import (
    CARD_FILE,
    WEIGHTS_FILE,
    load_base_model,
    load_weights_into,
    save_base_model,
)
from InteractiveAdaptLib.model.checkpoint import save_state, sha256_file
from InteractiveAdaptLib.model.network import NetworkConfig, build_network


def test_weights_of_a_different_network_are_refused(network):
    net = network(0)
    other = build_network(NetworkConfig("wider", (8, 16, 64), 1)).state_dict()
    with pytest.raises(WeightsError, match="different network"):
        load_weights_into(net, other, "test.pt")
    missing = dict(net.state_dict())
    missing.pop(next(iter(missing)))
    with pytest.raises(WeightsError, match="different network"):
        load_weights_into(net, missing, "test.pt")


def test_base_model_round_trip(tmp_path, network, same_outputs):
    net = network(0)
    saved = save_base_model(net, tmp_path / "tiny", {"name": "tiny", "seed": 0})
    loaded = load_base_model(tmp_path / "tiny")
    assert same_outputs(net, loaded.network)
    assert loaded.card["name"] == "tiny" and loaded.card["seed"] == 0
    assert NetworkConfig.from_dict(loaded.card["config"]) == TINY_CONFIG
    assert (
        loaded.sha256
        == saved.sha256
        == sha256_file(tmp_path / "tiny" / WEIGHTS_FILE)
        == loaded.card["sha256"]
    )
    fresh = loaded.fresh_state()
    assert all(torch.equal(fresh[k], v) for k, v in net.state_dict().items())


def test_base_model_refuses_weights_that_do_not_match_the_card(tmp_path, network):
    save_base_model(network(0), tmp_path / "m", {"name": "tiny"})
    save_state(tmp_path / "m" / WEIGHTS_FILE, network(1).state_dict())  # same network, other weights
    with pytest.raises(WeightsError, match="do not match their model card"):
        load_base_model(tmp_path / "m")


def test_base_model_without_or_with_a_damaged_card_is_a_clear_error(tmp_path, network):
    with pytest.raises(WeightsError, match="No model card"):
        load_base_model(tmp_path)
    save_base_model(network(0), tmp_path / "m", {"name": "tiny"})
    (tmp_path / "m" / CARD_FILE).write_text("{not json")
    with pytest.raises(WeightsError, match="damaged"):
        load_base_model(tmp_path / "m")
    (tmp_path / "m" / CARD_FILE).write_text(json.dumps({"name": "tiny"}))  # no config
    with pytest.raises(WeightsError, match="damaged"):
        load_base_model(tmp_path / "m")
