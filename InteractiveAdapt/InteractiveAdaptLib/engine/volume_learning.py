"""Learning of the 3D network at the site (docs/method.md's MI and PI, on crops instead of slices).

- MI after click t: pull f(I, C_{t-1}, M_{t-2}) (what the network saw before the newest click) towards
  y_t, the answer with the newest click, on the newest click's crop; DF + CCG on the newest click.
- PI at Finish: stage 1 pulls f(I, first click, empty result) towards the accepted 3D mask; stage 2 clicks
  the errors of stage 1 (one click per error component, largest first) with stage 1's answer fed back as
  the current result, and pulls that towards the accepted mask too.
Each step is one guarded Adam step of the session's adapter (engine/adaptation.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from InteractiveAdaptLib.engine.adaptation import Snapshot
from InteractiveAdaptLib.engine.click_simulation import deepest_point, error_clicks
from InteractiveAdaptLib.engine.losses import SegmentationLoss
from InteractiveAdaptLib.engine.volume_crop import CROP_SIZE, Crop, choose_crop, sample
from InteractiveAdaptLib.engine.volume_predictor import click_points, mask_corners

VOLUME_CCG_SIGMA = 2.0  # crop voxels, as in training (interactive_adapt_lab/training/volume_training.py)


def volume_loss(session) -> SegmentationLoss:
    """DF + the session's CCG weight on crops (the CCG sum per crop voxel, as in training)."""
    return SegmentationLoss(session.config.adaptation.ccg_weight, VOLUME_CCG_SIGMA, CROP_SIZE**3)


@dataclass(eq=False)
class VolumeStep:
    """One MI step of the 3D network: enough to run it again from the same weights, bit for bit."""

    image: torch.Tensor  # the case's (1, K, J, I) volume
    crop: Crop  # the newest click's crop
    points: np.ndarray  # the clicks before the newest, native (n, 3)
    signs: np.ndarray
    previous: np.ndarray | None  # the result before the previous click (M_{t-2}); None: empty
    labels: torch.Tensor  # y_t on the crop, (S, S, S) long
    newest: tuple  # the newest click in crop coordinates (k, j, i, positive)

    def run(self, session, before: Snapshot) -> bool:
        inputs = session.volume_predictor.inputs(
            self.image, self.crop, self.points, self.signs, self.previous
        )
        loss = volume_loss(session)
        applied, _ = session.adapter.guarded_update(
            inputs, lambda logits: loss(logits, self.labels[None], [[self.newest]]), before
        )
        return applied


def crop_click(crop: Crop, point: np.ndarray, positive: bool) -> tuple:
    """A native click (k, j, i) as (k, j, i, positive) in crop coordinates."""
    k, j, i = crop.to_crop(point)[0]
    return (float(k), float(j), float(i), bool(positive))


def deepest_voxel(mask: np.ndarray) -> np.ndarray:
    """The voxel of a non-empty 3D mask farthest from its edge, through its largest cross-section (a
    clinician's first click)."""
    k = int(np.argmax(mask.reshape(mask.shape[0], -1).sum(axis=1)))
    row, col = deepest_point(mask[k])
    return np.array([k, row, col], dtype=np.float64)


def post_interaction(
    session,
    image: torch.Tensor,
    final: np.ndarray,
    first: np.ndarray | None,
    should_stop: Callable[[], bool] | None,
) -> tuple[int, int, bool]:
    """PI on the accepted 3D mask `final` (bool (K, J, I)) with the case's first positive click (native;
    None: the mask's deepest voxel). Returns (steps applied, crops learned, cancelled)."""
    if not final.any():
        return 0, 0, False
    first = deepest_voxel(final) if first is None else np.asarray(first, dtype=np.float64)
    crop = choose_crop(np.vstack([mask_corners(final), first]), session.spacing)
    predictor, adapter, loss = session.volume_predictor, session.adapter, volume_loss(session)
    labels = (sample(torch.from_numpy(final)[None], crop, edge=False)[0] > 0.5).long()
    click = crop_click(crop, first, True)
    inputs = predictor.inputs(image, crop, click_points(first), np.array([True]), None)
    applied1, logits = adapter.guarded_update(inputs, lambda out: loss(out, labels[None], [[click]]))
    if should_stop is not None and should_stop():
        return int(applied1), 1, True
    stage1 = (logits[0, 1] > logits[0, 0]).cpu().numpy()
    count = session.config.adaptation.pi_stage2_clicks
    extra = error_clicks(stage1, labels.cpu().numpy(), count, "random", session.rng)
    if not extra:  # stage 1 is right: nothing to click on
        return int(applied1), 1, False
    balls_at = np.array([c[:3] for c in extra], dtype=np.float64)
    signs = np.array([c[3] for c in extra], bool)
    native = crop.to_native(balls_at)  # the input is built from native points, as for any click
    stage1_native = predictor.to_native(logits, crop, final.shape)
    inputs = predictor.inputs(image, crop, native, signs, stage1_native)
    clicks = [tuple(float(v) for v in c[:3]) + (bool(c[3]),) for c in extra]
    applied2, _ = adapter.guarded_update(inputs, lambda out: loss(out, labels[None], [clicks]))
    return int(applied1) + int(applied2), 1, False
