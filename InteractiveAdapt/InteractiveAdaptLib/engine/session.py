"""The interactive session: one object owns the volume, the clicks, the predictions and the learning.

The Slicer module, the CLI, the benchmark and the tests all drive this same object:
start_case -> add_click (prediction first) -> learn_pending (MI) -> ... -> finish_case (PI + save).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from InteractiveAdaptLib.engine.adaptation import AdaptationConfig, OnlineAdapter, Snapshot
from InteractiveAdaptLib.engine.case import Case
from InteractiveAdaptLib.engine.click_simulation import deepest_point
from InteractiveAdaptLib.engine.forgetting_guard import GUARD_FILE, ForgettingGuard
from InteractiveAdaptLib.engine.memory import release_freed_memory
from InteractiveAdaptLib.engine.normalization import normalize_intensity
from InteractiveAdaptLib.engine.predictor import Predictor, PreparedSlice
from InteractiveAdaptLib.engine.slice_propagation import PropagationConfig, SlicePropagation
from InteractiveAdaptLib.errors import CaseStateError, InvalidClickError
from InteractiveAdaptLib.geometry import extract_slice, in_plane_spacing
from InteractiveAdaptLib.interaction import CaseSummary, Click, Interpolator, SliceKey, SlicePrediction
from InteractiveAdaptLib.model.base_model import BaseModel, load_weights_into
from InteractiveAdaptLib.store.names import profile_name
from InteractiveAdaptLib.store.profile_store import ProfileStore, VersionInfo
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


@dataclass
class _MIStep:
    """One mid-interaction step of the open case: enough to run it again from the weights before it."""

    key: SliceKey
    previous: list[tuple[float, float, bool]]  # the slice's clicks before the newest one
    newest: tuple[float, float, bool]


@dataclass
class _UndoEntry:
    click: Click
    previous_mask: np.ndarray | None  # the slice's prediction before this click
    weights: Snapshot | None = None  # taken right before this click's MI step (dropped past undo_depth)
    step: _MIStep | None = None  # this click's MI step, once it ran


class InteractiveSession:
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
                damaged.
        """
        self.base = base
        self.config = config or SessionConfig()
        self.store, self.site, self.user = store, site, user
        self.network = base.network.to(self.config.device)
        self.predictor = Predictor(self.network, self.config.target_spacing_mm, device=self.config.device)
        self.adapter = OnlineAdapter(self.predictor, self.config.adaptation)
        self.guard: ForgettingGuard | None = None
        if self.config.forgetting_guard:
            self.guard = ForgettingGuard.load(base.directory / GUARD_FILE)
        self.rng = np.random.default_rng(self.config.seed)
        self.profile: str | None = None
        self.version: int | None = None  # the site version the weights come from (None = base)
        self.cases_learned = 0
        self.clicks_learned = 0
        # Weights (and counts) of profiles whose learning no version holds: no store, or autosave off.
        self._memory_profiles: dict[str, tuple[Snapshot, tuple[int | None, int, int]]] = {}
        self._volume: np.ndarray | None = None
        # Undo snapshots no longer needed, overwritten by the next ones (no allocation churn per click).
        self._spare_snapshots: list[Snapshot] = []
        self._undo: deque[_UndoEntry] = deque()
        self._reset_case_state()

    # ------------------------------------------------------------------ profiles
    # Every door to a profile's weights and versions goes through profile_name(): a segment may be
    # called anything ("Tumor #1", "Hippocampus (L)"), and saving, listing, rolling back and restarting
    # must all reach the same folder.

    @staticmethod
    def profile_name(name: str) -> str:
        """The learning profile a structure name maps to: its side dropped, made a safe name.

        'Hippocampus (L)' -> 'Hippocampus', 'Tumor #1' -> 'Tumor 1'.
        """
        return profile_name(name)

    def _profile_store(self, profile: str) -> ProfileStore | None:
        if self.store is None:
            return None
        return self.store.profile(self.site, profile_name(profile), self.user)

    def use_profile(self, profile: str) -> None:
        """Load the weights of the learning profile of a structure name (a new one starts from the base).

        Args:
            profile: a structure or segment name; it maps to a profile with `profile_name`.

        Raises:
            IncompatibleBaseModelError: the profile's current version (or the one it falls back to past
                damaged files) was learned from another base model.
            WeightsError: the saved weights do not fit this network, or (a profile that starts from the
                base) the shipped weight file is missing, damaged or made for another network.
            SiteStoreError: another program holds the profile's lock past the timeout, or the
                session's site or user name is invalid.
        """
        profile = profile_name(profile)
        if profile == self.profile:
            return
        # Learning that no version holds (no store, or autosave off) is kept in memory across switches.
        unsaved = self.store is None or not self.config.autosave
        if self.profile is not None and unsaved:
            counts = (self.version, self.cases_learned, self.clicks_learned)
            self._memory_profiles[self.profile] = (self.adapter.snapshot(), counts)
        self.adapter.reset_optimizer()
        self.version, self.cases_learned, self.clicks_learned = None, 0, 0
        loaded = None
        if self.store is not None and not (unsaved and profile in self._memory_profiles):
            loaded = self._profile_store(profile).load(self.base.sha256)
        if loaded is not None:
            load_weights_into(self.network, loaded.model_state, f"site '{self.site}' profile '{profile}'")
            if loaded.optimizer_state is not None:
                self.adapter.load_optimizer_state(loaded.optimizer_state)
            self.version = loaded.info.version
            self.cases_learned, self.clicks_learned = loaded.info.cases_learned, loaded.info.clicks_learned
        elif profile in self._memory_profiles:
            snapshot, (self.version, self.cases_learned, self.clicks_learned) = self._memory_profiles[profile]
            self.adapter.restore(snapshot)
        else:
            load_weights_into(self.network, self.base.fresh_state(), "the base model")
        self.network.eval()
        self.profile = profile

    def _reload_profile(self, profile: str) -> None:
        """Load the profile's weights again if it is the one in use (after its current version changed)."""
        profile = profile_name(profile)
        if self.profile == profile:
            self.profile = None
            self.use_profile(profile)

    def restart_profile_from_base(self, profile: str) -> None:
        """After the user agreed: a profile adapted from an older base model starts again from the
        shipped one (its old versions stay listed and exportable).

        Args:
            profile: a structure or segment name (mapped with `profile_name`).

        Raises:
            WeightsError: the shipped weight file is missing, damaged or made for another network.
            SiteStoreError: another program holds the profile's lock past the timeout, or the
                session's site or user name is invalid.
        """
        profile = profile_name(profile)
        if self.store is not None:
            self._profile_store(profile).restart_from_base(self.base.sha256)
        self._memory_profiles.pop(profile, None)
        if self.profile == profile:
            self.profile = None
        self.use_profile(profile)

    def saved_versions(self, profile: str) -> list[VersionInfo]:
        """The saved versions of a profile that this base model can use, newest first.

        Args:
            profile: a structure or segment name (mapped with `profile_name`).

        Returns:
            Undamaged versions learned from the installed base model; empty without a store.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout, or the
                session's site or user name is invalid.
        """
        store = self._profile_store(profile)
        if store is None:
            return []
        return store.compatible_versions(self.base.sha256)[::-1]

    def version_choices(self, profile: str) -> list[tuple[str, int]]:
        """The entries of a version list: saved versions newest first, then the base model.

        Returns:
            (label, version) pairs; the last is ("Shipped base model", 0).

        Raises:
            SiteStoreError: as `saved_versions`.
        """
        choices = [
            (f"Version {i.version} ({i.created[:10]}, {_count(i.cases_learned, 'case')})", i.version)
            for i in self.saved_versions(profile)
        ]
        return choices + [("Shipped base model", 0)]

    def provenance(self, profile: str) -> str:
        """One line for the clinician on where the weights of a profile come from.

        Returns:
            The profile's current version, its site, what it learned and when it was saved; or that the
            shipped base model is in use.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout, or the
                session's site or user name is invalid.
        """
        model = self.base.card.get("name") or self.base.directory.name
        store = self._profile_store(profile)
        info = store.current() if store is not None else None
        if info is None:
            return f"Shipped base model '{model}', not adapted to site '{self.site}' yet."
        saved = info.created[:16].replace("T", " ")
        return (
            f"Version {info.version} of site '{self.site}', profile '{store.profile}': learned from "
            f"{_count(info.cases_learned, 'case')} and {_count(info.clicks_learned, 'click')}, saved {saved} UTC "
            f"(adapted from '{model}')."
        )

    def rollback(self, profile: str, version: int) -> None:
        """Make `version` (0 = the shipped base model) the one in use for a profile, and load it now.

        Args:
            profile: a structure or segment name (mapped with `profile_name`).
            version: a version listed by `saved_versions`, or 0.

        Raises:
            CaseStateError: a case is open (finish or reset it first), or there is no site store.
            SiteStoreError: no such version, the version is damaged, another program holds the profile's
                lock past the timeout, or the session's site or user name is invalid.
            IncompatibleBaseModelError: the profile is the one in use and `version` was learned from
                another base model (the version is made current all the same).
            WeightsError: the profile is the one in use and its weights do not fit this network, or
                (version 0) the shipped weight file is missing, damaged or made for another network.
        """
        if self.case_open:
            raise CaseStateError("Finish or reset the case before changing the model version.")
        store = self._profile_store(profile)
        if store is None:
            raise CaseStateError("This session keeps no site versions, so there is nothing to roll back.")
        store.rollback(version)
        self._memory_profiles.pop(profile_name(profile), None)  # the chosen version replaces unsaved learning
        self._reload_profile(profile)

    def export_site(self, archive: str | Path) -> Path:
        """Write every profile and version of this session's site into one .zip or .tar.gz.

        Returns:
            The archive's path.

        Raises:
            CaseStateError: there is no site store.
            SiteStoreError: the site has nothing saved yet or its name is invalid, the file name ends in
                none of .zip, .tar.gz and .tgz, the file cannot be written, or another program holds a
                profile's lock past the timeout (the site is unchanged).
        """
        if self.store is None:
            raise CaseStateError("This session keeps no site versions, so there is nothing to export.")
        return self.store.export_site(self.site, archive)

    # ------------------------------------------------------------------ case lifecycle
    def _reset_case_state(self) -> None:
        self._recycle(self._undo)
        self._clicks: list[Click] = []
        self._predictions: dict[SliceKey, np.ndarray] = {}
        # Clicks the 3D propagation placed on a slice before the user's first click there: the user
        # corrects what was shown, so the slice's predictions keep them (engine/volume_case.py).
        self._hints: dict[SliceKey, list[tuple[float, float, bool]]] = {}
        self._prepared: dict[SliceKey, PreparedSlice] = {}
        self._undo: deque[_UndoEntry] = deque()
        self._steps: list[_MIStep] = []  # the MI steps the weights hold now, in order (for replay)
        self._pending: tuple | None = None
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

        Args:
            interpolate: fills the slices between clicked slices (None: propagation from both sides).
            propagation: how a slice's result travels to the next slices (None: the product's).

        Raises:
            As `start_case`.
        """
        self.start_case(volume, spacing_kji, profile, normalized=normalized)
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
        self._require_case()
        self._validate(click)
        self.learn_pending()  # learn from the previous click before this one is processed
        started = time.perf_counter()
        key = (click.axis, click.index)
        if hints and not self.slice_clicks(key):
            self._hints[key] = list(hints)
        previous_clicks = self._hints.get(key, []) + self.slice_clicks(key)
        self._undo.append(_UndoEntry(click, self._predictions.get(key)))
        self._clicks.append(click)
        prepared = self.prepared_slice(key)
        logits = self.predictor.logits(prepared, previous_clicks + [(click.row, click.col, click.positive)])
        mask = self.predictor.to_native(logits, prepared)
        self._predictions[key] = mask
        mi = self.config.adaptation.mid_interaction and (
            previous_clicks or self.config.adaptation.mi_after_first_click
        )
        if mi:
            self._pending = (key, previous_clicks, (click.row, click.col, click.positive), logits)
        return SlicePrediction(click.axis, click.index, mask, (time.perf_counter() - started) * 1000)

    def learn_pending(self) -> bool:
        """Run the mid-interaction (MI) step of the last click, if one is pending.

        Returns:
            Whether a step was applied: False when none was pending or the step was skipped as
            non-finite.
        """
        if self._pending is None:
            return False
        key, previous, newest, logits = self._pending
        self._pending = None
        entry = self._undo[-1]
        entry.weights = self.adapter.snapshot(self._spare_snapshots.pop() if self._spare_snapshots else None)
        entry.step = _MIStep(key, previous, newest)
        self._steps.append(entry.step)
        self._trim_undo()
        # The undo snapshot doubles as the step's rollback point (one copy of the weights per click).
        return self._run_step(entry.step, logits, entry.weights)

    def _run_step(self, step: _MIStep, logits, before: Snapshot) -> bool:
        prepared = self.prepared_slice(step.key)
        grid = prepared.to_grid(step.previous + [step.newest])
        return self.adapter.mid_interaction(prepared, grid[:-1], grid[-1], logits, before)

    def _replay_steps(self) -> None:
        """The weights as the case's remaining MI steps made them, computed again from the case start:
        the same steps on the same inputs give the same weights bit for bit. Used by an undo that goes
        past the kept snapshots, so memory stays bounded and undo exact at any depth."""
        self.adapter.restore(self._case_start)
        before = self._spare_snapshots.pop() if self._spare_snapshots else None
        for step in self._steps:
            # The prediction each step learns from, made with the weights it was made with then.
            logits = self.predictor.logits(self.prepared_slice(step.key), step.previous + [step.newest])
            before = self.adapter.snapshot(before)
            self._run_step(step, logits, before)
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
            self._steps.remove(entry.step)  # the newest step: later clicks are undone already
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

    def finish_case(
        self,
        accepted: dict[SliceKey, np.ndarray] | None = None,
        learn: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> CaseSummary:
        """Accept the case: PI on every edited slice with the accepted masks, then save the site version.

        On InvalidClickError, IncompatibleBaseModelError or SiteStoreError the case stays open, with
        the PI steps taken so far applied to the weights.

        Args:
            accepted: (axis, index) -> the final mask of that slice (read back from the segment, so
                manual corrections count); None accepts the predictions as they are. A slice that was
                only painted gets a synthetic first click at its mask's centre.
            learn: False closes the case without learning: its MI steps are undone, nothing is saved.
            should_stop: asked between post-interaction steps (the GUI's Cancel); once it answers True
                the case ends as with learn=False and the summary says it was cancelled.

        Returns:
            What was learned, and the version saved (None when nothing was saved).

        Raises:
            CaseStateError: no case is open.
            InvalidClickError: when learning, a non-empty mask of `accepted` is keyed by no slice of
                the volume.
            IncompatibleBaseModelError: another program saved a version of the profile from another
                base model since it was loaded here.
            SiteStoreError: the new version cannot be saved: the disk is full, the folder is not
                writable, or another program holds the profile's lock past the timeout.
        """
        self._require_case()
        self.learn_pending()
        masks = dict(self._predictions) if accepted is None else dict(accepted)
        started = time.perf_counter()
        steps = slices = 0
        n_clicks = len(self._clicks)
        if not learn or self.config.adaptation.mi_scope == "case":
            self.adapter.restore(self._case_start)  # case-local MI (only PI persists) or no learning
        guard_before = pre_pi = None
        if learn and self.config.adaptation.post_interaction and self.guard is not None:
            guard_before, pre_pi = self.guard.score(self.predictor), self.adapter.snapshot()
        cancelled = False
        if learn and self.config.adaptation.post_interaction:
            for key, mask in masks.items():
                if should_stop is not None and should_stop():
                    cancelled = True
                    break
                mask = np.asarray(mask).astype(bool)
                first = self._first_click(key, mask)
                if first is None:
                    continue
                prepared = self.prepared_slice(key)
                labels = prepared.labels_to_grid(mask)
                steps += self.adapter.post_interaction(
                    prepared, prepared.to_grid([first])[0], labels, self.rng
                )
                slices += 1
        if cancelled or (learn and should_stop is not None and should_stop()):
            self.adapter.restore(self._case_start)  # as if closed without learning
            learn, cancelled, steps, slices = False, True, 0, 0
        reverted = False
        if guard_before is not None and steps:
            after = self.guard.score(self.predictor)
            if not self.guard.allows(guard_before, after):
                self.adapter.restore(pre_pi)
                steps, reverted = 0, True
                log.warning(
                    "post-interaction update reverted: held-out source Dice fell from %.3f to %.3f",
                    guard_before,
                    after,
                )
        learn_ms = (time.perf_counter() - started) * 1000
        version = None
        if learn and (steps or (self.config.adaptation.mid_interaction and n_clicks)):
            self.cases_learned += 1
            self.clicks_learned += n_clicks
            version = self._save() if self.config.autosave else None
        self._volume = None
        self._reset_case_state()
        release_freed_memory()  # what the case freed; the recycled undo snapshots stay for the next case
        return CaseSummary(slices, n_clicks, steps, learn_ms, version, reverted, cancelled)

    def _first_click(self, key: SliceKey, mask: np.ndarray) -> tuple[float, float, bool] | None:
        """PI stage 1's click: the slice's first positive click (the paper's first click is always
        positive; a user may start with a negative one), else one at the accepted mask's centre."""
        positive = [c for c in self.slice_clicks(key) if c[2]]
        if positive:
            return positive[0]
        if not mask.any():
            return None
        r, c = deepest_point(mask)
        return (float(r), float(c), True)

    def _save(self) -> int | None:
        profile_store = self._profile_store(self.profile)
        if profile_store is None:
            return None
        info = profile_store.save(
            {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
            self.adapter.optimizer.state_dict(),
            base_sha256=self.base.sha256,
            cases_learned=self.cases_learned,
            clicks_learned=self.clicks_learned,
        )
        self.version = info.version
        return info.version


def _count(n: int, noun: str) -> str:
    """'1 case', '2 cases'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
