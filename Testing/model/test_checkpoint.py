"""Weight files: round trips, damaged or foreign files (never unpickled), the shipped base model."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest
import torch
from conftest_engine import TINY_CONFIG

from InteractiveAdaptLib.engine.network import NetworkConfig, build_network
from InteractiveAdaptLib.errors import WeightsError
from InteractiveAdaptLib.model.base_model import (
    CARD_FILE,
    WEIGHTS_FILE,
    load_base_model,
    load_weights_into,
    save_base_model,
)
from InteractiveAdaptLib.model.checkpoint import load_state, save_state, sha256_file

DAMAGED = "damaged or is not an InteractiveAdapt weight file"


class Trap:
    """Unpickling this creates a file: proof that a loader ran pickle code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.randn(1, 3, 23, 29, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def network(seed: int, config: NetworkConfig = TINY_CONFIG) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_network(config).eval()


# ---------------------------------------------------------------------------------------- state files
def test_state_round_trip_gives_identical_outputs(tmp_path):
    original, other = network(0), network(1)
    assert not same_outputs(original, other)
    save_state(tmp_path / "w.pt", original.state_dict())
    other.load_state_dict(load_state(tmp_path / "w.pt"))
    assert same_outputs(original, other)
    assert [p.name for p in tmp_path.iterdir()] == ["w.pt"]  # no temporary file left behind


def test_nested_training_state_round_trips(tmp_path):
    net = network(0)
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.randn(1, 3, 8, 8)).sum().backward()
    optimizer.step()
    save_state(tmp_path / "c.pt", {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "step": 7})
    state = load_state(tmp_path / "c.pt")
    assert state["step"] == 7
    restored = torch.optim.Adam(network(1).parameters())
    restored.load_state_dict(state["optimizer"])
    first = next(iter(optimizer.state.values()))["exp_avg"]
    assert torch.equal(next(iter(restored.state.values()))["exp_avg"], first)


def test_truncated_weight_file_is_a_clear_error(tmp_path):
    path = tmp_path / "w.pt"
    save_state(path, network(0).state_dict())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=DAMAGED):
        load_state(path)


def test_text_file_is_a_clear_error(tmp_path):
    path = tmp_path / "w.pt"
    path.write_text("these are not weights\n")
    with pytest.raises(WeightsError, match=DAMAGED):
        load_state(path)


def test_plain_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "w.pt"
    path.write_bytes(pickle.dumps(Trap(marker), protocol=2))
    with pytest.raises(WeightsError, match=DAMAGED):
        load_state(path)
    assert not marker.exists()


def test_torch_file_with_a_foreign_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "w.pt"
    torch.save({"weight": torch.zeros(2), "extra": Trap(marker)}, path)
    with pytest.raises(WeightsError, match=DAMAGED):
        load_state(path)
    assert not marker.exists()


def test_file_without_a_state_dict_is_a_clear_error(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "w.pt")
    with pytest.raises(WeightsError, match="does not hold a state dict"):
        load_state(tmp_path / "w.pt")


def test_missing_weight_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="missing"):
        load_state(tmp_path / "nothing.pt")


def test_sha256_of_a_file(tmp_path):
    (tmp_path / "f").write_bytes(b"interactive adapt")
    assert sha256_file(tmp_path / "f") == hashlib.sha256(b"interactive adapt").hexdigest()


# ---------------------------------------------------------------------------------------- base model
def test_weights_of_a_different_network_are_refused():
    net = network(0)
    other = build_network(NetworkConfig("wider", (8, 16, 64), 1)).state_dict()
    with pytest.raises(WeightsError, match="different network"):
        load_weights_into(net, other, "test.pt")
    missing = dict(net.state_dict())
    missing.pop(next(iter(missing)))
    with pytest.raises(WeightsError, match="different network"):
        load_weights_into(net, missing, "test.pt")


def test_base_model_round_trip(tmp_path):
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


def test_base_model_refuses_weights_that_do_not_match_the_card(tmp_path):
    save_base_model(network(0), tmp_path / "m", {"name": "tiny"})
    save_state(tmp_path / "m" / WEIGHTS_FILE, network(1).state_dict())  # same network, other weights
    with pytest.raises(WeightsError, match="do not match their model card"):
        load_base_model(tmp_path / "m")


def test_base_model_without_or_with_a_damaged_card_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="No model card"):
        load_base_model(tmp_path)
    save_base_model(network(0), tmp_path / "m", {"name": "tiny"})
    (tmp_path / "m" / CARD_FILE).write_text("{not json")
    with pytest.raises(WeightsError, match="damaged"):
        load_base_model(tmp_path / "m")
    (tmp_path / "m" / CARD_FILE).write_text(json.dumps({"name": "tiny"}))  # no config
    with pytest.raises(WeightsError, match="damaged"):
        load_base_model(tmp_path / "m")
