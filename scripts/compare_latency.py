"""Compare two runs of the latency benchmarks (bench-slicer-loop and bench-web, the JSON files they write),
e.g. the code before and after a refactoring, measured one after the other on the same machine.

    python scripts/compare_latency.py --before OLD_DIR --after NEW_DIR --output OUTPUT

Each folder holds slicer_loop.json and/or web_latency.json as the benchmarks wrote them; the table gives
each p95 and the change in per cent (a refactoring should stay within 10 %).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FIGURES = {
    "slicer_loop.json": [
        ("click to mask on its slice", "click_to_mask_ms"),
        ("click to the structure filled in 3D", "click_to_filled_ms"),
        ("GUI stall, click until the next one", "click_stall_ms"),
        ("GUI stall, Finish case", "finish_stall_ms"),
        ("Finish case to result applied", "finish_ms"),
    ],
    "web_latency.json": [
        ("browser: click to the mask on screen", "click_to_mask_visible_ms"),
        ("server: click to slice written", "server_click_to_slice_ms"),
        ("fill job", "fill_job_ms"),
    ],
}


def rows(before: Path, after: Path) -> list[str]:
    lines = []
    for file, figures in FIGURES.items():
        if not ((before / file).is_file() and (after / file).is_file()):
            continue
        old, new = (json.loads((folder / file).read_text(encoding="utf-8")) for folder in (before, after))
        for label, key in figures:
            a, b = old["results"][key]["p95"], new["results"][key]["p95"]
            change = 100 * (b - a) / a if a else float("nan")
            lines.append(f"| {file.removesuffix('.json')} | {label} | {a:.1f} | {b:.1f} | {change:+.1f} % |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    table = ["| benchmark | figure | p95 before (ms) | p95 after (ms) | change |", "|---|---|---|---|---|"]
    table += rows(args.before, args.after)
    command = f"python scripts/compare_latency.py --before {args.before} --after {args.after} --output {args.output}"
    args.output.write_text(f"Written by `{command}`.\n\n" + "\n".join(table) + "\n", encoding="utf-8")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
