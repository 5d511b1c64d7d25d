"""Optional forgetting guard: a few held-out source slices with fixed clicks, scored before and after a
post-interaction update; a drop beyond the threshold reverts that update (the paper has no such guard:
it is an open gap a product has to handle; docs/method.md lists it among the product's departures)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from InteractiveAdaptLib.engine.click_simulation import first_click, next_click
from InteractiveAdaptLib.engine.predictor import Predictor, dice
from InteractiveAdaptLib.errors import WeightsError

log = logging.getLogger(__name__)

GUARD_FILE = "guard_slices.npz"


@dataclass
class GuardSlice:
    image: np.ndarray  # float32, normalised, 1 mm in-plane
    mask: np.ndarray  # bool
    clicks: list[tuple[int, int, bool]]  # fixed: the simulated user's first clicks on the base model


class ForgettingGuard:
    """Scores a network on fixed source slices; `allows(before, after)` says whether an update may stay."""

    def __init__(self, slices: list[GuardSlice], threshold: float = 0.02):
        if not slices:
            raise ValueError("a forgetting guard needs at least one slice")
        self.slices, self.threshold = slices, threshold

    def score(self, predictor: Predictor) -> float:
        """Mean Dice over the guard slices with their fixed clicks."""
        return float(
            np.mean([dice(predictor.predict(s.image, (1.0, 1.0), s.clicks), s.mask) for s in self.slices])
        )

    def allows(self, before: float, after: float) -> bool:
        return before - after <= self.threshold

    @classmethod
    def build(
        cls,
        predictor: Predictor,
        images: list[np.ndarray],
        masks: list[np.ndarray],
        n_clicks: int = 3,
        threshold: float = 0.02,
    ) -> ForgettingGuard:
        """Fix the clicks by running the simulated user (centre mode) with the given (base) network."""
        rng = np.random.default_rng(0)
        slices = []
        for image, mask in zip(images, masks, strict=True):
            clicks = [first_click(mask, "center", rng)]
            for _ in range(n_clicks - 1):
                click = next_click(predictor.predict(image, (1.0, 1.0), clicks), mask, "center", rng)
                if click is None:
                    break
                clicks.append(click)
            slices.append(GuardSlice(image.astype(np.float32), mask.astype(bool), clicks))
        return cls(slices, threshold)

    def save(self, path: str | Path) -> None:
        arrays = {}
        for n, s in enumerate(self.slices):
            arrays[f"image_{n}"] = s.image.astype(np.float16)  # small enough to ship beside the weights
            arrays[f"mask_{n}"] = s.mask
            arrays[f"clicks_{n}"] = np.array(s.clicks, dtype=np.int32).reshape(-1, 3)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | Path, threshold: float = 0.02) -> ForgettingGuard:
        try:
            with np.load(path, allow_pickle=False) as data:
                n = len([k for k in data.files if k.startswith("image_")])
                slices = [
                    GuardSlice(
                        data[f"image_{i}"].astype(np.float32),
                        data[f"mask_{i}"].astype(bool),
                        [(int(r), int(c), bool(p)) for r, c, p in data[f"clicks_{i}"]],
                    )
                    for i in range(n)
                ]
        except (OSError, ValueError, KeyError) as exc:
            raise WeightsError(
                f"The forgetting-guard file '{path}' is damaged ({exc}). Reinstall the model."
            ) from exc
        return cls(slices, threshold)
