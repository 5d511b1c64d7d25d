"""The 3D network behind a case (interaction.CaseNetwork): every click, from any view, gives the whole
structure at once, from the image, all the case's clicks and the current 3D result (engine/
volume_predictor.py). A click is answered in two steps for the screen: `click` gives the clicked slice,
`fill` the rest of what changed. Undo restores the 3D result bit for bit (the session restores the
weights); MI and PI are engine/volume_learning.py's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from InteractiveAdaptLib.engine.volume_learning import VolumeStep, crop_click, post_interaction
from InteractiveAdaptLib.errors import CaseStateError
from InteractiveAdaptLib.interaction import Block, Click, FillOptions, PostInteraction, SliceKey


def click_voxel(click: Click) -> np.ndarray:
    """A click on a slice as native (K, J, I) voxel coordinates."""
    point = [float(click.row), float(click.col)]
    point.insert(click.axis, float(click.index))
    return np.array(point, dtype=np.float64)


def _changed_block(before: np.ndarray, after: np.ndarray) -> list[Block]:
    """The K slices where `after` differs from `before`, as one block (none when nothing changed)."""
    changed = np.flatnonzero((before != after).reshape(len(after), -1).any(axis=1))
    if not len(changed):
        return []
    first, last = int(changed[0]), int(changed[-1])
    return [Block(0, first, after[first : last + 1].copy())]


class VolumeNetwork:
    """The 3D result of the open case of `session` (an InteractiveSession whose base model is 3D)."""

    def __init__(self, session) -> None:
        if not session.case_open:
            raise CaseStateError("No case is open. Choose a volume and start a case first.")
        self.session = session
        self.image = session.volume_predictor.prepare(session.volume)
        self.result = np.zeros(session.volume.shape, bool)
        self._history: list[np.ndarray] = []  # the result before each click, oldest first
        self._unshown: np.ndarray | None = None  # the result before the newest click, until `fill`

    def click(self, clicks: Sequence[Click], current: np.ndarray, options: FillOptions) -> list[Block]:
        """The newest of `clicks`: the whole structure is predicted; its clicked slice is returned now,
        the rest by `fill`."""
        pending = self.fill(current, options)
        click = clicks[-1]
        session = self.session
        session.record_click(click)  # validates it and runs the previous click's MI first
        points = np.array([click_voxel(c) for c in clicks])
        signs = np.array([c.positive for c in clicks], bool)
        before = self.result
        prediction = session.volume_predictor.predict(
            self.image, session.spacing, points, signs, before if before.any() else None
        )
        result = prediction.mask
        low, high = options.bounds
        if low is not None:
            result[: max(0, int(low))] = False
        if high is not None:
            result[int(high) + 1 :] = False
        adaptation = session.config.adaptation
        if len(clicks) > 1 or adaptation.mi_after_first_click:
            session.set_pending_step(
                VolumeStep(
                    self.image,
                    prediction.crop,
                    points[:-1],
                    signs[:-1],
                    self._history[-1] if self._history and self._history[-1].any() else None,
                    prediction.crop_mask.long(),
                    crop_click(prediction.crop, points[-1], click.positive),
                )
            )
        self._history.append(before)
        self.result, self._unshown = result, before
        data = np.expand_dims(np.take(result, click.index, click.axis), click.axis).copy()
        return pending + [Block(click.axis, click.index, data)]

    def fill(self, current: np.ndarray, options: FillOptions) -> list[Block]:
        """What the newest click changed besides its slice (none when it was shown already)."""
        if self._unshown is None:
            return []
        before, self._unshown = self._unshown, None
        return _changed_block(before, self.result)

    def undo(self, current: np.ndarray) -> list[Block]:
        """The newest click taken back: the 3D result as before it (the session undoes its learning)."""
        if not self._history:
            raise CaseStateError("There is no click to undo in this case.")
        self.session.undo()
        self._unshown = None
        after, self.result = self.result, self._history.pop()
        # The front end may show a partly filled result: every slice that differs from it goes back.
        return _changed_block(np.asarray(current) > 0 if current is not None else after, self.result)

    def learning_slices(self, final: np.ndarray) -> dict[SliceKey, np.ndarray]:
        """Nothing slice by slice: the 3D network learns the whole accepted structure."""
        return {}

    def post_interaction(self, final: np.ndarray) -> PostInteraction:
        """PI on the accepted 3D mask, from the case's first positive click."""
        positive = [click_voxel(c) for c in self.session.clicks if c.positive]
        first = positive[0] if positive else None
        final = np.asarray(final, bool)
        return lambda should_stop: post_interaction(self.session, self.image, final, first, should_stop)
