"""`interactive-adapt bench-volumetric`: whole structures in 3D, clicked by a simulated user.

The user and the methods are evaluation/volumetric_methods.py's, the structures (validation pairs for
choices; compact, test-pair, cortical and large structures reported, on Colin27 and MNI152)
evaluation/volumetric_structures.py's, the learning streams under shifts evaluation/volumetric_streams.py's.
Figures per method and structure: 3D Dice after 1, 3, 5 and 10 clicks, NoC3D@80/85/90 (MAX_CLICKS when
never reached) and seconds of compute per case, averaged over the orders (click-position seeds); medians
per group. Fill-between's step is chosen on the validation pairs.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np

from interactive_adapt_lab.data.datasets import Domain, load_domain
from interactive_adapt_lab.evaluation.volumetric_methods import (
    MAX_CLICKS,
    FillBetween,
    PerSlice,
    ProductCase,
    make_session,
    noc,
    play_case,
)
from interactive_adapt_lab.evaluation.volumetric_streams import CASES, SHIFTS, summarize_streams
from interactive_adapt_lab.evaluation.volumetric_structures import GROUPS, HEADS, structures

log = logging.getLogger(__name__)

DICE_AT = (1, 3, 5, 10)
NOC_LEVELS = (0.80, 0.85, 0.90)
FILL_STEPS = (2, 3, 4, 5, 6, 7, 8)
DEFAULT_OUTPUT = Path("benchmarks/results/volumetric.json")
SLICE_MODEL = "colin27-unet-default"
VOLUME_MODEL = "colin27-volume"


def methods(slice_session, volume_session, steps=FILL_STEPS) -> list:
    """The methods without learning: the baselines, the 2D network's case and the 3D network's."""
    out = [PerSlice(slice_session)] + [FillBetween(slice_session, k) for k in steps]
    out.append(ProductCase(slice_session, "slice-network"))
    if volume_session is not None:
        out.append(ProductCase(volume_session, "volume-network", interpolate=None))
    return out


def summarize(curves: list[list[float]], seconds: list[float]) -> dict:
    """The figures of one method on one structure, averaged over the orders."""
    mean = np.mean(np.asarray(curves), axis=0)
    out = {f"dice@{n}": round(float(mean[n - 1]), 4) for n in DICE_AT}
    out["curve"] = [round(float(v), 4) for v in mean[:10]]
    for level in NOC_LEVELS:
        out[f"noc@{round(level * 100)}"] = round(float(np.mean([noc(c, level) for c in curves])), 2)
    out["seconds_per_case"] = round(float(np.mean(seconds)), 2)
    return out


def _save(path: Path, figures: dict) -> None:
    """Keep one finished run, so that a stopped benchmark resumes after it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures))


def run_benchmark(
    slice_model: Path,
    volume_model: Path | None,
    chosen: list[tuple[str, str, str]],
    orders: int,
    steps=FILL_STEPS,
    partial: Path = DEFAULT_OUTPUT.parent / "volumetric-partial",
    domains: dict[str, Domain] | None = None,
    max_clicks: int = MAX_CLICKS,
) -> dict:
    """Every method on every chosen (head, target, group), `orders` click seeds each (resumable)."""
    volume_session = make_session(volume_model) if volume_model is not None else None
    all_methods = methods(make_session(slice_model), volume_session, steps)
    domains = domains or {head: load_domain(head) for head in HEADS}
    results: dict = {m.name: {"structures": {}} for m in all_methods}
    for head, target, group in chosen:
        domain, mask, name = domains[head], domains[head].target_mask(target), f"{head}:{target}"
        for method in all_methods:
            runs = []
            for order in range(orders):
                path = partial / method.name / f"{name.replace(':', '-')}-order{order}.json"
                if not path.is_file():
                    curve, seconds = play_case(
                        method, domain.image, domain.spacing_kji, mask, order, max_clicks=max_clicks
                    )
                    _save(path, {"curve": curve, "seconds": seconds})
                runs.append(json.loads(path.read_text()))
            figures = summarize([r["curve"] for r in runs], [r["seconds"] for r in runs])
            figures.update(group=group, head=head)
            results[method.name]["structures"][name] = figures
            log.info("%s %s: %s", method.name, name, figures)
    fill = [m.name for m in all_methods if m.name.startswith("fill-between")]
    # Chosen on the validation pairs: fewest clicks to 80 % (median), most 3D Dice after 10 clicks on a tie.
    best = min(
        fill,
        key=lambda n: (
            _median(results[n], "noc@80", "validation"),
            -_median(results[n], "dice@10", "validation"),
        ),
    )
    results["fill-between"] = {"structures": results[best]["structures"], "best_of": fill, "step": best}
    return results


def _median(method: dict, key: str, group: str | None = None, head: str | None = None) -> float:
    values = [
        s[key]
        for s in method["structures"].values()
        if (group is None or s["group"] == group) and (head is None or s["head"] == head)
    ]
    return float(np.median(values)) if values else float("nan")


def mean_curve(method: dict, group: str, head: str | None = None) -> list[float]:
    """The mean 3D Dice after 1..10 clicks over a group's structures."""
    curves = [
        s["curve"]
        for s in method["structures"].values()
        if s["group"] == group and (head is None or s["head"] == head)
    ]
    return [round(float(v), 4) for v in np.mean(curves, axis=0)] if curves else []


def targets(result: dict) -> dict[str, bool]:
    """The issue's targets for the 3D network against the baselines of the same run."""
    m = result["methods"]
    if "volume-network" not in m:
        return {}
    volume, fill = m["volume-network"], m["fill-between"]

    def compact(key: str, method=volume) -> float:
        return _median(method, key, "compact", "mni152")

    curve = mean_curve(volume, "compact", "mni152")
    out = {
        "MNI152 compact median Dice3D@1 >= 0.60": compact("dice@1") >= 0.60,
        "MNI152 compact median Dice3D@5 >= 0.80": compact("dice@5") >= 0.80,
        "MNI152 compact median Dice3D@10 >= 0.85": compact("dice@10") >= 0.85,
        "MNI152 compact median NoC3D@80 <= 5": compact("noc@80") <= 5,
        "MNI152 compact above fill-between at 3, 5 and 10 clicks": all(
            compact(f"dice@{n}") > compact(f"dice@{n}", fill) for n in (3, 5, 10)
        ),
        "MNI152 compact mean curve never falls": all(b >= a for a, b in pairwise(curve)),
        "test pairs median Dice3D@10 >= 0.80 (both heads)": all(
            _median(volume, "dice@10", "test", head) >= 0.80 for head in HEADS
        ),
        "brain Dice3D@3 >= 0.90 (both heads)": all(
            volume["structures"].get(f"{head}:brain", {}).get("dice@3", 0) >= 0.90 for head in HEADS
        ),
    }
    for shift, rows in result.get("stream", {}).items():
        learning, control = rows["learning"], rows["control"]
        out[f"{shift}: NoC3D@80 second half <= 0.75 x control"] = (
            learning["noc@80_second_half"] <= 0.75 * control["noc@80_second_half"]
        )
        if learning.get("max_forgetting") is not None:
            out[f"{shift}: forgetting <= 0.02"] = learning["max_forgetting"] <= 0.02
    return out


def report_markdown(result: dict) -> str:
    """Tables: medians per method, group and head; the validation choices; the streams; the targets."""
    lines = [
        "# Whole structures in 3D: simulated user, 3D Dice and clicks",
        "",
        f"Command: `{result['command']}`" + (" (quick: not a measurement)" if result["quick"] else ""),
        "",
        result["protocol"],
        "",
        f"Fill-between's step, chosen on the validation pairs: {result['methods']['fill-between']['step']}.",
        "",
        "| group | head | method | median Dice3D@1 | @3 | @5 | @10 | median NoC3D@80 | @85 | @90 | s per case |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    shown = [n for n in result["methods"] if not n.startswith("fill-between-")]
    groups = [
        g
        for g in GROUPS
        if any(s["group"] == g for s in result["methods"]["per-slice"]["structures"].values())
    ]
    for group in groups:
        for head in HEADS:
            for name in shown:
                method = result["methods"][name]
                if np.isnan(_median(method, "dice@1", group, head)):
                    continue
                cells = [f"{_median(method, f'dice@{n}', group, head):.3f}" for n in DICE_AT]
                cells += [f"{_median(method, f'noc@{round(v * 100)}', group, head):g}" for v in NOC_LEVELS]
                cells.append(f"{_median(method, 'seconds_per_case', group, head):.1f}")
                lines.append(f"| {group} | {head} | {name} | " + " | ".join(cells) + " |")
    lines += ["", "Fill-between's steps on the validation pairs (both heads):", ""]
    lines += ["| step | median NoC3D@80 | median Dice3D@10 |", "|---|---|---|"]
    for name in result["methods"]["fill-between"]["best_of"]:
        method = result["methods"][name]
        lines.append(
            f"| {name} | {_median(method, 'noc@80', 'validation'):g} | {_median(method, 'dice@10', 'validation'):.3f} |"
        )
    stream = result.get("stream", {})
    if stream:
        lines += [
            "",
            "Along a site's stream of 3D cases under a shift (the 3D network; one profile per structure),",
            "learning against the same cases without learning (the control):",
            "",
            "| shift | run | cases per order | NoC3D@80 first half | second half | Dice3D@10 | s learning at Finish "
            "| largest forgetting (Colin27, Dice3D@5) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for shift, rows in stream.items():
            for run, s in rows.items():
                forgetting = s.get("max_forgetting")
                lines.append(
                    f"| {shift} | {run} | {s['cases_per_order']} | {s['noc@80_first_half']:g} "
                    f"| {s['noc@80_second_half']:g} | {s['dice@10']:.3f} | {s['learn_seconds_per_case']:.1f} "
                    f"| {'' if forgetting is None else f'{forgetting:.3f}'} |"
                )
    if result.get("targets"):
        lines += [
            "",
            "Targets: " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in result["targets"].items()),
        ]
    if result.get("picture"):
        lines += ["", f"![3D results after 10 clicks]({result['picture']})"]
    return "\n".join(lines) + "\n"


PICTURE_STRUCTURES = [
    ("colin27", "aal:Thalamus_L"),
    ("mni152", "aal:Caudate_L"),
    ("mni152", "aal:Hippocampus_L"),
]


def render_picture(model_dir: Path, path: Path, clicks: int = 10) -> None:
    """The 3D network's result after `clicks` simulated clicks (seed 0) on a few structures: an axial and
    a coronal slice through each, the result (red) beside the reference (green) on the image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    method = ProductCase(make_session(model_dir), "volume-network", interpolate=None)
    fig, axes = plt.subplots(len(PICTURE_STRUCTURES), 4, figsize=(12, 3 * len(PICTURE_STRUCTURES)))
    for row, (head, target) in zip(axes, PICTURE_STRUCTURES, strict=True):
        domain = load_domain(head)
        truth = domain.target_mask(target)
        results: list[np.ndarray] = []
        play_case(
            method, domain.image, domain.spacing_kji, truth, 0, on_click=results.append, max_clicks=clicks
        )
        shown = results[min(clicks, len(results)) - 1]
        k, j, _ = (int(np.median(ix)) for ix in np.nonzero(truth))
        panels = [
            (plane, index, mask, label)
            for plane, index in (("axial", (k,)), ("coronal", (slice(None), j)))
            for mask, label in ((shown, "result"), (truth, "reference"))
        ]
        for axis, (plane, index, mask, label) in zip(row, panels, strict=True):
            flip = slice(None, None, -1 if plane == "coronal" else 1)  # the head's top up
            axis.imshow(domain.image[index][flip], cmap="gray")
            color = "red" if label == "result" else "lime"
            axis.contour(mask[index][flip].astype(float), levels=[0.5], colors=color)
            axis.set_title(f"{head} {target[4:]}, {plane}: {label} ({clicks} clicks)", fontsize=8)
            axis.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def register(subparsers) -> None:
    p = subparsers.add_parser("bench-volumetric", help="3D Dice and clicks per structure (simulated user)")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file; a .md beside it")
    p.add_argument("--model", type=Path, default=None, help=f"the 3D model folder (default: {VOLUME_MODEL})")
    p.add_argument(
        "--slice-model", type=Path, default=None, help=f"the 2D model folder (default: {SLICE_MODEL})"
    )
    p.add_argument("--orders", type=int, default=3, help="click-position seeds per structure")
    p.add_argument("--groups", nargs="+", default=list(GROUPS), choices=GROUPS)
    p.add_argument("--stream-cases", type=int, default=CASES, help="cases per order of each learning stream")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="two structures, one order (CI; never the results)")
    p.set_defaults(func=_command)


def _command(args) -> int:
    import torch

    from InteractiveAdaptLib.model.location import find_base_model_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    domains = {head: load_domain(head) for head in HEADS}
    chosen = structures(domains, args.groups)
    orders, steps, shifts, count, clicks = args.orders, FILL_STEPS, SHIFTS, args.stream_cases, MAX_CLICKS
    if args.quick:  # two structures, one order, two clicks: the code runs, nothing is measured
        chosen, orders, steps, shifts, count, clicks = chosen[:2], 1, FILL_STEPS[:2], SHIFTS[:1], 2, 2
    slice_model = Path(args.slice_model or find_base_model_dir(SLICE_MODEL))
    volume_model = Path(args.model or find_base_model_dir(VOLUME_MODEL))
    partial = args.output.with_name(args.output.stem + "-partial")
    results = run_benchmark(slice_model, volume_model, chosen, orders, steps, partial, domains, clicks)
    stream = summarize_streams(volume_model, orders, partial / "streams", shifts, count, clicks)
    options = f"--orders {orders} --groups {' '.join(args.groups)}" + (" --quick" if args.quick else "")
    result = {
        "command": f"interactive-adapt bench-volumetric {options}",
        "quick": bool(args.quick),
        "machine": {
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
        "models": {"volume": volume_model.name, "slice": slice_model.name},
        "protocol": (
            f"Simulated user: first click in the largest axial cross-section, then in the view and slice with "
            f"the most wrong voxels (per-slice and fill-between: axial slices only, as their workflow), at the "
            f"largest error component there (seed 0: its centre; other seeds: a random point of it); "
            f"{MAX_CLICKS} clicks at most; {orders} seed(s) per structure; no learning outside the streams."
        ),
        "methods": results,
        "stream": stream,
    }
    result["targets"] = targets(result)
    render_picture(volume_model, args.output.with_suffix(".png"), min(clicks, 10))
    result["picture"] = args.output.with_suffix(".png").name
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    args.output.with_suffix(".md").write_text(report_markdown(result))
    print(report_markdown(result), file=sys.stdout)
    return 0
