"""The demo end to end on the real MNI152 and Colin27 data with a tiny real network saved as the base
model: no adaptation against the product default, the before/after picture and the site weights."""

from __future__ import annotations

import json
import struct

import pytest

from interactive_adapt_lab.demo import DEMO_SITE, before_after_size, run_demo
from interactive_adapt_lab.evaluation import adaptation_benchmark
from interactive_adapt_lab.evaluation.adaptation_report import SOURCE_COLUMNS_NOTE
from InteractiveAdaptLib.model.base_model import load_base_model
from InteractiveAdaptLib.store.site_store import SiteStore


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's header; fails for anything that is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.mark.slow
def test_demo_compares_no_adaptation_with_the_default_and_saves_its_profile(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(adaptation_benchmark, "SOURCE_CASES", 6)  # the forgetting check, shorter
    n_cases = 3  # fewer than the picture's four rows: one row per case then
    run_demo(tmp_path, tiny_model_dir, n_cases)
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "demo.json").read_text())
    assert list(result["methods"]) == ["none", "default"]
    assert "| none |" in out and "| default |" in out and "| pi+mi |" not in out

    # The site store holds the profile the default learned: one version per case, loadable.
    base = load_base_model(tiny_model_dir)
    store = SiteStore(tmp_path / "site-weights")
    profile = result["profile"]
    assert profile == "tissue grey matter" and store.profiles(DEMO_SITE) == [profile]
    versions = store.profile(DEMO_SITE, profile).versions()
    assert [v.version for v in versions] == [1, 2, 3] and result["profile_version"] == 3
    assert store.profile(DEMO_SITE, profile).load(base.sha256) is not None
    assert f"--site '{DEMO_SITE}' --profile '{profile}'" in out

    # The source column: the grey-matter profile measured on Colin27 grey matter (the Otsu stand-in),
    # against the shipped weights on the same slices; the note printed says so.
    assert result["source_note"] == SOURCE_COLUMNS_NOTE and SOURCE_COLUMNS_NOTE in out
    assert result["methods"]["none"]["source_dice_drop"] == 0  # no learning, same clicks: no drop
    assert result["methods"]["default"]["source_dice_drop"] is not None

    # One row of the picture per case shown, both predictions scored.
    picture = tmp_path / "before-after.png"
    assert str(picture.resolve()) in out
    assert png_size(picture) == before_after_size(n_cases) != before_after_size(n_cases + 1)
    assert picture.stat().st_size < 300_000
    rows = result["before_after"]
    assert [r["case"] for r in rows] == [1, 2, 3]
    assert all(set(r["dice"]) == {"none", "default"} for r in rows)
    assert all(0 <= d <= 1 for r in rows for d in r["dice"].values())

    # A second demo into the same folder starts again from the shipped weights: its one case makes
    # version 1 of a new profile (building on the first demo's would have made version 4).
    run_demo(tmp_path, tiny_model_dir, 1)
    assert [v.version for v in store.profile(DEMO_SITE, profile).versions()] == [1]
