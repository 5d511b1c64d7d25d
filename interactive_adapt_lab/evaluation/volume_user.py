"""A simulated user of the 3D network, straight on the predictor (no session, no learning): the first
click at the structure's deepest voxel, each next one in the largest 3D error (positive on a miss,
negative on a spill), the current result fed back. Used to validate training runs and to compare designs
on the validation pairs."""

from __future__ import annotations

import numpy as np

from interactive_adapt_lab.data.cases import aal_targets_of_split
from interactive_adapt_lab.data.datasets import Domain
from InteractiveAdaptLib.engine.click_simulation import ClickMode, first_click, next_click
from InteractiveAdaptLib.engine.volume_predictor import VolumePredictor


def dice3d(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two 3D masks (1.0 when both are empty)."""
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def play_volume_case(
    predictor: VolumePredictor,
    image,
    spacing: tuple[float, float, float],
    target: np.ndarray,
    clicks: int,
    mode: ClickMode = "center",
    rng: np.random.Generator | None = None,
) -> list[float]:
    """3D Dice after each of `clicks` clicks (the last value repeats once the result is perfect)."""
    rng = rng or np.random.default_rng(0)
    click = first_click(target, mode, rng)
    points, signs, shown, curve = [], [], None, []
    while click is not None and len(curve) < clicks:
        points.append(click[:3])
        signs.append(click[3])
        shown = predictor.predict(image, spacing, np.array(points), np.array(signs), shown).mask
        curve.append(dice3d(shown, target))
        click = next_click(shown, target, mode, rng)
    return curve + [curve[-1] if curve else 0.0] * (clicks - len(curve))


def validation_targets(domain: Domain) -> list[str]:
    """The validation-split AAL pairs of a head, both sides (the only structures that choose)."""
    return sorted(aal_targets_of_split(domain, "val"))


def validate(
    predictor: VolumePredictor, domains: list[Domain], clicks: int = 5, limit: int = 0
) -> dict[str, list[float]]:
    """Mean 3D Dice after 1..`clicks` clicks over the validation pairs (the first `limit` of them; 0:
    all), per head."""
    out = {}
    for domain in domains:
        image = predictor.prepare(domain.image)
        targets = validation_targets(domain)[: limit or None]
        curves = [
            play_volume_case(predictor, image, domain.spacing_kji, domain.target_mask(t), clicks)
            for t in targets
        ]
        out[domain.name] = [round(float(v), 4) for v in np.mean(curves, axis=0)]
    return out
