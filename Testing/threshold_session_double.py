"""TEST DOUBLE of the engine's interactive session, for testing the Slicer scene side in isolation.

It declares the engine's CaseSession protocol (InteractiveAdaptLib/interaction.py), the part of the
session the MRML click controller drives, and answers with a deterministic rule instead of a network: a positive click marks the pixels of its window whose intensity is close to the clicked
pixel's, a negative click clears its window. Not used by the product.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from InteractiveAdaptLib.errors import CaseStateError
from InteractiveAdaptLib.interaction import CaseSession, CaseSummary, Click, SlicePrediction


class ThresholdSessionDouble(CaseSession):
    """Predicts a slice from its clicks by intensity thresholding in a window around each click."""

    def __init__(self, radius: int = 6, tolerance: float = 25.0, delay_s: float = 0.0) -> None:
        self.radius, self.tolerance, self.delay_s = radius, tolerance, delay_s
        self.volume: np.ndarray | None = None
        self._clicks: list = []
        self.calls: list[tuple[str, str]] = []  # (method, thread name)
        self.learned = 0
        self.finished: list[tuple[dict | None, bool]] = []
        self.profile = ""

    def _log(self, name: str) -> None:
        self.calls.append((name, threading.current_thread().name))
        if self.delay_s:
            time.sleep(self.delay_s)

    @property
    def clicks(self) -> list[Click]:
        return list(self._clicks)

    @property
    def case_open(self) -> bool:
        return self.volume is not None

    def start_case(self, volume: np.ndarray, spacing_kji: tuple[float, float, float], profile: str) -> None:
        self._log("start_case")
        self.volume, self.spacing_kji, self.profile = np.asarray(volume), spacing_kji, profile
        self._clicks = []

    def predict(self, axis: int, index: int, clicks: list | None = None) -> np.ndarray:
        """The mask this double shows for a slice given clicks (default: the current ones)."""
        image = np.take(self.volume, index, axis).astype(float)
        mask = np.zeros(image.shape, np.uint8)
        for c in clicks if clicks is not None else self._clicks:
            if (c.axis, c.index) != (axis, index):
                continue
            window = (
                slice(max(0, c.row - self.radius), c.row + self.radius + 1),
                slice(max(0, c.col - self.radius), c.col + self.radius + 1),
            )
            if c.positive:
                close = np.abs(image[window] - image[c.row, c.col]) <= self.tolerance
                mask[window] |= close.astype(np.uint8)
            else:
                mask[window] = 0
        return mask

    def _prediction(self, axis: int, index: int) -> SlicePrediction | None:
        if not any((c.axis, c.index) == (axis, index) for c in self._clicks):
            return None
        return SlicePrediction(axis, index, self.predict(axis, index), 1.0)

    def add_click(self, click) -> SlicePrediction:
        self._log("add_click")
        if self.volume is None:
            raise CaseStateError("No case is open.")
        self._clicks.append(click)
        return self._prediction(click.axis, click.index)

    def learn_pending(self) -> bool:
        self._log("learn_pending")
        self.learned += 1
        return True

    def undo(self) -> SlicePrediction | None:
        self._log("undo")
        click = self._clicks.pop()
        return self._prediction(click.axis, click.index)

    def remove_click(self, n: int) -> SlicePrediction | None:
        self._log("remove_click")
        click = self._clicks.pop(n)
        return self._prediction(click.axis, click.index)

    def reset_case(self) -> None:
        self._log("reset_case")
        self._clicks = []

    def finish_case(self, accepted: dict | None = None, learn: bool = True, should_stop=None) -> CaseSummary:
        self._log("finish_case")
        self.finished.append((accepted, learn))
        clicks, self._clicks, self.volume = len(self._clicks), [], None
        return CaseSummary(len(accepted or {}), clicks, 0, 0.0, None)

    # A double keeps no site versions.
    def restart_profile_from_base(self, profile: str) -> None:
        self._log("restart_profile_from_base")

    def version_choices(self, profile: str) -> list[tuple[str, int]]:
        return [("Shipped base model", 0)]

    def provenance(self, profile: str) -> str:
        return "Threshold double (no weights)."

    def rollback(self, profile: str, version: int) -> None:
        raise CaseStateError("The double keeps no versions.")

    def export_site(self, archive: str | Path) -> Path:
        raise CaseStateError("The double keeps no versions.")
