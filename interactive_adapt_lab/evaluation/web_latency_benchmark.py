"""`interactive-adapt bench-web`: what a user of the web front end waits for, from a real browser click to
the mask on the screen.

`interactive-adapt serve` runs in its own process with the shipped network (CPU), Debian's headless
Chromium shows the page on the same machine (2 cores here: the browser, the streaming and the network
share them), and a simulated clinician clicks for real: per case one AAL structure on the Colin27 T1
(atlas on the same grid), the first click at the structure's deepest pixel in the axial view, the next
ones at seeded random pixels inside it; after each click the user waits until the structure is filled
in 3D and the click's learning step ended, then thinks (`--think-s`); Finish case (learning) ends each
case.

Figure: from the browser's pointerdown to the first frame of the clicked view that shows at least 90 %
of what the click changed on screen (pixels farther than 14 px from the click, the point's own marker
being smaller, that differ between the frame before the click and the view once the click's work
ended), measured in the page (performance.now()). A click that changes fewer than 20 such pixels
counts as "no visible change" and is left out of the percentiles (the count is reported). The
server's own figure (point arrived to slice written) and the worker's job times come from its event log.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MRICRON = Path("/usr/share/mricron/templates")
MRI_FILE = MRICRON / "ch2.nii.gz"
ATLAS_FILE = MRICRON / "aal.nii.gz"
# AAL structures near the axial slice the page opens on (the volume's middle), and their names; those
# with fewer than MIN_PIXELS pixels in that view are skipped.
STRUCTURES = [
    ("Thalamus_L", "Thalamus (L)"),
    ("Caudate_R", "Caudate (R)"),
    ("Putamen_L", "Putamen (L)"),
    ("Insula_R", "Insula (R)"),
    ("Thalamus_R", "Thalamus (R)"),
    ("Caudate_L", "Caudate (L)"),
    ("Putamen_R", "Putamen (R)"),
    ("Insula_L", "Insula (L)"),
    ("Cingulum_Mid_R", "Middle cingulate (R)"),
    ("Cingulum_Mid_L", "Middle cingulate (L)"),
]
MIN_PIXELS = 150
TARGET_P95_MS = 150.0
DEFAULT_OUTPUT = Path("benchmarks/results/web_latency.json")


def run(
    cases: int, clicks: int, think_s: float, seed: int, folder: Path, server_args: tuple[str, ...] = ()
) -> dict:
    """Serve, click, and return every click's figures."""
    from scipy import ndimage

    from interactive_adapt_lab.data.datasets import aal_names
    from interactive_adapt_lab.web_browser import (
        BrowserPage,
        ServedApp,
        click_target,
        require_browser,
        view_mask,
    )
    from InteractiveAdaptLib.interaction import JobKind
    from InteractiveAdaptLib.io.volumes import read_volume

    require_browser()
    atlas = read_volume(ATLAS_FILE)
    labels = {name: label for label, name in aal_names().items()}
    rng = np.random.default_rng(seed)
    records: list[dict] = []
    started = time.monotonic()
    with ServedApp(
        folder, study=MRI_FILE, site="Latency benchmark", exit_after_s=1800, args=server_args
    ) as app:
        app.wait_event("ready", timeout=120)
        with BrowserPage(app.url) as page:
            page.wait_views()
            app.wait_event("study", timeout=120)
            first_frame_s = time.monotonic() - started
            views = app.views()
            masks = {
                a: view_mask(views["Red"], atlas.array, atlas.ijk_to_ras, labels[a]) for a, _ in STRUCTURES
            }
            shown = [(a, name) for a, name in STRUCTURES if masks[a].sum() >= MIN_PIXELS]
            for case in range(cases):
                atlas_name, name = shown[case % len(shown)]
                mask = masks[atlas_name]
                mark = len(app.events())
                page.type("ia-new-structure", name)
                page.press("ia-add-structure")
                page.wait_text("ia-profile", "learns in profile", timeout=120)
                app.wait_event(
                    "job", where=lambda e: e["what"] == JobKind.PREPARE.name, after=mark, timeout=120
                )
                page.key("p")
                page.wait_class("ia-positive", "v-btn--variant-flat")
                inside = np.argwhere(ndimage.binary_erosion(mask, iterations=2))
                for n in range(clicks):
                    if n == 0:
                        xy = click_target(mask)
                    else:
                        row, col = inside[rng.integers(len(inside))]
                        xy = (float(col), float(row))
                    mark = len(app.events())

                    def learned(mark=mark):
                        return app.wait_event(
                            "job",
                            where=lambda event: event["what"] == JobKind.LEARN.name,
                            after=mark,
                            timeout=120,
                        )

                    browser_ms = page.timed_click(0, xy, settled=learned)
                    events = app.events()[mark:]
                    jobs = {e["what"]: e["ms"] for e in events if e["event"] == "job"}
                    server = [e["slice_ms"] for e in events if e["event"] == "click"]
                    renders = [e["ms"] for e in events if e["event"] == "render"]
                    records.append(
                        {
                            "case": case,
                            "structure": atlas_name,
                            "click": n + 1,
                            "browser_ms": None if browser_ms < 0 else round(browser_ms, 1),
                            "server_slice_ms": server[0] if server else None,
                            "slice_job_ms": jobs.get(JobKind.SLICE.name),
                            "fill_job_ms": jobs.get(JobKind.FILL.name),
                            "learn_job_ms": jobs.get(JobKind.LEARN.name),
                            "view_renders": len(renders),
                            "view_render_ms": round(float(np.median(renders)), 1) if renders else None,
                        }
                    )
                    log.info("case %d click %d: %s", case, n + 1, records[-1])
                    time.sleep(think_s)
                mark = len(app.events())
                page.press("ia-finish")
                app.wait_event("finished", after=mark, timeout=300)
            page.screenshot(folder / "last-page.png")
    return {"clicks": records, "first_full_frame_s": round(first_frame_s, 1)}


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    a = np.asarray(values, float)
    return {
        "n": len(values),
        "p50": round(float(np.percentile(a, 50)), 1),
        "p95": round(float(np.percentile(a, 95)), 1),
        "max": round(float(a.max()), 1),
    }


def summarize(records: list[dict]) -> dict:
    seen = [r["browser_ms"] for r in records if r["browser_ms"] is not None]
    later = [r["browser_ms"] for r in records if r["browser_ms"] is not None and r["click"] > 1]
    first = [r["browser_ms"] for r in records if r["browser_ms"] is not None and r["click"] == 1]
    return {
        "click_to_mask_visible_ms": _percentiles(seen),
        "first_click_of_case_ms": _percentiles(first),
        "later_clicks_ms": _percentiles(later),
        "no_visible_change": sum(r["browser_ms"] is None for r in records),
        "server_click_to_slice_ms": _percentiles(
            [r["server_slice_ms"] for r in records if r["server_slice_ms"]]
        ),
        "slice_job_ms": _percentiles([r["slice_job_ms"] for r in records if r["slice_job_ms"]]),
        "fill_job_ms": _percentiles([r["fill_job_ms"] for r in records if r["fill_job_ms"]]),
        "learn_job_ms": _percentiles([r["learn_job_ms"] for r in records if r["learn_job_ms"]]),
        "view_render_ms": _percentiles([r["view_render_ms"] for r in records if r["view_render_ms"]]),
        "view_renders_per_click": _percentiles([r["view_renders"] for r in records]),
    }


def write_markdown(result: dict, path: Path) -> None:
    r = result["results"]
    rows = [
        ("Click to mask visible in the browser (all clicks)", r["click_to_mask_visible_ms"]),
        ("... first click of a case", r["first_click_of_case_ms"]),
        ("... later clicks", r["later_clicks_ms"]),
        ("Server: point arrived to slice written", r["server_click_to_slice_ms"]),
        ("Worker: slice prediction job", r["slice_job_ms"]),
        ("Worker: 3D filling job", r["fill_job_ms"]),
        ("Worker: learning step after a click", r["learn_job_ms"]),
        ("Server: drawing one view (median per click)", r["view_render_ms"]),
    ]
    lines = [
        "# Web front end: click to mask on screen (real browser)",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Machine: {result['machine']['cores']} cores, torch {result['machine']['torch']}; browser and server "
        "on the same machine. "
        f"Target p95 <= {TARGET_P95_MS:.0f} ms: {'met' if result['meets_target'] else 'missed'}.",
        "",
        "| figure (ms) | n | p50 | p95 | max |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {label} | {p['n']} | {p['p50']} | {p['p95']} | {p['max']} |" for label, p in rows]
    lines += [
        "",
        f"Clicks with no visible mask change (left out above): {r['no_visible_change']}. "
        f"First full-size frame {result['results_first_full_frame_s']} s after the server started. "
        f"Views drawn per click (until its learning step ended): p50 {r['view_renders_per_click']['p50']}.",
        "",
    ]
    path.write_text("\n".join(lines))


def register(subparsers) -> None:
    """Add the bench-web command."""
    p = subparsers.add_parser(
        "bench-web", help="click-to-mask-on-screen latency of the web front end, with real browser clicks"
    )
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file; a .md beside it")
    p.add_argument("--cases", type=int, default=4)
    p.add_argument("--clicks", type=int, default=6, help="clicks per case")
    p.add_argument("--think-s", type=float, default=1.0, help="after a click's work ended, before the next")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="an option for `interactive-adapt serve`, e.g. --server-arg=--torch-threads=2 (repeatable)",
    )
    p.set_defaults(func=_command)


def _command(args) -> int:
    import torch

    with tempfile.TemporaryDirectory(prefix="ia-bench-web-") as tmp:
        figures = run(args.cases, args.clicks, args.think_s, args.seed, Path(tmp), tuple(args.server_arg))
    summary = summarize(figures["clicks"])
    p95 = summary["click_to_mask_visible_ms"]["p95"]
    result = {
        "command": "interactive-adapt bench-web "
        f"--cases {args.cases} --clicks {args.clicks} --think-s {args.think_s} --seed {args.seed}"
        + "".join(f" --server-arg={a}" for a in args.server_arg)
        + (f" --output {args.output}" if args.output != DEFAULT_OUTPUT else ""),
        "machine": {"cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()},
        "protocol": __doc__.strip().split("\n\n", 1)[1],
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": p95 is not None and p95 <= TARGET_P95_MS,
        "results": summary,
        "results_first_full_frame_s": figures["first_full_frame_s"],
        "clicks": figures["clicks"],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(result, args.output.with_suffix(".md"))
    print(args.output.with_suffix(".md").read_text())
    return 0
