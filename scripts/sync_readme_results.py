"""Copy the generated result tables into README.md, so that no figure there is typed by hand.

Each block between `<!-- results:NAME -->` and `<!-- /results:NAME -->` in README.md is replaced by
the table NAME takes from a file the commands write:
  adaptation-summary  benchmarks/results/adaptation.md, its summary table (`interactive-adapt benchmark`)
  training-ablations  benchmarks/results/training-ablations.md (`interactive-adapt training-report`)
  base-model          models/colin27-unet-default/model.json, its metrics (`interactive-adapt export-model`)
  tuning              benchmarks/results/tuning/adaptation-*.json, the choices tried on case order 0
  volumetric          benchmarks/results/volumetric.md, medians per method (`interactive-adapt bench-volumetric`)
  volumetric-stream   benchmarks/results/volumetric.md, the learning stream's table
  design-comparison   benchmarks/results/design-comparison.md, budgets and medians (`interactive-adapt compare-designs`)
  speed               benchmarks/results/speed.json (`interactive-adapt bench-speed`)
  propagation-speed   benchmarks/results/propagation_speed.json (`interactive-adapt bench-propagation`)
  slicer-loop         benchmarks/results/slicer_loop.json (`interactive-adapt bench-slicer-loop`)
  web-latency         benchmarks/results/web_latency.md (`interactive-adapt bench-web`)
  web-ablations       benchmarks/results/web_latency.json and web-latency-ablations/*.json, one row each

Usage: python scripts/sync_readme_results.py [--check]   (--check: exit 1 if README.md is out of date)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHIPPED_MODEL = REPO / "models" / "colin27-unet-default"


def first_table(markdown: str, after: str = "") -> str:
    """The first markdown table of a text (its consecutive lines starting with '|'), after a heading."""
    lines, table = (markdown.split(after, 1)[-1] if after else markdown).splitlines(), []
    for line in lines:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return "\n".join(table)


def base_model_table() -> str:
    metrics = json.loads((SHIPPED_MODEL / "model.json").read_text())["metrics"]
    rows = ["| data | kind | targets | cases | Dice@1 | Dice@5 | Dice@10 |", "|---|---|---|---|---|---|---|"]
    for name, m in metrics.items():
        targets = ", ".join(m.get("targets", ["held-out AAL pairs"]))
        cells = [name, m["kind"], targets, str(m["cases"])] + [f"{m[f'dice@{k}']:.3f}" for k in (1, 5, 10)]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def tuning_table() -> str:
    """One row per tuned choice: clicks to 80 % Dice per tuning stream (case order 0) and their mean."""
    results = [json.loads(p.read_text()) for p in sorted((RESULTS / "tuning").glob("adaptation-*.json"))]
    streams = [r["stream_name"] for r in results]
    rows = [
        "| method | " + " | ".join(f"NoC@80 {s}" for s in streams) + " | mean NoC@80 | mean Dice@5 |",
        "|---" * (len(streams) + 3) + "|",
    ]
    for method in results[0]["methods"]:
        per_stream = [r["methods"][method] for r in results]
        noc = [m["noc@80"] for m in per_stream]
        dice5 = sum(m["dice@5"] for m in per_stream) / len(per_stream)
        cells = [method] + [f"{n:g}" for n in noc] + [f"{sum(noc) / len(noc):.2f}", f"{dice5:.3f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


SPEED_CONFIGS = {"default": "default", "compact": "compact (no residual units)", "paper": "paper"}


def speed_table() -> str:
    speed = json.loads((RESULTS / "speed.json").read_text())
    rows = [
        "| network | parameters | click to prediction p95 | click incl. MI p50 / p95 | PI per slice "
        "| peak RSS | soak growth (500 clicks) |",
        "|---" * 7 + "|",
    ]
    for key, label in SPEED_CONFIGS.items():
        if key in speed:
            s = speed[key]
            rows.append(
                f"| {label} | {s['parameters'] / 1e6:.2f} M | {s['predict_ms_p95']:.0f} ms "
                f"| {s['click_ms_p50']:.0f} / {s['click_ms_p95']:.0f} ms | {s['pi_ms_per_slice']:.0f} ms "
                f"| {s['peak_rss_mb']:.0f} MB | {s['soak_rss_growth_mb']:.0f} MB |"
            )
    return "\n".join(rows)


SLICER_LOOP_ROWS = {
    "click_to_mask_ms": ("click to mask on its slice in the segment", "p95 <= 100 ms"),
    "click_to_filled_ms": ("click to the structure filled in 3D", ""),
    "click_stall_ms": ("GUI's longest stall, a click incl. its MI step", "<= 150 ms"),
    "finish_stall_ms": ("GUI's longest stall, Finish case", "<= 150 ms"),
}


def slicer_loop_table() -> str:
    loop = json.loads((RESULTS / "slicer_loop.json").read_text())
    rows = ["| figure | p50 | p95 | target |", "|---|---|---|---|"]
    figures = [(loop["results"][key], label, target) for key, (label, target) in SLICER_LOOP_ROWS.items()]
    figures.append((loop["baseline_plain_poll"]["click_to_mask_ms"], "the former design, click to mask", ""))
    for figure, label, target in figures:
        rows.append(f"| {label} | {figure['p50']:,.0f} ms | {figure['p95']:,.0f} ms | {target} |")
    opened, first = loop["results"]["module_open"], loop["results"]["first_case_start_stall_ms"]
    loading = f"GUI's longest stall while the network loads on the worker (the {opened['loading_s']:g} s after the module opened)"
    rows.append(f"| {loading} | {opened['stall_ms']:,.0f} ms | | |")
    rows.append(f"| GUI's longest stall, first structure of a Slicer run | {first:,.0f} ms | | |")
    return "\n".join(rows)


def propagation_table() -> str:
    speed = json.loads((RESULTS / "propagation_speed.json").read_text())
    return "\n".join(
        [
            "| slices filled by one click | seconds p50 | slowest run | ms per slice | target |",
            "|---|---|---|---|---|",
            f"| {speed['slices_filled']} | {speed['seconds_p50']:.2f} s | {speed['seconds_max']:.2f} s "
            f"| {speed['ms_per_slice_p50']:.0f} ms | <= {speed['target_seconds']:g} s |",
        ]
    )


def design_comparison_tables(markdown: str) -> str:
    """The design comparison's two tables: the training budgets, then the medians per head."""
    budgets = first_table(markdown)
    return budgets + "\n\n" + first_table(markdown.split(budgets, 1)[1])


def web_ablations_table() -> str:
    runs = [("the default", RESULTS / "web_latency.json")]
    runs += [(path.stem, path) for path in sorted((RESULTS / "web-latency-ablations").glob("*.json"))]
    rows = [
        "| server | on screen p50 | p95 | server: click to slice written p50 | learning step p50 | command |",
        "|---|---|---|---|---|---|",
    ]
    for label, path in runs:
        run = json.loads(path.read_text())
        r = run["results"]
        screen, server, learn = (
            r["click_to_mask_visible_ms"],
            r["server_click_to_slice_ms"],
            r["learn_job_ms"],
        )
        rows.append(
            f"| {label} | {screen['p50']:,.0f} ms | {screen['p95']:,.0f} ms | {server['p50']:,.0f} ms "
            f"| {learn['p50']:,.0f} ms | `{run['command']}` |"
        )
    return "\n".join(rows)


SOURCES = {
    "base-model": base_model_table,
    "tuning": tuning_table,
    "volumetric": lambda: first_table((RESULTS / "volumetric.md").read_text()),
    "volumetric-stream": lambda: first_table(
        (RESULTS / "volumetric.md").read_text(), after="Along a site's stream"
    ),
    "design-comparison": lambda: design_comparison_tables((RESULTS / "design-comparison.md").read_text()),
    "speed": speed_table,
    "propagation-speed": propagation_table,
    "slicer-loop": slicer_loop_table,
    "web-latency": lambda: first_table((RESULTS / "web_latency.md").read_text()),
    "web-ablations": web_ablations_table,
    "adaptation-summary": lambda: first_table((RESULTS / "adaptation.md").read_text()),
    "training-ablations": lambda: first_table((RESULTS / "training-ablations.md").read_text()),
}


def synced(readme: str) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in SOURCES:
            raise SystemExit(f"README.md names an unknown results block '{name}'")
        return f"<!-- results:{name} -->\n{SOURCES[name]()}\n<!-- /results:{name} -->"

    return re.sub(r"<!-- results:([\w-]+) -->.*?<!-- /results:\1 -->", replace, readme, flags=re.S)


def main(argv: list[str]) -> int:
    path = REPO / "README.md"
    text = path.read_text()
    new = synced(text)
    if "--check" in argv:
        if new != text:
            print("README.md results are out of date: run python scripts/sync_readme_results.py")
            return 1
        return 0
    path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
