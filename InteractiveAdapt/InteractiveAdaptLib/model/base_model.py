"""The shipped base model: models/<name>/weights.pt (state dict) + model.json (config, provenance)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from InteractiveAdaptLib.errors import WeightsError
from InteractiveAdaptLib.model.checkpoint import load_state, sha256_file
from InteractiveAdaptLib.model.location import CARD_FILE, WEIGHTS_FILE
from InteractiveAdaptLib.model.network import ClickUNet, NetworkConfig, build_network


@dataclass
class BaseModel:
    """A loaded base model: the network, its card and the weights' sha256 (its identity)."""

    network: ClickUNet
    card: dict[str, Any]
    sha256: str
    directory: Path

    def fresh_state(self) -> dict[str, torch.Tensor]:
        """A copy of the base weights (what a new learning profile starts from)."""
        return load_state(self.directory / WEIGHTS_FILE)


def load_weights_into(network: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict, with a clear error when it was made for another network."""
    own = network.state_dict()
    if set(own) != set(state) or any(tuple(own[k].shape) != tuple(state[k].shape) for k in own):
        raise WeightsError(
            f"The weights in {source} were made for a different network and cannot be used with this "
            "model. Roll back to another version or restart the profile from the shipped base model."
        )
    network.load_state_dict(state)


def load_base_model(directory: str | Path) -> BaseModel:
    """Load models/<name>/ (card + weights), checking the weights against the card's sha256."""
    directory = Path(directory)
    card_path = directory / CARD_FILE
    if not card_path.is_file():
        raise WeightsError(
            f"No model card ({CARD_FILE}) in '{directory}'. Reinstall the extension or point to a models/<name> folder."
        )
    try:
        card = json.loads(card_path.read_text())
        config = NetworkConfig.from_dict(card["config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(
            f"The model card '{card_path}' is damaged ({exc}). Reinstall the extension."
        ) from exc
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise WeightsError(f"The shipped weights '{weights}' are missing. Reinstall the extension.")
    sha = sha256_file(weights)
    if card.get("sha256") and sha != card["sha256"]:
        raise WeightsError(
            f"The shipped weights '{weights}' do not match their model card (damaged or replaced file). "
            "Reinstall the extension."
        )
    network = build_network(config)
    load_weights_into(network, load_state(weights), str(weights))
    network.eval()
    return BaseModel(network=network, card=card, sha256=sha, directory=directory)


def save_base_model(network: ClickUNet, directory: str | Path, card: dict[str, Any]) -> BaseModel:
    """Write models/<name>/: the state dict and a card with the config and the weights' sha256."""
    from InteractiveAdaptLib.model.checkpoint import save_state

    directory = Path(directory)
    save_state(directory / WEIGHTS_FILE, {k: v.detach().cpu() for k, v in network.state_dict().items()})
    card = {**card, "config": network.config.to_dict(), "sha256": sha256_file(directory / WEIGHTS_FILE)}
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return load_base_model(directory)
