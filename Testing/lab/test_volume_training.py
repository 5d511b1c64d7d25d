"""`interactive-adapt train-volume` (interactive_adapt_lab/training/volume_training.py): what it trains on,
its augmentation keeps image and label together, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interactive_adapt_lab.data.cases import aal_pair_split
from interactive_adapt_lab.data.datasets import aal_pair
from interactive_adapt_lab.training.volume_augment import spatial
from interactive_adapt_lab.training.volume_export import export_volume_model
from interactive_adapt_lab.training.volume_training import (
    CHECKPOINT,
    LOG,
    TrainingHead,
    VolumeTrainConfig,
    learning_rate,
    train_volume,
    training_sample,
)
from InteractiveAdaptLib.model import network
from InteractiveAdaptLib.model.base_model import load_base_model
from InteractiveAdaptLib.model.checkpoint import load_state
from InteractiveAdaptLib.model.network import VOLUME_IN_CHANNELS, NetworkConfig

TINY_3D = NetworkConfig("tiny-3d", (8, 16, 32), 0, spatial_dims=3, in_channels=VOLUME_IN_CHANNELS)


@pytest.fixture
def tiny_3d(monkeypatch):
    monkeypatch.setitem(network.CONFIGS, "tiny-3d", TINY_3D)


def config(**changes) -> VolumeTrainConfig:
    settings = dict(network="tiny-3d", steps=2, batch_size=1, val_every=1000, val_clicks=1, val_limit=1)
    settings.update(changes)
    return VolumeTrainConfig(**settings, checkpoint_every=1)


def test_training_takes_only_colin27_training_pairs_and_the_brain(engine_domain):
    head = TrainingHead(engine_domain("colin27"))
    train = aal_pair_split()["train"]
    assert "brain" in head.targets
    for target in head.targets:
        if target != "brain":
            assert aal_pair(head.domain.targets[target][1]) in train
    assert len(head.targets) == 2 * len(train) + 1


def test_a_training_crop_holds_its_structure(engine_domain):
    head = TrainingHead(engine_domain("colin27"))
    for seed in range(3):
        image, label = training_sample(head, VolumeTrainConfig(), np.random.default_rng(seed))
        assert image.shape == label.shape == (64, 64, 64)
        assert torch.isfinite(image).all() and label.any()


def test_the_spatial_augmentation_moves_image_and_label_together():
    image = torch.rand(64, 64, 64)
    image = torch.nn.functional.avg_pool3d(image[None, None], 9, stride=1, padding=4)[0, 0]  # smooth blobs
    label = (image > image.median()).float()
    moved = spatial(torch.stack([image, label]), np.random.default_rng(0))
    agree = ((moved[1] > 0.5) == (moved[0] > image.median())).float().mean()
    assert agree > 0.95
    assert not torch.equal(moved[0], image)


def test_the_learning_rate_is_constant_then_decays_to_a_tenth():
    settings = VolumeTrainConfig(steps=100, lr=1e-3)
    assert learning_rate(settings, 10) == learning_rate(settings, 59) == 1e-3
    assert learning_rate(settings, 80) < 1e-3
    assert learning_rate(settings, 100) == pytest.approx(1e-4)


@pytest.mark.slow
def test_a_resumed_run_equals_an_uninterrupted_one(tiny_3d, engine_cache_dir, tmp_path):
    train_volume(config(), tmp_path / "straight", cache_dir=engine_cache_dir)
    train_volume(config(), tmp_path / "resumed", cache_dir=engine_cache_dir, stop_at=1)
    train_volume(config(), tmp_path / "resumed", cache_dir=engine_cache_dir)
    straight = load_state(tmp_path / "straight" / CHECKPOINT)
    resumed = load_state(tmp_path / "resumed" / CHECKPOINT)
    assert straight["step"] == resumed["step"] == 2
    for name, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][name]), name
    last = json.loads((tmp_path / "straight" / LOG).read_text().splitlines()[-1])
    assert last["step"] == 2 and set(last["val"]) == {"colin27", "mni152"}


@pytest.mark.slow
def test_an_exported_run_loads_as_a_3d_base_model_and_training_goes_on_from_it(
    tiny_3d, engine_cache_dir, tmp_path
):
    train_volume(config(), tmp_path / "run", cache_dir=engine_cache_dir)
    folder = export_volume_model(tmp_path / "run", tmp_path / "models", "tiny-volume")
    base = load_base_model(folder)
    assert base.network.config.spatial_dims == 3
    assert base.card["training"]["steps_trained"] == 2 and base.card["seed"] == 0
    assert "train-volume --output" in base.card["training_command"]
    card = (folder / "README.md").read_text()
    assert base.sha256 in card and "Validation" in card
    assert (folder / "training_log.jsonl").is_file()
    train_volume(config(steps=3), tmp_path / "more", init=folder, cache_dir=engine_cache_dir)
    assert load_state(tmp_path / "more" / CHECKPOINT)["step"] == 3  # one step on from the exported two
