"""Online adaptation (docs/method.md, section 5): one Adam optimiser for the whole stream;
mid-interaction (MI) and post-interaction (PI) steps with DF + w * CCG (the paper uses w = 200, the
product's default `ccg_weight` is 50); guards against non-finite steps; weight snapshots."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch

from InteractiveAdaptLib.engine.click_simulation import error_clicks
from InteractiveAdaptLib.engine.losses import CCG_REFERENCE_PIXELS, CCG_SIGMA_PX, SegmentationLoss
from InteractiveAdaptLib.engine.predictor import ClickTuple, Predictor, PreparedSlice

log = logging.getLogger(__name__)


@dataclass
class AdaptationConfig:
    """How the network learns online. Defaults are the product's (see benchmarks/results)."""

    lr: float = 5e-5  # docs/method.md: the paper's 5e-5 for brain MRI
    # The paper's MI and PI use 200 (as in pre-training). Per 256 x 256 pixels, 25 needed the fewest
    # clicks to 80 % Dice on the four tuning streams of case order 0, which the reported results do
    # not use (benchmarks/results/tuning/: mean NoC@80 12.25 against 12.38 at 100, 12.54 at 50 and
    # 12.84 at 200; the differences are within a third of a click).
    ccg_weight: float = 25.0
    ccg_sigma: float = CCG_SIGMA_PX
    # CCG per this many pixels of a slice, whatever its size (None: the mean over the slice's pixels,
    # which made one weight pull 4x less on a slice at 0.5 mm than at 1 mm).
    ccg_reference_pixels: int | None = CCG_REFERENCE_PIXELS
    mid_interaction: bool = True
    post_interaction: bool = True
    mi_after_first_click: bool = True  # pull f(I, no clicks) towards the 1-click prediction too
    mi_scope: Literal["persistent", "case"] = "persistent"  # "case": MI weights dropped at case end
    pseudo_label: Literal["prediction", "prediction+clicks"] = "prediction"
    pi_stage2_clicks: int = 10
    # PI stage 2 with the artificial clicks only, as in the paper: keeping the first click too needed
    # more clicks to 80 % on the tuning order (mean NoC@80 12.25 against 11.88, benchmarks/results/tuning/).
    pi_stage2_first_click: bool = False
    grad_clip: float | None = 1.0  # gradient-norm clipping of every step; None: none (the paper)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Snapshot:
    """Bit-for-bit copy of the network weights and the optimiser state."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]


class OnlineAdapter:
    """The network, its single Adam optimiser and the guarded update step."""

    def __init__(self, predictor: Predictor, config: AdaptationConfig):
        self.predictor = predictor
        self.network = predictor.network
        self.config = config
        self.reset_optimizer()
        self.loss = SegmentationLoss(config.ccg_weight, config.ccg_sigma, config.ccg_reference_pixels)
        self.steps_applied = 0
        self.steps_rejected = 0

    def reset_optimizer(self) -> None:
        """A fresh Adam (no moments), as for a profile that starts from the base model."""
        # foreach: one fused update for all tensors (about a third faster per step on CPU).
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=self.config.lr, foreach=True)

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Adam's moments from a saved version; the lr stays this session's choice."""
        self.optimizer.load_state_dict(state)
        for group in self.optimizer.param_groups:
            group["lr"], group["foreach"] = self.config.lr, True

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, reuse: Snapshot | None = None) -> Snapshot:
        """A bit-for-bit copy of the weights and the optimiser state. `reuse`: a snapshot no one needs
        any more, overwritten in place, so the undo snapshots of click after click take no new memory."""
        old_model = reuse.model if reuse is not None else {}
        old_state = reuse.optimizer["state"] if reuse is not None else {}
        optimizer = self.optimizer.state_dict()
        return Snapshot(
            model={k: _copy(v.detach(), old_model.get(k)) for k, v in self.network.state_dict().items()},
            optimizer={
                "state": {
                    i: {name: _copy(v, old_state.get(i, {}).get(name)) for name, v in entry.items()}
                    for i, entry in optimizer["state"].items()
                },
                "param_groups": copy.deepcopy(optimizer["param_groups"]),
            },
        )

    def restore(self, snapshot: Snapshot) -> None:
        self.network.load_state_dict(snapshot.model)
        self.optimizer.load_state_dict(copy.deepcopy(snapshot.optimizer))

    # ------------------------------------------------------------------ the step
    def step(
        self,
        prepared: PreparedSlice,
        grid_clicks: list[ClickTuple],
        loss_clicks: list[ClickTuple],
        labels: torch.Tensor,
        before: Snapshot | None = None,
    ) -> tuple[bool, torch.Tensor]:
        """One guarded Adam step pulling f(I, grid_clicks) towards `labels` with DF + CCG on
        `loss_clicks`. Returns (applied, the logits before the step)."""
        return self.slice_update(
            prepared, grid_clicks, lambda logits: self.loss(logits, labels[None], [loss_clicks]), before
        )

    def slice_update(
        self,
        prepared: PreparedSlice,
        grid_clicks: list[ClickTuple],
        loss_of: Callable[[torch.Tensor], torch.Tensor],
        before: Snapshot | None = None,
    ) -> tuple[bool, torch.Tensor]:
        """`guarded_update` of the 2D network on one slice with clicks on the network grid."""
        return self.guarded_update(self.predictor.network_input(prepared, grid_clicks), loss_of, before)

    def guarded_update(
        self,
        inputs: torch.Tensor,
        loss_of: Callable[[torch.Tensor], torch.Tensor],
        before: Snapshot | None = None,
    ) -> tuple[bool, torch.Tensor]:
        """One Adam step on loss_of(f(inputs)) (a 2D slice's or a 3D crop's network input). A non-finite
        loss or gradient leaves weights and optimiser untouched; non-finite weights after the step are
        rolled back to `before` (a snapshot of the current state the caller already holds, else one is
        taken here)."""
        self.network.train()
        logits = self.network(inputs)
        loss = loss_of(logits)
        self.optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            return self._reject("loss", logits)
        loss.backward()
        params = [p for p in self.network.parameters() if p.grad is not None]
        # One fused norm serves both the finiteness check and the clipping.
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if not torch.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            return self._reject("gradient", logits)
        before = before if before is not None else self.snapshot()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grads_with_norm_(params, self.config.grad_clip, grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(torch.nn.utils.get_total_norm(list(self.network.parameters()))):
            self.restore(before)
            return self._reject("weights", logits)
        self.network.eval()
        self.steps_applied += 1
        return True, logits.detach()

    def _reject(self, what: str, logits: torch.Tensor) -> tuple[bool, torch.Tensor]:
        self.steps_rejected += 1
        self.network.eval()
        log.warning("adaptation step skipped: non-finite %s (weights unchanged)", what)
        return False, logits.detach()

    # ------------------------------------------------------------------ MI and PI
    def mid_interaction(
        self,
        prepared: PreparedSlice,
        previous: list[ClickTuple],
        newest: ClickTuple,
        prediction_logits: torch.Tensor,
        before: Snapshot | None = None,
    ) -> bool:
        """MI: pull f(I, C_{t-1}) towards y_t = argmax f(I, C_t), CCG on the newest click (grid coords)."""
        # argmax over 2 classes as a comparison (same ties: class 0); torch's argmax(0) is ~50x slower here.
        labels = (prediction_logits[0, 1] > prediction_logits[0, 0]).long()
        if self.config.pseudo_label == "prediction+clicks":
            labels = labels.clone()
            r, c, positive = newest
            labels[int(round(r)), int(round(c))] = int(positive)
        applied, _ = self.step(prepared, previous, [newest], labels, before)
        return applied

    def post_interaction(
        self, prepared: PreparedSlice, first: ClickTuple, accepted: torch.Tensor, rng: np.random.Generator
    ) -> int:
        """PI on one slice: stage 1 with the first click only, stage 2 with up to N clicks on the
        error components of the stage-1 prediction against the accepted mask. Returns steps applied."""
        applied1, logits = self.step(prepared, [first], [first], accepted)
        stage1 = (logits[0, 1] > logits[0, 0]).cpu().numpy()
        extra = error_clicks(stage1, accepted.cpu().numpy(), self.config.pi_stage2_clicks, "random", rng)
        clicks = [(float(r), float(c), p) for r, c, p in extra]
        if self.config.pi_stage2_first_click:
            clicks = [first] + clicks
        elif not clicks:  # the paper's stage 2 has nothing to click on when stage 1 is right
            return int(applied1)
        applied2, _ = self.step(prepared, clicks, clicks, accepted)
        return int(applied1) + int(applied2)


def _copy(value: Any, old: Any) -> Any:
    """`value` copied into `old` when that is a tensor of the same kind, else a fresh clone.
    (Cloning tensors directly is several times faster than deepcopy; this is taken every click.)"""
    if not isinstance(value, torch.Tensor):
        return value
    if isinstance(old, torch.Tensor) and (old.shape, old.dtype, old.device) == (
        value.shape,
        value.dtype,
        value.device,
    ):
        return old.copy_(value)
    return value.clone()
