"""The interactive session: one object owns the volume, the clicks, the predictions and the learning.

The Slicer module, the CLI, the benchmark and the tests all drive this same object:
start_case -> add_click (prediction first) -> learn_pending (MI) -> ... -> finish_case (PI + save).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from InteractiveAdaptLib.engine.adaptation import AdaptationConfig, OnlineAdapter, Snapshot
from InteractiveAdaptLib.engine.case import Case
from InteractiveAdaptLib.engine.case_finish import CaseFinish
from InteractiveAdaptLib.engine.click_undo import ClickUndo, LearningStep, MIStep, UndoEntry
from InteractiveAdaptLib.engine.forgetting_guard import GUARD_FILE, ForgettingGuard
from InteractiveAdaptLib.engine.memory import release_freed_memory
from InteractiveAdaptLib.engine.normalization import normalize_intensity
from InteractiveAdaptLib.engine.predictor import Predictor, PreparedSlice
from InteractiveAdaptLib.engine.profiles import SessionProfiles
from InteractiveAdaptLib.engine.slice_propagation import PropagationConfig, SlicePropagation
from InteractiveAdaptLib.engine.volume_network import VolumeNetwork
from InteractiveAdaptLib.engine.volume_predictor import VolumePredictor
from InteractiveAdaptLib.errors import CaseStateError, InvalidClickError, WeightsError
from InteractiveAdaptLib.geometry import extract_slice, in_plane_spacing
from InteractiveAdaptLib.interaction import Click, Interpolator, SliceKey, SlicePrediction
from InteractiveAdaptLib.model.base_model import BaseModel
from InteractiveAdaptLib.store.site_store import SiteStore

log = logging.getLogger(__name__)


@dataclass
class SessionConfig:
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)
    undo_depth: int = 8  # weight snapshots kept for undo (bounded memory); deeper undos replay MI steps
    autosave: bool = True
    target_spacing_mm: float = 1.0
    device: str = "cpu"
    seed: int = 0
    # Revert a post-interaction update that costs the held-out source slices more than the guard's
    # threshold (needs the model's guard_slices.npz).
    forgetting_guard: bool = False


class InteractiveSession(SessionProfiles, ClickUndo, CaseFinish):
    """Click-based segmentation of one case at a time, learning from clicks and accepted cases."""

    def __init__(
        self,
        base: BaseModel,
        config: SessionConfig | None = None,
        store: SiteStore | None = None,
        site: str = "default",
        user: str | None = None,
    ):
        """A session on a base model; with no `store`, learned weights live in memory only.

        Raises:
            WeightsError: `config.forgetting_guard` is on and the model's guard_slices.npz is missing or
                damaged, or the model is a 3D one (the guard scores 2D slices).
        """
        self.base = base
        self.config = config or SessionConfig()
        self.store, self.site, self.user = store, site, user
        self.network = base.network.to(self.config.device)
        self.predictor = Predictor(self.network, self.config.target_spacing_mm, device=self.config.device)
        # A 3D base model sees whole structures (engine/volume_network.py); a 2D one, slices.
        self.volume_predictor: VolumePredictor | None = None
        if self.network.config.spatial_dims == 3:
            self.volume_predictor = VolumePredictor(self.network, device=self.config.device)
        self.adapter = OnlineAdapter(self.predictor, self.config.adaptation)
        self.guard: ForgettingGuard | None = None
        if self.config.forgetting_guard:
            if self.volume_predictor is not None:
                raise WeightsError(
                    f"The forgetting guard checks 2D slices, and the model '{base.directory.name}' is a 3D "
                    "network. Turn the forgetting guard off to use this model."
                )
            self.guard = ForgettingGuard.load(base.directory / GUARD_FILE)
        self.rng = np.random.default_rng(self.config.seed)
        self.profile: str | None = None
        self.version: int | None = None  # the site version the weights come from (None = base)
        self.cases_learned = 0
        self.save_warning = ""  # what the last save had to tell the user (another writer saved meanwhile)
        self.clicks_learned = 0
        # Weights (and counts) of profiles whose learning no version holds: no store, or autosave off.
        self._memory_profiles: dict[str, tuple[Snapshot, tuple[int | None, int, int]]] = {}
        self._volume: np.ndarray | None = None
        # Undo snapshots no longer needed, overwritten by the next ones (no allocation churn per click).
        self._spare_snapshots: list[Snapshot] = []
        self._undo: deque[UndoEntry] = deque()
        self._reset_case_state()

    # ------------------------------------------------------------------ case lifecycle
    def _reset_case_state(self) -> None:
        self._recycle(self._undo)
        self._clicks: list[Click] = []
        self._predictions: dict[SliceKey, np.ndarray] = {}
        # Clicks the 3D propagation placed on a slice before the user's first click there: the user
        # corrects what was shown, so the slice's predictions keep them (engine/slice_propagation.py).
        self._hints: dict[SliceKey, list[tuple[float, float, bool]]] = {}
        self._prepared: dict[SliceKey, PreparedSlice] = {}
        self._undo: deque[UndoEntry] = deque()
        self._steps: list[LearningStep] = []  # the MI steps the weights hold now, in order (for replay)
        self._pending: LearningStep | None = None
        self._case_start: Snapshot | None = None

    def start_case(
        self,
        volume: np.ndarray,
        spacing_kji: tuple[float, float, float],
        profile: str,
        normalized: bool = False,
    ) -> None:
        """Open a case on a (K, J, I) volume with the weights of a structure's profile.

        A case still open is dropped, without PI or saving.

        Args:
            spacing_kji: voxel size in mm along K, J and I.
            profile: a structure or segment name (mapped with `profile_name`).
            normalized: True when the intensities are already z-scored; else they are normalised here.

        Raises:
            CaseStateError: the volume is not a non-empty 3D array of real numbers, or a spacing is not
                a positive finite number.
            IncompatibleBaseModelError: as `use_profile`.
            WeightsError: as `use_profile`.
            SiteStoreError: as `use_profile`.
        """
        volume = np.asarray(volume)
        if volume.ndim != 3 or min(volume.shape) < 1:
            raise CaseStateError(
                f"The image has shape {volume.shape}; a 3D scalar volume is needed. Choose a grey-scale MRI volume."
            )
        if not np.issubdtype(volume.dtype, np.number) or np.iscomplexobj(volume):
            raise CaseStateError(
                "The image does not hold grey-scale intensities. Choose a scalar MRI volume."
            )
        if len(spacing_kji) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing_kji):
            raise CaseStateError(f"The voxel spacing {spacing_kji} is not valid. Check the image's geometry.")
        self.use_profile(profile)
        self._reset_case_state()
        self._volume = volume.astype(np.float32) if normalized else normalize_intensity(volume)
        self._spacing = tuple(float(s) for s in spacing_kji)
        # Reset, "don't learn from this case" and case-local MI all return to these weights.
        self._case_start = self.adapter.snapshot()

    def open_case(
        self,
        volume: np.ndarray,
        spacing_kji: tuple[float, float, float],
        profile: str,
        interpolate: Interpolator | None = None,
        normalized: bool = False,
        propagation: PropagationConfig | None = None,
    ) -> Case:
        """Start a case (as `start_case`) and return the object that owns it from its first click to
        its finish: every front end drives the case through it.

        A 3D base model answers every click with the whole structure (engine/volume_network.py); a 2D
        one predicts the clicked slices and fills the structure between and beyond them
        (engine/slice_propagation.py).

        Args:
            interpolate: (2D) fills the slices between clicked slices (None: propagation from both sides).
            propagation: (2D) how a slice's result travels to the next slices (None: the product's).

        Raises:
            As `start_case`.
        """
        self.start_case(volume, spacing_kji, profile, normalized=normalized)
        if self.volume_predictor is not None:
            return Case(self, lambda: VolumeNetwork(self))
        return Case(self, lambda: SlicePropagation(self, 0, interpolate, propagation))

    def _require_case(self) -> None:
        if self._volume is None:
            raise CaseStateError("No case is open. Choose a volume and start a case first.")

    @property
    def clicks(self) -> list[Click]:
        """The clicks of the open case, oldest first (a copy; empty when no case is open)."""
        return list(self._clicks)

    @property
    def volume(self) -> np.ndarray:
        """The open case's volume, normalised, (K, J, I)."""
        self._require_case()
        return self._volume

    @property
    def spacing(self) -> tuple[float, float, float]:
        """The open case's voxel size in mm along K, J and I."""
        self._require_case()
        return self._spacing

    @property
    def case_open(self) -> bool:
        """Whether a case is started and not finished yet (a reset keeps it open)."""
        return self._volume is not None

    def prepared_slice(self, key: SliceKey) -> PreparedSlice:
        """The slice (axis, index) of the open case on the network's grid (cached for the case).

        Call it only while a case is open.

        Raises:
            InvalidClickError: the axis is not 0, 1 or 2, or the index is outside the volume.
        """
        if key not in self._prepared:
            image = extract_slice(self._volume, *key)
            self._prepared[key] = self.predictor.prepare(image, in_plane_spacing(self._spacing, key[0]))
        return self._prepared[key]

    def predict_slice(self, key: SliceKey, clicks: list[tuple[float, float, bool]]) -> np.ndarray:
        """The mask the network gives slice `key` of the open case for these (row, col, positive)
        clicks, without recording them (the 3D propagation's pseudo-clicks).

        Returns:
            A uint8 mask on the slice's own grid.

        Raises:
            InvalidClickError: the axis is not 0, 1 or 2, or the index is outside the volume.
        """
        prepared = self.prepared_slice(key)
        return self.predictor.to_native(self.predictor.logits(prepared, clicks), prepared)

    def slice_clicks(
        self, key: SliceKey, clicks: list[Click] | None = None
    ) -> list[tuple[float, float, bool]]:
        """The clicks on one slice, as the predictor takes them.

        Returns:
            (row, col, positive) of each click of the open case (or of `clicks`) on the slice `key` =
            (axis, index), oldest first.
        """
        return [
            (c.row, c.col, c.positive)
            for c in (clicks if clicks is not None else self._clicks)
            if (c.axis, c.index) == key
        ]

    def _validate(self, click: Click) -> None:
        if click.axis not in (0, 1, 2):
            raise InvalidClickError(
                f"Unknown slice orientation {click.axis}. Click in an axial, coronal or sagittal view."
            )
        extract_slice(self._volume, click.axis, click.index)  # raises for a slice outside the volume
        shape = [s for a, s in enumerate(self._volume.shape) if a != click.axis]
        if not (0 <= click.row < shape[0] and 0 <= click.col < shape[1]):
            raise InvalidClickError(
                f"The point ({click.row}, {click.col}) is outside the image (slice size {shape[0]} x {shape[1]}). "
                "Click inside the image."
            )

    def add_click(
        self, click: Click, hints: list[tuple[float, float, bool]] | None = None
    ) -> SlicePrediction:
        """Predict the slice of `click` from it and the slice's earlier clicks.

        `hints`, given with the first click on a slice, are clicks placed by the 3D propagation there
        (row, col, positive): this and later predictions of the slice use them too, before the user's.

        The pending MI step of the previous click runs first; the MI step of this click (if MI is on,
        and after a slice's first click only with `mi_after_first_click`) waits for `learn_pending`.

        Returns:
            The slice's new mask and the prediction's latency.

        Raises:
            CaseStateError: no case is open.
            InvalidClickError: the click's axis is not 0, 1 or 2, or its slice or point is outside the
                image.
        """
        key = (click.axis, click.index)
        self.record_click(click, self._predictions.get(key))  # learns from the previous click first
        started = time.perf_counter()
        earlier = self.slice_clicks(key)[:-1]  # the slice's clicks before this one
        if hints and not earlier:
            self._hints[key] = list(hints)
        previous_clicks = self._hints.get(key, []) + earlier
        prepared = self.prepared_slice(key)
        logits = self.predictor.logits(prepared, previous_clicks + [(click.row, click.col, click.positive)])
        mask = self.predictor.to_native(logits, prepared)
        self._predictions[key] = mask
        mi = self.config.adaptation.mid_interaction and (
            previous_clicks or self.config.adaptation.mi_after_first_click
        )
        if mi:
            self._pending = MIStep(key, previous_clicks, (click.row, click.col, click.positive), logits)
        return SlicePrediction(click.axis, click.index, mask, (time.perf_counter() - started) * 1000)

    def learn_pending(self) -> bool:
        """Run the mid-interaction (MI) step of the last click, if one is pending.

        Returns:
            Whether a step was applied: False when none was pending or the step was skipped as
            non-finite.
        """
        if self._pending is None:
            return False
        step, self._pending = self._pending, None
        entry = self._undo[-1]
        entry.weights = self.adapter.snapshot(self._spare_snapshots.pop() if self._spare_snapshots else None)
        entry.step = step
        self._steps.append(step)
        self._trim_undo()
        # The undo snapshot doubles as the step's rollback point (one copy of the weights per click).
        return step.run(self, entry.weights)

    def record_click(self, click: Click, previous_mask: np.ndarray | None = None) -> None:
        """Record a click: the previous click's MI step runs first, then the click joins the case's
        clicks and their undo (`previous_mask`: its slice's mask before it, for the 2D network). A case
        network that predicts by itself (the 3D network) hands its MI step over with `set_pending_step`
        once its result is known.

        Raises:
            CaseStateError: no case is open.
            InvalidClickError: the click's axis is not 0, 1 or 2, or its slice or point is outside the
                image.
        """
        self._require_case()
        self._validate(click)
        self.learn_pending()
        self._undo.append(UndoEntry(click, previous_mask))
        self._clicks.append(click)

    def set_pending_step(self, step: LearningStep) -> None:
        """The newest click's MI step (made by its case network), run by `learn_pending` (if MI is on)."""
        if self.config.adaptation.mid_interaction:
            self._pending = step

    def prediction(self, axis: int, index: int) -> np.ndarray | None:
        """The mask now shown on one slice of the open case.

        Returns:
            The uint8 mask of slice (axis, index), or None when that slice has no prediction.
        """
        return self._predictions.get((axis, index))

    def reset_case(self) -> None:
        """Drop the clicks and predictions of the open case and undo its MI steps; the case stays open.

        Raises:
            CaseStateError: no case is open.
        """
        self._require_case()
        self._pending = None
        start = self._case_start
        self.adapter.restore(start)
        volume, spacing = self._volume, self._spacing
        self._reset_case_state()
        self._volume, self._spacing, self._case_start = volume, spacing, start
        release_freed_memory()
