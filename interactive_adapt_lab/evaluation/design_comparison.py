"""`interactive-adapt compare-designs`: the 3D designs at an equal training budget, on the validation
pairs only, beside today's product (the 2D network's case) and fill-between (its best step on the same
pairs).

Designs: `volume` (the 3D network on a crop that follows the structure: engine/volume_network.py, through
the product's case) and `propagation` (the 2.5D network that carries the previous slice's mask from the
clicked slices outwards: training/propagation_inference.py). The user is the volumetric benchmark's
(evaluation/volumetric_methods.py: clicks in the view and slice that are worst), 10 clicks per case.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from interactive_adapt_lab.data.datasets import load_domain
from interactive_adapt_lab.evaluation.volumetric_benchmark import FILL_STEPS, SLICE_MODEL, summarize
from interactive_adapt_lab.evaluation.volumetric_methods import (
    ALL_VIEWS,
    FillBetween,
    ProductCase,
    make_session,
    play_case,
)
from interactive_adapt_lab.evaluation.volumetric_structures import HEADS, structures
from interactive_adapt_lab.training.propagation_inference import PROPAGATION_NETWORK, PropagationPredictor
from interactive_adapt_lab.training.volume_training import VolumeTrainConfig
from InteractiveAdaptLib.engine.volume_network import click_voxel
from InteractiveAdaptLib.interaction import Click
from InteractiveAdaptLib.model.base_model import save_base_model
from InteractiveAdaptLib.model.checkpoint import load_state
from InteractiveAdaptLib.model.network import CONFIGS, ClickUNet, build_network

CLICKS = 10
DEFAULT_OUTPUT = Path("benchmarks/results/design-comparison.json")


class PropagationDesign:
    """The 2.5D design as a benchmark method: every click gives the structure from all clicks so far."""

    name = "propagation"
    views = ALL_VIEWS

    def __init__(self, network: torch.nn.Module) -> None:
        self.propagation = PropagationPredictor(network.eval())
        self.last_summary = None

    def start(self, image: np.ndarray, spacing_kji, profile: str) -> None:
        self.image, self.spacing, self.clicks = self.propagation.prepare(image), spacing_kji, []

    def allowed(self, target: np.ndarray) -> np.ndarray:
        return np.ones(target.shape[0], bool)

    def click(self, click: Click, shown: np.ndarray) -> np.ndarray:
        self.clicks.append(click)
        points = np.array([click_voxel(c) for c in self.clicks])
        signs = np.array([c.positive for c in self.clicks])
        return self.propagation.predict(
            self.image, self.spacing, points, signs, shown if shown.any() else None
        )

    def finish(self, learn: bool) -> None:
        return None


def volume_design(checkpoint: Path, config: VolumeTrainConfig, folder: Path):
    """The 3D design's checkpoint as a model folder, run through the product's case."""
    network = build_network(CONFIGS[config.network])
    network.load_state_dict(load_state(checkpoint)["model"])
    save_base_model(network, folder, {"name": "volume-design"})
    return ProductCase(make_session(folder), "volume", interpolate=None)


def compare(
    volume_run: Path,
    propagation_run: Path,
    slice_model: Path,
    orders: int,
    partial: Path,
    limit: int = 0,
    clicks: int = CLICKS,
) -> dict:
    """Each design and baseline on the validation pairs of both heads (the first `limit` of them, 0: all;
    resumable from `partial`)."""
    domains = {head: load_domain(head) for head in HEADS}
    chosen = structures(domains, ["validation"])[: limit or None]
    volume_config = VolumeTrainConfig(**json.loads((volume_run / "config.json").read_text()))
    propagation = ClickUNet(PROPAGATION_NETWORK)
    propagation.load_state_dict(load_state(propagation_run / "checkpoint.pt")["model"])
    slice_session = make_session(slice_model)
    with tempfile.TemporaryDirectory() as folder:
        methods = [
            volume_design(volume_run / "checkpoint.pt", volume_config, Path(folder)),
            ProductCase(slice_session, "slice-network"),
            *[FillBetween(slice_session, k) for k in FILL_STEPS],
            PropagationDesign(propagation),
        ]
        results = {}
        for method in methods:
            per_structure = {}
            for head, target, _ in chosen:
                domain, mask = domains[head], domains[head].target_mask(target)
                runs = []
                for order in range(orders):
                    path = partial / method.name / f"{head}-{target.replace(':', '-')}-order{order}.json"
                    if not path.is_file():
                        started = time.perf_counter()
                        curve, _ = play_case(
                            method, domain.image, domain.spacing_kji, mask, order, max_clicks=CLICKS
                        )
                        seconds = time.perf_counter() - started
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_text(json.dumps({"curve": curve, "seconds": seconds}))
                    runs.append(json.loads(path.read_text()))
                figures = summarize([r["curve"] for r in runs], [r["seconds"] for r in runs])
                per_structure[f"{head}:{target}"] = {**figures, "head": head}
            results[method.name] = per_structure
    fill = [n for n in results if n.startswith("fill-between")]
    best = min(fill, key=lambda n: (_median(results[n], "noc@80"), -_median(results[n], "dice@10")))
    results = {name: s for name, s in results.items() if not name.startswith("fill-between") or name == best}
    return {"methods": results, "fill_between_step": best}


def _median(structures_: dict, key: str, head: str | None = None) -> float:
    values = [s[key] for s in structures_.values() if head is None or s["head"] == head]
    return float(np.median(values)) if values else float("nan")


def budgets(volume_run: Path, propagation_run: Path) -> dict:
    """What each design was trained with: steps, samples and minutes of wall time at its checkpoint."""
    out = {}
    for name, run in (("volume", volume_run), ("propagation", propagation_run)):
        config = json.loads((run / "config.json").read_text())
        state = load_state(run / "checkpoint.pt")
        step = int(state["step"] if "step" in state else state["progress"]["step"])  # train-propagation's
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
        seconds = max((e["seconds"] for e in log if e["step"] <= step), default=0.0)
        out[name] = {
            "steps": step,
            "samples": step * int(config["batch_size"]),
            "minutes": round(seconds / 60, 1),
            "threads": config.get("threads", 1),
        }
    return out


def report_markdown(result: dict) -> str:
    """The comparison table: medians over the validation pairs, per head."""
    lines = [
        "# Designs of the 3D network, at an equal training budget, on the validation pairs",
        "",
        f"Command: `{result['command']}`",
        "",
        result["protocol"],
        "",
        "| design | steps | samples | minutes of training |",
        "|---|---|---|---|",
    ]
    for name, b in result["budgets"].items():
        lines.append(f"| {name} | {b['steps']} | {b['samples']} | {b['minutes']} |")
    lines += [
        "",
        "| head | method | median Dice3D@1 | @3 | @5 | @10 | s of compute per case |",
        "|---|---|---|---|---|---|---|",
    ]
    for head in HEADS:
        for name, per_structure in result["methods"].items():
            if np.isnan(_median(per_structure, "dice@1", head)):
                continue
            cells = [f"{_median(per_structure, f'dice@{n}', head):.3f}" for n in (1, 3, 5, 10)]
            cells.append(f"{_median(per_structure, 'seconds_per_case', head):.1f}")
            lines.append(f"| {head} | {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Fill-between: its best step on these pairs, {result['fill_between_step']}. Seconds of compute: the "
        "clicks and the finish of a case, on a machine other work shared (not a speed figure).",
    ]
    return "\n".join(lines) + "\n"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare-designs", help="the 3D designs at an equal budget on the validation pairs"
    )
    p.add_argument(
        "--volume-run", type=Path, required=True, help="a train-volume run folder (its checkpoint)"
    )
    p.add_argument("--propagation-run", type=Path, required=True, help="a train-propagation run folder")
    p.add_argument(
        "--slice-model", type=Path, default=None, help=f"today's 2D model (default: {SLICE_MODEL})"
    )
    p.add_argument("--orders", type=int, default=1)
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_command)


def _command(args) -> int:
    from InteractiveAdaptLib.model.location import find_base_model_dir

    torch.set_num_threads(args.threads)
    slice_model = Path(args.slice_model or find_base_model_dir(SLICE_MODEL))
    partial = args.output.with_name(args.output.stem + "-partial")
    result = compare(args.volume_run, args.propagation_run, slice_model, args.orders, partial)
    result.update(
        command=(
            f"interactive-adapt compare-designs --volume-run {args.volume_run} --propagation-run "
            f"{args.propagation_run} --orders {args.orders}"
        ),
        protocol=(
            f"Validation pairs of Colin27 and MNI152, both sides; the volumetric benchmark's simulated user "
            f"(first click in the largest axial cross-section, then in the view and slice with the most wrong "
            f"voxels; fill-between: every k-th axial slice), {CLICKS} clicks, {args.orders} order(s); no learning."
        ),
        budgets=budgets(args.volume_run, args.propagation_run),
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    args.output.with_suffix(".md").write_text(report_markdown(result))
    print(report_markdown(result))
    return 0
