"""Training on real Colin27 slices: the loss goes down, checkpoints resume bit for bit, splits hold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest_engine import TINY_CONFIG

from InteractiveAdaptLib import network
from InteractiveAdaptLib.cases import aal_targets_of_split
from InteractiveAdaptLib.training import TrainConfig, Trainer


@pytest.fixture
def tiny_configs(monkeypatch):
    """Make the tiny U-Net available by name, as TrainConfig.network is a CONFIGS name."""
    monkeypatch.setitem(network.CONFIGS, "tiny", TINY_CONFIG)


def config(**changes) -> TrainConfig:
    # One torch thread: tiny networks gain nothing from two, and lose much when a core is busy.
    small = dict(network="tiny", batch_size=2, crop=48, val_cases=2, val_clicks=1, val_every=1000, threads=1)
    return TrainConfig(**{**small, **changes})


def weights_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
def test_short_training_on_real_slices_lowers_the_loss(tiny_configs, engine_cache_dir, tmp_path):
    trainer = Trainer(config(steps=24, batch_size=4, crop=64, lr=2e-3), tmp_path, engine_cache_dir)
    losses = [trainer.train_step() for _ in range(24)]
    assert all(np.isfinite(losses)) and trainer.step == 24
    assert np.mean(losses[-6:]) < 0.4 * np.mean(losses[:6])


@pytest.mark.slow
def test_resumed_training_equals_an_uninterrupted_run(tiny_configs, engine_cache_dir, tmp_path):
    straight = Trainer(config(steps=4), tmp_path / "straight", engine_cache_dir)
    straight.run()

    first_half = Trainer(config(steps=2), tmp_path / "resumed", engine_cache_dir)
    first_half.run()
    second_half = Trainer(config(steps=4), tmp_path / "resumed", engine_cache_dir)
    assert not weights_equal(second_half.network, first_half.network)  # a fresh start...
    assert second_half.resume() and second_half.step == 2  # ...until the checkpoint is loaded
    assert weights_equal(second_half.network, first_half.network)
    x = torch.randn(1, 3, 45, 51)
    with torch.no_grad():
        torch.testing.assert_close(second_half.network(x), first_half.network(x), rtol=0, atol=0)
    second_half.run()

    assert second_half.step == straight.step == 4
    assert weights_equal(second_half.network, straight.network)
    log = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert log == [2, 4]
    assert (tmp_path / "resumed" / "best.pt").is_file() and (tmp_path / "resumed" / "config.json").is_file()


def test_training_uses_only_colin27_training_pairs_and_the_brain(tiny_configs, engine_cache_dir, tmp_path):
    trainer = Trainer(config(steps=1), tmp_path, engine_cache_dir)
    assert trainer.domain.name == "colin27"
    allowed = set(aal_targets_of_split(trainer.domain, "train")) | {"brain"}
    trained = {case.target for case in trainer.train_cases}
    assert trained == allowed  # every training pair has usable slices, and nothing else is used
    assert not any(trainer.domain.targets[t][0] == "tissue" for t in trained)
    held_out = set(aal_targets_of_split(trainer.domain, "val")) | set(
        aal_targets_of_split(trainer.domain, "test")
    )
    assert not trained & held_out
    assert {case.target for case in trainer.val_cases} <= set(aal_targets_of_split(trainer.domain, "val"))
    assert all(
        c.mask(trainer.domain).sum() >= trainer.config.min_train_pixels for c in trainer.train_cases[::500]
    )
