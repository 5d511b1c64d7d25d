"""`interactive-adapt bench-speed`: latency, memory and soak of a session, per network configuration.

Each configuration runs in its own process, so its peak RSS is its own. Slices are 256 x 256 and the
volume is 256 x 256 x 200 (Colin27 resampled: real anatomy). This machine has run-to-run speed
swings of about a third (the same process is sometimes that much slower throughout), so every
configuration is measured `--repeats` times, interleaved, and each figure is the median of the runs;
the runs themselves are kept under "runs".
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from InteractiveAdaptLib.interaction import Click
from InteractiveAdaptLib.model.network import CONFIGS, build_network

SHAPE = (200, 256, 256)
CLICKS_PER_CASE = 10


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _volume() -> np.ndarray:
    from interactive_adapt_lab.data.datasets import load_domain

    image = load_domain("colin27").image
    return ndimage.zoom(image, np.array(SHAPE) / np.array(image.shape), order=1).astype(np.float32)


def _model_dir(config: str, shipped: Path | None) -> Path:
    """The shipped model for its own config; other configs get random weights (same compute)."""
    from InteractiveAdaptLib.model.base_model import save_base_model

    if shipped is not None and json.loads((shipped / "model.json").read_text())["config"]["name"] == config:
        return shipped
    torch.manual_seed(0)
    return save_base_model(
        build_network(config), Path(tempfile.mkdtemp()) / config, {"name": config}
    ).directory


def measure(config: str, shipped: Path | None, n_cases: int, threads: int) -> dict:
    """All figures of one configuration (run in a fresh process)."""
    from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
    from InteractiveAdaptLib.model.base_model import load_base_model

    torch.set_num_threads(threads)
    model_dir = _model_dir(config, shipped)
    volume = _volume()
    started = time.perf_counter()
    session = InteractiveSession(load_base_model(model_dir), SessionConfig(autosave=False))
    session.use_profile("benchmark")
    load_ms = (time.perf_counter() - started) * 1000
    rng = np.random.default_rng(0)
    predict_ms, click_ms, pi_ms = [], [], []
    rss_after: list[float] = []
    for _ in range(n_cases):
        session.start_case(volume, (1.0, 1.0, 1.0), "benchmark", normalized=True)
        index = int(rng.integers(60, 140))
        for t in range(CLICKS_PER_CASE):
            click = Click(0, index, int(rng.integers(40, 216)), int(rng.integers(40, 216)), t % 3 != 1)
            t0 = time.perf_counter()
            session.add_click(click)
            t1 = time.perf_counter()
            session.learn_pending()
            t2 = time.perf_counter()
            predict_ms.append((t1 - t0) * 1000)
            click_ms.append((t2 - t0) * 1000)
        summary = session.finish_case()
        pi_ms.append(summary.learn_ms / max(1, summary.slices_learned))
        rss_after.append(_rss_mb())
    warm = CLICKS_PER_CASE  # the first case warms up allocations and kernels
    return {
        "predict_ms_p50": round(float(np.percentile(predict_ms[warm:], 50)), 1),
        "predict_ms_p95": round(float(np.percentile(predict_ms[warm:], 95)), 1),
        "click_ms_p50": round(float(np.percentile(click_ms[warm:], 50)), 1),
        "click_ms_p95": round(float(np.percentile(click_ms[warm:], 95)), 1),
        "pi_ms_per_slice": round(float(np.median(pi_ms[1:])), 1),
        "load_ms": round(load_ms, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "soak_clicks": len(click_ms),
        "soak_cases": n_cases,
        # RSS after the last case minus after the first (warm) case.
        "soak_rss_growth_mb": round(rss_after[-1] - rss_after[0], 1),
        "parameters": sum(p.numel() for p in session.network.parameters()),
    }


def register(subparsers) -> None:
    p = subparsers.add_parser("bench-speed", help="measure latency, memory and soak of a session")
    p.add_argument("--output", type=Path, default=Path("benchmarks/results/speed.json"))
    p.add_argument(
        "--model", type=Path, default=None, help="shipped model folder (default: the shipped model)"
    )
    p.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["default", "paper"])
    p.add_argument("--cases", type=int, default=50, help="soak cases (10 clicks each)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per configuration")
    p.add_argument("--worker", help=argparse_suppress())
    p.set_defaults(func=_command)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def _command(args) -> int:
    from InteractiveAdaptLib.model.location import find_base_model_dir

    shipped = args.model or find_base_model_dir()
    if args.worker:  # inside the per-configuration process
        print(json.dumps(measure(args.worker, shipped, args.cases, args.threads)))
        return 0
    result = {
        "command": "interactive-adapt " + " ".join(sys.argv[1:]),
        "machine": {"cores": os.cpu_count(), "torch_threads": args.threads, "torch": torch.__version__},
        "slice": list(SHAPE[1:]),
        "volume": list(SHAPE),
    }
    runs: dict[str, list[dict]] = {config: [] for config in args.configs}
    for repeat in range(args.repeats):
        for config in args.configs:  # interleaved, so a slow spell of the machine hits every config
            runs[config].append(_run_worker(config, shipped, args))
            print(config, f"run {repeat + 1}/{args.repeats}", runs[config][-1])
    for config, measured in runs.items():
        result[config] = {key: _median([run[key] for run in measured]) for key in measured[0]}
        result[config]["runs"] = measured
    if "default" in result and "paper" in result:
        result["paper_over_default_click_p50"] = round(
            result["paper"]["click_ms_p50"] / result["default"]["click_ms_p50"], 2
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written {args.output}")
    return 0


def _median(values: list) -> float | int:
    middle = float(np.median(values))
    return (
        int(middle) if all(isinstance(v, int) for v in values) and middle.is_integer() else round(middle, 1)
    )


def _run_worker(config: str, shipped: Path, args) -> dict:
    """One measurement of `config` in a fresh process."""
    cmd = [
        sys.executable,
        "-m",
        "InteractiveAdaptLib.cli",  # the same command, in a fresh process
        "bench-speed",
        "--worker",
        config,
        "--model",
        str(shipped),
        "--cases",
        str(args.cases),
        "--threads",
        str(args.threads),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])
