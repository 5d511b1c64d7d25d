"""`interactive-adapt compare-designs` (evaluation/design_comparison.py) with two small real networks: both
designs and both baselines run on a validation pair through the volumetric benchmark's user, with each
design's training budget beside its figures."""

from __future__ import annotations

import json

import pytest
import torch

from interactive_adapt_lab.evaluation.design_comparison import budgets, compare, report_markdown
from interactive_adapt_lab.training.propagation_inference import PROPAGATION_NETWORK
from interactive_adapt_lab.training.volume_training import VolumeTrainConfig
from InteractiveAdaptLib.errors import WeightsError
from InteractiveAdaptLib.model import network
from InteractiveAdaptLib.model.checkpoint import save_state
from InteractiveAdaptLib.model.location import find_base_model_dir
from InteractiveAdaptLib.model.network import VOLUME_IN_CHANNELS, ClickUNet, NetworkConfig, build_network

pytestmark = pytest.mark.slow

TINY_3D = NetworkConfig("tiny-3d", (8, 16, 32), 0, spatial_dims=3, in_channels=VOLUME_IN_CHANNELS)


def fake_run(folder, model: torch.nn.Module, config: dict, step: int, progress: bool = False) -> None:
    """A run folder as the training commands leave it: config, checkpoint (train-propagation keeps its
    step in `progress`) and log."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    counted = {"progress": {"step": step}} if progress else {"step": step}
    save_state(folder / "checkpoint.pt", {"model": model.state_dict(), **counted})
    (folder / "log.jsonl").write_text(json.dumps({"step": step, "seconds": 60.0 * step}) + "\n")


def test_both_designs_and_both_baselines_are_measured_with_their_budgets(monkeypatch, tmp_path):
    try:
        slice_model = find_base_model_dir("colin27-unet-default")
    except WeightsError as error:
        pytest.skip(f"No 2D model is shipped in this checkout. {error}")
    monkeypatch.setitem(network.CONFIGS, "tiny-3d", TINY_3D)
    torch.manual_seed(0)
    volume = build_network(TINY_3D)
    last_bias = [p for name, p in volume.named_parameters() if name.endswith("bias")][-1]
    with torch.no_grad():
        last_bias.copy_(torch.tensor([4.0, -4.0]))  # small answers: small crops (fast)
    config = {**vars(VolumeTrainConfig()), "network": "tiny-3d"}
    fake_run(tmp_path / "volume", volume, config, 3)
    fake_run(
        tmp_path / "propagation", ClickUNet(PROPAGATION_NETWORK), {"batch_size": 8, "threads": 1}, 5, True
    )
    result = compare(
        tmp_path / "volume", tmp_path / "propagation", slice_model, 1, tmp_path / "partial", 1, 2
    )
    assert {"volume", "propagation", "slice-network", result["fill_between_step"]} == set(result["methods"])
    for per_structure in result["methods"].values():
        (figures,) = per_structure.values()
        assert figures["head"] == "colin27" and 0 <= figures["dice@1"] <= 1
    spent = budgets(tmp_path / "volume", tmp_path / "propagation")
    assert spent["volume"] == {"steps": 3, "samples": 12, "minutes": 3.0, "threads": 1}
    assert spent["propagation"]["samples"] == 40
    result.update(command="compare-designs ...", protocol="...", budgets=spent)
    assert "| colin27 | propagation |" in report_markdown(result)
