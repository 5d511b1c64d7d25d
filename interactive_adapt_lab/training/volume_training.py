"""`interactive-adapt train-volume`: the product's 3D click network, trained on Colin27 with simulated
iterative clicking in its own errors, resumable.

Each sample is one structure (an AAL pair of the training split, either side, or the brain) in a crop
chosen as the product chooses it (engine/volume_crop.py: the smallest zoom level that holds the
structure, sometimes one larger or smaller, the centre jittered), augmented (training/volume_augment.py),
clicked once (a random or the deepest voxel), then corrected 0..`correction_rounds` times at the model's
own largest 3D error with its prediction fed back as the current result, as the product feeds it back.
Loss: DF + `ccg_weight` * CCG on the clicks (engine/losses.py). Validation: mean 3D Dice after 1..5 clicks
of the simulated user (evaluation/volume_user.py) on the validation pairs of Colin27 and MNI152 (the only
structures that choose); the best step's weights are kept. MNI152, ROBEX, INIA19 and the synthetic
contrasts are never trained on.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from interactive_adapt_lab.data.cases import aal_targets_of_split
from interactive_adapt_lab.data.datasets import Domain, load_domain
from interactive_adapt_lab.evaluation.volume_user import validate
from interactive_adapt_lab.training.volume_augment import appearance, spatial, tissue_contrast
from InteractiveAdaptLib.engine.click_simulation import first_click, next_click
from InteractiveAdaptLib.engine.losses import SegmentationLoss
from InteractiveAdaptLib.engine.volume_crop import LEVELS, Crop, choose_crop, click_balls, make_crop, sample
from InteractiveAdaptLib.engine.volume_predictor import VolumePredictor, network_input
from InteractiveAdaptLib.model.checkpoint import load_state, save_state
from InteractiveAdaptLib.model.network import CONFIGS, build_network

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
LOG = "log.jsonl"


@dataclass
class VolumeTrainConfig:
    """Everything that decides the trained weights (saved beside them)."""

    network: str = "volume"
    steps: int = 20000  # the learning rate decays over the last 40 % of these
    batch_size: int = 4
    lr: float = 1e-3
    ccg_weight: float = 50.0
    ccg_sigma: float = 2.0  # crop voxels
    correction_rounds: int = 3  # each sample: U{0..this} rounds in the model's own errors
    augment: str = "full"  # or "none" (the ablation)
    brain_share: float = 0.1
    val_every: int = 1000
    val_clicks: int = 5
    val_limit: int = 0  # validate on the first this many structures of each head (0: all; tests)
    checkpoint_every: int = 250
    seed: int = 0
    threads: int = 1


def learning_rate(config: VolumeTrainConfig, step: int) -> float:
    """Constant, then a cosine decay to a tenth over the last 40 % of the planned steps."""
    start = 0.6 * config.steps
    if step < start:
        return config.lr
    progress = min(1.0, (step - start) / max(1.0, config.steps - start))
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class TrainingHead:
    """Colin27 as training crops come from it: the image, the training targets and their boxes, and
    soft tissue maps (for the contrast augmentation)."""

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.image = torch.from_numpy(domain.image)[None]
        self.targets = sorted(aal_targets_of_split(domain, "train")) + ["brain"]
        self.boxes = {}
        for target in self.targets:
            mask = domain.target_mask(target)
            box = ndimage.find_objects(mask.astype(np.uint8))[0]
            self.boxes[target] = np.array([[b.start for b in box], [b.stop - 1 for b in box]], float)
        tissue = domain.label_maps["tissue"]
        self.tissue = torch.from_numpy(np.stack([tissue == c for c in range(4)]).astype(np.float32))

    def crop_for(self, target: str, rng: np.random.Generator) -> Crop:
        """The product's crop for the structure, sometimes a level larger (more context) or smaller (the
        structure cut off, as before the crop grows), its centre jittered by up to 15 % of its side."""
        spacing = self.domain.spacing_kji
        crop = choose_crop(self.boxes[target], spacing)
        level = crop.level + int(rng.choice([-1, 0, 0, 0, 0, 1]))
        level = int(np.clip(level, 0, LEVELS - 1))
        centre = self.boxes[target].mean(axis=0)
        centre = centre + rng.uniform(-0.15, 0.15, 3) * np.asarray(make_crop(centre, level, spacing).extent)
        return make_crop(centre, level, spacing)


def training_sample(head: TrainingHead, config: VolumeTrainConfig, rng: np.random.Generator):
    """One augmented crop: (image (S^3), label (S^3) bool, crop voxel mm)."""
    target = (
        "brain"
        if rng.random() < config.brain_share
        else head.targets[int(rng.integers(len(head.targets) - 1))]
    )
    crop = head.crop_for(target, rng)
    mask = torch.from_numpy(head.domain.target_mask(target))[None]
    channels = torch.cat([sample(head.image, crop, edge=True), sample(mask, crop, edge=False)])
    if config.augment == "full":
        channels = torch.cat([channels, sample(head.tissue, crop, edge=False)])
        channels = spatial(channels, rng)
        image, label, tissue = channels[0], channels[1] > 0.5, channels[2:]
        if rng.random() < 0.5:
            image = tissue_contrast(image, tissue, rng)
        image = appearance(image, float(crop.voxel_mm(head.domain.spacing_kji).mean()), rng)
    else:
        image, label = channels[0], channels[1] > 0.5
    return image, label


def simulate_clicks(network, image: torch.Tensor, label: torch.Tensor, rounds: int, rng: np.random.Generator):
    """The clicks and current result a sample is trained with: a first positive click, then `rounds`
    corrections at the model's own largest error, its prediction fed back. Returns (input, clicks)."""
    target = label.numpy()
    mode = "random" if rng.random() < 0.5 else "center"
    clicks = [first_click(target, mode, rng)]
    previous = torch.zeros(label.shape)
    for _ in range(rounds):
        inputs = _inputs(image, clicks, previous)
        with torch.no_grad():
            logits = network(inputs)
        prediction = (logits[0, 1] > logits[0, 0]).numpy()
        click = next_click(prediction, target, mode, rng)
        if click is None:
            break
        clicks.append(click)
        previous = torch.from_numpy(prediction.astype(np.float32))
    return _inputs(image, clicks, previous), clicks


def _inputs(image: torch.Tensor, clicks: list[tuple], previous: torch.Tensor) -> torch.Tensor:
    points = np.array([c[:3] for c in clicks], float)
    signs = np.array([c[3] for c in clicks], bool)
    return network_input(image, click_balls(points, signs, image.shape[-1]), previous)


def train_volume(
    config: VolumeTrainConfig,
    output: Path,
    init: Path | None = None,
    cache_dir: Path | None = None,
    stop_at: int | None = None,
) -> Path:
    """Train (or resume: `output` holds a checkpoint) and return the folder.

    Args:
        init: start from a model folder's weights at the step its card records (Adam's moments start
            afresh).
        cache_dir: the data cache (None: the default one).
        stop_at: stop after this step, as an interruption would (the schedule stays `config.steps`'s).
    """
    torch.set_num_threads(config.threads)
    output.mkdir(parents=True, exist_ok=True)
    (output / "config.json").write_text(json.dumps(asdict(config), indent=1))
    torch.manual_seed(config.seed)
    network = build_network(CONFIGS[config.network])
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    step, best = 0, -1.0
    if (output / CHECKPOINT).is_file():
        state = load_state(output / CHECKPOINT)
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, best = int(state["step"]), float(state["best"])
        log.info("resumed at step %d", step)
    elif init is not None:
        card = json.loads((init / "model.json").read_text())
        network.load_state_dict(load_state(init / "weights.pt"))
        step = int(card["training"]["steps_trained"])
        best = float(card["training"].get("best_score", -1.0))
        log.info("started from %s at step %d", init, step)
    head = TrainingHead(load_domain("colin27", cache_dir))
    validation = [head.domain, load_domain("mni152", cache_dir)]
    loss_fn = SegmentationLoss(config.ccg_weight, config.ccg_sigma)
    progress = tqdm(total=config.steps, initial=step, desc="train-volume")
    started, losses = time.perf_counter(), []
    while step < min(config.steps, stop_at or config.steps):
        rng = np.random.default_rng([config.seed, step])
        torch.manual_seed(config.seed * 1_000_003 + step)
        network.eval()
        batch, labels, clicks = [], [], []
        for _ in range(config.batch_size):
            image, label = training_sample(head, config, rng)
            if not label.any():
                continue
            inputs, sample_clicks = simulate_clicks(
                network, image, label, int(rng.integers(config.correction_rounds + 1)), rng
            )
            batch.append(inputs)
            labels.append(label.long())
            clicks.append([tuple(c) for c in sample_clicks])
        step += 1
        if not batch:
            continue
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        network.train()
        logits = network(torch.cat(batch))
        loss = loss_fn(logits, torch.stack(labels), clicks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        progress.update(1)
        record = None
        if step % config.val_every == 0 or step == config.steps:
            network.eval()
            curves = validate(VolumePredictor(network), validation, config.val_clicks, config.val_limit)
            score = float(np.mean([np.mean(c) for c in curves.values()]))
            record = {"val": curves, "score": round(score, 4)}
            if score > best:
                best = score
                save_state(output / BEST, {k: v.detach().clone() for k, v in network.state_dict().items()})
                record["best"] = True
        if step % config.checkpoint_every == 0 or record is not None or step == config.steps:
            save_state(
                output / CHECKPOINT,
                {
                    "model": network.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "step": step,
                    "best": best,
                },
            )
            entry = {
                "step": step,
                "loss": round(float(np.mean(losses)), 4) if losses else None,
                "lr": learning_rate(config, step),
                "seconds": round(time.perf_counter() - started, 1),
                **(record or {}),
            }
            with open(output / LOG, "a") as f:
                f.write(json.dumps(entry) + "\n")
            log.info("%s", entry)
            losses = []
    progress.close()
    return output


def register(subparsers) -> None:
    p = subparsers.add_parser("train-volume", help="train the 3D click network on Colin27 (resumable)")
    p.add_argument(
        "--output", type=Path, required=True, help="run folder (resumes when it holds a checkpoint)"
    )
    p.add_argument("--init", type=Path, default=None, help="start from a model folder's weights")
    defaults = VolumeTrainConfig()
    for name, value in asdict(defaults).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    p.set_defaults(func=_command)


def _command(args) -> int:
    config = VolumeTrainConfig(**{k: getattr(args, k) for k in asdict(VolumeTrainConfig())})
    logging.basicConfig(level=logging.INFO)
    train_volume(config, args.output, args.init)
    return 0
