"""What the front ends and the engine hand each other: a click, the mask shown on a slice, what a click
changed in the 3D result, what finishing a case did, the kinds of work the worker runs, and the
protocols: the case and session that the front ends drive, and what a case needs of a network and of
an interpolator.

Plain data, no torch: the scene adapter and the module import this before the engine's packages
are installed. Array conventions are the engine's: a volume is a (K, J, I) array; a slice holds one
array axis fixed (0 = K, 1 = J, 2 = I) at an index, and (row, col) index `np.take(volume, index, axis)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol

import numpy as np

SliceKey = tuple[int, int]  # (axis, index) of one slice
ErrorCallback = Callable[[BaseException, str], None]  # (error, traceback text) to the panel
StatusCallback = Callable[[str], None]  # a line of news for the status line
Bounds = tuple[int | None, int | None]  # first and last slice of the K axis a filling stays within


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
class Block:
    """Slices [first, first + n) of an array axis of a (K, J, I) mask, n along `axis`."""

    axis: int
    first: int
    data: np.ndarray

    @property
    def last(self) -> int:
        """The last slice the block holds."""
        return self.first + self.data.shape[self.axis] - 1


@dataclass(frozen=True)
class FillOptions:
    """How a click's result spreads through the structure (from the next click on)."""

    propagate: bool = True  # carry the result beyond the clicked slices until the structure ends
    bounds: Bounds = (None, None)  # slices of the K axis the filling stays within (None: no bound)


@dataclass
class CaseUpdate:
    """What one step of a case (a click's slice, its filling, an undo) changed in the 3D result."""

    click: Click | None
    blocks: list[Block]  # what to write into the segment, in order
    confirmed: list[int]  # the clicked slices of the K axis after the step
    filled: int = 0  # non-empty slices written besides the clicked one
    elapsed_ms: float = 0.0

    @property
    def slice_range(self) -> tuple[int, int] | None:
        """(first, last) slice of the K axis the step wrote, None when it wrote none."""
        spans = [(b.first, b.last) for b in self.blocks if b.axis == 0]
        return (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None


class Removal(Enum):
    """What taking a click out of a case did."""

    UNDONE = "undone"  # it was the newest click
    REDONE = "redone"  # the later clicks were placed again without it
    ABSENT = "absent"  # the case did not hold it (already undone)


@dataclass
class RemovalResult:
    """Taking a click out of a case: what happened and the later clicks' new results, in order."""

    kind: Removal
    redone: list[CaseUpdate] = field(default_factory=list)
    confirmed: list[int] = field(default_factory=list)


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
    warning: str = ""  # e.g. another computer saved this profile meanwhile: which versions hold what


class JobKind(Enum):
    """The kinds of work the worker runs; the value is what the progress line shows."""

    LOAD_NETWORK = "Loading the network"
    READ_STUDY = "Reading the study"
    PREPARE = "Preparing the image"
    SLICE = "Segmenting the clicked slice"
    FILL = "Filling the structure in 3D"
    LEARN = "Learning from the click"
    UNDO = "Undoing the click"
    REMOVE = "Removing the click; placing the later clicks again"
    RESET = "Resetting the case"
    FINISH = "Learning from the finished case"
    CLOSE = "Finishing the case"
    RESTART_PROFILE = "Starting the profile again from the shipped model"
    ROLLBACK = "Rolling back the model"
    EXPORT = "Exporting the site"
    OTHER = "Working"

    @property
    def text(self) -> str:
        """What the progress line shows while a job of this kind runs."""
        return self.value


class Interpolator(Protocol):
    """Fills the slices between labelled slices (ITK's morphological contour interpolation, the filter
    behind Slicer's "Fill between slices")."""

    def __call__(self, sparse: np.ndarray, axis: int) -> np.ndarray:
        """The mask with the slices between the labelled slices of `axis` filled.

        Raises:
            ValueError: it cannot fill these slices (e.g. too fragmented); the case then propagates.
        """
        ...


# A case network's own post-interaction learning: given the Cancel question (or None), it runs and
# answers (steps applied, what it learned from: slices or crops, whether it was cancelled).
PostInteraction = Callable[[Callable[[], bool] | None], tuple[int, int, bool]]


class CaseNetwork(Protocol):
    """What a case needs of a network: the structure in 3D from the case's volume, every click of the
    case (from any view) and the 3D result now shown. A click is answered in two steps so that
    something is on screen at once: `click` (its first visible result), then `fill` (the rest of the
    structure). Each returns the region it changed; the case writes it into the result.

    The volume and voxel size come from the session's open case. Every method may raise an
    InteractiveAdaptError whose message is meant for the clinician.
    """

    def click(self, clicks: Sequence[Click], current: np.ndarray, options: FillOptions) -> list[Block]:
        """The newest of `clicks` (the case's clicks, oldest first) applied: its first visible result."""
        ...

    def fill(self, current: np.ndarray, options: FillOptions) -> list[Block]:
        """The rest of the structure after the newest click's first result (empty when nothing is left)."""
        ...

    def undo(self, current: np.ndarray) -> list[Block]:
        """The newest click taken back (its learning too): the regions that go back, as before it."""
        ...

    def learning_slices(self, final: np.ndarray) -> dict[SliceKey, np.ndarray]:
        """What post-interaction learning takes from the accepted 3D result `final`, slice by slice."""
        ...

    def post_interaction(self, final: np.ndarray) -> PostInteraction | None:
        """The network's own learning from the accepted 3D result `final` (the 3D network learns the
        whole structure), or None: the session learns `learning_slices` slice by slice."""
        ...


class EngineCase(Protocol):
    """One structure in one volume, from its start to its finish: what the front ends drive (on the
    worker thread). The engine's implementation is engine/case.py's `Case`.

    Every method may raise an InteractiveAdaptError whose message is meant for the clinician.
    """

    @property
    def clicks(self) -> list[Click]: ...

    @property
    def confirmed_slices(self) -> list[int]: ...

    def click(self, click: Click, options: FillOptions, fill_now: bool = True) -> CaseUpdate: ...

    def fill(self) -> CaseUpdate: ...

    def learn_pending(self) -> bool: ...

    def undo(self) -> CaseUpdate: ...

    def remove(self, click: Click, options: FillOptions) -> RemovalResult: ...

    def reset(self) -> None: ...

    def finish(
        self,
        final: np.ndarray | None,
        expected: np.ndarray | None = None,
        learn: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> CaseSummary: ...


class CaseSession(Protocol):
    """The part of the engine's InteractiveSession that the front ends drive (on the worker thread):
    cases, and a profile's weights and versions. The scene adapter's tests drive a double that declares
    this protocol.

    Every method may raise an InteractiveAdaptError whose message is meant for the clinician.
    """

    def open_case(
        self,
        volume: np.ndarray,
        spacing_kji: tuple[float, float, float],
        profile: str,
        interpolate: Interpolator | None = None,
    ) -> EngineCase: ...

    def restart_profile_from_base(self, profile: str) -> None: ...

    def version_choices(self, profile: str) -> list[tuple[str, int]]: ...

    def provenance(self, profile: str) -> str: ...

    def rollback(self, profile: str, version: int) -> None: ...

    def export_site(self, archive: str | Path) -> Path: ...


@dataclass
class ClickTimes:
    """What the newest click's wait was, for the status and latency lines."""

    clicks: int  # clicks of the case after it
    slice_ms: float  # from the point's arrival to its slice written into the segment
    fill_ms: float | None = None  # to the structure filled in 3D (None while filling)
    filled: int = 0  # non-empty slices the filling wrote besides the clicked one

    @property
    def status(self) -> str:
        """The status line's news of the click."""
        if self.fill_ms is None:
            return f"Segmented in {self.slice_ms:.0f} ms ({self.clicks} clicks); filling in 3D..."
        slices = f"{self.filled} slice{'s' if self.filled != 1 else ''}"
        return (
            f"Segmented in {self.slice_ms:.0f} ms, {slices} filled in 3D by {self.fill_ms:.0f} ms "
            f"({self.clicks} clicks)."
        )

    @property
    def latency(self) -> str:
        """One line on what the user waited."""
        fill = f", filled in 3D after {self.fill_ms:.0f} ms" if self.fill_ms is not None else ""
        return f"Last click: slice ready after {self.slice_ms:.0f} ms{fill}"


@dataclass
class PanelState:
    """The panel at one moment, built by `Workflow.panel`.

    Attributes:
        patient: the MRI volume's name ('' when none is chosen).
        structures: (segment id, name) of the patient's structures, in order.
        structure_id: the structure being segmented ('' when none).
        profile: one line on what the structure's learning profile has learned (or why it is not
            shown yet, e.g. while the network loads).
        versions: (label, version) of the profile's saved versions, newest first, then the shipped
            base model (version 0); empty until the network is loaded.
        clicked_slices: the clicked slices of the volume's K axis in the open case, in order.
        clicks: clicks of the open case.
        placing: True while placing positive points, False for negative ones, None when not placing.
        busy: the worker has work queued or running.
        progress: what the worker is doing now ('' when idle).
        status: the newest status line.
        last_click: what the newest click's user waited (None before the first click).
    """

    patient: str = ""
    structures: list[tuple[str, str]] = field(default_factory=list)
    structure_id: str = ""
    profile: str = ""
    versions: list[tuple[str, int]] = field(default_factory=list)
    clicked_slices: list[int] = field(default_factory=list)
    clicks: int = 0
    placing: bool | None = None
    busy: bool = False
    progress: str = ""
    status: str = ""
    last_click: ClickTimes | None = None

    @property
    def clicked_slices_text(self) -> str:
        """The clicked slices for the panel, e.g. 'Clicked slices: 42, 50, 61'."""
        if not self.clicked_slices:
            return "Clicked slices: none yet."
        return "Clicked slices: " + ", ".join(str(n) for n in self.clicked_slices)

    @property
    def latency(self) -> str:
        """What the newest click's user waited ('' before the first click)."""
        return self.last_click.latency if self.last_click is not None else ""
