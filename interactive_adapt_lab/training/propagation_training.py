"""`interactive-adapt train-propagation`: the 2.5D design's network (training/propagation_inference.py),
trained on Colin27 axial slices for a wall-clock budget, resumable.

Each sample is one axial slice of a structure (an AAL pair of the training split, either side, or the
brain), or one of the 3 slices past its end, in a window around it, augmented in 2D. Half the samples are
clicked slices: 1-3 clicks of the simulated user, each next one in the network's own error, on a prior
that is empty, the structure perturbed or a carried answer. The other half are propagated slices: no
clicks, the prior carried from a neighbour: the truth 1-4 slices away (sometimes perturbed), carried the
rest of the way by the network itself, so that it learns from its own drift (exposure bias); past the
structure's end the answer is empty: the network learns where to stop. Loss: DF + CCG on the
clicks (engine/losses.py). Validation: the 3D design's simulated user on the validation pairs of Colin27
and MNI152 (evaluation/volume_user.py), every `val_minutes` of training and at the end; the best weights
are kept. Validation time is not charged to the budget (both are logged).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from interactive_adapt_lab.data.cases import aal_targets_of_split
from interactive_adapt_lab.data.datasets import Domain, load_domain
from interactive_adapt_lab.training.propagation_inference import (
    PROPAGATION_NETWORK,
    answer_of,
    click_disks,
    make_window,
    network_input,
    sample_window,
    validate_propagation,
)
from InteractiveAdaptLib.engine.click_simulation import first_click, next_click
from InteractiveAdaptLib.engine.losses import SegmentationLoss
from InteractiveAdaptLib.model.checkpoint import load_state, save_state
from InteractiveAdaptLib.model.network import NetworkConfig, build_network

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
LOG = "log.jsonl"
MIN_WINDOW_PIXELS = 3  # MIN_PIXELS native pixels at 1 mm are about 2 window pixels at 1.5 mm
SLAB = 4  # slices on either side of a sample's slice: the network carries answers up to 3 slices to it


@dataclass
class PropagationTrainConfig:
    """Everything that decides the trained weights (saved beside them, with the network's config)."""

    minutes: float = 45.0  # wall-clock training budget, validation excluded
    max_steps: int = 0  # 0: until the budget is spent (tests stop after a few steps)
    batch_size: int = 8
    lr: float = 1e-3
    ccg_weight: float = 50.0
    ccg_sigma: float = 2.0  # window pixels
    brain_share: float = 0.1
    val_minutes: float = 8.0  # of training time between validations
    val_clicks: int = 5
    checkpoint_minutes: float = 2.0
    seed: int = 0
    threads: int = 1


class SliceSource:
    """Colin27's training structures as axial slabs: each target's label map, label and slice range."""

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.image = torch.from_numpy(domain.image)
        self.targets = sorted(aal_targets_of_split(domain, "train"))
        self.ranges = {}
        for target in [*self.targets, "brain"]:
            slices = np.flatnonzero(domain.target_mask(target).any(axis=(1, 2)))
            self.ranges[target] = (int(slices[0]), int(slices[-1]))

    def slab(self, target: str, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and masks of slices k-SLAB..k+SLAB (clamped to the volume), each (2 SLAB + 1, J, I)."""
        label_map, label = self.domain.targets[target]
        index = np.clip(np.arange(k - SLAB, k + SLAB + 1), 0, self.image.shape[0] - 1)
        masks = self.domain.label_maps[label_map][index] == label
        return self.image[index], torch.from_numpy(masks)


def spatial_2d(channels: torch.Tensor, rng: np.random.Generator, max_degrees: float = 15.0) -> torch.Tensor:
    """Rotate (up to `max_degrees`), scale (0.85-1.15 per axis) and flip (C, S, S) about the centre in one
    bilinear resampling, edges replicated (volume_augment.spatial in 2D). Masks come back soft."""
    angle = np.radians(rng.uniform(-max_degrees, max_degrees))
    c, s = np.cos(angle), np.sin(angle)
    matrix = np.array([[c, -s], [s, c]]) @ np.diag(rng.uniform(0.85, 1.15, 2))
    matrix = matrix @ np.diag(np.where(rng.random(2) < 0.5, -1.0, 1.0))
    size = channels.shape[-1]
    base = torch.linspace(-1, 1, size)
    grid = torch.stack(torch.meshgrid(base, base, indexing="ij"), dim=-1)  # (S, S, 2) in row, col
    grid = (grid @ torch.as_tensor(matrix.T, dtype=torch.float32)).flip(-1)  # grid_sample wants (x, y)
    out = F.grid_sample(
        channels[None], grid[None], mode="bilinear", padding_mode="border", align_corners=True
    )
    return out[0]


def appearance_2d(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Bias field, gamma, blur and noise on (C, S, S) images of neighbouring slices (one field for all:
    a scanner's bias does not change between adjacent slices)."""
    size = images.shape[-1]
    if rng.random() < 0.5:  # bias field: smooth and multiplicative, up to about +-30 %
        coarse = torch.as_tensor(rng.normal(0, 1, (1, 1, 3, 3)), dtype=torch.float32)
        field = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)[0]
        low = images.min()
        images = (images - low) * torch.exp(0.3 * field / field.abs().max().clamp(min=1e-6)) + low
    if rng.random() < 0.3:  # intensity jitter: gamma on the intensity range
        low, high = images.min(), images.max()
        unit = (images - low) / (high - low).clamp(min=1e-6)
        images = unit ** float(np.exp(rng.uniform(-0.4, 0.4))) * (high - low) + low
    if rng.random() < 0.2:  # blur
        images = F.avg_pool2d(images[None], 3, stride=1, padding=1, count_include_pad=False)[0]
    if rng.random() < 0.5:  # noise, relative to the window's spread
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        spread = float(rng.uniform(0, 0.15)) * images.std()
        images = images + torch.randn(images.shape, generator=generator) * spread
    return images


def perturb(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible wrong result: the mask grown or shrunk by 1-3 pixels and shifted by up to 4."""
    iterations = int(rng.integers(1, 4))
    if rng.random() < 0.5:
        mask = ndimage.binary_dilation(mask, iterations=iterations)
    else:
        mask = ndimage.binary_erosion(mask, iterations=iterations)
    shift = rng.integers(-4, 5, 2)
    return ndimage.shift(mask.astype(np.uint8), shift, order=0, mode="constant") > 0


def _answer(network, images: torch.Tensor, clicks: list[tuple], prior: np.ndarray) -> np.ndarray:
    """The network's answer (bool (S, S)) for window images (3, S, S), clicks and a prior."""
    inputs = _inputs(images, clicks, prior)
    with torch.no_grad():
        return (answer_of(network(inputs)) > 0).numpy()


def _inputs(images: torch.Tensor, clicks: list[tuple], prior: np.ndarray) -> torch.Tensor:
    points = np.array([c[:2] for c in clicks], float).reshape(-1, 2)
    signs = np.array([c[2] for c in clicks], bool)
    return network_input(
        images, click_disks(points, signs, images.shape[-1]), torch.from_numpy(prior).float()
    )


def _around(images: torch.Tensor, centre: int) -> torch.Tensor:
    """The network's image channels for slab slice `centre`: that slice, the one below, the one above."""
    return images[[centre, centre - 1, centre + 1]]


def carried_prior(network, images, masks, rng: np.random.Generator) -> np.ndarray | None:
    """The prior the middle slice gets when the answer is carried to it from a neighbour: the truth n = 1..4
    slices away on one side (sometimes perturbed), carried n - 1 slices by the network itself, as the
    product carries it (its own drift and leaks past the structure's end included). None when there is
    nothing to carry from, or the carried answer vanished (the product would have stopped there)."""
    sources = [(n * side) for side in (-1, 1) for n in range(1, SLAB + 1)]
    sources = [d for d in sources if masks[SLAB + d].sum() >= MIN_WINDOW_PIXELS]
    if not sources:
        return None
    nearest = [d for d in sources if abs(d) == 1]
    offset = int(rng.choice(nearest if nearest and rng.random() < 0.5 else sources))
    step = -1 if offset > 0 else 1  # towards the middle
    prior = masks[SLAB + offset] if rng.random() < 0.5 else perturb(masks[SLAB + offset], rng)
    for index in range(SLAB + offset + step, SLAB, step):
        if prior.sum() < MIN_WINDOW_PIXELS:
            return None
        prior = _answer(network, _around(images, index), [], prior)
    return prior if prior.sum() >= MIN_WINDOW_PIXELS else None


def clicked_sample(network, images, masks, rng: np.random.Generator):
    """The middle slice as the user clicks it: (inputs, clicks), or None when there is nothing to click."""
    truth = masks[SLAB]
    choice = rng.random()
    if choice < 0.35:
        prior = np.zeros_like(truth)
    elif choice < 0.65:
        prior = perturb(truth, rng)
    else:  # the result carried from a neighbour, not yet corrected here
        carried = carried_prior(network, images, masks, rng)
        prior = np.zeros_like(truth) if carried is None else carried
    mode = "random" if rng.random() < 0.5 else "center"
    clicks = []
    for _ in range(int(rng.integers(1, 4))):
        if clicks:  # the answer to the clicks so far is the slice's current result at the next click
            prior = _answer(network, _around(images, SLAB), clicks, prior)
        click = first_click(truth, mode, rng) if not prior.any() else next_click(prior, truth, mode, rng)
        if click is None:
            break
        clicks.append(click)
    if not clicks:
        return None
    return _inputs(_around(images, SLAB), clicks, prior), clicks


def propagated_sample(network, images, masks, rng: np.random.Generator):
    """The middle slice reached from a neighbour: (inputs, no clicks), or None when nothing reaches it."""
    prior = carried_prior(network, images, masks, rng)
    if prior is None:
        return None
    return _inputs(_around(images, SLAB), [], prior), []


def training_sample(source: SliceSource, network, config: PropagationTrainConfig, rng: np.random.Generator):
    """One augmented sample: (inputs (1, 6, S, S), label (S, S) long, clicks [(row, col, positive)])."""
    while True:
        if rng.random() < config.brain_share:
            target = "brain"
        else:
            target = source.targets[int(rng.integers(len(source.targets)))]
        first, last = source.ranges[target]
        if rng.random() < 0.25:  # 1-3 slices past either end: where propagation must stop
            past = int(rng.integers(1, 4))
            k = first - past if rng.random() < 0.5 else last + past
        else:
            k = int(rng.integers(first, last + 1))
        images, masks = source.slab(target, k)
        around = masks.numpy().any(axis=0)
        if not around.any():  # nothing of the structure near this slice
            continue
        rows, cols = np.nonzero(around)
        centre = np.array([rows.min() + rows.max(), cols.min() + cols.max()]) / 2
        spacing = source.domain.spacing_kji[1:]
        extent = np.asarray(make_window(centre, spacing).extent)
        window = make_window(centre + rng.uniform(-0.15, 0.15, 2) * extent, spacing)
        channels = spatial_2d(sample_window(torch.cat([images, masks.float()]), window, edge=True), rng)
        depth = 2 * SLAB + 1
        images, masks = channels[:depth], (channels[depth:] > 0.5).numpy()
        if rng.random() < 0.5:  # propagation runs both ways: reverse the slab
            images, masks = images.flip(0), masks[::-1].copy()
        images = appearance_2d(images, rng)
        if rng.random() < 0.5:
            made = clicked_sample(network, images, masks, rng)
        else:
            made = propagated_sample(network, images, masks, rng)
        if made is not None:
            inputs, clicks = made
            return inputs, torch.from_numpy(masks[SLAB]).long(), clicks


def _log(output: Path, entry: dict) -> None:
    with open(output / LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")
    log.info("%s", entry)


def train_propagation(
    config: PropagationTrainConfig,
    output: Path,
    domain: Domain | None = None,
    validation: list[Domain] | None = None,
    network_config: NetworkConfig = PROPAGATION_NETWORK,
) -> Path:
    """Train (or resume: `output` holds a checkpoint) and return the folder. `domain` is Colin27 (loaded
    when None); `validation` the heads validated on (Colin27 and MNI152 when None, none when empty)."""
    torch.set_num_threads(config.threads)
    output.mkdir(parents=True, exist_ok=True)
    described = {**asdict(config), "network": network_config.to_dict()}
    (output / "config.json").write_text(json.dumps(described, indent=1))
    torch.manual_seed(config.seed)  # the initial weights (a resumed run loads its own)
    network = build_network(network_config)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    progress = {"step": 0, "best": -1.0, "seconds": 0.0, "val_seconds": 0.0, "val_at": 0.0, "val_step": -1}
    if (output / CHECKPOINT).is_file():
        state = load_state(output / CHECKPOINT)
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        progress = state["progress"]
        log.info("resumed at step %d", progress["step"])
    source = SliceSource(domain or load_domain("colin27"))
    if validation is None:
        validation = [source.domain, load_domain("mni152")]
    loss_fn = SegmentationLoss(config.ccg_weight, config.ccg_sigma)
    losses, saved_at = [], progress["seconds"]

    def checkpoint_and_log(validate: bool) -> None:
        entry = {
            "step": progress["step"],
            "loss": round(float(np.mean(losses)), 4) if losses else None,
            "seconds": round(progress["seconds"], 1),
        }
        if validate and validation:
            started = time.perf_counter()
            curves = validate_propagation(network, validation, config.val_clicks)
            score = float(np.mean([np.mean(c) for c in curves.values()]))
            progress["val_seconds"] += time.perf_counter() - started
            progress["val_at"], progress["val_step"] = progress["seconds"], progress["step"]
            entry.update(val=curves, score=round(score, 4), val_seconds=round(progress["val_seconds"], 1))
            if score > progress["best"]:
                progress["best"] = score
                save_state(output / BEST, {k: v.detach().clone() for k, v in network.state_dict().items()})
                entry["best"] = True
        state = {"model": network.state_dict(), "optimizer": optimizer.state_dict(), "progress": progress}
        save_state(output / CHECKPOINT, state)
        _log(output, entry)
        losses.clear()

    while progress["seconds"] < config.minutes * 60 and not (
        config.max_steps and progress["step"] >= config.max_steps
    ):
        started = time.perf_counter()
        step = progress["step"]
        rng = np.random.default_rng([config.seed, step])
        torch.manual_seed(config.seed * 1_000_003 + step)
        network.eval()  # the clicks and priors are simulated with the network's current answers
        batch, labels, clicks = [], [], []
        for _ in range(config.batch_size):
            inputs, label, sample_clicks = training_sample(source, network, config, rng)
            batch.append(inputs)
            labels.append(label)
            clicks.append([tuple(c) for c in sample_clicks])
        network.train()
        loss = loss_fn(network(torch.cat(batch)), torch.stack(labels), clicks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        progress["step"] = step + 1
        progress["seconds"] += time.perf_counter() - started
        if progress["seconds"] - progress["val_at"] >= config.val_minutes * 60:
            checkpoint_and_log(validate=True)
            saved_at = progress["seconds"]
        elif progress["seconds"] - saved_at >= config.checkpoint_minutes * 60:
            checkpoint_and_log(validate=False)
            saved_at = progress["seconds"]
    if progress["val_step"] != progress["step"] or losses:
        checkpoint_and_log(validate=progress["val_step"] != progress["step"])
    return output


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-propagation", help="train the 2.5D slice-propagation network on Colin27 (lab design B)"
    )
    p.add_argument(
        "--output", type=Path, required=True, help="run folder (resumes when it holds a checkpoint)"
    )
    for name, value in asdict(PropagationTrainConfig()).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    p.set_defaults(func=_command)


def _command(args) -> int:
    config = PropagationTrainConfig(**{k: getattr(args, k) for k in asdict(PropagationTrainConfig())})
    logging.basicConfig(level=logging.INFO)
    train_propagation(config, args.output)
    return 0
