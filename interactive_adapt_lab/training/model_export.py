"""`interactive-adapt export-model`: a trained run -> models/<name>/ (weights, model.json, model card).

The card's metrics are measured here, by the evaluation code, with the simulated user and no
adaptation, on cases the network never saw.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import torch

from interactive_adapt_lab.data.cases import aal_targets_of_split, enumerate_cases, spread_order
from interactive_adapt_lab.data.datasets import load_domain
from interactive_adapt_lab.data.streams import STREAMS
from interactive_adapt_lab.evaluation.simulated_user import evaluate
from InteractiveAdaptLib.engine.forgetting_guard import GUARD_FILE, ForgettingGuard
from InteractiveAdaptLib.engine.predictor import Predictor
from InteractiveAdaptLib.model.base_model import save_base_model
from InteractiveAdaptLib.model.checkpoint import load_state
from InteractiveAdaptLib.model.network import build_network

EVAL_CASES = 100
EVAL_SEED = 11
GUARD_SLICES = 8


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def shift_targets() -> dict[str, list[str]]:
    """Per shifted domain, the targets of its single-target benchmark streams."""
    out: dict[str, list[str]] = {}
    for stream in STREAMS.values():
        if stream.stream == "single":
            out.setdefault(stream.domain, []).extend(stream.targets)
    return out


def measure(network: torch.nn.Module, n_cases: int = EVAL_CASES) -> dict[str, dict]:
    """Dice@1/5/10 in-domain (held-out AAL pairs of Colin27) and on every shifted domain."""
    predictor = Predictor(network)
    colin = load_domain("colin27")
    in_domain = spread_order(enumerate_cases(colin, aal_targets_of_split(colin, "test")), EVAL_SEED, n_cases)
    metrics = {"in_domain": {**evaluate(predictor, colin, in_domain).summary(), "kind": "source"}}
    for name, targets in shift_targets().items():
        domain = load_domain(name)
        cases = spread_order(enumerate_cases(domain, targets), EVAL_SEED, n_cases)
        metrics[name] = {
            **evaluate(predictor, domain, cases).summary(),
            "kind": domain.kind,
            "shift": domain.shift,
            "targets": targets,
        }
    return metrics


def write_guard_slices(network: torch.nn.Module, path: Path, count: int = GUARD_SLICES) -> None:
    """Held-out (validation-pair) Colin27 slices with fixed clicks for the optional forgetting guard."""
    colin = load_domain("colin27")
    cases = spread_order(enumerate_cases(colin, aal_targets_of_split(colin, "val"), min_pixels=300), 5, count)
    images = [case.image(colin) for case in cases]
    masks = [case.mask(colin) for case in cases]
    ForgettingGuard.build(Predictor(network), images, masks).save(path)


def export_model(run: Path, output: Path, name: str, n_cases: int, note: str = "") -> Path:
    config = json.loads((run / "config.json").read_text())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    checkpoint = load_state(run / "checkpoint.pt")
    network = build_network(config["network"])
    network.load_state_dict(load_state(run / "best.pt"))
    network.eval()
    best = max(log, key=lambda r: r["val_dice@6"])
    steps = int(checkpoint["step"])
    card = {
        "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_command": (
            f"interactive-adapt train --output {run} --network {config['network']} --steps {steps} "
            f"--seed {config['seed']}"
        ),
        "training": {
            **config,
            "steps_trained": steps,
            "best_step": best["step"],
            "best_val_dice@6": best["val_dice@6"],
        },
        "data": (
            "Colin27 T1 with skull (mricron-data, one real subject) only: AAL structures of the 40 training "
            "bilateral pairs and the brain mask, slices in all three orientations at 1 mm. Validation and test "
            "use the other 18 pairs; tissue classes are never training targets."
        ),
        "seed": config["seed"],
        "note": note,
        "git_commit": _git_commit(),
        "evaluation": f"simulated user, component-centre clicks, {n_cases} held-out cases per entry, seed {EVAL_SEED}, "
        "no adaptation; Dice as fractions",
        "metrics": measure(network, n_cases),
    }
    model = save_base_model(network, output / name, card)
    write_guard_slices(network, output / name / GUARD_FILE)
    (output / name / "README.md").write_text(model_card_markdown(model.card))
    return output / name


def model_card_markdown(card: dict) -> str:
    rows = "\n".join(
        f"| {k} | {m.get('kind', '')} | {m['dice@1']:.3f} | {m['dice@5']:.3f} | {m['dice@10']:.3f} | {m['cases']} |"
        for k, m in card["metrics"].items()
    )
    return f"""# Model card: {card["name"]}

A click-conditioned 2D U-Net (MONAI, InstanceNorm, input = image + positive/negative click maps) for
interactive segmentation of structures on MRI slices, the base model that InteractiveAdapt adapts online
to each site. Configuration: `{card["config"]["name"]}`, channels {card["config"]["channels"]},
{card["config"]["num_res_units"]} residual unit(s) per level.

## Intended use
Interactive segmentation of brain MRI structures in 3D Slicer, slice by slice, with a clinician's
clicks, followed by online adaptation to the site's images and targets. The network sees slices
resampled in-plane to 1 mm and z-scored intensities.

## Not for
Automatic (click-free) segmentation, diagnosis, or any use without a clinician checking every result.
It was trained on a single subject (Colin27): expect large errors on other contrasts, species and
pathology until the site has taught it (that is what the adaptation is for).

## Training
{card["data"]}

Command: `{card["training_command"]}` (seed {card["seed"]}, git {card["git_commit"][:12]}).
Best validation Dice after 6 clicks: {card["training"]["best_val_dice@6"]} at step {card["training"]["best_step"]}.

## Measured (no adaptation)
{card["evaluation"]}.

| data | kind | Dice@1 | Dice@5 | Dice@10 | cases |
|---|---|---|---|---|---|
{rows}

"in_domain" is Colin27 with held-out AAL pairs; every other row is a shift the network never saw
("real" data or "synthetic" contrasts made from real anatomy).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("export-model", help="evaluate a training run and write models/<name>/")
    p.add_argument("--run", type=Path, required=True, help="training run folder")
    p.add_argument("--name", required=True, help="model name (folder under --output)")
    p.add_argument("--output", type=Path, default=Path("models"))
    p.add_argument("--cases", type=int, default=EVAL_CASES, help="held-out cases per metric entry")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--note", default="", help="free text for the card (e.g. how the run was resumed)")
    p.set_defaults(func=_export_command)


def _export_command(args) -> int:
    torch.set_num_threads(args.threads)
    path = export_model(args.run, args.output, args.name, args.cases, args.note)
    print(f"model written to {path}")
    print((path / "README.md").read_text())
    return 0
