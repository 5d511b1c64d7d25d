"""The volumetric benchmark's simulated user and the methods it clicks with.

A case is one structure in one volume. The user looks at the 3D result and clicks where it is worst: in
the view (axial, coronal or sagittal, as far as the method lets them) and slice with the most wrong
voxels, the centre of the largest error component there (positive on a miss, negative on a spill); the
first click goes to the centre of the structure's largest axial cross-section. After each click the 3D
Dice of what the method shows is recorded.

Methods (each a way of turning clicks into a 3D mask, without learning unless asked):
- `per-slice`: a click segments its own axial slice only (the 2D network).
- `fill-between-k<K>`: the user clicks only every K-th axial slice (the largest-error one among them) and
  ITK's morphological contour interpolation (Slicer's "Fill between slices") fills the slices between.
- `slice-network`: the product's case with the 2D network (engine/slice_propagation.py): a click
  segments its slice; interpolation between clicked slices and propagation beyond them fill the rest.
- `volume-network`: the product's case with the 3D network (engine/volume_network.py): every click gives
  the whole structure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from InteractiveAdaptLib.engine.case import Case
from InteractiveAdaptLib.engine.click_simulation import first_click, next_click
from InteractiveAdaptLib.interaction import Click, FillOptions, Interpolator
from InteractiveAdaptLib.mrml.contour_interpolation import TooFragmented, contour_interpolation

MAX_CLICKS = 30
AXIS = 0  # the volumes' K axis: axial slices for Colin27 and MNI152 as stored
ALL_VIEWS = (0, 1, 2)


def dice3d(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two 3D masks (1.0 when both are empty)."""
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def per_slice(mask: np.ndarray, axis: int = AXIS) -> np.ndarray:
    """The voxels of `mask` in each slice along `axis`."""
    return np.moveaxis(mask, axis, 0).reshape(mask.shape[axis], -1).sum(axis=1)


def make_session(model_dir: Path, learn: bool = False):
    """A model in a session; without `learn` it never learns (the methods' clicks only), with it it
    learns as the product does (no store: each structure's profile is kept in memory)."""
    from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
    from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
    from InteractiveAdaptLib.model.base_model import load_base_model

    adaptation = (
        AdaptationConfig() if learn else AdaptationConfig(mid_interaction=False, post_interaction=False)
    )
    return InteractiveSession(load_base_model(model_dir), SessionConfig(adaptation=adaptation))


class PerSlice:
    """Each click segments its own slice (every click of that slice counts); nothing else changes."""

    name = "per-slice"
    views: tuple[int, ...] = (AXIS,)

    def __init__(self, session) -> None:
        self.session = session
        self.last_summary = None

    def start(self, image: np.ndarray, spacing_kji, profile: str) -> None:
        """A new case on a normalised volume."""
        self.session.start_case(image, spacing_kji, profile, normalized=True)

    def finish(self, learn: bool):
        """End the case (the baselines never learn)."""
        return self.session.finish_case(None, learn=False)

    def allowed(self, target: np.ndarray) -> np.ndarray:
        """The axial slices the user may click (all)."""
        return np.ones(target.shape[AXIS], bool)

    def click(self, click: Click, shown: np.ndarray) -> np.ndarray:
        prediction = self.session.add_click(click)
        shown = shown.copy()
        np.moveaxis(shown, prediction.axis, 0)[prediction.index] = prediction.mask > 0
        return shown


class FillBetween(PerSlice):
    """The user clicks every k-th slice; contour interpolation fills the slices between clicked ones.

    After a click only the gaps next to its slice are interpolated again (ITK fills each gap from the
    two labelled slices around it): the same result as interpolating the whole stack, in a fraction of
    the time for large structures such as the brain.
    """

    def __init__(self, session, step: int, interpolate: Interpolator = contour_interpolation) -> None:
        super().__init__(session)
        self.step, self.interpolate = step, interpolate
        self.name = f"fill-between-k{step}"
        self._clicked: np.ndarray | None = None  # the clicked slices' masks (empty elsewhere)
        self._filled: np.ndarray | None = None

    def start(self, image: np.ndarray, spacing_kji, profile: str) -> None:
        super().start(image, spacing_kji, profile)
        self._clicked = self._filled = None

    def allowed(self, target: np.ndarray) -> np.ndarray:
        """Every k-th slice, counted from the structure's largest cross-section (where the user starts)."""
        start = int(np.argmax(per_slice(target)))
        return (np.arange(target.shape[AXIS]) - start) % self.step == 0

    def click(self, click: Click, shown: np.ndarray) -> np.ndarray:
        if self._clicked is None or self._clicked.shape != shown.shape:
            self._clicked, self._filled = np.zeros(shown.shape, bool), np.zeros(shown.shape, bool)
        prediction = self.session.add_click(click)
        index = prediction.index
        clicked = np.moveaxis(self._clicked, AXIS, 0)
        clicked[index] = prediction.mask > 0
        labelled = np.flatnonzero(clicked.any(axis=(1, 2)))
        low = max((int(n) for n in labelled if n < index), default=index)
        high = min((int(n) for n in labelled if n > index), default=index)
        filled = np.moveaxis(self._filled, AXIS, 0)
        try:
            filled[low : high + 1] = np.moveaxis(
                self.interpolate(np.moveaxis(clicked[low : high + 1], 0, AXIS), AXIS), AXIS, 0
            )
        except TooFragmented:  # ITK cannot label this many pieces: these slices stay unfilled
            filled[low : high + 1] = clicked[low : high + 1]
        return self._filled.copy()


class ProductCase(PerSlice):
    """The product's case (engine/case.py) with the session's network: the slice network (with
    interpolation between clicked slices and propagation beyond them) or the 3D network. Clicks from
    every view."""

    views = ALL_VIEWS

    def __init__(self, session, name: str, interpolate: Interpolator | None = contour_interpolation) -> None:
        super().__init__(session)
        self.name, self.interpolate = name, interpolate
        self.case: Case | None = None

    def start(self, image: np.ndarray, spacing_kji, profile: str) -> None:
        self.case = self.session.open_case(image, spacing_kji, profile, self.interpolate, normalized=True)

    def click(self, click: Click, shown: np.ndarray) -> np.ndarray:
        self.case.click(click, FillOptions())
        return self.case.mask.copy()

    def finish(self, learn: bool):
        """Accept the 3D result as shown: with `learn`, PI as the product does it."""
        return self.case.finish(None, learn=learn)


def click_mode(seed: int) -> str:
    """Seed 0 clicks the centre of each region, as the 2D benchmark does; other seeds click a random
    point of it (the centre rule alone would make every seed the same run)."""
    return "center" if seed == 0 else "random"


def user_click(
    shown: np.ndarray,
    target: np.ndarray,
    views: tuple[int, ...],
    allowed: np.ndarray,
    mode: str,
    rng: np.random.Generator,
) -> Click | None:
    """The next click: in the view and slice with the most wrong voxels (axial slices only where
    `allowed`), at the largest error component there. None when nothing is wrong where one may click."""
    wrong = shown != target
    best: tuple[int, int, int] | None = None  # (wrong voxels, axis, index)
    for axis in views:
        errors = per_slice(wrong, axis)
        if axis == AXIS:
            errors = np.where(allowed, errors, 0)
        index = int(np.argmax(errors))
        if errors[index] and (best is None or errors[index] > best[0]):
            best = (int(errors[index]), axis, index)
    if best is None:
        return None
    _, axis, index = best
    found = next_click(np.take(shown, index, axis), np.take(target, index, axis), mode, rng)
    if found is None:
        return None
    row, col, positive = found
    return Click(axis, index, row, col, positive)


def play_case(
    method,
    image: np.ndarray,
    spacing_kji,
    target: np.ndarray,
    seed: int,
    profile: str = "benchmark",
    learn: bool = False,
    on_click: Callable[[np.ndarray], None] | None = None,
    max_clicks: int = MAX_CLICKS,
) -> tuple[list[float], float]:
    """One case: (3D Dice after each click, up to MAX_CLICKS; seconds of compute). With `learn`, the
    session learns as in the product (MI after each click, PI on the accepted 3D result at the end)."""
    rng = np.random.default_rng(seed)
    mode = click_mode(seed)
    allowed = method.allowed(target)
    shown = np.zeros(target.shape, bool)
    method.start(image, spacing_kji, profile)
    curve, compute = [], 0.0
    index = int(np.argmax(per_slice(target)))  # the largest axial cross-section
    first = first_click(np.take(target, index, AXIS), mode, rng)
    click = Click(AXIS, index, *first) if first is not None else None
    while click is not None and len(curve) < max_clicks:
        started = time.perf_counter()
        shown = method.click(click, shown)
        compute += time.perf_counter() - started
        curve.append(dice3d(shown, target))
        if on_click is not None:
            on_click(shown)
        click = user_click(shown, target, method.views, allowed, mode, rng)
    started = time.perf_counter()
    method.last_summary = method.finish(learn)
    compute += time.perf_counter() - started
    curve += [curve[-1] if curve else 0.0] * (MAX_CLICKS - len(curve))  # nothing left to click: it stays
    return curve, compute


def noc(curve: list[float], level: float) -> int:
    """Clicks to reach `level` 3D Dice (MAX_CLICKS when never reached)."""
    hit = np.flatnonzero(np.asarray(curve) >= level)
    return int(hit[0]) + 1 if len(hit) else MAX_CLICKS
