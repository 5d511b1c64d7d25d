"""TEST DOUBLE of the engine's interactive session, for testing the Slicer scene side in isolation.

It declares the engine's CaseSession protocol (InteractiveAdaptLib/interaction.py), the part of the
session the front ends drive, and answers with a deterministic rule instead of a network: a positive
click marks the pixels of its window whose intensity is close to the clicked pixel's, a negative click
clears its window. `open_case` gives the engine's real Case with the real slice propagation
(engine/case.py, engine/slice_propagation.py) on top of this double, which offers what they use of a
session (volume, spacing, add_click with hints, predict_slice, undo, learn_pending, finish_case); with
disk=True a positive click marks a disk of the window's radius instead, whatever the intensities, so
that the propagation's stop rules (area, growth) see the same area on every slice. Not used by the
product.
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

    def __init__(
        self, radius: int = 6, tolerance: float = 25.0, delay_s: float = 0.0, disk: bool = False
    ) -> None:
        self.radius, self.tolerance, self.delay_s, self.disk = radius, tolerance, delay_s, disk
        self.volume: np.ndarray | None = None
        self._clicks: list = []
        self._hints: dict[tuple[int, int], list[tuple[float, float, bool]]] = {}
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
        self._clicks, self._hints = [], {}

    def open_case(self, volume, spacing_kji, profile, interpolate=None, propagation=None):
        """The engine's real case on this double (as InteractiveSession.open_case)."""
        from InteractiveAdaptLib.engine.case import Case
        from InteractiveAdaptLib.engine.slice_propagation import SlicePropagation

        self.start_case(volume, spacing_kji, profile)
        return Case(self, lambda: SlicePropagation(self, 0, interpolate, propagation))

    def predict_slice(self, key: tuple[int, int], clicks: list[tuple[float, float, bool]]) -> np.ndarray:
        """The double's rule on slice `key` for these clicks, none recorded (the propagation's)."""
        return self.threshold(np.take(self.volume, key[1], key[0]).astype(float), clicks)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(self.spacing_kji)

    def prepared_slice(self, key: tuple[int, int]) -> np.ndarray:
        """The slice itself: the double predicts on the volume's own grid."""
        return np.take(self.volume, key[1], key[0]).astype(float)

    def prediction(self, axis: int, index: int) -> np.ndarray | None:
        found = self._prediction(axis, index)
        return None if found is None else found.mask

    def predict(self, axis: int, index: int, clicks: list | None = None) -> np.ndarray:
        """The mask this double shows for a slice given clicks (default: the current ones, after the
        slice's hints)."""
        points = list(self._hints.get((axis, index), [])) if clicks is None else []
        points += [
            (c.row, c.col, c.positive)
            for c in (clicks if clicks is not None else self._clicks)
            if (c.axis, c.index) == (axis, index)
        ]
        return self.threshold(np.take(self.volume, index, axis).astype(float), points)

    def threshold(self, image: np.ndarray, points: list[tuple[float, float, bool]]) -> np.ndarray:
        """The double's rule on one slice image for (row, col, positive) points, in order."""
        mask = np.zeros(image.shape, np.uint8)
        for row, col, positive in points:
            row, col = int(round(row)), int(round(col))
            window = (
                slice(max(0, row - self.radius), row + self.radius + 1),
                slice(max(0, col - self.radius), col + self.radius + 1),
            )
            if positive and self.disk:
                rows, cols = np.ogrid[: image.shape[0], : image.shape[1]]
                mask |= ((rows - row) ** 2 + (cols - col) ** 2 <= self.radius**2).astype(np.uint8)
            elif positive:
                close = np.abs(image[window] - image[row, col]) <= self.tolerance
                mask[window] |= close.astype(np.uint8)
            else:
                mask[window] = 0
        return mask

    def _prediction(self, axis: int, index: int) -> SlicePrediction | None:
        if not any((c.axis, c.index) == (axis, index) for c in self._clicks):
            return None
        return SlicePrediction(axis, index, self.predict(axis, index), 1.0)

    def add_click(self, click, hints: list | None = None) -> SlicePrediction:
        self._log("add_click")
        if self.volume is None:
            raise CaseStateError("No case is open.")
        if hints and not any(c.slice_key == click.slice_key for c in self._clicks):
            self._hints[click.slice_key] = list(hints)
        self._clicks.append(click)
        return self._prediction(click.axis, click.index)

    def learn_pending(self) -> bool:
        self._log("learn_pending")
        self.learned += 1
        return True

    def undo(self) -> SlicePrediction | None:
        self._log("undo")
        click = self._clicks.pop()
        if not any(c.slice_key == click.slice_key for c in self._clicks):
            self._hints.pop(click.slice_key, None)
        return self._prediction(click.axis, click.index)

    def reset_case(self) -> None:
        self._log("reset_case")
        self._clicks, self._hints = [], {}

    def finish_case(
        self, accepted: dict | None = None, learn: bool = True, should_stop=None, post_interaction=None
    ) -> CaseSummary:
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
