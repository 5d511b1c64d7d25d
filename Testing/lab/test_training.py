"""Training on real Colin27 slices: the loss goes down, checkpoints resume bit for bit, splits hold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest_engine import TINY_CONFIG

from interactive_adapt_lab.data.cases import aal_targets_of_split
from interactive_adapt_lab.training.training import TrainConfig, Trainer
from InteractiveAdaptLib.model import network


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


def test_cosine_schedule_decays_to_zero_and_constant_stays(tiny_configs, engine_cache_dir, tmp_path):
    trainer = Trainer(config(steps=100, lr=1e-3, lr_schedule="cosine"), tmp_path, engine_cache_dir)
    lrs = []
    for step in (0, 50, 100):
        trainer.step = step
        lrs.append(trainer.learning_rate())
    assert lrs[0] == pytest.approx(1e-3) and lrs[1] == pytest.approx(5e-4) and lrs[2] == pytest.approx(0.0)
    constant = Trainer(config(steps=100, lr=1e-3), tmp_path / "c", engine_cache_dir)
    constant.step = 70
    assert constant.learning_rate() == 1e-3


def test_recipe_knobs_change_the_training_and_one_round_is_the_old_recipe(
    tiny_configs, engine_cache_dir, tmp_path
):
    """correction_rounds=1 and augment=full are the recipe of the shipped model; other values differ."""

    def after_steps(**changes):
        torch.manual_seed(0)
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        trainer = Trainer(config(steps=10, **changes), folder, engine_cache_dir)
        for _ in range(10):  # a second correction round happens in some step (each with chance 1/4)
            trainer.train_step()
        return trainer.network

    reference = after_steps()
    assert weights_equal(reference, after_steps(correction_rounds=1, augment="full"))
    assert not weights_equal(reference, after_steps(augment="none"))
    assert not weights_equal(reference, after_steps(correction_rounds=4))


@pytest.mark.slow
def test_training_report_compares_real_runs_at_a_step_budget(tiny_configs, engine_cache_dir, tmp_path):
    from interactive_adapt_lab.training.training_report import training_report
    from InteractiveAdaptLib.cli.main import main
    from InteractiveAdaptLib.errors import InteractiveAdaptError

    for name, changes in [("reference", {}), ("no-augment", {"augment": "none"})]:
        Trainer(config(steps=4, val_every=2, **changes), tmp_path / name, engine_cache_dir).run()
    runs = [tmp_path / "reference", tmp_path / "no-augment"]
    report = training_report(runs, budget=4, speed_file=None)
    reference, ablation = report["runs"]
    assert reference["changes"] == "reference" and ablation["changes"] == {"augment": "none"}
    # A reference run written before the field existed used its default: the change is still seen.
    older = json.loads((runs[0] / "config.json").read_text())
    del older["augment"]
    (runs[0] / "config.json").write_text(json.dumps(older))
    assert training_report(runs, budget=4, speed_file=None)["runs"][1]["changes"] == {"augment": "none"}
    logged = [json.loads(line) for line in (runs[1] / "log.jsonl").read_text().splitlines()]
    assert ablation["val_dice@1_at_budget"] == logged[-1]["val_dice@1"]
    assert ablation["val_dice@1_mean_last3"] == pytest.approx(
        np.mean([r["val_dice@1"] for r in logged]), abs=1e-4
    )
    with pytest.raises(InteractiveAdaptError, match="below the budget"):
        training_report(runs, budget=6, speed_file=None)
    output = tmp_path / "report" / "ablations"
    assert main(["training-report", "--runs", *map(str, runs), "--steps", "4", "--output", str(output)]) == 0
    assert "augment=none" in output.with_suffix(".md").read_text()
    assert output.with_suffix(".png").stat().st_size > 1000
    assert main(["training-report", "--runs", str(tmp_path / "missing"), "--steps", "4"]) == 1
