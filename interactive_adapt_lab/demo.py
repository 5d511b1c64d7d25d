"""`interactive-adapt demo`: the shipped Colin27 model meets the MNI152 'site' (a real shift).

A single-target stream (grey matter, the clearest case for adaptation: a structure type the model was
never trained on, on another template's T1) segmented with the simulated user, once without
adaptation and once with the product's default (PI + MI with CCG weight 50 and one learning profile
per structure, the method "default" of `interactive-adapt benchmark`). It writes a table, a plot, the
site weights the default learned (in a site store), and one picture of the stream's first cases after
one click, with the shipped weights and with the profile the site learned.
"""

from __future__ import annotations

import json
import logging
import shlex
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from interactive_adapt_lab.data.cases import Case
from interactive_adapt_lab.data.datasets import Domain, load_domain
from interactive_adapt_lab.data.streams import STREAMS
from interactive_adapt_lab.evaluation.adaptation_benchmark import (
    methods,
    run_stream,
    source_cases,
    source_dice,
    summarize,
)
from interactive_adapt_lab.evaluation.adaptation_report import (
    SOURCE_COLUMNS_NOTE,
    markdown_table,
    plot_stream,
)
from InteractiveAdaptLib.engine.click_simulation import first_click
from InteractiveAdaptLib.engine.predictor import Predictor, dice
from InteractiveAdaptLib.geometry import in_plane_spacing
from InteractiveAdaptLib.model.base_model import BaseModel, load_base_model, load_weights_into
from InteractiveAdaptLib.model.location import find_base_model_dir
from InteractiveAdaptLib.store.site_store import SiteStore

DEMO_STREAM = "mni152-grey-matter"
DEMO_METHODS = ("none", "default")
DEMO_SITE = "MNI152 demo site"
CLICK_MODE = "center"
BEFORE_AFTER_CASES = 4  # rows of before-after.png (fewer when the stream is shorter)
# before-after.png: inches per row and for the title, at this dpi (about 150 KB for 4 rows).
PANEL_INCHES, TITLE_INCHES, FIGURE_DPI = 2.5, 1.0, 90
VIEWS = {0: "axial", 1: "coronal", 2: "sagittal"}  # the MNI152 array's K axis runs inferior-superior


def run_demo(output: Path, model_dir: Path, n_cases: int, seed: int = 0) -> dict:
    started = time.time()
    output.mkdir(parents=True, exist_ok=True)
    base = load_base_model(model_dir)
    state = base.fresh_state()
    colin = load_domain("colin27")
    stream = STREAMS[DEMO_STREAM]
    domain = load_domain(stream.domain)
    cases = stream.cases(domain, n_cases, seed=1000 + seed)
    held_out = source_cases(colin)
    shipped = Predictor(base.network)
    source = source_dice(shipped, colin, CLICK_MODE, held_out)
    store = SiteStore(output / "site-weights")
    if DEMO_SITE in store.sites():  # a rerun learns from the shipped weights, not from the last demo's
        store.delete_site(DEMO_SITE)
    runs = {}
    with tqdm(total=n_cases * len(DEMO_METHODS), desc="demo: MNI152 grey matter", unit="case") as bar:
        for name in DEMO_METHODS:
            base.network.load_state_dict(state)
            keep = store if name == "default" else None
            runs[name] = run_stream(
                base, domain, cases, methods()[name], seed, colin, CLICK_MODE, bar, keep, DEMO_SITE
            )
    base.network.load_state_dict(state)
    # The profile the default saved, as the store names it (one: the stream has one structure).
    saved = store.profiles(DEMO_SITE)
    if len(saved) != 1:
        raise RuntimeError(f"The demo site should hold one learned profile; it holds {saved}.")
    profile = saved[0]
    loaded = store.profile(DEMO_SITE, profile).load(base.sha256)
    if loaded is None:
        raise RuntimeError(f"The demo site's profile '{profile}' holds no usable version.")
    summary = {m: summarize([r], source) for m, r in runs.items()}
    rows = before_after_rows(base, {"none": state, "default": loaded.model_state}, domain, cases, seed)
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
        "click_mode": CLICK_MODE,
        "source_dice@5_before": round(source, 4),
        "methods": summary,
        "dice_per_click": {
            m: torch.tensor(r["curves"]).mean(0).round(decimals=4).tolist() for m, r in runs.items()
        },
        "dice_along_stream": {m: [c[4] for c in r["curves"]] for m, r in runs.items()},
        "site": DEMO_SITE,
        "profile": profile,
        "profile_version": loaded.info.version,
        "before_after": [
            {k: row[k] for k in ("case", "target", "axis", "index", "click", "dice")} for row in rows
        ],
    }
    result["source_note"] = SOURCE_COLUMNS_NOTE
    (output / "demo.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown_table({DEMO_STREAM: result})
    (output / "demo.md").write_text(table + "\n" + result["source_note"] + "\n")
    plot_stream(result, output / "demo.png")
    title = (
        f"{stream.description}: the first {len(rows)} cases of the stream, the same first click, with the "
        f"shipped weights and with the site's profile '{profile}' (version {loaded.info.version}, "
        f"{loaded.info.cases_learned} cases learned, these among them)"
    )
    plot_before_after(rows, output / "before-after.png", title, loaded.info.cases_learned)
    print("\n" + table)
    print(result["source_note"])
    print(f"\ndemo finished in {time.time() - started:.0f} s")
    print(f"  table:         {(output / 'demo.md').resolve()}")
    print(f"  plot:          {(output / 'demo.png').resolve()}")
    print(f"  before/after:  {(output / 'before-after.png').resolve()}")
    show = ["interactive-adapt", "sites", "show", "--root", str(output / "site-weights")]
    show += ["--site", DEMO_SITE, "--profile", profile]
    print(f"  site weights:  {(output / 'site-weights').resolve()} ({shlex.join(show)})")
    return result


def before_after_rows(
    base: BaseModel, weights: dict[str, dict], domain: Domain, cases: list[Case], seed: int
) -> list[dict]:
    """The first cases of the stream after their first click (the stream's own first click, centred in
    the target), predicted with each set of weights by the product's predictor."""
    rows = []
    for i, case in enumerate(cases[:BEFORE_AFTER_CASES]):
        target = case.mask(domain)
        click = first_click(target, CLICK_MODE, np.random.default_rng([seed, i]))  # as in run_stream
        rows.append(
            {
                "case": i + 1,
                "target": case.target,
                "axis": case.axis,
                "index": case.index,
                "click": list(click),
                "image": case.image(domain),
                "spacing": in_plane_spacing(domain.spacing_kji, case.axis),
                "reference": target,
                "masks": {},
                "dice": {},
            }
        )
    original = {k: v.clone() for k, v in base.network.state_dict().items()}
    for name, state in weights.items():
        load_weights_into(base.network, state, f"the demo's '{name}' weights")
        base.network.eval()
        predictor = Predictor(base.network)
        for row in rows:
            mask = predictor.predict(row["image"], row["spacing"], [tuple(row["click"])])
            row["masks"][name] = mask
            row["dice"][name] = round(dice(mask, row["reference"]), 4)
    base.network.load_state_dict(original)
    return rows


def before_after_size(n_rows: int) -> tuple[int, int]:
    """(width, height) in pixels of before-after.png with `n_rows` cases."""
    return round(3 * PANEL_INCHES * FIGURE_DPI), round((n_rows * PANEL_INCHES + TITLE_INCHES) * FIGURE_DPI)


def plot_before_after(rows: list[dict], path: Path, title: str, cases_learned: int) -> None:
    """One row per case: the image with the reference outline, the prediction of the shipped weights
    and that of the learned profile (same click, its Dice in the title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from PIL import Image

    width, height = (s / FIGURE_DPI for s in before_after_size(len(rows)))
    fig, axes = plt.subplots(len(rows), 3, figsize=(width, height), dpi=FIGURE_DPI, squeeze=False)
    labels = {"none": "no adaptation", "default": f"after {cases_learned} cases learned"}
    overlay = ListedColormap(["red"])
    for row, panels in zip(rows, axes, strict=True):
        flip = row["axis"] != 0  # coronal and sagittal slices: superior up
        upright = np.flipud if flip else np.asarray
        image, reference = upright(row["image"]), upright(row["reference"])
        h = image.shape[0]
        click_r = h - 1 - row["click"][0] if flip else row["click"][0]
        aspect = row["spacing"][0] / row["spacing"][1]
        low, high = np.percentile(image, (1, 99.5))
        rr, cc = np.nonzero(reference)  # show the target's surroundings, not the whole slice
        pad = 12
        box = (max(rr.min() - pad, 0), min(rr.max() + pad, h - 1))
        box_c = (max(cc.min() - pad, 0), min(cc.max() + pad, image.shape[1] - 1))
        for ax in panels:
            ax.imshow(image, cmap="gray", vmin=low, vmax=high, aspect=aspect, interpolation="nearest")
            ax.set(xlim=(box_c[0] - 0.5, box_c[1] + 0.5), ylim=(box[1] + 0.5, box[0] - 0.5))
            ax.set_xticks([])
            ax.set_yticks([])
        panels[0].contour(reference, levels=[0.5], colors="yellow", linewidths=0.8)
        panels[0].set_title(
            f"case {row['case']}: {VIEWS[row['axis']]} slice {row['index']}\nreference outline", fontsize=8
        )
        for ax, name in zip(panels[1:], ("none", "default"), strict=True):
            mask = upright(row["masks"][name])
            ax.imshow(
                np.ma.masked_equal(mask, 0), cmap=overlay, alpha=0.45, aspect=aspect, interpolation="nearest"
            )
            ax.plot(row["click"][1], click_r, marker="+", color="lime", markersize=9, mew=2)
            ax.set_title(f"{labels[name]}, 1 click\nDice {row['dice'][name]:.2f}", fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(title, 110)), fontsize=8)
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.01, top=1 - TITLE_INCHES / height, wspace=0.03, hspace=0.25
    )
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    plt.close(fig)
    # 256 colours are plenty for grey slices with two overlay colours, and keep the file small.
    Image.fromarray(rgb).quantize(256).save(path, optimize=True)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="a short real-shift run: no adaptation against the product default (PI + MI with "
        "per-structure learning profiles), with a before/after picture",
    )
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
