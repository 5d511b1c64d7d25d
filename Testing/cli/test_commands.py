"""The engine's commands end to end, on real data with a tiny real network: segment, benchmark (quick),
demo, export-model and bench-speed."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from interactive_adapt_lab.data.datasets import MRICRON
from InteractiveAdaptLib.cli import main as cli
from InteractiveAdaptLib.engine import network
from InteractiveAdaptLib.engine.network import NetworkConfig, build_network
from InteractiveAdaptLib.io.volumes import Volume, read_volume, write_dicom_series, write_volume
from InteractiveAdaptLib.model.base_model import load_base_model, save_base_model
from InteractiveAdaptLib.store.site_store import SiteStore

TINY = NetworkConfig("tiny", (8, 16, 32), 0)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    return save_base_model(build_network(TINY), tmp_path_factory.mktemp("models") / "tiny", {"name": "tiny"})


@pytest.fixture(scope="module")
def colin_crop(tmp_path_factory):
    """A real Colin27 block with its real geometry, as a NIfTI file."""
    full = read_volume(MRICRON / "ch2.nii.gz")
    origin_shift = np.eye(4)
    origin_shift[:3, 3] = full.ijk_to_ras[:3, :3] @ np.array([40, 60, 70])  # I, J, K of the block's corner
    volume = Volume(full.array[70:110, 60:160, 40:140].copy(), origin_shift @ full.ijk_to_ras)
    path = tmp_path_factory.mktemp("images") / "colin_block.nii.gz"
    write_volume(volume, path)
    return path, volume


def write_clicks(path, clicks, profile="Brain"):
    path.write_text(json.dumps({"profile": profile, "clicks": clicks}))
    return path


def test_segment_writes_the_mask_on_the_clicked_slice_and_learns(tiny_model, colin_crop, tmp_path, capsys):
    image, volume = colin_crop
    clicks = write_clicks(
        tmp_path / "clicks.json",
        [
            {"voxel": [50, 50, 20], "plane": "K", "positive": True},
            {"voxel": [5, 5, 20], "plane": "K", "positive": False},
        ],
    )
    out = tmp_path / "mask.nii.gz"
    code = cli.main(["segment", str(image), "--clicks", str(clicks), "--output", str(out),
                     "--model", str(tiny_model.directory), "--learn", "--root", str(tmp_path / "sites"),
                     "--site", "Hospital A"])  # fmt: skip
    assert code == 0
    mask = read_volume(out)
    np.testing.assert_allclose(mask.ijk_to_ras, volume.ijk_to_ras, atol=1e-4)
    assert mask.array.shape == volume.array.shape
    per_slice = mask.array.reshape(mask.array.shape[0], -1).sum(1)
    assert per_slice[20] > 0 and per_slice.sum() == per_slice[20]  # only the clicked K slice
    assert "version 1" in capsys.readouterr().out
    versions = SiteStore(tmp_path / "sites").profile("Hospital A", "Brain").versions()
    assert [v.version for v in versions] == [1] and versions[0].clicks_learned == 2


def test_segment_learns_both_sides_of_a_structure_in_one_profile(tiny_model, colin_crop, tmp_path):
    image, _ = colin_crop
    root = tmp_path / "sites"
    for side in ("Hippocampus_L", "Right hippocampus"):
        clicks = write_clicks(tmp_path / "clicks.json", [{"voxel": [40, 30, 20], "positive": True}], side)
        code = cli.main(["segment", str(image), "--clicks", str(clicks), "--output", str(tmp_path / "m.nrrd"),
                         "--model", str(tiny_model.directory), "--learn", "--root", str(root),
                         "--site", "Hospital A"])  # fmt: skip
        assert code == 0
    versions = SiteStore(root).profile("Hospital A", "Hippocampus").versions()
    assert [v.version for v in versions] == [1, 2]  # the right side built on the left side's version


def test_segment_reads_a_dicom_folder(tiny_model, colin_crop, tmp_path):
    _, volume = colin_crop
    write_dicom_series(volume, tmp_path / "dicom")
    clicks = write_clicks(tmp_path / "clicks.json", [{"voxel": [50, 20, 30], "plane": "J", "positive": True}])
    out = tmp_path / "mask.nrrd"
    code = cli.main(["segment", str(tmp_path / "dicom"), "--clicks", str(clicks), "--output", str(out),
                     "--model", str(tiny_model.directory)])  # fmt: skip
    assert code == 0
    assert read_volume(out).array.shape == volume.array.shape


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"clicks": []}', "non-empty list"),
        ('{"clicks": [{"voxel": [1, 2]}]}', "Click 1"),
        ('{"clicks": [{"voxel": [1, 2, 3], "plane": "oblique"}]}', "Click 1"),
        ('{"clicks": [{"voxel": [999, 2, 3], "plane": "K"}]}', "outside the image"),
    ],
)
def test_segment_bad_clicks_give_a_clear_error(tiny_model, colin_crop, tmp_path, capsys, content, message):
    clicks = tmp_path / "clicks.json"
    clicks.write_text(content)
    code = cli.main(["segment", str(colin_crop[0]), "--clicks", str(clicks), "--output", str(tmp_path / "m.nii.gz"),
                     "--model", str(tiny_model.directory)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "m.nii.gz").exists()


def test_segment_at_a_finer_working_resolution(tiny_model, colin_crop, tmp_path, capsys):
    image, _ = colin_crop
    clicks = write_clicks(tmp_path / "clicks.json", [{"voxel": [50, 50, 20], "plane": "K", "positive": True}])
    masks = {}
    for spacing in ("1", "0.5"):
        out = tmp_path / f"mask-{spacing}.nii.gz"
        code = cli.main(["segment", str(image), "--clicks", str(clicks), "--output", str(out),
                         "--model", str(tiny_model.directory), "--working-spacing", spacing])  # fmt: skip
        assert code == 0
        masks[spacing] = read_volume(out).array
    assert masks["1"].shape == masks["0.5"].shape and not np.array_equal(masks["1"], masks["0.5"])
    with pytest.raises(SystemExit):
        cli.main(["segment", str(image), "--clicks", str(clicks), "--output", str(tmp_path / "m.nii.gz"),
                  "--model", str(tiny_model.directory), "--working-spacing", "5"])  # fmt: skip
    assert "between 0.25 and 2 mm" in capsys.readouterr().err


def test_segment_missing_image_is_a_clear_error(tiny_model, tmp_path, capsys):
    clicks = write_clicks(tmp_path / "c.json", [{"voxel": [1, 2, 3]}])
    code = cli.main(["segment", str(tmp_path / "nope.nii.gz"), "--clicks", str(clicks), "--output",
                     str(tmp_path / "m.nii.gz"), "--model", str(tiny_model.directory)])  # fmt: skip
    assert code == 1 and "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_benchmark_writes_marked_results_and_resumes(tiny_model, tmp_path):
    args = ["benchmark", "--quick", "--model", str(tiny_model.directory), "--output", str(tmp_path),
            "--streams", "mni152-grey-matter", "--methods", "none", "tent", "click-only", "pi+mi", "default",
            "--cases", "2", "--threads", "1"]  # fmt: skip
    assert cli.main(args) == 0
    result = json.loads((tmp_path / "adaptation-mni152-grey-matter.json").read_text())
    assert result["quick"] is True and result["kind"] == "real" and result["stream"] == "single"
    assert result["cases"] == 2 and result["orders"] == 1
    for method in ("none", "tent", "click-only", "pi+mi", "default"):
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
    assert "| none |" in out and "| pi+mi |" in out and str((tmp_path / "demo.png").resolve()) in out
    assert (tmp_path / "demo.png").stat().st_size > 1000
    versions = SiteStore(tmp_path / "site-weights").profile("MNI152 demo site", "stream").versions()
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
