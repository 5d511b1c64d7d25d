"""The slice network behind a case (interaction.CaseNetwork): the structure's 3D mask from clicks on a
few slices, made by the 2D click network one slice at a time.

The session predicts each clicked slice from its clicks; this adapter turns those slices into the
structure's 3D mask along one axis (the *propagation axis*, the volume's K axis by default):
- a clicked slice of that axis is *confirmed*: it shows its prediction;
- the slices between two non-empty confirmed slices are filled by contour interpolation (an injected
  function: ITK's morphological contour interpolation, the filter behind Slicer's "Fill between
  slices"), or by propagation from both sides when no interpolator is given;
- beyond the outermost confirmed slices the mask is propagated slice by slice until a stop rule ends it;
- an empty confirmed slice (a negative click removed everything there) bounds the structure.
A click fills again only the gaps next to its slice, up to the next confirmed slices. A click on a
slice of another axis is honoured: that slice shows its own prediction, on top of the rest.
Undo restores the 3D mask bit for bit (the session restores the weights). The adapter keeps the mask it
made (the propagation axis' result and the other axes' slices apart), and answers the case with the
slices that changed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from InteractiveAdaptLib.engine.click_simulation import deepest_point
from InteractiveAdaptLib.errors import CaseStateError
from InteractiveAdaptLib.interaction import Block, Click, FillOptions, Interpolator, SliceKey

PseudoClicks = list[tuple[float, float, bool]]


@dataclass(frozen=True)
class PropagationConfig:
    """How a slice's result travels to the slices next to it."""

    enabled: bool = True
    grow_mm: float = 3.0  # a propagated slice stays within this distance of the previous slice's mask
    min_area_ratio: float = 0.3  # stop when a slice keeps less than this share of the previous area
    # Stop when fewer than this share of a new slice's voxels lie in the source slice's intensity band
    # (5th-95th percentile inside its mask): given a positive click the network always finds something.
    intensity_fraction: float = 0.8
    extent: float = 1.0  # stop this many source diameters away from the source slice
    # Stop when a slice grows past 1.1 times the source's area: leaving a clicked slice a structure
    # mostly tapers, and a growing mask mostly spills into the tissue around it. Chosen on Colin27's
    # amygdala, caudate, hippocampus, thalamus and putamen with seed 0 (mean Dice3D@10 0.68 against 0.64
    # at 1.0, 0.59 at 1.2 or 1.3 and with no limit); the MNI152 structures were not used to choose.
    max_area_ratio: float = 1.1
    interpolate_between: bool = True  # fill between two confirmed slices by interpolation if possible
    # Slices of the accepted 3D mask that PI learns from: PI takes about 0.12 s a slice with the default
    # network on 2 cores (benchmarks/results/speed.json), so 12 keep Finish within the 2 s budget.
    max_slices_learned: int = 12


@dataclass
class VolumeUpdate:
    """What a click changed: the slices [first, last] along the propagation axis, and the time taken."""

    first: int
    last: int
    propagated_ms: float


@dataclass
class _Entry:
    """What one click replaced, for a bit-for-bit undo."""

    first: int
    last: int
    slab: np.ndarray  # the 3D mask's slices [first, last] before the click
    confirmed: dict[int, np.ndarray]  # confirmed slices in [first, last] before the click
    pseudo: dict[int, PseudoClicks]
    other: tuple[SliceKey, np.ndarray | None] | None  # an other-axis slice's mask before the click


class SlicePropagation:
    """The 3D mask of the open case of `session` (an InteractiveSession), kept up to date click by click
    by the session's 2D network. The engine's Case drives it (interaction.CaseNetwork); the benchmarks
    and tests of the propagation itself may drive `click_slice`/`fill_pending`/`undo_click` directly.

    Create it after `session.start_case`.
    """

    def __init__(
        self,
        session,
        axis: int = 0,
        interpolate: Interpolator | None = None,
        config: PropagationConfig | None = None,
    ) -> None:
        if not session.case_open:
            raise CaseStateError("No case is open. Choose a volume and start a case first.")
        self.session, self.axis, self.interpolate = session, axis, interpolate
        self.config = config or PropagationConfig()
        self._own = np.zeros(session.volume.shape, bool)  # the propagation axis' result
        self.confirmed: dict[int, np.ndarray] = {}  # slice index -> its mask (clicked slices)
        self.pseudo: dict[int, PseudoClicks] = {}  # propagated slice -> the clicks that predicted it
        self.other: dict[SliceKey, np.ndarray] = {}  # clicked slices of the other axes
        self.bounds = (0, self._own.shape[axis] - 1)
        self._history: list[_Entry] = []
        self._pending: int | None = None  # a clicked slice whose filling has not run yet

    def set_bounds(self, first: int | None, last: int | None) -> None:
        """Propagate only within slices [first, last] of the axis (None: the volume's end)."""
        n = self._own.shape[self.axis]
        low = 0 if first is None else max(0, int(first))
        high = n - 1 if last is None else min(n - 1, int(last))
        if low > high:
            raise CaseStateError(
                f"The slice range {first}-{last} is empty. Choose a first slice before the last."
            )
        self.bounds = (low, high)

    @property
    def mask(self) -> np.ndarray:
        """The structure's 3D mask as shown: the propagation axis' result, and on top of it the slices
        clicked in other orientations (their own predictions)."""
        if not self.other:
            return self._own
        shown = self._own.copy()
        for (axis, index), mask in self.other.items():
            np.moveaxis(shown, axis, 0)[index] = mask
        return shown

    @property
    def confirmed_slices(self) -> list[int]:
        """The clicked slices of the propagation axis, in order (what the panel lists)."""
        return sorted(self.confirmed)

    def _slices(self) -> np.ndarray:
        return np.moveaxis(self._own, self.axis, 0)  # a view: writing it writes the result

    def click_slice(self, click: Click, fill: bool = True) -> VolumeUpdate:
        """Predict the click's slice (session) and update the 3D mask around it. With `fill` False only
        the clicked slice changes now and `fill_pending` fills around it later (the module shows the
        slice first); the next click fills what is pending, an undo drops it."""
        self.fill_pending()
        started = time.perf_counter()
        key = click.slice_key
        hints = self.pseudo.get(click.index, []) if click.axis == self.axis else []
        prediction = self.session.add_click(click, hints=hints)
        slices = self._slices()
        if click.axis != self.axis:
            self._history.append(_Entry(0, -1, slices[0:0].copy(), {}, {}, (key, self.other.get(key))))
            self.other[key] = prediction.mask > 0
            return VolumeUpdate(0, slices.shape[0] - 1, (time.perf_counter() - started) * 1000)
        index = click.index
        first, last = self._gap_around(index)
        entry = _Entry(
            first,
            last,
            slices[first : last + 1].copy(),
            {n: m for n, m in self.confirmed.items() if first <= n <= last},
            {n: p for n, p in self.pseudo.items() if first <= n <= last},
            None,
        )
        self._history.append(entry)
        self.confirmed[index] = prediction.mask > 0
        slices[index] = self.confirmed[index]
        self.pseudo.pop(index, None)
        if not fill:
            self._pending = index
            return VolumeUpdate(index, index, (time.perf_counter() - started) * 1000)
        self._fill(index)
        return VolumeUpdate(first, last, (time.perf_counter() - started) * 1000)

    def fill_pending(self) -> VolumeUpdate:
        """Fill around the slice of the last `click(..., fill=False)`; an empty update (first > last)
        when nothing is pending."""
        if self._pending is None:
            return VolumeUpdate(0, -1, 0.0)
        started = time.perf_counter()
        index, self._pending = self._pending, None
        self._fill(index)
        entry = self._history[-1]
        return VolumeUpdate(entry.first, entry.last, (time.perf_counter() - started) * 1000)

    def undo_click(self) -> VolumeUpdate:
        """Undo the last click: the 3D mask as it was before it, bit for bit; the session undoes the
        click and its learning."""
        if not self._history:
            raise CaseStateError("There is no click to undo in this case.")
        self.session.undo()
        self._pending = None  # the undone click's filling, if it had not run
        entry = self._history.pop()
        slices = self._slices()
        if entry.other is not None:
            key, previous = entry.other
            if previous is None:
                self.other.pop(key, None)
            else:
                self.other[key] = previous
            return VolumeUpdate(0, slices.shape[0] - 1, 0.0)
        for n in range(entry.first, entry.last + 1):
            self.confirmed.pop(n, None)
            self.pseudo.pop(n, None)
        self.confirmed.update(entry.confirmed)
        self.pseudo.update(entry.pseudo)
        slices[entry.first : entry.last + 1] = entry.slab
        return VolumeUpdate(entry.first, entry.last, 0.0)

    def _neighbours(self, index: int) -> tuple[int | None, int | None]:
        """The confirmed slices just below and just above `index` (None where there is none)."""
        below = max((n for n in self.confirmed if n < index), default=None)
        above = min((n for n in self.confirmed if n > index), default=None)
        return below, above

    def _gap_around(self, index: int) -> tuple[int, int]:
        """The slices a click at `index` may change: up to (not including) the confirmed slices around it."""
        below, above = self._neighbours(index)
        first = self.bounds[0] if below is None else below + 1
        last = self.bounds[1] if above is None else above - 1
        return min(first, index), max(last, index)

    def _fill(self, index: int) -> None:
        below, above = self._neighbours(index)
        self._fill_gap(below, index)
        self._fill_gap(index, above)

    def _fill_gap(self, low: int | None, high: int | None) -> None:
        """Fill the slices strictly between `low` and `high` (None: the bound on that side)."""
        slices, (lowest, highest) = self._slices(), self.bounds
        first = lowest if low is None else low + 1
        last = highest if high is None else high - 1
        if first > last:
            return
        slices[first : last + 1] = False
        for n in range(first, last + 1):
            self.pseudo.pop(n, None)
        sources = [s for s in (low, high) if s is not None and self.confirmed[s].any()]
        if len(sources) == 2 and self.interpolate is not None and self.config.interpolate_between:
            sparse = np.zeros((high - low + 1, *slices.shape[1:]), bool)
            sparse[0], sparse[-1] = self.confirmed[low], self.confirmed[high]
            try:
                slices[low : high + 1] = self.interpolate(sparse, 0)
                return
            except ValueError:  # the interpolator cannot fill these slices (too fragmented): propagate
                pass
        if not self.config.enabled:
            return
        reached: dict[int, tuple[int, np.ndarray, PseudoClicks]] = {}  # slice -> (distance, mask, clicks)
        for source in sources:
            direction = 1 if source == low else -1
            for n, mask, pseudo in self._travel(source, direction, first, last):
                distance = abs(n - source)
                if n not in reached or distance < reached[n][0]:
                    reached[n] = (distance, mask, pseudo)
        for n, (_, mask, pseudo) in reached.items():
            slices[n], self.pseudo[n] = mask, pseudo

    def _travel(self, source: int, direction: int, first: int, last: int):
        """(slice, mask, pseudo-clicks) from the source outwards until the stop rule, within [first, last]."""
        session, config = self.session, self.config
        image = np.moveaxis(session.volume, self.axis, 0)
        spacing = session.spacing
        along = spacing[self.axis]
        across = [s for a, s in enumerate(spacing) if a != self.axis]
        mask = self.confirmed[source]
        low, high = np.percentile(image[source][mask], (5, 95))
        area_mm2 = mask.sum() * across[0] * across[1]
        max_steps = max(2, int(config.extent * 2 * np.sqrt(area_mm2 / np.pi) / along))
        grow = max(1, round(config.grow_mm / min(across)))
        n, previous = source + direction, mask
        while first <= n <= last and abs(n - source) <= max_steps:
            pseudo = pseudo_clicks(previous)
            new = (session.predict_slice((self.axis, n), pseudo) > 0) & ndimage.binary_dilation(
                previous, iterations=grow
            )
            if (
                new.sum() < config.min_area_ratio * previous.sum()
                or new.sum() > config.max_area_ratio * mask.sum()
            ):
                return
            values = image[n][new]
            if np.mean((values >= low) & (values <= high)) < config.intensity_fraction:
                return
            yield n, new, pseudo
            n, previous = n + direction, new

    # ------------------------------------------------------------ interaction.CaseNetwork

    def click(self, clicks: Sequence[Click], current: np.ndarray, options: FillOptions) -> list[Block]:
        """The newest of `clicks` on its slice (the filling waits for `fill`): the slices that changed."""
        pending = self.fill(current, options)  # a filling not asked for yet is done before the next click
        self.config = dataclasses.replace(self.config, enabled=bool(options.propagate))
        self.set_bounds(*options.bounds)
        click = clicks[-1]
        before = self.mask.copy()
        self.click_slice(click, fill=False)
        if click.axis != self.axis:  # a slice of another orientation: only that slice changed
            data = np.expand_dims(np.take(self.mask, click.index, click.axis), click.axis)
            return pending + [Block(click.axis, click.index, data)]
        return pending + self._changed(before, click.index)

    def fill(self, current: np.ndarray, options: FillOptions) -> list[Block]:
        """Fill around the newest click's slice: the slices that changed (none when nothing is pending)."""
        if self._pending is None:
            return []  # nothing to compare: a whole-volume copy costs ~10 ms on a head
        before = self.mask.copy()
        self.fill_pending()
        return self._changed(before, None)

    def undo(self, current: np.ndarray) -> list[Block]:
        """Undo the newest click (the session undoes its learning): the slices that went back."""
        before = self.mask.copy()
        self.undo_click()
        return self._changed(before, None)

    def learning_slices(self, final: np.ndarray) -> dict[SliceKey, np.ndarray]:
        """The slices post-interaction learning takes from `final` (see `accepted_slices`)."""
        return self.accepted_slices(final)

    def post_interaction(self, final: np.ndarray) -> None:
        """None: the session learns `learning_slices` slice by slice."""
        return None

    def _changed(self, before: np.ndarray, include: int | None) -> list[Block]:
        """The slices of the propagation axis that differ from `before` (and slice `include` whatever it
        holds), as one block. The whole axis is compared (a few ms), so that nothing the adapter changed
        can be left out of the segment; a slice it never filled keeps what the segment has."""
        along_before, along_after = np.moveaxis(before, self.axis, 0), np.moveaxis(self.mask, self.axis, 0)
        changed = list(
            np.flatnonzero((along_before != along_after).reshape(len(along_after), -1).any(axis=1))
        )
        if include is not None:
            changed.append(include)
        if not changed:
            return []
        first, last = int(min(changed)), int(max(changed))
        return [Block(self.axis, first, np.moveaxis(along_after[first : last + 1].copy(), 0, self.axis))]

    def accepted_slices(self, final: np.ndarray | None = None) -> dict[SliceKey, np.ndarray]:
        """The slices PI learns from when the case is accepted, with their masks from `final` (the
        segment as the user left it; None: the mask shown): every clicked slice, then non-empty filled
        slices evenly spread, up to `max_slices_learned` in all (PI takes about 0.1 s a slice)."""
        final = self.mask if final is None else np.asarray(final).astype(bool)
        if final.shape != self._own.shape:
            raise CaseStateError(
                f"The accepted mask has shape {final.shape}, the volume {self._own.shape}. "
                "Accept the segment of this volume."
            )
        keys: list[SliceKey] = [(self.axis, n) for n in sorted(self.confirmed)] + sorted(self.other)
        along = np.moveaxis(final, self.axis, 0)
        filled = [
            n
            for n in np.flatnonzero(along.reshape(along.shape[0], -1).any(axis=1))
            if n not in self.confirmed
        ]
        room = max(0, self.config.max_slices_learned - len(keys))
        if filled and room:
            picks = np.unique(np.linspace(0, len(filled) - 1, min(room, len(filled))).round().astype(int))
            keys += [(self.axis, int(filled[p])) for p in picks]
        return {key: np.take(final, key[1], axis=key[0]) for key in keys}


def pseudo_clicks(previous: np.ndarray) -> PseudoClicks:
    """The click that carries a slice's mask to the next slice: positive, at its deepest point. (More
    positive clicks spread over the mask were tried: the propagated masks then leaked more.)"""
    row, col = deepest_point(previous)
    return [(float(row), float(col), True)]
