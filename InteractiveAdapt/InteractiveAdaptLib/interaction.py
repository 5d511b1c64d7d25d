"""What the front ends and the engine hand each other: a click, a slice, the mask shown on it, what
finishing a case did, and the session protocol the Slicer scene adapter drives.

Plain data, no torch: the scene adapter and the module import this before the engine's packages
are installed. Array conventions are the engine's: a volume is a (K, J, I) array; a slice holds one
array axis fixed (0 = K, 1 = J, 2 = I) at an index, and (row, col) index `np.take(volume, index, axis)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

SliceKey = tuple[int, int]  # (axis, index) of one slice


@dataclass(frozen=True)
class Click:
    """One click on a slice of a (K, J, I) volume."""

    axis: int  # array axis held fixed by the slice (0 = K, 1 = J, 2 = I)
    index: int  # slice index along that axis
    row: int  # pixel row in np.take(volume, index, axis)
    col: int  # pixel column in that slice
    positive: bool

    @property
    def slice_key(self) -> SliceKey:
        return (self.axis, self.index)


@dataclass
class SlicePrediction:
    """The mask now shown on one slice."""

    axis: int
    index: int
    mask: np.ndarray  # uint8 0/1, the slice's own shape
    latency_ms: float


@dataclass
class CaseSummary:
    """What finishing a case did."""

    slices_learned: int
    clicks: int
    steps_applied: int
    learn_ms: float
    version: int | None  # the site version saved, None when nothing was saved
    guard_reverted: bool = False  # the forgetting guard undid this case's post-interaction update
    cancelled: bool = False  # the user stopped the learning: the case ended without it, nothing saved


class CaseSession(Protocol):
    """The part of the engine's InteractiveSession that the scene adapter and the module drive (on the
    worker thread), directly or through the engine's 3D case (engine/volume_case.py: `volume`,
    `spacing`, `prepared_slice`, `predictor` and the `hints` of `add_click`). The scene adapter's tests
    drive a double that declares this protocol.

    Every method may raise an InteractiveAdaptError whose message is meant for the clinician.
    """

    @property
    def clicks(self) -> list[Click]: ...

    @property
    def case_open(self) -> bool: ...

    def start_case(
        self, volume: np.ndarray, spacing_kji: tuple[float, float, float], profile: str
    ) -> None: ...

    # What the 3D case reads: the case's (K, J, I) volume, its voxel size in mm, the 2D predictor.
    volume: np.ndarray
    spacing: tuple[float, float, float]
    predictor: Any

    def prepared_slice(self, key: SliceKey) -> Any: ...

    def add_click(
        self, click: Click, hints: list[tuple[float, float, bool]] | None = None
    ) -> SlicePrediction: ...

    def learn_pending(self) -> bool: ...

    def undo(self) -> SlicePrediction | None: ...

    def remove_click(self, n: int) -> SlicePrediction | None: ...

    def reset_case(self) -> None: ...

    def finish_case(
        self,
        accepted: dict[SliceKey, np.ndarray] | None = None,
        learn: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> CaseSummary: ...

    def restart_profile_from_base(self, profile: str) -> None: ...

    def version_choices(self, profile: str) -> list[tuple[str, int]]: ...

    def provenance(self, profile: str) -> str: ...

    def rollback(self, profile: str, version: int) -> None: ...

    def export_site(self, archive: str | Path) -> Path: ...
