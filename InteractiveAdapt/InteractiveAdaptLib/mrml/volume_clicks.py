"""The worker-thread side of the click controller's 3D mode: the engine's VolumeCase of the open case,
and what each click, undo or removal changed, as blocks of slices ready to be written into the segment.

Everything here runs on the worker thread (it touches the session and the case); it never touches the
scene. The controller writes the blocks on the main thread. The engine's 3D case and the contour
interpolator need scipy, which Slicer installs on first use: they are imported when a case starts, not
when the module loads.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from InteractiveAdaptLib.errors import CaseStateError
from InteractiveAdaptLib.interaction import Click, SliceKey

PROPAGATION_AXIS = 0  # the volume's K axis: its slices are the ones the panel lists
Bounds = tuple[int | None, int | None]


@dataclass
class Block:
    """Slices [first, first + n) of an array axis of the segment, in (K, J, I) order, n along `axis`."""

    axis: int
    first: int
    data: np.ndarray


@dataclass
class VolumeClickResult:
    """What one click changed in the 3D mask, for the main thread to write."""

    click: Click
    blocks: list[Block]  # what to write, in order
    confirmed: list[int]  # the clicked slices of the propagation axis, after the click
    filled: int  # non-empty slices written besides the clicked one
    elapsed_ms: float


class VolumeWork:
    """The open case's 3D mask on the worker: start, click, undo, remove a click, what to learn."""

    def __init__(
        self, session: Any, interpolate: Callable | None = None, axis: int = PROPAGATION_AXIS
    ) -> None:
        from InteractiveAdaptLib.engine.volume_case import PropagationConfig, VolumeCase

        if interpolate is None:
            from InteractiveAdaptLib.mrml.contour_interpolation import contour_interpolation

            interpolate = contour_interpolation
        self.session = session
        self.case = VolumeCase(session, axis, interpolate, PropagationConfig())

    @property
    def confirmed(self) -> list[int]:
        return self.case.confirmed_slices

    def click(self, click: Click, fill: bool, bounds: Bounds, now: bool = True) -> VolumeClickResult:
        """Predict the click's slice and fill the structure around it (propagation only if `fill`); with
        `now` False only the slice is predicted and `fill_pending` fills later (shown in two steps)."""
        started = time.perf_counter()
        case = self.case
        case.fill_pending()
        case.config = dataclasses.replace(case.config, enabled=bool(fill))
        case.set_bounds(*bounds)
        before = case.mask.copy()
        case.click(click, fill=now)
        if click.axis != case.axis:  # a slice of another orientation: only that slice changed
            after = case.mask
            block = Block(
                click.axis, click.index, np.expand_dims(np.take(after, click.index, click.axis), click.axis)
            )
            return VolumeClickResult(click, [block], self.confirmed, 0, _ms(started))
        return self._changed(click, before, click.index, started)

    def fill_pending(self, click: Click) -> VolumeClickResult:
        """Fill around the slice of the last click placed with `now` False (nothing when none is)."""
        started = time.perf_counter()
        before = self.case.mask.copy()
        self.case.fill_pending()
        return self._changed(click, before, None, started)

    def _changed(
        self, click: Click, before: np.ndarray, include: int | None, started: float
    ) -> VolumeClickResult:
        """The slices of the propagation axis that differ from `before` (and slice `include` whatever it
        holds), as one block. The whole axis is compared (a few ms), so that nothing the case changed
        can be left out of the segment; a slice the case never filled keeps what the segment has."""
        case = self.case
        along_before, along_after = np.moveaxis(before, case.axis, 0), np.moveaxis(case.mask, case.axis, 0)
        changed = list(
            np.flatnonzero((along_before != along_after).reshape(len(along_after), -1).any(axis=1))
        )
        if include is not None:
            changed.append(include)
        if not changed:
            return VolumeClickResult(click, [], self.confirmed, 0, _ms(started))
        first, last = int(min(changed)), int(max(changed))
        data = np.moveaxis(along_after[first : last + 1].copy(), 0, case.axis)
        filled = sum(
            1
            for n in range(first, last + 1)
            if n != click.index and np.take(data, n - first, case.axis).any()
        )
        return VolumeClickResult(click, [Block(case.axis, first, data)], self.confirmed, filled, _ms(started))

    def undo(self) -> list[int]:
        """Undo the case's last click (mask, session, weights); the clicked slices after it."""
        self.case.undo()
        return self.confirmed

    def remove(
        self, click: Click, fill: bool, bounds: Bounds
    ) -> tuple[str, list[VolumeClickResult], list[int]]:
        """Take `click` out of the case: undo back to it, then place the later clicks again (each
        learned again, as after a click). Returns (what happened: "undo", "redo" or "absent", the later
        clicks' results in order, the clicked slices after it)."""
        clicks = self.session.clicks
        n = _session_index(clicks, click)
        if n is None:
            return ("absent", [], self.confirmed)
        later = clicks[n + 1 :]
        for _ in range(len(clicks) - n):
            self.case.undo()
        results = []
        for again in later:
            results.append(self.click(again, fill, bounds))
            self.session.learn_pending()
        return ("redo" if later else "undo", results, self.confirmed)

    def accepted(self, final: np.ndarray) -> dict[SliceKey, np.ndarray]:
        """The slices PI learns from, with their masks from the segment as the user left it."""
        return self.case.accepted_slices(np.asarray(final) > 0)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _session_index(clicks: list[Click], click: Click) -> int | None:
    """Where `click` is among the session's clicks (the same object first, else an equal one, newest)."""
    for n in range(len(clicks) - 1, -1, -1):
        if clicks[n] is click:
            return n
    for n in range(len(clicks) - 1, -1, -1):
        if clicks[n] == click:
            return n
    return None


def require(work: VolumeWork | None) -> VolumeWork:
    """The case's 3D work, or a clear error when the case did not start."""
    if work is None:
        raise CaseStateError("The case has not started. Place the point again.")
    return work
