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

# 2: forgetting per profile, the paper's methods as written, full-strength baselines, full-weight focal
# term; partial runs of another version are never mixed in.
BENCHMARK_VERSION = 2
TEACHING_CLICKS = 10
SE_BLOCK_CASES = 10  # consecutive cases resampled together for the standard error
MAX_CLICKS = 20  # NoC cap
NOC_LEVELS = (0.80, 0.85, 0.90)
SOURCE_CASES = 24  # held-out AAL cases: what the stream's weights do to other structures
SOURCE_CASES_PER_STRUCTURE = 8  # Colin27 slices per adapted structure: its own forgetting


@dataclass(frozen=True)
class Method:
    """An adaptation method under test: the session's MI/PI settings plus an optional baseline step."""

    name: str
    adaptation: AdaptationConfig | None  # None: no learning at all
    per_structure_profiles: bool = False  # the product keeps one learned model per structure (both sides)
    # "entropy-min" or "click-only": steps outside the session's MI/PI, as many as the paper's PI + MI
    # takes (one after each click from the second on, two when the case is finished)
    baseline: str = ""
    guard: bool = False  # the session's forgetting guard


def methods(lr: float = 5e-5) -> dict[str, Method]:
    """The methods of the issue; 'default' is the product's choice (see the README's results)."""
    # The paper's MI and PI as docs/method.md states them: DF + 200 * CCG, MI after clicks 2..10 (no
    # step from f(I, no clicks)), PI stage 2 with the artificial clicks only, no gradient clipping.
    paper = AdaptationConfig(
        lr=lr, ccg_weight=200.0, mi_after_first_click=False, pi_stage2_first_click=False, grad_clip=None
    )
    off = replace(paper, mid_interaction=False, post_interaction=False)
    default = AdaptationConfig()
    tuned = replace(default, pi_stage2_first_click=True)  # the default while it was tuned
    return {
        "none": Method("none", None),
        "entropy-min": Method("entropy-min", off, baseline="entropy-min"),
        "click-only": Method("click-only", off, baseline="click-only"),
        "mi": Method("mi", replace(paper, post_interaction=False)),
        "pi": Method("pi", replace(paper, mid_interaction=False)),
        "pi+mi": Method("pi+mi", paper),
        "default": Method("default", default, per_structure_profiles=True),
        # Tuning on case order 0 (benchmarks/results/tuning/), from the default as it was then
        # (`tuned`): its CCG weight per the paper's 256 x 256 pixels, then its other departures
        # from the paper one at a time, then two together.
        **{
            f"default-ccg{w:g}": Method(
                f"default-ccg{w:g}", replace(tuned, ccg_weight=w), per_structure_profiles=True
            )
            for w in (25.0, 50.0, 100.0, 200.0)
        },
        # The default's other departures from the paper, one undone at a time (order 0 only).
        "default-no-first-click-mi": Method(
            "default-no-first-click-mi",
            replace(tuned, mi_after_first_click=False),
            per_structure_profiles=True,
        ),
        "default-stage2-artificial-only": Method(
            "default-stage2-artificial-only",
            replace(tuned, pi_stage2_first_click=False),
            per_structure_profiles=True,
        ),
        "default-no-clip": Method(
            "default-no-clip", replace(tuned, grad_clip=None), per_structure_profiles=True
        ),
        # Both losing departures undone together (the candidate for the next default).
        "default-paper-mi-pi": Method(
            "default-paper-mi-pi",
            replace(tuned, mi_after_first_click=False, pi_stage2_first_click=False),
            per_structure_profiles=True,
        ),
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


REQUIRED_METHODS = ["none", "entropy-min", "click-only", "mi", "pi", "pi+mi", "default"]


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


def _baseline_step(session: InteractiveSession, key: tuple[int, int], baseline: str, clicks: list) -> None:
    """One step of a baseline on the slice `key` with `clicks`: entropy minimisation of f(I, clicks),
    or cross-entropy on the clicked pixels alone."""
    prepared = session.prepared_slice(key)
    grid = prepared.to_grid(clicks)
    loss = _entropy_loss if baseline == "entropy-min" else _click_ce_loss(grid)
    session.adapter.slice_update(prepared, grid, loss)


def noc(curve: np.ndarray, level: float) -> int:
    """Clicks needed to reach `level` Dice (MAX_CLICKS when never reached)."""
    hit = np.flatnonzero(curve >= level)
    return int(hit[0]) + 1 if len(hit) else MAX_CLICKS


def source_cases(colin: Domain) -> list[Case]:
    """Held-out Colin27 cases for the forgetting check (fixed)."""
    return spread_order(
        enumerate_cases(colin, aal_targets_of_split(colin, "test")), seed=7, count=SOURCE_CASES
    )


def source_cases_of(colin: Domain, structure: str) -> list[Case]:
    """Colin27 slices of a structure (both sides), the source-domain counterpart of its learned profile:
    the AAL pair, the brain, or a tissue class of the Otsu stand-in; none for macaque NeuroMaps
    structures, which have no human counterpart."""
    targets = [t for t in colin.targets if structure_of(t) == structure]
    if not targets:
        return []
    return spread_order(enumerate_cases(colin, targets), seed=7, count=SOURCE_CASES_PER_STRUCTURE)


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
    source_cache: dict[str, tuple[list[Case], float | None]] | None = None,
) -> dict:
    """One method on one ordered stream; returns per-case curves, latencies and the source Dice@5.
    With a `store`, every learned case is saved as a site version (the demo keeps them). A
    `source_cache` shared by the runs of one benchmark (structure -> its Colin27 cases and the shipped
    weights' score, filled on first use) spares measuring the same control again; it must only be
    shared while the base weights and click mode stay the same."""
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
    source_predictor = Predictor(session.network)  # the source at its own working resolution (1 mm)
    # The shipped weights' scores are the same for every run of a benchmark: measured once (`source_cache`).
    source_cache = {} if source_cache is None else source_cache
    structures = sorted({structure_of(c.target) for c in cases})
    for structure in structures:
        if structure not in source_cache:
            held = source_cases_of(colin, structure)
            score = source_dice(source_predictor, colin, mode, held) if held else None
            source_cache[structure] = (held, score)
    own_source = {s: source_cache[s][0] for s in structures if source_cache[s][0]}
    base_scores = {s: source_cache[s][1] for s in own_source}
    curves, click_ms, case_ms, steps = [], [], [], []
    for i, case in enumerate(cases):
        rng = np.random.default_rng([seed, i])
        profile = structure_of(case.target) if method.per_structure_profiles else "stream"
        session.start_case(domain.image, domain.spacing_kji, profile, normalized=True)
        target = case.mask(domain)
        key = (case.axis, case.index)
        point = first_click(target, mode, rng)
        steps_before = session.adapter.steps_applied
        curve = np.ones(MAX_CLICKS)
        accepted = None
        for t in range(MAX_CLICKS):
            started = time.perf_counter()
            if t < TEACHING_CLICKS:
                shown = session.add_click(Click(case.axis, case.index, point[0], point[1], point[2]))
                mask = shown.mask
                if learning:
                    session.learn_pending()
                if method.baseline and t > 0:  # as often as MI steps
                    _baseline_step(session, key, method.baseline, session.slice_clicks(key))
                click_ms.append((time.perf_counter() - started) * 1000)
                if t == TEACHING_CLICKS - 1:
                    accepted = mask
                clicks_so_far = session.slice_clicks(key)
            else:  # clicks 11-20 only measure NoC: weights frozen
                clicks_so_far.append(point)
                mask = session.predict_slice(key, clicks_so_far)
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
        if method.baseline:  # as often as PI steps: the first click, then all of them
            clicks = session.slice_clicks(key)
            _baseline_step(session, key, method.baseline, clicks[:1])
            _baseline_step(session, key, method.baseline, clicks)
        if learning:
            session.finish_case({key: accepted}, learn=True)
        else:
            session.finish_case(learn=False)
        case_ms.append((time.perf_counter() - started) * 1000)
        steps.append(session.adapter.steps_applied - steps_before)
        curves.append(curve)
        if progress is not None:
            progress.update(1)
    # Forgetting as a site meets it: each profile the stream adapted segments source-domain (Colin27)
    # slices of its own structure, against the shipped weights on the same slices with the same clicks.
    profile_of = (lambda s: s) if method.per_structure_profiles else (lambda s: "stream")
    forgetting = {}
    for structure, held in own_source.items():
        if learning:
            session.use_profile(profile_of(structure))
        forgetting[structure] = {
            "base": base_scores[structure],
            "adapted": source_dice(source_predictor, colin, mode, held),
            "cases": len(held),
        }
    # What the weights the stream adapted most would do to other structures (24 held-out AAL cases):
    # the harm the per-structure profiles keep away, and a shared model (pi+mi) does.
    if learning:
        session.use_profile(profile_of(Counter(structure_of(c.target) for c in cases).most_common(1)[0][0]))
    stream_weights = source_dice(source_predictor, colin, mode, source_cases(colin))
    return {
        "curves": np.array(curves).round(4).tolist(),
        "steps": steps,  # adaptation steps applied per case (MI, PI or baseline)
        "click_ms_p50": float(np.percentile(click_ms, 50)) if click_ms else 0.0,
        "case_ms_p50": float(np.percentile(case_ms, 50)) if case_ms else 0.0,
        "forgetting": forgetting,  # structure -> source Dice@5 with the shipped and the adapted weights
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


def block_bootstrap_se(series: list[np.ndarray], block: int = SE_BLOCK_CASES, draws: int = 2000) -> float:
    """Standard error of the mean of several case sequences whose cases depend on the ones before them
    (the weights carry over): each sequence is cut into blocks of `block` consecutive cases, and the
    blocks are resampled with replacement within their sequence (a block bootstrap), seeded."""
    rng = np.random.default_rng(0)
    blocks = [np.array_split(np.asarray(v, float), max(1, len(v) // block)) for v in series]
    sums = [np.array([b.sum() for b in bs]) for bs in blocks]
    total = sum(len(v) for v in series)
    means = np.zeros(draws)
    for d in range(draws):
        # Blocks of one sequence have (nearly) equal sizes, so the resampled total stays the same.
        means[d] = sum(s[rng.integers(0, len(s), size=len(s))].sum() for s in sums) / total
    return float(means.std(ddof=1))


def summarize(runs: list[dict], source_base: float) -> dict:
    """Means over cases of all orders; dice@5_se is a block-bootstrap standard error (the cases of one
    order are not independent: each learns from the ones before it)."""
    curves = np.concatenate([run_curves(r) for r in runs])
    out = {f"dice@{k}": round(float(curves[:, k - 1].mean()), 4) for k in (1, 5, 10)}
    out["dice@5_se"] = (
        round(block_bootstrap_se([run_curves(r)[:, 4] for r in runs]), 4) if len(curves) > 1 else 0.0
    )
    for level in NOC_LEVELS:
        out[f"noc@{round(level * 100)}"] = round(float(np.mean([noc(c, level) for c in curves])), 2)
    for level in NOC_LEVELS:  # the share of cases that reach the level at all within MAX_CLICKS
        out[f"reached@{round(level * 100)}"] = round(float((curves.max(1) >= level).mean()), 3)
    # Forgetting of the stream's own structures on the source domain: shipped minus adapted weights,
    # same slices and clicks (mean over structures and orders; empty when none has a counterpart).
    drops = [f["base"] - f["adapted"] for r in runs for f in r["forgetting"].values()]
    out["source_dice_drop"] = round(float(np.mean(drops)), 4) if drops else None
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
    first_order: int = 1,
) -> dict[str, dict]:
    """Run (or resume) every (stream, method, order) and write one JSON per stream, a table and plots."""
    from interactive_adapt_lab.evaluation.adaptation_report import write_report

    base = load_base_model(model_dir)
    colin = load_domain("colin27")
    network_state = base.fresh_state()
    source_base = source_dice(Predictor(base.network), colin, mode)
    source_cache: dict = {}  # per structure: Colin27 cases and the shipped weights' score
    all_methods = methods()
    partial = output / "partial"
    results = {}
    for name in stream_names:
        stream: Stream = STREAMS[name]
        domain = load_domain(stream.domain)
        todo = [(m, o) for m in method_names for o in range(first_order, first_order + orders)]
        bar = tqdm(total=len(todo) * n_cases, desc=name, unit="case")
        runs: dict[str, list[dict]] = {m: [] for m in method_names}
        for method_name, order in todo:
            path = partial / name / f"{method_name}-order{order}-n{n_cases}-v{BENCHMARK_VERSION}.json"
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
                source_cache=source_cache,
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(run))
            runs[method_name].append(run)
        bar.close()
        results[name] = {
            "stream_name": name,
            "benchmark_version": BENCHMARK_VERSION,
            "shift": domain.shift,
            "kind": domain.kind if domain.kind != "source" else "real",
            "stream": stream.stream,
            "target": stream.description,
            "command": command,
            "quick": quick,
            "cases": len(runs[method_names[0]][0]["curves"]),
            "orders": orders,
            "first_order": first_order,
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
    p.add_argument(
        "--first-order",
        type=int,
        default=1,
        help="the first case order; reported results use 1, 2, 3 and choices are tuned on order 0",
    )
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
        args.first_order,
    )
    print(f"results for {len(results)} streams in {output.resolve()}")
    return 0
