"""`interactive-adapt benchmark`: does online adaptation cut clicks on a shifted site, and at what cost?

Each (stream, method, order) run starts from the same shipped weights, processes its cases in order
with the simulated user (T = 10 clicks that teach, clicks 11-20 with frozen weights only for NoC),
accepts the prediction after click 10 (never the ground truth) and is saved on its own, so a long
benchmark resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from interactive_adapt_lab.data.cases import Case, aal_targets_of_split, enumerate_cases, spread_order
from interactive_adapt_lab.data.datasets import Domain, load_domain, structure_of
from interactive_adapt_lab.data.streams import STREAMS, Stream
from interactive_adapt_lab.evaluation.simulated_user import evaluate
from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
from InteractiveAdaptLib.engine.click_simulation import ClickMode, first_click, next_click
from InteractiveAdaptLib.engine.predictor import Predictor, dice
from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
from InteractiveAdaptLib.interaction import Click
from InteractiveAdaptLib.model.base_model import BaseModel, load_base_model
from InteractiveAdaptLib.model.location import find_base_model_dir
from InteractiveAdaptLib.store.site_store import SiteStore

log = logging.getLogger(__name__)

TEACHING_CLICKS = 10
MAX_CLICKS = 20  # NoC cap
NOC_LEVELS = (0.80, 0.85, 0.90)
SOURCE_CASES = 24


@dataclass(frozen=True)
class Method:
    """An adaptation method under test: the session's MI/PI settings plus an optional baseline step."""

    name: str
    adaptation: AdaptationConfig | None  # None: no learning at all
    per_structure_profiles: bool = False  # the product keeps one learned model per structure (both sides)
    baseline: str = ""  # "tent" or "click-only": steps outside the session's MI/PI
    guard: bool = False  # the session's forgetting guard


def methods(lr: float = 5e-5) -> dict[str, Method]:
    """The methods of the issue; 'default' is the product's choice (see the README's results)."""
    paper = AdaptationConfig(lr=lr, ccg_weight=200.0)  # docs/method.md: paper's MI/PI, DF + 200 * CCG
    off = replace(paper, mid_interaction=False, post_interaction=False)
    return {
        "none": Method("none", None),
        "tent": Method("tent", off, baseline="tent"),
        "click-only": Method("click-only", off, baseline="click-only"),
        "mi": Method("mi", replace(paper, post_interaction=False)),
        "pi": Method("pi", replace(paper, mid_interaction=False)),
        "pi+mi": Method("pi+mi", paper),
        "default": Method("default", AdaptationConfig(), per_structure_profiles=True),
        # Ablations behind the default (not part of the required set).
        "pi+mi-case-mi": Method("pi+mi-case-mi", replace(paper, mi_scope="case")),
        "pi+mi-lr1e-4": Method("pi+mi-lr1e-4", replace(paper, lr=1e-4)),
        # 'profiles': the paper's PI + MI with the product's per-structure profiles; then one change
        # at a time along the ablation axes (lr, CCG weight, CCG window sigma, the guard).
        "profiles": Method("profiles", paper, per_structure_profiles=True),
        "profiles+guard": Method("profiles+guard", paper, per_structure_profiles=True, guard=True),
        **{
            name: Method(name, replace(paper, **change), per_structure_profiles=True)
            for name, change in {
                "profiles-lr2e-5": {"lr": 2e-5},
                "profiles-lr1e-4": {"lr": 1e-4},
                "profiles-ccg0": {"ccg_weight": 0.0},
                "profiles-ccg50": {"ccg_weight": 50.0},
                "profiles-ccg-sigma6": {"ccg_sigma": 6.0},
            }.items()
        },
    }


REQUIRED_METHODS = ["none", "tent", "click-only", "mi", "pi", "pi+mi", "default"]


def _entropy_loss(logits: torch.Tensor) -> torch.Tensor:
    p = logits.softmax(1)
    return -(p * logits.log_softmax(1)).sum(1).mean()


def _click_ce_loss(grid_clicks):
    def loss(logits: torch.Tensor) -> torch.Tensor:
        h, w = logits.shape[-2:]
        terms = []
        for r, c, positive in grid_clicks:
            r, c = min(max(round(r), 0), h - 1), min(max(round(c), 0), w - 1)
            terms.append(F.cross_entropy(logits[:, :, r, c], torch.tensor([int(positive)])))
        return torch.stack(terms).mean()

    return loss


def noc(curve: np.ndarray, level: float) -> int:
    """Clicks needed to reach `level` Dice (MAX_CLICKS when never reached)."""
    hit = np.flatnonzero(curve >= level)
    return int(hit[0]) + 1 if len(hit) else MAX_CLICKS


def source_cases(colin: Domain) -> list[Case]:
    """Held-out Colin27 cases for the forgetting check (fixed)."""
    return spread_order(
        enumerate_cases(colin, aal_targets_of_split(colin, "test")), seed=7, count=SOURCE_CASES
    )


def source_dice(
    predictor: Predictor, colin: Domain, mode: ClickMode, cases: list[Case] | None = None
) -> float:
    """Mean Dice after 5 clicks on held-out Colin27 cases, no adaptation."""
    result = evaluate(predictor, colin, cases or source_cases(colin), n_clicks=5, mode=mode, seed=0)
    return float(result.dice[:, 4].mean())


def run_stream(
    base: BaseModel,
    domain: Domain,
    cases: list[Case],
    method: Method,
    seed: int,
    colin: Domain,
    mode: ClickMode = "center",
    progress: tqdm | None = None,
    store: SiteStore | None = None,
    site: str = "benchmark",
    working_spacing_mm: float = 1.0,
) -> dict:
    """One method on one ordered stream; returns per-case curves, latencies and the source Dice@5.
    With a `store`, every learned case is saved as a site version (the demo keeps them)."""
    learning = method.adaptation is not None
    no_learning = AdaptationConfig(mid_interaction=False, post_interaction=False)
    config = SessionConfig(
        adaptation=method.adaptation or no_learning,
        autosave=store is not None,
        seed=seed,
        forgetting_guard=method.guard,
        target_spacing_mm=working_spacing_mm,
    )
    session = InteractiveSession(base, config, store=store, site=site)
    curves, click_ms, case_ms = [], [], []
    for i, case in enumerate(cases):
        rng = np.random.default_rng([seed, i])
        profile = structure_of(case.target) if method.per_structure_profiles else "stream"
        session.start_case(domain.image, domain.spacing_kji, profile, normalized=True)
        target = case.mask(domain)
        key = (case.axis, case.index)
        point = first_click(target, mode, rng)
        if method.baseline == "tent":  # adapt to the image first, then segment it
            prepared = session.prepared_slice(key)
            session.adapter.guarded_update(prepared, prepared.to_grid([point]), _entropy_loss)
        curve = np.ones(MAX_CLICKS)
        accepted = None
        for t in range(MAX_CLICKS):
            started = time.perf_counter()
            if t < TEACHING_CLICKS:
                shown = session.add_click(Click(case.axis, case.index, point[0], point[1], point[2]))
                mask = shown.mask
                if learning:
                    session.learn_pending()
                if method.baseline == "click-only":
                    prepared = session.prepared_slice(key)
                    grid = prepared.to_grid(session.slice_clicks(key))
                    session.adapter.guarded_update(prepared, grid, _click_ce_loss(grid))
                click_ms.append((time.perf_counter() - started) * 1000)
                if t == TEACHING_CLICKS - 1:
                    accepted = mask
                    session.discard_pending()
                clicks_so_far = session.slice_clicks(key)
            else:  # clicks 11-20 only measure NoC: weights frozen
                clicks_so_far.append(point)
                prepared = session.prepared_slice(key)
                mask = session.predictor.to_native(
                    session.predictor.logits(prepared, clicks_so_far), prepared
                )
            curve[t] = dice(mask, target)
            if t == TEACHING_CLICKS - 1 and curve[: t + 1].max() >= NOC_LEVELS[-1]:
                break  # every NoC level is reached
            point = next_click(mask, target, mode, rng)
            if point is None:  # no error left
                if accepted is None:
                    accepted = mask
                break
        curve[t + 1 :] = curve[t]  # a case that stopped early holds its last Dice (not simulated further)
        started = time.perf_counter()
        session.discard_pending()
        if learning:
            session.finish_case({key: accepted}, learn=True)
        else:
            session.finish_case(learn=False)
        case_ms.append((time.perf_counter() - started) * 1000)
        curves.append(curve)
        if progress is not None:
            progress.update(1)
    # Forgetting: Dice@5 on held-out source cases. With per-structure profiles the product segments each
    # source structure with that structure's own profile, so that is what is measured; the weights the
    # stream adapted most are measured too, to show what the profiles protect against.
    held_out = source_cases(colin)
    source_predictor = Predictor(session.network)  # the source at its own working resolution (1 mm)
    if learning and method.per_structure_profiles:
        session.use_profile(Counter(structure_of(c.target) for c in cases).most_common(1)[0][0])
        stream_weights = source_dice(source_predictor, colin, mode, held_out)
        per_case = []
        for case in held_out:
            session.use_profile(structure_of(case.target))
            per_case.append(source_dice(source_predictor, colin, mode, [case]))
        product = float(np.mean(per_case))
    else:
        product = stream_weights = source_dice(source_predictor, colin, mode, held_out)
    return {
        "curves": np.array(curves).round(4).tolist(),
        "click_ms_p50": float(np.percentile(click_ms, 50)) if click_ms else 0.0,
        "case_ms_p50": float(np.percentile(case_ms, 50)) if case_ms else 0.0,
        "source_dice@5": product,
        "source_dice@5_stream_weights": stream_weights,
    }


def run_curves(run: dict) -> np.ndarray:
    """(cases, MAX_CLICKS) Dice per click of a run. A case stops after click 10 once every NoC level is
    reached; its later clicks hold the click-10 value. Runs written before that rule (partial files of
    earlier sessions) filled them with 1.0: those are held the same way, so all runs read alike."""
    curves = np.array(run["curves"], dtype=float)
    stopped = (curves[:, :TEACHING_CLICKS].max(1) >= NOC_LEVELS[-1]) & (
        curves[:, TEACHING_CLICKS:] == 1.0
    ).all(1)
    curves[stopped, TEACHING_CLICKS:] = curves[stopped, TEACHING_CLICKS - 1 : TEACHING_CLICKS]
    return curves


def summarize(runs: list[dict], source_base: float) -> dict:
    """Means over cases of all orders; dice@5_se is the standard error over cases."""
    curves = np.concatenate([run_curves(r) for r in runs])
    out = {f"dice@{k}": round(float(curves[:, k - 1].mean()), 4) for k in (1, 5, 10)}
    out["dice@5_se"] = (
        round(float(curves[:, 4].std(ddof=1) / np.sqrt(len(curves))), 4) if len(curves) > 1 else 0.0
    )
    for level in NOC_LEVELS:
        out[f"noc@{round(level * 100)}"] = round(float(np.mean([noc(c, level) for c in curves])), 2)
    for level in NOC_LEVELS:  # the share of cases that reach the level at all within MAX_CLICKS
        out[f"reached@{round(level * 100)}"] = round(float((curves.max(1) >= level).mean()), 3)
    out["source_dice_drop"] = round(source_base - float(np.mean([r["source_dice@5"] for r in runs])), 4)
    out["source_dice_drop_stream_weights"] = round(
        source_base - float(np.mean([r["source_dice@5_stream_weights"] for r in runs])), 4
    )
    out["click_ms_p50"] = round(float(np.mean([r["click_ms_p50"] for r in runs])), 1)
    out["case_ms_p50"] = round(float(np.mean([r["case_ms_p50"] for r in runs])), 1)
    out["cases"] = int(len(curves))
    return out


def run_benchmark(
    model_dir: Path,
    output: Path,
    stream_names: list[str],
    method_names: list[str],
    orders: int,
    n_cases: int,
    quick: bool,
    command: str,
    mode: ClickMode = "center",
) -> dict[str, dict]:
    """Run (or resume) every (stream, method, order) and write one JSON per stream, a table and plots."""
    from interactive_adapt_lab.evaluation.adaptation_report import write_report

    base = load_base_model(model_dir)
    colin = load_domain("colin27")
    network_state = base.fresh_state()
    source_base = source_dice(Predictor(base.network), colin, mode)
    all_methods = methods()
    partial = output / "partial"
    results = {}
    for name in stream_names:
        stream: Stream = STREAMS[name]
        domain = load_domain(stream.domain)
        todo = [(m, o) for m in method_names for o in range(orders)]
        bar = tqdm(total=len(todo) * n_cases, desc=name, unit="case")
        runs: dict[str, list[dict]] = {m: [] for m in method_names}
        for method_name, order in todo:
            path = partial / name / f"{method_name}-order{order}-n{n_cases}.json"
            if path.is_file():
                runs[method_name].append(json.loads(path.read_text()))
                bar.update(n_cases)
                continue
            base.network.load_state_dict(network_state)
            cases = stream.cases(domain, n_cases, seed=1000 + order)
            run = run_stream(
                base,
                domain,
                cases,
                all_methods[method_name],
                order,
                colin,
                mode,
                bar,
                working_spacing_mm=stream.working_spacing_mm,
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(run))
            runs[method_name].append(run)
        bar.close()
        results[name] = {
            "stream_name": name,
            "shift": domain.shift,
            "kind": domain.kind if domain.kind != "source" else "real",
            "stream": stream.stream,
            "target": stream.description,
            "command": command,
            "quick": quick,
            "cases": len(runs[method_names[0]][0]["curves"]),
            "orders": orders,
            "click_mode": mode,
            "working_spacing_mm": stream.working_spacing_mm,
            "source_dice@5_before": round(source_base, 4),
            "methods": {m: summarize(runs[m], source_base) for m in method_names},
            "dice_along_stream": {
                m: np.mean([np.array(r["curves"])[:, 4] for r in runs[m]], axis=0).round(4).tolist()
                for m in method_names
            },
            "dice_per_click": {
                m: np.concatenate([run_curves(r) for r in runs[m]]).mean(0).round(4).tolist()
                for m in method_names
            },
        }
        base.network.load_state_dict(network_state)
        write_report({name: results[name]}, output)  # each stream's results land as soon as it ends
    return results


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "benchmark", help="measure online adaptation on shifted-site streams (resumable)"
    )
    p.add_argument(
        "--model", type=Path, default=None, help="models/<name> folder (default: the shipped model)"
    )
    p.add_argument("--output", type=Path, default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--streams", nargs="+", choices=sorted(STREAMS), default=list(STREAMS))
    p.add_argument("--methods", nargs="+", choices=list(methods()), default=REQUIRED_METHODS)
    p.add_argument("--orders", type=int, default=3, help="case orders (seeds)")
    p.add_argument("--cases", type=int, default=100, help="cases per stream")
    p.add_argument("--click-mode", choices=["center", "random"], default="center")
    p.add_argument(
        "--quick", action="store_true", help="a few cases and one order, for CI (never the results)"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--report-only", action="store_true", help="rewrite adaptation.md from the JSON files in --output"
    )
    p.set_defaults(func=_benchmark_command)


def _benchmark_command(args) -> int:
    import sys

    torch.set_num_threads(args.threads)
    if args.quick:
        args.cases, args.orders = min(args.cases, 6), 1
        if args.streams == list(STREAMS):
            args.streams = ["mni152-grey-matter", "colin27-mixed"]
    output = args.output or (Path("output/benchmark-quick") if args.quick else Path("benchmarks/results"))
    if args.report_only:
        from interactive_adapt_lab.evaluation.adaptation_report import write_report

        write_report({}, output)
        print(f"wrote {output / 'adaptation.md'}")
        return 0
    command = "interactive-adapt " + " ".join(sys.argv[1:])
    results = run_benchmark(
        args.model or find_base_model_dir(),
        output,
        args.streams,
        args.methods,
        args.orders,
        args.cases,
        args.quick,
        command,
        args.click_mode,
    )
    print(f"results for {len(results)} streams in {output.resolve()}")
    return 0
