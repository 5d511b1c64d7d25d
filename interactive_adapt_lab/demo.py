"""`interactive-adapt demo`: the shipped Colin27 model meets the MNI152 'site' (a real shift).

A single-target stream (grey matter, the clearest case for adaptation: a structure type the model was
never trained on, on another template's T1) segmented with the simulated user, once without
adaptation and once with PI + MI as in the paper; a table, a plot and the learned site weights.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from tqdm import tqdm

from interactive_adapt_lab.data.datasets import load_domain
from interactive_adapt_lab.data.streams import STREAMS
from interactive_adapt_lab.evaluation.adaptation_benchmark import methods, run_stream, source_dice, summarize
from interactive_adapt_lab.evaluation.adaptation_report import markdown_table, plot_stream
from InteractiveAdaptLib.engine.predictor import Predictor
from InteractiveAdaptLib.model.base_model import load_base_model
from InteractiveAdaptLib.model.location import find_base_model_dir
from InteractiveAdaptLib.store.site_store import SiteStore

DEMO_STREAM = "mni152-grey-matter"
DEMO_METHODS = ("none", "pi+mi")


def run_demo(output: Path, model_dir: Path, n_cases: int, seed: int = 0) -> dict:
    started = time.time()
    output.mkdir(parents=True, exist_ok=True)
    base = load_base_model(model_dir)
    state = base.fresh_state()
    colin = load_domain("colin27")
    stream = STREAMS[DEMO_STREAM]
    domain = load_domain(stream.domain)
    cases = stream.cases(domain, n_cases, seed=1000 + seed)
    source = source_dice(Predictor(base.network), colin, "center")
    store = SiteStore(output / "site-weights")
    runs = {}
    with tqdm(total=n_cases * len(DEMO_METHODS), desc="demo: MNI152 grey matter", unit="case") as bar:
        for name in DEMO_METHODS:
            base.network.load_state_dict(state)
            keep = store if name == "pi+mi" else None
            runs[name] = run_stream(
                base, domain, cases, methods()[name], seed, colin, "center", bar, keep, "MNI152 demo site"
            )
    result = {
        "stream_name": DEMO_STREAM,
        "shift": domain.shift,
        "kind": domain.kind,
        "stream": stream.stream,
        "target": stream.description,
        "command": f"interactive-adapt demo --output {output} --cases {n_cases}",
        "quick": True,
        "cases": n_cases,
        "orders": 1,
        "methods": {m: summarize([r], source) for m, r in runs.items()},
        "dice_per_click": {
            m: torch.tensor(r["curves"]).mean(0).round(decimals=4).tolist() for m, r in runs.items()
        },
        "dice_along_stream": {m: [c[4] for c in r["curves"]] for m, r in runs.items()},
    }
    (output / "demo.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown_table({DEMO_STREAM: result})
    (output / "demo.md").write_text(table + "\n")
    plot_stream(result, output / "demo.png")
    print("\n" + table)
    print(f"demo finished in {time.time() - started:.0f} s")
    print(f"  table:        {(output / 'demo.md').resolve()}")
    print(f"  plot:         {(output / 'demo.png').resolve()}")
    print(
        f"  site weights: {(output / 'site-weights').resolve()} (interactive-adapt sites show --root "
        f"{output / 'site-weights'} --site 'MNI152 demo site' --profile stream)"
    )
    return result


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="a short real-shift run: no adaptation against PI + MI")
    p.add_argument("--output", type=Path, default=Path("output/demo"))
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--cases", type=int, default=40)
    # One thread: the small network gains little from two, and two slow to a crawl on a busy machine.
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_command)


def _command(args) -> int:
    torch.set_num_threads(args.threads)
    # One "saved version" line per case would scroll the progress bar away; the summary says where they are.
    from InteractiveAdaptLib.store import profile_store

    logging.getLogger(profile_store.__name__).setLevel(logging.WARNING)
    run_demo(args.output, args.model or find_base_model_dir(), args.cases)
    return 0
