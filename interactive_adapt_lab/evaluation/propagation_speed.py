"""`interactive-adapt bench-propagation`: how long one click takes to fill a structure through 60 slices.

The shipped network on Colin27 (181 x 217 x 181 at 1 mm): one positive click at the centre of the
brain's middle axial slice, propagation bounded to the 30 slices on each side (60 slices in all with
the clicked one). The stop rule's thresholds are off so that every run covers all 60 slices (its
checks still run and are timed); what is timed is the engine's `Case.click`, prediction of the
clicked slice included, as the worker thread runs it in the module.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from InteractiveAdaptLib.engine.click_simulation import deepest_point
from InteractiveAdaptLib.engine.slice_propagation import PropagationConfig
from InteractiveAdaptLib.interaction import Click, FillOptions

SLICES = 60
# Every slice is filled: no area, intensity or extent stop (their checks are still computed).
THROUGH = PropagationConfig(
    min_area_ratio=0.0, max_area_ratio=float("inf"), intensity_fraction=0.0, extent=100.0
)


def measure(repeats: int) -> dict:
    from interactive_adapt_lab.data.datasets import load_domain
    from interactive_adapt_lab.evaluation.volumetric_methods import make_session
    from InteractiveAdaptLib.model.location import find_base_model_dir

    colin = load_domain("colin27")
    brain = colin.target_mask("brain")
    middle = int(np.median(np.nonzero(brain)[0]))
    row, col = deepest_point(brain[middle])
    session = make_session(find_base_model_dir())
    runs = []
    for _ in range(repeats + 1):  # the first run warms up (allocations, caches) and is not counted
        case = session.open_case(
            colin.image, colin.spacing_kji, "brain", normalized=True, propagation=THROUGH
        )
        options = FillOptions(bounds=(middle - SLICES // 2, middle + SLICES // 2 - 1))
        started = time.perf_counter()
        case.click(Click(0, middle, float(row), float(col), True), options)
        seconds = time.perf_counter() - started
        filled = int(case.mask.reshape(case.mask.shape[0], -1).any(axis=1).sum())
        runs.append({"seconds": round(seconds, 3), "slices_filled": filled})
        case.finish(None, learn=False)
    counted = runs[1:]
    seconds = [r["seconds"] for r in counted]
    return {
        "slices": SLICES,
        "seconds_p50": round(float(np.median(seconds)), 3),
        "seconds_max": round(float(np.max(seconds)), 3),
        "ms_per_slice_p50": round(1000 * float(np.median(seconds)) / SLICES, 1),
        "slices_filled": min(r["slices_filled"] for r in counted),
        "target_seconds": 1.5,
        "runs": counted,
    }


def register(subparsers) -> None:
    p = subparsers.add_parser("bench-propagation", help="seconds for one click to fill 60 slices (3D)")
    p.add_argument("--output", type=Path, default=Path("benchmarks/results/propagation_speed.json"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=_command)


def _command(args) -> int:
    torch.set_num_threads(args.threads)
    result = {
        "command": f"interactive-adapt bench-propagation --repeats {args.repeats} --threads {args.threads}",
        "machine": {
            "cores": os.cpu_count(),
            "torch_threads": args.threads,
            "python": platform.python_version(),
        },
        "setup": __doc__.split("\n\n", 1)[1].strip().replace("\n", " "),
        **measure(args.repeats),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    return 0
