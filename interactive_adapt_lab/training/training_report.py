"""`interactive-adapt training-report`: compare training runs (recipe ablations) at an equal step budget.

Each run folder holds `config.json` and `log.jsonl` (written by `interactive-adapt train`). The report
lists what each run changed against the first (the reference), its validation Dice after 6 clicks at
the budget and the mean over the last validations up to it (one validation is noisy), the parameters
and, when a speed file is given, the click latency of its network configuration.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from interactive_adapt_lab.training.training import TrainConfig
from InteractiveAdaptLib.errors import InteractiveAdaptError
from InteractiveAdaptLib.model.network import CONFIGS, build_network, count_parameters

SMOOTHING = 3  # validations averaged up to the budget
IGNORED_FIELDS = {"steps", "threads", "val_every", "checkpoint_every"}  # bookkeeping, not the recipe


def read_run(run: Path) -> tuple[dict, list[dict]]:
    """(config, validation records) of a run folder."""
    config_file, log_file = run / "config.json", run / "log.jsonl"
    if not (config_file.is_file() and log_file.is_file()):
        raise InteractiveAdaptError(
            f"{run} is not a training run folder (config.json and log.jsonl are missing). "
            "Give the --output folders of `interactive-adapt train`."
        )
    records = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    # A run from before a recipe field existed used that field's default.
    config = {**asdict(TrainConfig()), **json.loads(config_file.read_text())}
    return config, [r for r in records if "step" in r]


def _validation_key(records: list[dict]) -> str:
    keys = [k for k in records[0] if k.startswith("val_dice@")] if records else []
    if not keys:
        raise InteractiveAdaptError(
            "The run's log has no validation Dice yet: let it train past --val-every."
        )
    return keys[0]


def summarize_run(run: Path, reference: dict, budget: int, speed: dict | None) -> dict:
    config, records = read_run(run)
    key = _validation_key(records)
    within = [r for r in records if r["step"] <= budget]
    if not within or within[-1]["step"] < budget:
        reached = within[-1]["step"] if within else 0
        raise InteractiveAdaptError(
            f"{run} has validations up to step {reached} only, below the budget of {budget} steps. "
            "Let it train further (it resumes) or lower --steps."
        )
    changes = {k: v for k, v in config.items() if k not in IGNORED_FIELDS and reference[k] != v}
    network = config.get("network", "default")
    entry = {
        "run": run.name,
        "changes": changes or "reference",
        "network": network,
        "parameters": count_parameters(build_network(network)) if network in CONFIGS else None,
        f"{key}_at_budget": within[-1][key],
        f"{key}_mean_last{SMOOTHING}": round(float(np.mean([r[key] for r in within[-SMOOTHING:]])), 4),
        "curve": [(r["step"], r[key]) for r in records],
    }
    if speed and network in speed:
        entry["click_ms_p50"] = speed[network]["click_ms_p50"]
    return entry


def training_report(runs: list[Path], budget: int, speed_file: Path | None) -> dict:
    reference, _ = read_run(runs[0])
    speed = json.loads(speed_file.read_text()) if speed_file and speed_file.is_file() else None
    return {
        "command": "interactive-adapt " + " ".join(sys.argv[1:]),
        "budget_steps": budget,
        "reference": runs[0].name,
        "runs": [summarize_run(run, reference, budget, speed) for run in runs],
    }


def markdown(report: dict) -> str:
    rows = report["runs"]
    key = next(k for k in rows[0] if k.endswith("_at_budget"))
    mean_key = next(k for k in rows[0] if "_mean_last" in k)
    lines = [
        f"# Training ablations at {report['budget_steps']} steps",
        "",
        f"`{report['command']}`",
        "",
        f"| run | change against {report['reference']} | parameters | {key} | {mean_key} | click p50 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        change = (
            r["changes"]
            if isinstance(r["changes"], str)
            else ", ".join(f"{k}={v}" for k, v in r["changes"].items())
        )
        lines.append(
            f"| {r['run']} | {change} | {r['parameters']} | {r[key]:.4f} | {r[mean_key]:.4f} "
            f"| {r.get('click_ms_p50', '')} |"
        )
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=80)
    for r in report["runs"]:
        steps, dice = zip(*[(s, d) for s, d in r["curve"] if s <= report["budget_steps"]], strict=True)
        ax.plot(steps, dice, marker=".", label=r["run"])
    ax.set(xlabel="training step", ylabel="validation Dice after 6 clicks", ylim=(0.4, 0.9))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "training-report", help="compare training runs (ablations) at an equal step budget"
    )
    p.add_argument(
        "--runs", type=Path, nargs="+", required=True, help="run folders; the first is the reference"
    )
    p.add_argument("--steps", type=int, required=True, help="the step budget every run is compared at")
    p.add_argument("--speed", type=Path, default=Path("benchmarks/results/speed.json"))
    p.add_argument("--output", type=Path, default=Path("benchmarks/results/training-ablations"))
    p.set_defaults(func=_command)


def _command(args) -> int:
    report = training_report(args.runs, args.steps, args.speed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    args.output.with_suffix(".md").write_text(markdown(report))
    plot(report, args.output.with_suffix(".png"))
    print(f"wrote {args.output.with_suffix('.md')}, .json and .png")
    return 0
