"""Exact undo of a case's clicks: each click's undo entry, the weight snapshots kept for the newest
clicks, and the replay of the case's mid-interaction steps past them (memory bounded, weights bit for bit
at any depth). Mixed into InteractiveSession (engine/session.py), whose clicks, predictions, adapter and
snapshots it uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from InteractiveAdaptLib.engine.adaptation import Snapshot
from InteractiveAdaptLib.errors import CaseStateError
from InteractiveAdaptLib.interaction import Click, SliceKey, SlicePrediction

log = logging.getLogger(__name__)


class LearningStep(Protocol):
    """One mid-interaction step of the open case: enough to run it, and to run it again from the same
    weights with the same result (an undo past the kept snapshots replays the case's steps)."""

    def run(self, session, before: Snapshot) -> bool:
        """Apply the step to the session's network (`before`: the weights before it, for a rollback).
        Returns whether it was applied."""
        ...


@dataclass(eq=False)
class MIStep:
    """The 2D network's step: pull f(I, previous) on one slice towards the prediction with `newest`."""

    key: SliceKey
    previous: list[tuple[float, float, bool]]  # the slice's clicks before the newest one
    newest: tuple[float, float, bool]
    logits: torch.Tensor | None = None  # the prediction learned from (None: made again with the weights now)

    def run(self, session, before: Snapshot) -> bool:
        prepared = session.prepared_slice(self.key)
        logits = self.logits
        if logits is None:  # a replay: the prediction as the weights before the step made it
            logits = session.predictor.logits(prepared, self.previous + [self.newest])
        self.logits = None  # not kept: a replay makes it again
        grid = prepared.to_grid(self.previous + [self.newest])
        return session.adapter.mid_interaction(prepared, grid[:-1], grid[-1], logits, before)


@dataclass
class UndoEntry:
    click: Click
    previous_mask: np.ndarray | None  # the slice's prediction before this click (2D network)
    weights: Snapshot | None = None  # taken right before this click's MI step (dropped past undo_depth)
    step: LearningStep | None = None  # this click's MI step, once it ran


class ClickUndo:
    """Undo of the newest click for an InteractiveSession (a mixin: the session holds the state)."""

    def _replay_steps(self) -> None:
        """The weights as the case's remaining MI steps made them, computed again from the case start:
        the same steps on the same inputs give the same weights bit for bit. Used by an undo that goes
        past the kept snapshots, so memory stays bounded and undo exact at any depth."""
        self.adapter.restore(self._case_start)
        before = self._spare_snapshots.pop() if self._spare_snapshots else None
        for step in self._steps:
            before = self.adapter.snapshot(before)
            step.run(self, before)
        if before is not None:
            self._spare_snapshots.append(before)
        log.info("Undo went past the kept snapshots: replayed %d steps from the case start", len(self._steps))

    def _trim_undo(self) -> None:
        # Old entries lose their weight snapshot first (memory stays bounded); clicks stay undoable.
        with_weights = [e for e in self._undo if e.weights is not None]
        self._recycle(with_weights[: max(0, len(with_weights) - self.config.undo_depth)])

    def _recycle(self, entries) -> None:
        """Take the weight snapshots of undo entries that are dropped, for the next clicks to reuse."""
        for entry in entries:
            if entry.weights is not None and len(self._spare_snapshots) < self.config.undo_depth:
                self._spare_snapshots.append(entry.weights)
            entry.weights = None

    def undo(self) -> SlicePrediction | None:
        """Undo the last click: the clicks, the slice's mask and the weights go back to before it.

        A pending MI step is dropped. The weights and optimiser state go back bit for bit at any depth:
        from the click's snapshot while it is kept (the last `undo_depth` clicks that had an MI step),
        else by running the case's remaining MI steps again from the case start.

        Returns:
            The slice's mask before the click, or None when it had none.

        Raises:
            CaseStateError: no case is open, or it has no click.
        """
        self._require_case()
        if not self._undo:
            raise CaseStateError("There is no click to undo in this case.")
        entry = self._undo.pop()
        self._pending = None
        self._clicks.pop()
        if entry.step is not None:
            # The newest step (later clicks are undone already), found by identity: two steps may be equal.
            self._steps.pop(
                next(n for n in range(len(self._steps) - 1, -1, -1) if self._steps[n] is entry.step)
            )
            if entry.weights is not None:
                self.adapter.restore(entry.weights)
                self._recycle([entry])
            else:
                self._replay_steps()
        key = (entry.click.axis, entry.click.index)
        if not self.slice_clicks(key):
            self._hints.pop(key, None)
        if entry.previous_mask is None:
            self._predictions.pop(key, None)
            return None
        self._predictions[key] = entry.previous_mask
        return SlicePrediction(key[0], key[1], entry.previous_mask, 0.0)
