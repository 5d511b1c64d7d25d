"""Weight files (model/checkpoint.py): round trips of weights and nested training state, damaged or
foreign files (never unpickled), missing files and file checksums. Shared helpers are fixtures of
conftest.py."""

from __future__ import annotations

import hashlib
import pickle

import pytest
import torch

from InteractiveAdaptLib.errors import TorchTooOldError, WeightsError
from InteractiveAdaptLib.model.checkpoint import load_state, require_safe_torch, save_state, sha256_file

DAMAGED = "damaged or is not an InteractiveAdapt weight file"


class Trap:
    """Unpickling this creates a file: proof that a loader ran pickle code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_state_round_trip_gives_identical_outputs(tmp_path, network, same_outputs):
    original, other = network(0), network(1)
    assert not same_outputs(original, other)
    save_state(tmp_path / "w.pt", original.state_dict())
    other.load_state_dict(load_state(tmp_path / "w.pt"))
    assert same_outputs(original, other)
    assert [p.name for p in tmp_path.iterdir()] == ["w.pt"]  # no temporary file left behind


def test_nested_training_state_round_trips(tmp_path, network):
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


def test_truncated_weight_file_is_a_clear_error(tmp_path, network):
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


def test_no_weight_file_is_read_with_a_torch_whose_weights_only_loading_is_bypassable(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    path = tmp_path / "w.pt"
    torch.save({"weight": torch.zeros(2), "extra": Trap(marker)}, path)
    save_state(tmp_path / "good.pt", {"weight": torch.zeros(2)})
    monkeypatch.setattr(torch, "__version__", "2.5.1+cu124")  # GHSA-53q9-r3pm-6pq6: fixed in 2.6
    for name in ("w.pt", "good.pt"):
        with pytest.raises(
            TorchTooOldError, match=r"PyTorch 2\.5\.1\+cu124 is in use.*2\.10 or newer"
        ) as caught:
            load_state(tmp_path / name)
        assert "Update PyTorch" in str(caught.value) and "No weight file was read" in str(caught.value)
    assert not marker.exists()
    monkeypatch.undo()
    assert torch.equal(load_state(tmp_path / "good.pt")["weight"], torch.zeros(2))


@pytest.mark.parametrize(
    ("version", "safe"),
    [("2.13.0+cpu", True), ("2.10.0", True), ("3.0.0", True), ("2.9.1", False), ("2.5.1+cu124", False),
     ("1.13.1", False), ("unknown", False)],
)  # fmt: skip
def test_the_torch_floor_is_2_10(version, safe):
    if safe:
        require_safe_torch(version)
    else:
        with pytest.raises(TorchTooOldError, match=version.replace("+", r"\+")):
            require_safe_torch(version)
