"""Finishing a case: post-interaction learning (PI) on the accepted slices, the forgetting guard, and
saving the profile's new version. Mixed into InteractiveSession (engine/session.py), whose case, adapter
and store it uses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from InteractiveAdaptLib.engine.click_simulation import deepest_point
from InteractiveAdaptLib.engine.memory import release_freed_memory
from InteractiveAdaptLib.errors import InteractiveAdaptError
from InteractiveAdaptLib.interaction import CaseSummary, PostInteraction, SliceKey

log = logging.getLogger(__name__)


class CaseFinish:
    """Finish case for an InteractiveSession (a mixin: the session holds the state)."""

    def finish_case(
        self,
        accepted: dict[SliceKey, np.ndarray] | None = None,
        learn: bool = True,
        should_stop: Callable[[], bool] | None = None,
        post_interaction: PostInteraction | None = None,
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
            post_interaction: the case network's own PI (the 3D network learns from the accepted 3D
                mask), used instead of the slice-by-slice PI on `accepted`.

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
        guard_before = None
        # The weights before PI: the guard may go back to them, and so does a save that fails (the case
        # stays open and a retry learns it once, not twice).
        pre_pi = self.adapter.snapshot() if learn else None
        rng_state = self.rng.bit_generator.state
        if learn and self.config.adaptation.post_interaction and self.guard is not None:
            guard_before = self.guard.score(self.predictor)
        cancelled = False
        if learn and self.config.adaptation.post_interaction:
            learner = post_interaction or (lambda stop: self.learn_slices(masks, stop))
            steps, slices, cancelled = learner(should_stop)
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
            self.save_warning = ""
            try:
                version = self._save() if self.config.autosave else None
            except InteractiveAdaptError:
                self.cases_learned -= 1
                self.clicks_learned -= n_clicks
                self.adapter.restore(pre_pi)
                self.rng.bit_generator.state = rng_state
                raise
        self._volume = None
        self._reset_case_state()
        release_freed_memory()  # what the case freed; the recycled undo snapshots stay for the next case
        warning = self.save_warning if version is not None else ""
        return CaseSummary(slices, n_clicks, steps, learn_ms, version, reverted, cancelled, warning)

    def learn_slices(
        self, masks: dict[SliceKey, np.ndarray], should_stop: Callable[[], bool] | None
    ) -> tuple[int, int, bool]:
        """PI slice by slice (the 2D network) on the accepted masks: (steps applied, slices learned,
        cancelled)."""
        steps = slices = 0
        for key, mask in masks.items():
            if should_stop is not None and should_stop():
                return steps, slices, True
            mask = np.asarray(mask).astype(bool)
            first = self._first_click(key, mask)
            if first is None:
                continue
            prepared = self.prepared_slice(key)
            labels = prepared.labels_to_grid(mask)
            steps += self.adapter.post_interaction(prepared, prepared.to_grid([first])[0], labels, self.rng)
            slices += 1
        return steps, slices, False

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
