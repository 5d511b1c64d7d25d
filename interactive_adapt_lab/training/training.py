"""Pre-training on Colin27 with iterative click simulation, loss 200 * CCG + DF, checkpoints and resume."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from monai import transforms as mt
from tqdm import tqdm

from interactive_adapt_lab.data.cases import Case, aal_targets_of_split, enumerate_cases, spread_order
from interactive_adapt_lab.data.datasets import Domain, load_domain
from interactive_adapt_lab.evaluation.simulated_user import evaluate
from InteractiveAdaptLib.engine.click_simulation import ClickMode, error_clicks, first_click, next_click
from InteractiveAdaptLib.engine.guidance import guidance_maps
from InteractiveAdaptLib.engine.losses import SegmentationLoss
from InteractiveAdaptLib.engine.predictor import Predictor
from InteractiveAdaptLib.model.checkpoint import load_state, save_state
from InteractiveAdaptLib.model.network import CONFIGS, build_network

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that decides the trained weights (saved beside them)."""

    network: str = "default"
    steps: int = 12000
    batch_size: int = 8
    lr: float = 5e-4
    crop: int = 160
    ccg_weight: float = 200.0
    max_clicks: int = 10  # N ~ U{1..max_clicks}
    correction_rounds: int = 1  # further rounds on the model's own errors, each with probability 1/2
    lr_schedule: str = "constant"  # or "cosine" (decays to 0 at `steps`)
    augment: str = "full"  # or "none" (ablation: what the augmentations cost in-domain)
    min_train_pixels: int = 50
    val_cases: int = 48
    val_clicks: int = 6
    val_every: int = 500
    checkpoint_every: int = 250
    seed: int = 0
    threads: int = 2


LR_SCHEDULES = ("constant", "cosine")
AUGMENTS = ("full", "none")


def _augmentations(kind: str) -> mt.Compose:
    if kind == "none":
        return mt.Compose([])
    keys = ["image", "label"]
    return mt.Compose(
        [
            mt.RandRotate90d(keys, prob=0.5, spatial_axes=(0, 1)),
            mt.RandFlipd(keys, prob=0.5, spatial_axis=0),
            mt.RandFlipd(keys, prob=0.5, spatial_axis=1),
            mt.RandAffined(
                keys,
                prob=0.5,
                rotate_range=(np.pi / 12,),
                scale_range=(0.15, 0.15),
                mode=("bilinear", "nearest"),
                padding_mode="border",
            ),
            mt.RandBiasFieldd("image", prob=0.3, coeff_range=(0.0, 0.3)),
            mt.RandAdjustContrastd("image", prob=0.3, gamma=(0.7, 1.5)),
            mt.RandScaleIntensityd("image", prob=0.3, factors=0.15),
            mt.RandShiftIntensityd("image", prob=0.3, offsets=0.2),
            mt.RandGaussianSmoothd("image", prob=0.15, sigma_x=(0.3, 1.0), sigma_y=(0.3, 1.0)),
            mt.RandGaussianNoised("image", prob=0.3, std=0.08),
        ]
    )


def _crop_around(image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator):
    """A size x size window containing a random pixel of the target (padded if the slice is smaller)."""
    pad = [(max(0, size - s + 1) // 2 + 1,) * 2 for s in image.shape]
    image = np.pad(image, pad, mode="edge")
    mask = np.pad(mask, pad)
    rows, cols = np.nonzero(mask)
    k = rng.integers(len(rows))
    r0 = int(np.clip(rows[k] - rng.integers(size // 8, size - size // 8), 0, image.shape[0] - size))
    c0 = int(np.clip(cols[k] - rng.integers(size // 8, size - size // 8), 0, image.shape[1] - size))
    return image[r0 : r0 + size, c0 : c0 + size], mask[r0 : r0 + size, c0 : c0 + size]


def _batch_input(images: torch.Tensor, clicks: list[list]) -> torch.Tensor:
    """(B, 3, H, W): each image with the guidance maps of its own clicks."""
    return torch.stack(
        [torch.cat([img, guidance_maps(c, img.shape[-2:])]) for img, c in zip(images, clicks, strict=True)]
    )


class Trainer:
    """Owns the network, optimiser, data and the resumable training loop."""

    def __init__(self, config: TrainConfig, output: Path, cache_dir: Path | None = None):
        self.config = config
        self.output = Path(output)
        torch.set_num_threads(config.threads)
        self.domain: Domain = load_domain("colin27", cache_dir)
        train_targets = aal_targets_of_split(self.domain, "train") + ["brain"]
        self.train_cases = enumerate_cases(self.domain, train_targets, min_pixels=config.min_train_pixels)
        val = enumerate_cases(self.domain, aal_targets_of_split(self.domain, "val"))
        self.val_cases: list[Case] = spread_order(val, seed=config.seed, count=config.val_cases)
        torch.manual_seed(config.seed)
        self.network = build_network(config.network)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.lr)
        self.loss = SegmentationLoss(ccg_weight=config.ccg_weight)
        self.augment = _augmentations(config.augment)
        self.step = 0
        self.best_dice = -1.0

    # ---------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.output / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        save_state(
            self.checkpoint_path,
            {
                "model": self.network.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "step": self.step,
                "best_dice": self.best_dice,
                "config": json.dumps(asdict(self.config)),
            },
        )

    def resume(self) -> bool:
        """Continue from the last checkpoint, if any."""
        if not self.checkpoint_path.is_file():
            return False
        state = load_state(self.checkpoint_path)
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.best_dice = int(state["step"]), float(state["best_dice"])
        log.info("resumed at step %d (best validation Dice %.4f)", self.step, self.best_dice)
        return True

    # ---------------------------------------------------------------- one step
    def _sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        case = self.train_cases[rng.integers(len(self.train_cases))]
        image, mask = _crop_around(case.image(self.domain), case.mask(self.domain), self.config.crop, rng)
        data = self.augment({"image": image[None].astype(np.float32), "label": mask[None].astype(np.float32)})
        image = np.asarray(data["image"][0], dtype=np.float32)
        mask = np.asarray(data["label"][0]) > 0.5
        return image, mask

    def _predict(self, images: torch.Tensor, clicks: list[list]) -> np.ndarray:
        x = _batch_input(images, clicks)
        self.network.eval()
        with torch.inference_mode():
            out = self.network(x)
        self.network.train()
        return (out[:, 1] > out[:, 0]).numpy()

    def train_step(self) -> float:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, self.step])
        torch.manual_seed(cfg.seed * 1_000_003 + self.step)
        self.augment.set_random_state(seed=(cfg.seed * 7919 + self.step) % (2**32))
        samples = []
        while len(samples) < cfg.batch_size:
            image, mask = self._sample(rng)
            if mask.sum() >= 10:  # augmentation may push a small target out of the crop
                samples.append((image, mask))
        images = torch.from_numpy(np.stack([s[0] for s in samples]))[:, None]
        masks = [s[1] for s in samples]
        modes: list[ClickMode] = ["random" if rng.random() < 0.5 else "center" for _ in samples]
        clicks = [[first_click(m, mode, rng)] for m, mode in zip(masks, modes, strict=True)]
        # The paper's scheme: N ~ U{1..10} clicks, the extra ones on the errors of a 1-click prediction.
        predictions = self._predict(images, clicks)
        for b in range(len(samples)):
            extra = int(rng.integers(0, cfg.max_clicks))
            clicks[b] += error_clicks(predictions[b], masks[b], extra, modes[b], rng)
        # Further rounds on the model's own new errors, like a user correcting (each half the time).
        for _ in range(cfg.correction_rounds):
            if rng.random() >= 0.5:
                break
            predictions = self._predict(images, clicks)
            for b in range(len(samples)):
                click = next_click(predictions[b], masks[b], modes[b], rng)
                if click is not None:
                    clicks[b].append(click)
        x = _batch_input(images, clicks)
        labels = torch.from_numpy(np.stack(masks).astype(np.int64))
        logits = self.network(x)
        loss = self.loss(logits, labels, clicks)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), 5.0)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        self.optimizer.step()
        self.step += 1
        return float(loss.detach())

    def learning_rate(self) -> float:
        """The lr of the current step (a function of the step alone, so resume needs no extra state)."""
        if self.config.lr_schedule == "cosine":
            return self.config.lr * 0.5 * (1.0 + math.cos(math.pi * self.step / self.config.steps))
        return self.config.lr

    def validate(self) -> float:
        """Mean Dice after `val_clicks` clicks on held-out (validation) AAL pairs."""
        self.network.eval()
        result = evaluate(
            Predictor(self.network), self.domain, self.val_cases, self.config.val_clicks, seed=0
        )
        self.network.train()
        return float(result.dice[:, -1].mean())

    def run(self) -> Path:
        """Train to `steps`, validating and checkpointing; returns the best weights' path."""
        self.output.mkdir(parents=True, exist_ok=True)
        (self.output / "config.json").write_text(json.dumps(asdict(self.config), indent=2))
        self.resume()
        self.network.train()
        log_file = open(self.output / "log.jsonl", "a")
        losses: list[float] = []
        bar = tqdm(total=self.config.steps, initial=self.step, desc="training", unit="step")
        started = time.time()
        while self.step < self.config.steps:
            losses.append(self.train_step())
            bar.update(1)
            if self.step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", best=f"{self.best_dice:.3f}")
            if self.step % self.config.val_every == 0 or self.step == self.config.steps:
                dice6 = self.validate()
                if dice6 > self.best_dice:
                    self.best_dice = dice6
                    save_state(self.output / "best.pt", self.network.state_dict())
                record = {
                    "step": self.step,
                    "loss": float(np.mean(losses[-self.config.val_every :])),
                    f"val_dice@{self.config.val_clicks}": round(dice6, 4),
                    "seconds": round(time.time() - started, 1),
                }
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                log.info("step %d: %s", self.step, record)
            if self.step % self.config.checkpoint_every == 0:
                self.save_checkpoint()
        self.save_checkpoint()
        bar.close()
        log_file.close()
        return self.output / "best.pt"


def register(subparsers) -> None:
    """`interactive-adapt train`."""
    p = subparsers.add_parser("train", help="pre-train the click-conditioned network on Colin27 (resumable)")
    p.add_argument("--output", type=Path, required=True, help="run folder (checkpoints, log, best weights)")
    p.add_argument("--network", choices=sorted(CONFIGS), default=TrainConfig.network)
    for name in (
        "steps",
        "batch_size",
        "crop",
        "seed",
        "threads",
        "val_every",
        "checkpoint_every",
        "val_cases",
        "correction_rounds",
    ):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(TrainConfig, name))
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=TrainConfig.lr_schedule)
    p.add_argument("--augment", choices=AUGMENTS, default=TrainConfig.augment)
    p.add_argument("--cache-dir", type=Path, default=None)
    p.set_defaults(func=_train_command)


def _train_command(args) -> int:
    fields = TrainConfig.__dataclass_fields__
    config = TrainConfig(**{k: getattr(args, k) for k in fields if hasattr(args, k)})
    best = Trainer(config, args.output, args.cache_dir).run()
    print(f"best weights: {best}")
    return 0
