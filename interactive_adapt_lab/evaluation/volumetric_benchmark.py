"""`interactive-adapt bench-volumetric`: whole structures in 3D, clicked by a simulated user.

A case is one structure in one real volume. The simulated user looks at the 3D result, takes the slice
(along the acquisition's axial axis) with the most wrong voxels, and clicks the centre of the largest
error component there (positive on a miss, negative on a spill), as the 2D benchmark's user does on
one slice; the first click goes to the centre of the structure's largest cross-section. Up to
MAX_CLICKS clicks; after each one the 3D Dice of what the method shows is recorded.

Methods (each a way of turning clicks into a 3D mask, with the shipped network and no learning):
- `per-slice`: the module before 3D: a click segments its own slice only.
- `fill-between-k<K>`: the user clicks only every K-th slice (the largest-error one among them) and
  ITK's morphological contour interpolation (the filter behind Slicer's "Fill between slices") fills the
  slices between the clicked ones; the report names the best K.

Figures per method and structure: Dice3D after 1, 3, 5 and 10 clicks, NoC3D@80/85/90 (MAX_CLICKS when
never reached) and seconds of compute per case; several case orders (click-position seeds) are averaged.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from interactive_adapt_lab.data.cases import aal_pair_split
from interactive_adapt_lab.data.datasets import Domain, aal_pair, load_domain
from InteractiveAdaptLib.engine.case import Case
from InteractiveAdaptLib.engine.click_simulation import first_click, next_click
from InteractiveAdaptLib.engine.slice_propagation import PropagationConfig
from InteractiveAdaptLib.interaction import Click, FillOptions, Interpolator
from InteractiveAdaptLib.mrml.contour_interpolation import TooFragmented, contour_interpolation

log = logging.getLogger(__name__)

MAX_CLICKS = 30
DICE_AT = (1, 3, 5, 10)
NOC_LEVELS = (0.80, 0.85, 0.90)
AXIS = 0  # the volumes' K axis: axial slices for Colin27 and MNI152 as stored
FILL_STEPS = (2, 3, 5)
DEFAULT_OUTPUT = Path("benchmarks/results/volumetric.json")
# (domain, target, kind): compact structures with visible borders, and cortical parcels.
STRUCTURES = [
    ("colin27", "aal:Caudate_L", "compact"),
    ("colin27", "aal:Putamen_R", "compact"),
    ("colin27", "aal:Thalamus_L", "compact"),
    ("colin27", "aal:Hippocampus_R", "compact"),
    ("colin27", "aal:Amygdala_L", "compact"),
    ("colin27", "brain", "compact"),
    ("colin27", "aal:Frontal_Mid_Orb_L", "cortical"),
    ("colin27", "aal:Temporal_Mid_R", "cortical"),
    ("mni152", "aal:Caudate_R", "compact"),
    ("mni152", "aal:Putamen_L", "compact"),
    ("mni152", "aal:Thalamus_R", "compact"),
    ("mni152", "aal:Hippocampus_L", "compact"),
    ("mni152", "aal:Amygdala_R", "compact"),
    ("mni152", "brain", "compact"),
    ("mni152", "aal:Frontal_Mid_Orb_R", "cortical"),
    ("mni152", "aal:Temporal_Mid_L", "cortical"),
]


def dice3d(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two 3D masks (1.0 when both are empty)."""
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def per_slice(mask: np.ndarray) -> np.ndarray:
    """The voxels of `mask` in each slice along AXIS."""
    return np.moveaxis(mask, AXIS, 0).reshape(mask.shape[AXIS], -1).sum(axis=1)


def trained_on(domain: Domain, target: str) -> str:
    """Whether the shipped model learned this structure: 'yes' (training split), 'no' (validation or
    test split of the AAL pairs), for the brain 'yes'."""
    if target == "brain":
        return "yes"
    _, label = domain.targets[target]
    return "yes" if aal_pair(label) in aal_pair_split()["train"] else "no"


class PerSlice:
    """Each click segments its own slice (every click of that slice counts); nothing else changes."""

    name = "per-slice"

    def __init__(self, session) -> None:
        self.session = session

    def start(self, image: np.ndarray, spacing_kji, profile: str) -> None:
        """A new case on a normalised volume."""
        self.session.start_case(image, spacing_kji, profile, normalized=True)

    def finish(self, learn: bool):
        """End the case (the baselines never learn)."""
        return self.session.finish_case(None, learn=False)

    def allowed(self, target: np.ndarray) -> np.ndarray:
        """The slices the user may click (all)."""
        return np.ones(target.shape[AXIS], bool)

    def click(self, click: Click, shown: np.ndarray) -> np.ndarray:
        prediction = self.session.add_click(click)
        shown = shown.copy()
        np.moveaxis(shown, prediction.axis, 0)[prediction.index] = prediction.mask > 0
        return shown


class FillBetween(PerSlice):
    """The user clicks every k-th slice; contour interpolation fills the slices between clicked ones.

    After a click only the gaps next to its slice are interpolated again (ITK fills each gap from the
    two labelled slices around it): the same result as interpolating the whole stack, in a fraction of
    the time for large structures such as the brain.
    """

    def __init__(self, session, step: int, interpolate: Interpolator = contour_interpolation) -> None:
        super().__init__(session)
        self.step, self.interpolate = step, interpolate
        self.name = f"fill-between-k{step}"
        self._clicked: np.ndarray | None = None  # the clicked slices' masks (empty elsewhere)
        self._filled: np.ndarray | None = None

    def start(self, image: np.ndarray, spacing_kji, profile: str) -> None:
        super().start(image, spacing_kji, profile)
        self._clicked = self._filled = None

    def allowed(self, target: np.ndarray) -> np.ndarray:
        """Every k-th slice, counted from the structure's largest cross-section (where the user starts)."""
        start = int(np.argmax(per_slice(target)))
        return (np.arange(target.shape[AXIS]) - start) % self.step == 0

    def click(self, click: Click, shown: np.ndarray) -> np.ndarray:
        if self._clicked is None or self._clicked.shape != shown.shape:
            self._clicked, self._filled = np.zeros(shown.shape, bool), np.zeros(shown.shape, bool)
        prediction = self.session.add_click(click)
        index = prediction.index
        clicked = np.moveaxis(self._clicked, AXIS, 0)
        clicked[index] = prediction.mask > 0
        labelled = np.flatnonzero(clicked.any(axis=(1, 2)))
        low = max((int(n) for n in labelled if n < index), default=index)
        high = min((int(n) for n in labelled if n > index), default=index)
        filled = np.moveaxis(self._filled, AXIS, 0)
        try:
            filled[low : high + 1] = np.moveaxis(
                self.interpolate(np.moveaxis(clicked[low : high + 1], 0, AXIS), AXIS), AXIS, 0
            )
        except TooFragmented:  # ITK cannot label this many pieces: these slices stay unfilled
            filled[low : high + 1] = clicked[low : high + 1]
        return self._filled.copy()


class ThreeD(PerSlice):
    """The product's 3D case (engine/case.py, with the slice network of engine/slice_propagation.py): a
    click segments its slice, and the structure's 3D mask follows by interpolation between clicked
    slices and propagation beyond them."""

    def __init__(
        self,
        session,
        config: PropagationConfig | None = None,
        interpolate: Interpolator | None = contour_interpolation,
        name: str = "default",
    ) -> None:
        super().__init__(session)
        self.config, self.interpolate, self.name = config or PropagationConfig(), interpolate, name
        self.options = FillOptions(propagate=self.config.enabled)
        self.case: Case | None = None

    def start(self, image: np.ndarray, spacing_kji, profile: str) -> None:
        self.case = self.session.open_case(
            image, spacing_kji, profile, self.interpolate, normalized=True, propagation=self.config
        )

    def click(self, click: Click, shown: np.ndarray) -> np.ndarray:
        self.case.click(click, self.options)
        return self.case.mask.copy()

    def finish(self, learn: bool):
        """Accept the 3D result as shown: with `learn`, PI on the slices the product picks."""
        return self.case.finish(None, learn=learn)


def click_mode(seed: int) -> str:
    """Seed 0 clicks the centre of each region, as the 2D benchmark does; other seeds click a random
    point of it (the centre rule alone would make every seed the same run)."""
    return "center" if seed == 0 else "random"


def play_case(
    method,
    image: np.ndarray,
    spacing_kji,
    target: np.ndarray,
    seed: int,
    profile: str = "benchmark",
    learn: bool = False,
    on_click: Callable[[np.ndarray], None] | None = None,
    max_clicks: int = MAX_CLICKS,
) -> tuple[list[float], float]:
    """One case: (3D Dice after each click, up to MAX_CLICKS; seconds of compute). With `learn`, the
    session learns as in the product (MI after each click, PI on the accepted 3D result at the end)."""
    rng = np.random.default_rng(seed)
    mode = click_mode(seed)
    allowed = method.allowed(target)
    shown = np.zeros(target.shape, bool)
    method.start(image, spacing_kji, profile)
    curve, compute = [], 0.0
    index = int(np.argmax(per_slice(target)))  # the largest cross-section
    click = first_click(np.take(target, index, AXIS), mode, rng)
    while click is not None and len(curve) < max_clicks:
        row, col, positive = click
        started = time.perf_counter()
        shown = method.click(Click(AXIS, index, row, col, positive), shown)
        compute += time.perf_counter() - started
        curve.append(dice3d(shown, target))
        if on_click is not None:
            on_click(shown)
        errors = per_slice(shown != target)
        errors[~allowed] = 0
        if not errors.any():
            break
        index = int(np.argmax(errors))
        click = next_click(np.take(shown, index, AXIS), np.take(target, index, AXIS), mode, rng)
    started = time.perf_counter()
    method.last_summary = method.finish(learn)
    compute += time.perf_counter() - started
    curve += [curve[-1] if curve else 0.0] * (MAX_CLICKS - len(curve))  # nothing left to click: it stays
    return curve, compute


def noc(curve: list[float], level: float) -> int:
    """Clicks to reach `level` 3D Dice (MAX_CLICKS when never reached)."""
    hit = np.flatnonzero(np.asarray(curve) >= level)
    return int(hit[0]) + 1 if len(hit) else MAX_CLICKS


def summarize(curves: list[list[float]], seconds: list[float]) -> dict:
    """The figures of one method on one structure, averaged over the orders."""
    mean = np.mean(np.asarray(curves), axis=0)
    out = {f"dice@{n}": round(float(mean[n - 1]), 4) for n in DICE_AT}
    for level in NOC_LEVELS:
        out[f"noc@{round(level * 100)}"] = round(float(np.mean([noc(c, level) for c in curves])), 2)
    out["seconds_per_case"] = round(float(np.mean(seconds)), 2)
    return out


def make_session(model_dir: Path, learn: bool = False):
    """The shipped network in a session; without `learn` it never learns (the methods' clicks only),
    with it it learns as the product does (no store: each structure's profile is kept in memory)."""
    from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
    from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
    from InteractiveAdaptLib.model.base_model import load_base_model

    adaptation = (
        AdaptationConfig() if learn else AdaptationConfig(mid_interaction=False, post_interaction=False)
    )
    return InteractiveSession(load_base_model(model_dir), SessionConfig(adaptation=adaptation))


def methods(session, steps=FILL_STEPS) -> list:
    """The methods without learning: the baselines, the product's default and its variants."""
    return (
        [PerSlice(session)]
        + [FillBetween(session, k) for k in steps]
        + [
            ThreeD(session),
            ThreeD(session, interpolate=None, name="propagate-only"),
            ThreeD(session, PropagationConfig(enabled=False), name="interpolate-only"),
        ]
    )


def _save(path: Path, figures: dict) -> None:
    """Keep one finished run, so that a stopped benchmark resumes after it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures))


def run_benchmark(
    model_dir: Path,
    structures=STRUCTURES,
    orders: int = 3,
    steps=FILL_STEPS,
    partial: Path = DEFAULT_OUTPUT.parent / "volumetric-partial",
    cache_dir: Path | None = None,
) -> dict:
    """Every method on every structure, `orders` click seeds each (resumable from `partial`)."""
    session = make_session(model_dir)
    all_methods = methods(session, steps)
    results: dict = {m.name: {"structures": {}} for m in all_methods}
    domains: dict[str, Domain] = {}
    for domain_name, target, kind in structures:
        domain = domains.setdefault(domain_name, load_domain(domain_name, cache_dir))
        mask = domain.target_mask(target)
        name = f"{domain_name}:{target}"
        for method in all_methods:
            runs = []
            for order in range(orders):
                path = partial / method.name / f"{name.replace(':', '-')}-order{order}.json"
                if not path.is_file():
                    curve, seconds = play_case(method, domain.image, domain.spacing_kji, mask, order)
                    _save(path, {"curve": curve, "seconds": seconds})
                runs.append(json.loads(path.read_text()))
            figures = summarize([r["curve"] for r in runs], [r["seconds"] for r in runs])
            figures.update(kind=kind, domain=domain_name, trained=trained_on(domain, target))
            results[method.name]["structures"][name] = figures
            log.info("%s %s: %s", method.name, name, figures)
    fill = [m.name for m in all_methods if m.name.startswith("fill-between")]
    # Fewest clicks to 80 % (median over structures); most 3D Dice after 10 clicks where that ties.
    best = (
        min(fill, key=lambda n: (_median(results[n], "noc@80"), -_median(results[n], "dice@10")))
        if fill
        else None
    )
    if best is not None:
        results["fill-between"] = {"structures": results[best]["structures"], "best_of": fill, "step": best}
    return results


def stream_cases(order: int, structures=STRUCTURES) -> list[tuple[str, str]]:
    """A site's stream of 3D cases: every compact AAL structure of the list on both sides, in both
    domains, in an order drawn from the seed (the structures repeat, so a profile can learn)."""
    cases = []
    for domain_name, target, kind in structures:
        if kind == "compact" and target.startswith("aal:"):
            base = target.rsplit("_", 1)[0]
            cases += [(domain_name, f"{base}_{side}") for side in ("L", "R")]
    return [cases[i] for i in np.random.default_rng(1000 + order).permutation(len(cases))]


def run_stream(
    model_dir: Path,
    orders: int = 3,
    structures=STRUCTURES,
    partial: Path = DEFAULT_OUTPUT.parent / "volumetric-partial",
    cache_dir: Path | None = None,
) -> dict:
    """The product's 3D cases along a stream, learning (`default+learning`: MI after each click, PI on the
    accepted 3D result, one profile per structure) and not learning (`default`, the same cases), from the
    shipped weights in each order. NoC3D@80 of the first and the second half of the stream."""
    domains: dict[str, Domain] = {}
    out: dict = {}
    for learn, name in ((False, "default"), (True, "default+learning")):
        halves: list[tuple[float, ...]] = []  # NoC@80 and Dice@10, first and second half
        per_case: list[dict] = []
        for order in range(orders):
            path = partial / name / f"stream-order{order}.json"
            if not path.is_file():
                method, cases = ThreeD(make_session(model_dir, learn=learn)), []
                for domain_name, target in stream_cases(order, structures):
                    domain = domains.setdefault(domain_name, load_domain(domain_name, cache_dir))
                    profile = target.split(":")[-1].rsplit("_", 1)[0]  # one profile per structure
                    mask = domain.target_mask(target)
                    curve, seconds = play_case(
                        method, domain.image, domain.spacing_kji, mask, order, profile, learn
                    )
                    summary = method.last_summary
                    cases.append(
                        {
                            "case": f"{domain_name}:{target}",
                            "curve": curve,
                            "seconds": seconds,
                            "learn_seconds": summary.learn_ms / 1000,
                            "slices_learned": summary.slices_learned,
                        }
                    )
                _save(path, {"cases": cases})
            cases = json.loads(path.read_text())["cases"]
            nocs = [noc(c["curve"], 0.80) for c in cases]
            dices = [c["curve"][9] for c in cases]
            half = len(nocs) // 2
            halves.append(
                tuple(float(np.mean(v)) for v in (nocs[:half], nocs[half:], dices[:half], dices[half:]))
            )
            per_case += cases
        out[name] = {
            "cases_per_order": len(per_case) // max(orders, 1),
            "noc@80_first_half": round(float(np.mean([h[0] for h in halves])), 2),
            "noc@80_second_half": round(float(np.mean([h[1] for h in halves])), 2),
            "dice@10_first_half": round(float(np.mean([h[2] for h in halves])), 4),
            "dice@10_second_half": round(float(np.mean([h[3] for h in halves])), 4),
            "dice@10": round(float(np.mean([c["curve"][9] for c in per_case])), 4),
            "seconds_per_case": round(float(np.mean([c["seconds"] for c in per_case])), 2),
            # Finish: PI on the accepted 3D result (the issue's budget: 2 s a case on this machine).
            "learn_seconds_per_case": round(float(np.mean([c["learn_seconds"] for c in per_case])), 2),
            "slices_learned_per_case": round(float(np.mean([c["slices_learned"] for c in per_case])), 1),
        }
    return out


def _median(method: dict, key: str, kind: str | None = None) -> float:
    values = [s[key] for s in method["structures"].values() if kind is None or s["kind"] == kind]
    return float(np.median(values)) if values else float("nan")


def report_markdown(result: dict) -> str:
    """Tables: medians per method and kind, then every structure."""
    lines = [
        "# Whole structures in 3D: simulated user, 3D Dice and clicks",
        "",
        f"Command: `{result['command']}`" + (" (quick: not a measurement)" if result["quick"] else ""),
        "",
        f"{result['protocol']}",
        "",
        "| method | kind | median Dice3D@1 | @3 | @5 | @10 | median NoC3D@80 | @85 | @90 | s per case |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, method in result["methods"].items():
        for kind in ("compact", "cortical"):
            cells = [f"{_median(method, f'dice@{n}', kind):.3f}" for n in DICE_AT]
            cells += [f"{_median(method, f'noc@{round(v * 100)}', kind):g}" for v in NOC_LEVELS]
            cells.append(f"{_median(method, 'seconds_per_case', kind):.1f}")
            lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| method | structure | trained on | Dice3D@1 | @10 | NoC3D@80 |",
        "|---|---|---|---|---|---|",
    ]
    for name, method in result["methods"].items():
        for structure, s in method["structures"].items():
            lines.append(
                f"| {name} | {structure} | {s['trained']} | {s['dice@1']:.3f} | {s['dice@10']:.3f} | {s['noc@80']:g} |"
            )
    stream = result.get("stream", {})
    if stream:
        lines += [
            "",
            "Along a site's stream of 3D cases (compact AAL structures, both sides, both domains, one profile per",
            "structure), from the shipped weights in each order:",
            "",
            "| method | cases per order | NoC3D@80 first half | second half | Dice3D@10 first half "
            "| second half | s per case | s learning at Finish | slices learned |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, s in stream.items():
            lines.append(
                f"| {name} | {s['cases_per_order']} | {s['noc@80_first_half']:g} | {s['noc@80_second_half']:g} "
                f"| {s['dice@10_first_half']:.3f} | {s['dice@10_second_half']:.3f} | {s['seconds_per_case']:.1f} "
                f"| {s['learn_seconds_per_case']:.1f} "
                f"| {s['slices_learned_per_case']:g} |"
            )
    if result.get("targets"):
        lines += [
            "",
            "Targets: " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in result["targets"].items()),
        ]
    if result.get("picture"):
        lines += ["", f"![3D results after 10 clicks]({result['picture']})"]
    return "\n".join(lines) + "\n"


def register(subparsers) -> None:
    p = subparsers.add_parser("bench-volumetric", help="3D Dice and clicks per structure (simulated user)")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file; a .md beside it")
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    p.add_argument("--orders", type=int, default=3, help="click-position seeds per structure")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="two structures, one order (CI; never the results)")
    p.set_defaults(func=_command)


def targets(result: dict) -> dict[str, bool]:
    """The issue's targets for the product default against the baselines of the same run."""
    methods, stream = result["methods"], result["stream"]
    default_noc = _median(methods["default"], "noc@80", "compact")
    return {
        "median compact Dice3D@10 >= 0.85": _median(methods["default"], "dice@10", "compact") >= 0.85,
        "NoC3D@80 <= a third of per-slice": default_noc
        <= _median(methods["per-slice"], "noc@80", "compact") / 3,
        "NoC3D@80 < fill-between": default_noc < _median(methods["fill-between"], "noc@80", "compact"),
        "learning: NoC3D@80 second half < first half": stream["default+learning"]["noc@80_second_half"]
        < stream["default+learning"]["noc@80_first_half"],
    }


PICTURE_STRUCTURES = [
    ("colin27", "aal:Thalamus_L"),
    ("colin27", "aal:Caudate_L"),
    ("mni152", "aal:Hippocampus_L"),
]


def render_picture(model_dir: Path, path: Path, clicks: int = 10) -> None:
    """The default's 3D result after `clicks` simulated clicks (seed 0) on a few structures: an axial and
    a coronal slice through each, the result (red) beside the reference (green) on the image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    method = ThreeD(make_session(model_dir))
    fig, axes = plt.subplots(len(PICTURE_STRUCTURES), 4, figsize=(12, 3 * len(PICTURE_STRUCTURES)))
    for row, (domain_name, target) in zip(axes, PICTURE_STRUCTURES, strict=True):
        domain = load_domain(domain_name)
        truth = domain.target_mask(target)
        results: list[np.ndarray] = []
        play_case(
            method,
            domain.image,
            domain.spacing_kji,
            truth,
            seed=0,
            on_click=results.append,
            max_clicks=clicks,
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
            axis.contour(
                mask[index][flip].astype(float), levels=[0.5], colors="red" if label == "result" else "lime"
            )
            axis.set_title(f"{domain_name} {target[4:]}, {plane}: {label} ({clicks} clicks)", fontsize=8)
            axis.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _command(args) -> int:
    import torch

    from InteractiveAdaptLib.model.location import find_base_model_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    structures = STRUCTURES[:1] + STRUCTURES[6:7] if args.quick else STRUCTURES
    orders = 1 if args.quick else args.orders
    steps = FILL_STEPS[:1] if args.quick else FILL_STEPS
    model_dir = Path(args.model or find_base_model_dir())
    partial = args.output.with_name(args.output.stem + "-partial")
    methods = run_benchmark(model_dir, structures, orders, steps, partial)
    stream = run_stream(model_dir, orders, structures, partial)
    options = f"--orders {orders}" + (" --quick" if args.quick else "")
    result = {
        "command": f"interactive-adapt bench-volumetric {options}",
        "quick": bool(args.quick),
        "machine": {
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
        "model": model_dir.name,
        "protocol": (
            f"Simulated user: first click in the largest axial cross-section, then in the largest error "
            f"component of the axial slice with the most wrong voxels (seed 0: the region's centre; other "
            f"seeds: a random point of it); {MAX_CLICKS} clicks at most; {orders} seed(s) per structure; "
            f"shipped network, learning only in the stream (its seeds are also case orders)."
        ),
        "methods": methods,
        "stream": stream,
    }
    result["targets"] = targets(result)
    render_picture(model_dir, args.output.with_suffix(".png"))
    result["picture"] = args.output.with_suffix(".png").name
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    args.output.with_suffix(".md").write_text(report_markdown(result))
    print(report_markdown(result), file=sys.stdout)
    return 0
