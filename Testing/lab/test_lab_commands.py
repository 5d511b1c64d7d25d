"""The lab's commands through `interactive-adapt`, end to end with a tiny real network: the quick
benchmark (and its resume), the demo, train + export-model, and bench-speed."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from InteractiveAdaptLib.cli import main as cli
from InteractiveAdaptLib.model import network
from InteractiveAdaptLib.model.base_model import load_base_model, save_base_model
from InteractiveAdaptLib.model.network import NetworkConfig, build_network
from InteractiveAdaptLib.store.site_store import SiteStore

TINY = NetworkConfig("tiny", (8, 16, 32), 0)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    return save_base_model(build_network(TINY), tmp_path_factory.mktemp("models") / "tiny", {"name": "tiny"})


@pytest.mark.slow
def test_quick_benchmark_writes_marked_results_and_resumes(tiny_model, tmp_path):
    args = ["benchmark", "--quick", "--model", str(tiny_model.directory), "--output", str(tmp_path),
            "--streams", "mni152-grey-matter", "--methods", "none", "entropy-min", "click-only", "pi+mi", "default",
            "--cases", "2", "--threads", "1"]  # fmt: skip
    assert cli.main(args) == 0
    result = json.loads((tmp_path / "adaptation-mni152-grey-matter.json").read_text())
    assert result["quick"] is True and result["kind"] == "real" and result["stream"] == "single"
    assert result["cases"] == 2 and result["orders"] == 1
    for method in ("none", "entropy-min", "click-only", "pi+mi", "default"):
        m = result["methods"][method]
        for key in (
            "dice@1",
            "dice@5",
            "dice@10",
            "noc@80",
            "noc@85",
            "noc@90",
            "dice@5_se",
            "source_dice_drop",
        ):
            assert key in m
        assert 0 <= m["dice@1"] <= 1 and 1 <= m["noc@90"] <= 20
    assert result["methods"]["none"]["source_dice_drop"] == 0  # no learning cannot forget
    assert (tmp_path / "adaptation-mni152-grey-matter.png").stat().st_size > 1000
    assert "| pi+mi |" in (tmp_path / "adaptation.md").read_text()
    (tmp_path / "adaptation.md").unlink()
    assert cli.main(["benchmark", "--report-only", "--output", str(tmp_path)]) == 0
    assert "## Summary" in (tmp_path / "adaptation.md").read_text()
    # Resume: the saved per-(method, order) runs are reused, not recomputed.
    partial = sorted((tmp_path / "partial" / "mni152-grey-matter").glob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in partial]
    assert cli.main(args) == 0
    assert [p.stat().st_mtime_ns for p in partial] == stamps


@pytest.mark.slow
def test_demo_writes_table_plot_and_site_weights(tiny_model, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    args = ["demo", "--model", str(tiny_model.directory), "--output", str(tmp_path), "--cases", "2"]
    assert cli.main([*args, "--threads", "1"]) == 0
    # One "saved version" line per case would scroll the progress bar away.
    assert not [r for r in caplog.records if "Saved version" in r.getMessage()]
    out = capsys.readouterr().out
    assert "| none |" in out and "| default |" in out and str((tmp_path / "demo.png").resolve()) in out
    assert (tmp_path / "demo.png").stat().st_size > 1000
    site = SiteStore(tmp_path / "site-weights")
    versions = site.profile("MNI152 demo site", "tissue grey matter").versions()
    assert len(versions) == 2  # one version per learned case


@pytest.mark.slow
def test_export_model_measures_and_writes_a_loadable_model_card(tmp_path, monkeypatch):
    monkeypatch.setitem(network.CONFIGS, "tiny", TINY)
    run = tmp_path / "run"
    assert cli.main(["train", "--output", str(run), "--network", "tiny", "--steps", "2", "--batch-size", "2",
                     "--crop", "64", "--val-every", "2", "--val-cases", "2", "--threads", "1"]) == 0  # fmt: skip
    assert cli.main(["export-model", "--run", str(run), "--name", "tiny-test", "--output", str(tmp_path / "models"),
                     "--cases", "2", "--threads", "1"]) == 0  # fmt: skip
    model = load_base_model(tmp_path / "models" / "tiny-test")
    metrics = model.card["metrics"]
    assert set(metrics) >= {"in_domain", "mni152", "mni152-t2", "inia19", "robex"}
    for entry in metrics.values():
        assert {"dice@1", "dice@5", "dice@10", "cases"} <= set(entry) and entry["cases"] == 2
    assert model.card["sha256"] == model.sha256 and model.card["training"]["steps_trained"] == 2
    assert "--steps 2" in model.card["training_command"]
    assert "## Not for" in (tmp_path / "models" / "tiny-test" / "README.md").read_text()
    assert (tmp_path / "models" / "tiny-test" / "guard_slices.npz").stat().st_size > 1000


@pytest.mark.slow
def test_bench_speed_writes_every_figure(tiny_model, tmp_path):
    out = tmp_path / "speed.json"
    assert cli.main(["bench-speed", "--model", str(tiny_model.directory), "--configs", "default",
                     "--cases", "2", "--output", str(out), "--threads", "1", "--repeats", "2"]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    for key in ("predict_ms_p95", "click_ms_p50", "click_ms_p95", "pi_ms_per_slice", "load_ms", "peak_rss_mb",
                "soak_rss_growth_mb"):  # fmt: skip
        assert result["default"][key] == result["default"][key]  # a number, not NaN
    assert result["default"]["peak_rss_mb"] > 50 and result["machine"]["torch_threads"] == 1
    assert result["default"]["soak_clicks"] == 20
    runs = [run["click_ms_p50"] for run in result["default"]["runs"]]
    assert len(runs) == 2 and result["default"]["click_ms_p50"] == pytest.approx(sum(runs) / 2, abs=0.1)
