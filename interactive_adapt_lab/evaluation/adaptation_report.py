"""Write benchmark results: one JSON per stream, a markdown table and PNG plots (matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

COLUMNS = (
    "dice@1",
    "dice@5",
    "dice@10",
    "dice@5_se",
    "noc@80",
    "noc@85",
    "noc@90",
    "source_dice_drop",
    "click_ms_p50",
    "case_ms_p50",
)


# What the two forgetting columns measure (the report and the demo print it under their tables).
SOURCE_COLUMNS_NOTE = (
    "source_dice_drop: forgetting of the stream's own structures on the source domain: Dice@5 on "
    "Colin27 slices of each structure the stream adapted (8 per structure; the AAL pair, the brain, or "
    "a tissue class of an Otsu stand-in; none for macaque NeuroMaps structures), the shipped weights "
    "minus the weights the site uses for that structure, same slices and clicks (empty: no counterpart). "
    "source_dice_drop_stream_weights: the same on 24 held-out AAL cases of other structures with the "
    "weights the stream adapted most, what a model shared by every structure would do to them."
)


def _number(value) -> str:
    return "n/a" if value is None else f"{value:g}"


def markdown_table(results: dict[str, dict]) -> str:
    lines = []
    for name, r in results.items():
        lines.append(f"### {name} ({r['kind']}, {r['stream']} target): {r['target']}")
        lines.append(f"Shift: {r['shift']}. {r['cases']} cases x {r['orders']} orders. `{r['command']}`\n")
        lines.append("| method | " + " | ".join(COLUMNS) + " |")
        lines.append("|---" * (len(COLUMNS) + 1) + "|")
        for method, m in r["methods"].items():
            lines.append(f"| {method} | " + " | ".join(_number(m.get(c)) for c in COLUMNS) + " |")
        lines.append("")
    return "\n".join(lines)


def _dice_triple(method: dict) -> str:
    return "/".join(f"{method[f'dice@{k}']:.3f}" for k in (1, 5, 10))


def _noc_change(none: dict, default: dict, key: str) -> str:
    before, after = none[key], default[key]
    change = f"{(after - before) / before:+.0%}" if before else "n/a"
    return f"{before:g} -> {after:g} ({change})"


def _reached(method: dict) -> str:
    return f"{method['reached@85']:.0%}" if "reached@85" in method else "n/a"


def _target_checks(r: dict) -> str:
    """The benchmark issue's quality targets for this kind of stream, each 'yes' or 'NO'."""
    m = r["methods"]
    none, default = m["none"], m["default"]
    drop = default["source_dice_drop"]
    checks = {
        "source drop <= 0.01" if drop is not None else "source drop (no counterpart)": (drop or 0) <= 0.01
    }
    headroom = none["noc@85"] > 5  # the "single-target streams with headroom"
    if r["stream"] == "mixed" or not headroom:
        checks["no harm (Dice@5 >= none - 0.01)"] = default["dice@5"] >= none["dice@5"] - 0.01
    else:
        # NoC@85, or NoC@80 where 85 % is out of reach: most cases never get there without adaptation.
        level = "noc@85" if none.get("reached@85", 1.0) >= 0.5 else "noc@80"
        checks[f"NoC@{level[4:]} -40 %"] = default[level] <= 0.6 * none[level]
        checks["Dice@5 >= none Dice@10"] = default["dice@5"] >= none["dice@10"]
        baselines = [b for b in ("entropy-min", "click-only") if b in m]
        label = ", ".join(baselines) or "the baselines"
        checks[f"beats {label}"] = bool(baselines) and all(
            default[f"dice@{k}"] > m[b][f"dice@{k}"] for b in baselines for k in (1, 5, 10)
        )
    return "; ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks.items())


def summary_table(results: dict[str, dict]) -> str:
    """One row per stream: no adaptation against the product default, and the issue's target checks."""
    lines = [
        "| stream | kind | orders x cases | Dice@1/5/10 none | Dice@1/5/10 default | NoC@80 none -> default "
        "| NoC@85 none -> default | reach 85 % none / default | targets |",
        "|---" * 9 + "|",
    ]
    for name, r in results.items():
        m = r["methods"]
        if "none" not in m or "default" not in m:
            continue
        none, default = m["none"], m["default"]
        lines.append(
            f"| {name} | {r['kind']}, {r['stream']} | {r['orders']} x {r['cases']} | {_dice_triple(none)} "
            f"| {_dice_triple(default)} | {_noc_change(none, default, 'noc@80')} "
            f"| {_noc_change(none, default, 'noc@85')} | {_reached(none)} / {_reached(default)} "
            f"| {_target_checks(r)} |"
        )
    return "\n".join(lines) + "\n"


def plot_stream(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=80)
    for method, curve in result["dice_per_click"].items():
        left.plot(np.arange(1, len(curve) + 1), curve, marker=".", label=method)
    left.axvline(10.5, color="grey", lw=0.8, ls=":")
    left.set(xlabel="click", ylabel="mean Dice", title="Dice per click (11-20: weights frozen)", ylim=(0, 1))
    window = max(1, len(next(iter(result["dice_along_stream"].values()))) // 10)
    for method, values in result["dice_along_stream"].items():
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        right.plot(np.arange(len(smooth)) + window, smooth, label=method)
    right.set(
        xlabel="case in stream",
        ylabel=f"Dice@5 (moving mean of {window})",
        title="learning along the stream",
        ylim=(0, 1),
    )
    right.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{result['stream_name']} ({result['kind']}): {result['target']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(results: dict[str, dict], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    for name, result in results.items():
        (output / f"adaptation-{name}.json").write_text(json.dumps(result, indent=1) + "\n")
        plot_stream(result, output / f"adaptation-{name}.png")
    # The table covers every stream in the folder, also those written by earlier (resumed) runs.
    everything = {
        path.stem.removeprefix("adaptation-"): json.loads(path.read_text())
        for path in sorted(output.glob("adaptation-*.json"))
    }
    with_default = {k: r for k, r in everything.items() if {"none", "default"} <= set(r["methods"])}
    summary = (
        "## Summary: no adaptation against the product default\n\n" + summary_table(with_default) + "\n"
        if with_default
        else ""  # e.g. tuning runs, which name each variant of the default
    )
    (output / "adaptation.md").write_text(
        "# Online adaptation benchmark\n\n"
        + summary
        + "## Every method\n\n"
        + (SOURCE_COLUMNS_NOTE + "\n\n" if any("benchmark_version" in r for r in everything.values()) else "")
        + markdown_table(everything)
        + "\n"
    )
