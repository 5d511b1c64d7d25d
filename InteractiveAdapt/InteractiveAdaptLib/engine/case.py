"""One case: one structure in one volume, from its first click to its finish (learn or not).

The only door a front end (the Slicer scene adapter, the web page, the `segment` command, the lab's
benchmarks) uses for a case; the session stays the door to a profile's weights and versions. The case
keeps the structure's 3D result as shown and asks its network (interaction.CaseNetwork: today the 2D
click network propagated slice by slice, engine/slice_propagation.py) for what each click changes; the
session learns (MI after each click, PI on the accepted 3D result at the finish).

Array conventions are the engine's: (K, J, I) volumes; the panel lists the clicked slices of the K axis.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from InteractiveAdaptLib.errors import CaseStateError
from InteractiveAdaptLib.interaction import (
    Block,
    CaseNetwork,
    CaseSummary,
    CaseUpdate,
    Click,
    FillOptions,
    Removal,
    RemovalResult,
    SliceKey,
)

LISTED_AXIS = 0  # the volume's K axis: its clicked slices are the ones the panel lists
MAX_PAINTED_SLICES = 20  # painted (unclicked) slices learned per case: Finish stays quick


class Case:
    """The open case of `session` (an InteractiveSession) and its 3D result, click by click.

    Made by `InteractiveSession.open_case`; drive the case through it, not through the session.
    """

    def __init__(self, session, make_network: Callable[[], CaseNetwork]) -> None:
        """A case on the session's open case; `make_network` gives the network its result comes from
        (called again by `reset`).

        Raises:
            CaseStateError: the session has no open case.
        """
        if not session.case_open:
            raise CaseStateError("No case is open. Choose a volume and start a case first.")
        self.session, self._make_network = session, make_network
        self.network = make_network()
        self.mask = np.zeros(session.volume.shape, bool)  # the structure's 3D result as shown
        self.options = FillOptions()

    @property
    def clicks(self) -> list[Click]:
        """The case's clicks, oldest first (a copy)."""
        return self.session.clicks

    @property
    def open(self) -> bool:
        """Whether the case is still open (not finished)."""
        return self.session.case_open

    @property
    def confirmed_slices(self) -> list[int]:
        """The clicked slices of the K axis, in order (what the panel lists)."""
        return sorted({c.index for c in self.session.clicks if c.axis == LISTED_AXIS})

    def click(self, click: Click, options: FillOptions | None = None, fill_now: bool = True) -> CaseUpdate:
        """Apply a click: its slice is predicted, and (with `fill_now`) the structure is filled around it.

        Args:
            click: where the user clicked, and whether inside (positive) or outside the structure.
            options: how the result spreads (None: as for the previous click).
            fill_now: False shows the click's first result only; `fill` then fills the structure (a
                front end shows something at once, the whole structure after).

        Returns:
            What changed in the 3D result (blocks of slices to write) and the clicked slices after it.

        Raises:
            CaseStateError: the case is finished.
            InvalidClickError: the click's slice or point is outside the image, or its axis is unknown.
        """
        self._require_open()
        started = time.perf_counter()
        if options is not None:
            self.options = options
        blocks = self.network.click([*self.session.clicks, click], self.mask, self.options)
        if fill_now:
            blocks += self.network.fill(self.mask, self.options)
        return self._update(click, blocks, started)

    def fill(self) -> CaseUpdate:
        """Fill the structure around the newest click's first result (nothing when already filled).

        Returns:
            What changed in the 3D result; `filled` counts the non-empty slices written besides the
            clicked one.

        Raises:
            CaseStateError: the case is finished.
        """
        self._require_open()
        started = time.perf_counter()
        clicks = self.session.clicks
        return self._update(
            clicks[-1] if clicks else None, self.network.fill(self.mask, self.options), started
        )

    def learn_pending(self) -> bool:
        """Run the newest click's mid-interaction learning step, if one is pending.

        Returns:
            Whether a step was applied.
        """
        return self.session.learn_pending()

    def undo(self) -> CaseUpdate:
        """Undo the newest click: the 3D result and the weights go back as they were, bit for bit.

        Returns:
            What went back in the 3D result, and the clicked slices after the undo.

        Raises:
            CaseStateError: the case is finished, or it has no click.
        """
        self._require_open()
        if not self.session.clicks:
            raise CaseStateError("There is no click to undo in this case.")
        started = time.perf_counter()
        return self._update(None, self.network.undo(self.mask), started)

    def remove(self, click: Click, options: FillOptions | None = None) -> RemovalResult:
        """Take `click` out of the case: undo back to it, then place the later clicks again (each one
        predicted, filled and learned again, as after a click).

        Returns:
            What happened (undone, redone, or absent when the case no longer holds the click), the later
            clicks' new results in order, and the clicked slices after it.

        Raises:
            CaseStateError: the case is finished.
        """
        self._require_open()
        clicks = self.session.clicks
        n = _index_of(clicks, click)
        if n is None:
            return RemovalResult(Removal.ABSENT, [], self.confirmed_slices)
        later = clicks[n + 1 :]
        for _ in range(len(clicks) - n):
            self.undo()
        redone = []
        for again in later:
            redone.append(self.click(again, options))
            self.learn_pending()
        return RemovalResult(Removal.REDONE if later else Removal.UNDONE, redone, self.confirmed_slices)

    def reset(self) -> None:
        """Drop every click and its learning; the case stays open with an empty result.

        Raises:
            CaseStateError: the case is finished.
        """
        self._require_open()
        self.session.reset_case()  # the case start's weights, in one step
        self.network = self._make_network()
        self.mask[:] = False

    def learning_slices(
        self, final: np.ndarray, expected: np.ndarray | None = None
    ) -> dict[SliceKey, np.ndarray]:
        """What post-interaction learning takes from the accepted result: the network's pick from the
        3D mask `final` (the segment as the user left it), and slices the user painted (where `final`
        differs from `expected`, the segment as the front end last wrote it).

        Raises:
            CaseStateError: `final` is not of the volume's shape.
        """
        final = np.asarray(final) > 0
        if final.shape != self.mask.shape:
            raise CaseStateError(
                f"The accepted mask has shape {final.shape}, the volume {self.mask.shape}. "
                "Accept the segment of this volume."
            )
        accepted = self.network.learning_slices(final)
        if expected is not None:
            painted = painted_slices(final, np.asarray(expected) > 0, set(accepted))
            accepted.update({key: mask for key, mask in painted.items() if key not in accepted})
        return accepted

    def finish(
        self,
        final: np.ndarray | None,
        expected: np.ndarray | None = None,
        learn: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> CaseSummary:
        """Accept the case: learn from the accepted 3D result (unless `learn` is False), save a version.

        Args:
            final: the accepted 3D mask (the segment as the user left it, Segment Editor corrections
                included); None learns from the result as shown.
            expected: the segment as the front end last wrote it: where `final` differs, the user
                painted, and those slices are learned too.
            learn: False closes the case without learning: its MI steps are undone, nothing is saved.
            should_stop: asked between learning steps (Cancel); True ends the case without learning.

        Returns:
            What was learned, and the version saved (None when nothing was saved).

        Raises:
            CaseStateError: the case is finished already, or `final` is not of the volume's shape.
            IncompatibleBaseModelError, SiteStoreError: as `InteractiveSession.finish_case` (the case
                stays open).
        """
        self._require_open()
        accepted, own = None, None
        if learn:
            final = self.mask if final is None else np.asarray(final) > 0
            if final.shape != self.mask.shape:
                raise CaseStateError(
                    f"The accepted mask has shape {final.shape}, the volume {self.mask.shape}. "
                    "Accept the segment of this volume."
                )
            own = self.network.post_interaction(final)
            if own is None:
                accepted = self.learning_slices(final, expected) or None
        return self.session.finish_case(accepted, learn=learn, should_stop=should_stop, post_interaction=own)

    def _update(self, click: Click | None, blocks: list[Block], started: float) -> CaseUpdate:
        """Write the network's blocks into the shown result; the update the front end writes."""
        filled = 0
        for block in blocks:
            count = block.data.shape[block.axis]
            np.moveaxis(self.mask, block.axis, 0)[block.first : block.first + count] = np.moveaxis(
                block.data > 0, block.axis, 0
            )
            for n in range(count):
                if (click is None or (block.axis, block.first + n) != click.slice_key) and np.take(
                    block.data, n, block.axis
                ).any():
                    filled += 1
        elapsed = (time.perf_counter() - started) * 1000
        return CaseUpdate(click, blocks, self.confirmed_slices, filled, elapsed)

    def _require_open(self) -> None:
        if not self.session.case_open:
            raise CaseStateError("The case has ended. Place a point to start the next one.")


def painted_slices(
    current: np.ndarray, reference: np.ndarray, skip: set[SliceKey], limit: int = MAX_PAINTED_SLICES
) -> dict[SliceKey, np.ndarray]:
    """The slices where `current` differs from `reference` (the user painted them), outside `skip`, in
    the orientation painted in (the one whose fewest slices hold all the painting), at most `limit`
    evenly spread, each with its mask in `current`."""
    painted = current != reference
    for axis, index in skip:
        np.moveaxis(painted, axis, 0)[index] = False
    touched = [np.flatnonzero(np.moveaxis(painted, a, 0).any(axis=(1, 2))) for a in range(3)]
    axis = min(range(3), key=lambda a: len(touched[a]))
    indices = touched[axis]
    if len(indices) > limit:
        indices = indices[np.linspace(0, len(indices) - 1, limit).round().astype(int)]
    return {(axis, int(n)): np.take(current, int(n), axis).astype(np.uint8) for n in indices}


def _index_of(clicks: list[Click], click: Click) -> int | None:
    """Where `click` is among the case's clicks (the same object first, else an equal one, newest)."""
    for n in range(len(clicks) - 1, -1, -1):
        if clicks[n] is click:
            return n
    for n in range(len(clicks) - 1, -1, -1):
        if clicks[n] == click:
            return n
    return None
