"""`interactive-adapt export-volume-model`: a train-volume run -> models/<name>/ (the best step's weights,
model.json, the model card README.md and the run's log, so that training can go on from the folder on a
fresh machine: `interactive-adapt train-volume --init models/<name> ...`)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from interactive_adapt_lab.training.model_export import _git_commit
from interactive_adapt_lab.training.volume_training import BEST, CHECKPOINT, LOG, VolumeTrainConfig
from InteractiveAdaptLib.model.base_model import save_base_model
from InteractiveAdaptLib.model.checkpoint import load_state
from InteractiveAdaptLib.model.network import CONFIGS, build_network

TRAINING_LOG = "training_log.jsonl"
DATA = (
    "Colin27 T1 with skull (mricron-data, one real subject) only: the AAL structures of the 40 training "
    "bilateral pairs (either side) and the brain mask, in 64^3 crops at 1.5-7.6 mm. Validation: the 6 "
    "validation pairs on Colin27 and on MNI152 (AAL resampled onto it); the 12 test pairs, MNI152 as a "
    "test head, ROBEX, INIA19 and the synthetic contrasts are never trained on or chosen with."
)


def training_command(config: VolumeTrainConfig, run: Path) -> str:
    """The command that trains this run: the options that differ from the defaults."""
    defaults = VolumeTrainConfig()
    options = [
        f"--{name.replace('_', '-')} {value}"
        for name, value in vars(config).items()
        if value != getattr(defaults, name)
    ]
    return " ".join(["interactive-adapt train-volume --output", str(run), *options])


def export_volume_model(run: Path, output: Path, name: str, note: str = "") -> Path:
    """Write models/<name>/ from a run folder's best weights and log."""
    config = VolumeTrainConfig(**json.loads((run / "config.json").read_text()))
    log = [json.loads(line) for line in (run / LOG).read_text().splitlines() if line.strip()]
    validated = [entry for entry in log if "val" in entry]
    if not validated:
        raise SystemExit(f"The run {run} has not been validated yet: nothing to export.")
    best = max(validated, key=lambda entry: entry["score"])
    steps = int(load_state(run / CHECKPOINT)["step"])
    network = build_network(CONFIGS[config.network])
    network.load_state_dict(load_state(run / BEST))
    card = {
        "name": name,
        "kind": "volume",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_command": training_command(config, run),
        "training": {
            **vars(config),
            "steps_trained": steps,
            "best_step": best["step"],
            "best_score": best["score"],
            "training_seconds": log[-1]["seconds"],
        },
        "data": DATA,
        "seed": config.seed,
        "device": "CPU (2 cores, no GPU)",
        "note": note,
        "git_commit": _git_commit(),
        "validation": {
            "protocol": (
                "simulated user on the validation pairs (both sides) of each head: first click at the "
                "structure's deepest voxel, then at the deepest voxel of the largest 3D error, the result "
                "fed back; mean 3D Dice after 1..5 clicks; score = the mean over both heads and clicks"
            ),
            "best": best["val"],
            "curve": [{"step": e["step"], "score": e["score"], "seconds": e["seconds"]} for e in validated],
        },
    }
    directory = output / name
    directory.mkdir(parents=True, exist_ok=True)
    save_base_model(network, directory, card)
    shutil.copyfile(run / LOG, directory / TRAINING_LOG)
    card = json.loads((directory / "model.json").read_text())
    (directory / "README.md").write_text(model_card_markdown(card))
    return directory


def model_card_markdown(card: dict) -> str:
    """The model card for people: what it is, for what, how trained, what it measured."""
    training, config = card["training"], card["config"]
    lines = [
        f"# Model card: {card['name']}",
        "",
        "A click-conditioned 3D U-Net (MONAI, InstanceNorm) that segments a whole structure on MRI from a",
        "clinician's positive and negative clicks (placed in any slice view) and the current 3D result. It",
        "sees a 64^3 crop that follows the structure (1.5 mm voxels, up to 7.6 mm for a whole head); its",
        "input is the crop's image, a ball of radius 2 voxels at each positive and each negative click, and",
        "the current result. InteractiveAdapt adapts it online at each site.",
        f"Configuration: `{config['name']}`, channels {config['channels']}, "
        f"{config['num_res_units']} residual unit(s) per level.",
        "",
        "## Intended use",
        "Interactive segmentation of brain MRI structures in 3D Slicer with a clinician checking every",
        "result, followed by learning from the site's clicks and accepted cases.",
        "",
        "## Not for",
        "Automatic (click-free) segmentation or diagnosis. It was trained on one subject (Colin27): expect",
        "errors on other contrasts, species and pathology until the site has taught it.",
        "",
        "## Training",
        card["data"],
        "",
        f"Command: `{card['training_command']}` (seed {card['seed']}, git {card['git_commit'][:12]}, "
        f"{card['device']}). Steps trained: {training['steps_trained']} in "
        f"{training['training_seconds'] / 3600:.1f} h of wall time. Best validation score "
        f"{training['best_score']:.3f} at step {training['best_step']}.",
        "",
        "Go on training from this folder on a fresh machine, with the same schedule (Adam's moments start",
        f"afresh): `{card['training_command']} --init models/{card['name']}`.",
        "",
        "## Validation",
        card["validation"]["protocol"] + ".",
        "",
        "| step | hours | score |",
        "|---|---|---|",
    ]
    for entry in card["validation"]["curve"]:
        lines.append(f"| {entry['step']} | {entry['seconds'] / 3600:.2f} | {entry['score']:.3f} |")
    lines += ["", "Best step, mean 3D Dice after 1..5 clicks:", ""]
    for head, curve in card["validation"]["best"].items():
        lines.append(f"- {head}: " + ", ".join(f"{v:.3f}" for v in curve))
    if card.get("note"):
        lines += ["", card["note"]]
    lines += ["", f"Weights sha256: `{card['sha256']}`."]
    return "\n".join(lines) + "\n"


def register(subparsers) -> None:
    p = subparsers.add_parser("export-volume-model", help="a train-volume run -> models/<name>/")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--output", type=Path, default=Path("models"))
    p.add_argument("--note", default="")
    p.set_defaults(func=_command)


def _command(args) -> int:
    directory = export_volume_model(args.run, args.output, args.name, args.note)
    print(f"wrote {directory}")
    return 0
