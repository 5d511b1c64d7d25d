"""Evaluation with the simulated user and no adaptation: Dice after each click on held-out cases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interactive_adapt_lab.data.cases import Case
from interactive_adapt_lab.data.datasets import Domain
from InteractiveAdaptLib.engine.click_simulation import ClickMode, first_click, next_click
from InteractiveAdaptLib.engine.predictor import Predictor, dice
from InteractiveAdaptLib.geometry import in_plane_spacing


def click_dice_curve(
    predictor: Predictor,
    image: np.ndarray,
    spacing_rc: tuple[float, float],
    target: np.ndarray,
    n_clicks: int,
    mode: ClickMode,
    rng: np.random.Generator,
) -> np.ndarray:
    """Dice after clicks 1..n_clicks of the simulated user (a perfect mask stops clicking)."""
    prepared = predictor.prepare(image, spacing_rc)
    clicks = [c for c in [first_click(target, mode, rng)] if c is not None]  # none for an empty target
    scores = np.ones(n_clicks)
    for t in range(n_clicks):
        prediction = predictor.to_native(predictor.logits(prepared, clicks), prepared)
        scores[t] = dice(prediction, target)
        click = next_click(prediction, target, mode, rng)
        if click is None:
            break  # perfect: later clicks keep Dice 1
        clicks.append(click)
    return scores


@dataclass
class EvaluationResult:
    """Dice per case (rows) and click (columns)."""

    dice: np.ndarray

    def summary(self, clicks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
        out = {
            f"dice@{k}": round(float(self.dice[:, k - 1].mean()), 4)
            for k in clicks
            if k <= self.dice.shape[1]
        }
        out["cases"] = int(self.dice.shape[0])
        return out


def evaluate(
    predictor: Predictor,
    domain: Domain,
    cases: list[Case],
    n_clicks: int = 10,
    mode: ClickMode = "center",
    seed: int = 0,
) -> EvaluationResult:
    """No-adaptation Dice curves of `cases` of one domain."""
    rng = np.random.default_rng(seed)
    curves = [
        click_dice_curve(
            predictor,
            case.image(domain),
            in_plane_spacing(domain.spacing_kji, case.axis),
            case.mask(domain),
            n_clicks,
            mode,
            rng,
        )
        for case in cases
    ]
    return EvaluationResult(dice=np.array(curves).reshape(len(cases), n_clicks))
