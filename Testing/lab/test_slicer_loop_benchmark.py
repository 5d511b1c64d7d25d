"""`interactive-adapt bench-slicer-loop --quick` end to end with a tiny network: it writes the JSON and the
Markdown report with every figure in place (their values are timings of a loaded machine: not checked)."""

from __future__ import annotations

import json

import pytest

from interactive_adapt_lab.evaluation import slicer_loop_benchmark
from InteractiveAdaptLib.cli import main as cli

pytestmark = [pytest.mark.slow, pytest.mark.slicer]

STATS = {"n", "p50", "p95", "max"}


def test_quick_run_writes_the_figures_and_the_report(tiny_model_dir, tmp_path):
    output = tmp_path / "results" / "slicer_loop.json"
    args = ["bench-slicer-loop", "--quick", "--model", str(tiny_model_dir), "--output", str(output)]
    assert cli.main([*args, "--threads", "1"]) == 0
    result = json.loads(output.read_text())
    assert result["quick"] is True
    options = f"--quick --threads 1 --model {tiny_model_dir} --output {output}"
    assert result["command"] == f"interactive-adapt bench-slicer-loop {options}"
    assert result["machine"]["cores"] >= 1 and result["machine"]["torch_threads"] == 1
    assert result["protocol"]["cases"] == 1 and result["protocol"]["clicks_per_case"] == 3
    assert result["targets"] == {"click_to_mask_p95_ms": 100.0, "stall_ms": 150.0}
    r = result["results"]
    assert r["errors"] == [] and r["clicks"] == len(result["per_click"]) >= 2
    for key in (
        "click_to_mask_ms",
        "click_to_filled_ms",
        "click_stall_ms",
        "mi_step_ms",
        "finish_stall_ms",
        "finish_ms",
    ):
        assert set(r[key]) == STATS and r[key]["n"] >= 1, key
    assert r["first_click_ms"] > 0 and r["first_case_start_stall_ms"] > 0
    assert r["module_open"]["stall_ms"] > 0 and r["module_open"]["loading_s"] > 0
    assert isinstance(r["module_open"]["network_loaded"], bool)
    for click in result["per_click"]:
        assert click["wait_ms"] > 0 and click["stall_ms"] > 0 and click["stall_in"]
        assert click["mi_ms"] is None or click["mi_ms"] > 0
    (finish,) = result["per_finish"]
    assert finish["slices_learned"] >= 1 and finish["finish_ms"] >= finish["stall_ms"] > 0
    assert set(result["meets_targets"]) == {"click_to_mask_p95", "stall"}
    assert "baseline_plain_poll" not in result  # --quick skips the slow baseline
    report = output.with_suffix(".md").read_text()
    assert "| click to mask on its slice (after the first click) | " in report and result["command"] in report


def test_the_report_shows_the_baseline_when_there_is_one():
    stats = {"n": 1, "p50": 1.0, "p95": 1.0, "max": 1.0}
    result = {
        "command": "interactive-adapt bench-slicer-loop",
        "quick": False,
        "machine": {"cores": 2, "torch_threads": 2, "torch": "2", "python": "3.12"},
        "model": {"name": "m", "config": {}},
        "protocol": {
            "image": "Colin27",
            "cases": 1,
            "clicks_per_case": 1,
            "think_time_s": 1.0,
            "main_loop": "emulated",
            "tick_budget_ms": 35.0,
            "busy_interval_ms": 5,
            "idle_interval_ms": 50,
            "not_included": "rendering",
        },
        "results": {
            "click_to_mask_ms": stats,
            "click_to_filled_ms": stats,
            "click_stall_ms": stats,
            "finish_stall_ms": stats,
            "mi_step_ms": stats,
            "finish_ms": stats,
            "case_start_stall_ms": stats,
            "first_click_ms": 1.0,
            "first_case_start_stall_ms": 1.0,
            "module_open": {"loading_s": 3.0, "stall_ms": 1.0, "network_loaded": True},
            "errors": [],
        },
        "meets_targets": {"click_to_mask_p95": True, "stall": True},
        "baseline_plain_poll": {"design": "old poll", "click_to_mask_ms": stats},
    }
    report = slicer_loop_benchmark.report_markdown(result)
    assert "Baseline, old poll" in report and "(quick" not in report
