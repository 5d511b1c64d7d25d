"""Module settings, where site weights and the shipped model are found, and the session they open."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from InteractiveAdaptLib.app import settings as st
from InteractiveAdaptLib.errors import InteractiveAdaptError, SiteStoreError
from InteractiveAdaptLib.store.names import check_name
from InteractiveAdaptLib.store.site_store import SiteStore


def test_settings_round_trip_through_plain_and_qsettings_strings():
    custom = st.ModuleSettings(
        site="St Mary MRI",
        user="dr b",
        device="cpu",
        learning_rate=1e-4,
        mid_interaction=False,
        working_spacing_mm=0.5,
    )
    assert st.ModuleSettings.from_dict(custom.to_dict()) == custom
    as_qsettings = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in custom.to_dict().items()}
    assert st.ModuleSettings.from_dict(as_qsettings) == custom


def test_bad_saved_values_fall_back_to_defaults(caplog):
    defaults = st.ModuleSettings()
    loaded = st.ModuleSettings.from_dict(
        {
            "site": "  ",
            "device": "tpu",
            "learning_rate": "fast",
            "mid_interaction": "maybe",
            "working_spacing_mm": "nan",
            "user": None,
            "x": 1,
        }
    )
    assert loaded == defaults
    assert (
        st.ModuleSettings.from_dict({"learning_rate": "1"}).learning_rate == defaults.learning_rate
    )  # too high
    assert st.ModuleSettings.from_dict({"working_spacing_mm": "5"}).working_spacing_mm == 1.0  # too coarse
    assert "Ignoring saved setting" in caplog.text


# Names a clinician may type: the store's rule (store.names.check_name) decides, and the settings follow it.
REFUSED_NAMES = ["St Mary's", "Site/A", "../other", "C:\\sites", "CON", "com1", ".hidden", "Site.", "x" * 65]
ACCEPTED_NAMES = ["Hospital A", "Dr. Smith", "St-Mary_MRI 2", "Hôpital Sud", "  padded  ", "x" * 64]


@pytest.mark.parametrize("kind", ["site", "user"])
@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_a_name_the_store_refuses_is_never_saved(kind, name):
    with pytest.raises(SiteStoreError) as store_error:
        check_name(name, kind)
    with pytest.raises(InteractiveAdaptError) as error:
        st.ModuleSettings.from_dict({kind: name}, strict=True)
    assert str(error.value) == str(store_error.value)  # the store's own words: what is wrong, what to type
    assert f"{kind} name" in str(error.value)
    assert "such as" in str(error.value) or "at most 64" in str(error.value)


@pytest.mark.parametrize("name", ACCEPTED_NAMES)
def test_a_name_the_store_accepts_is_kept_as_the_store_will_write_it(name, tmp_path):
    settings = st.ModuleSettings.from_dict({"site": name, "user": name}, strict=True)
    assert settings.site == settings.user == check_name(name) == name.strip()
    profile = SiteStore(tmp_path).profile(settings.site, "Brain", user=settings.user)
    assert profile.site == settings.site  # the store takes the saved names as they are


def test_site_must_be_named_but_user_may_be_empty():
    with pytest.raises(InteractiveAdaptError, match="The site name is empty. Type a name such as"):
        st.ModuleSettings.from_dict({"site": "   "}, strict=True)
    assert st.ModuleSettings.from_dict({"site": "Hospital A", "user": "  "}, strict=True).user == ""
    assert st.ModuleSettings.from_dict({"user": ""}, strict=True) == st.ModuleSettings()


def test_strict_reading_refuses_other_bad_values_too():
    with pytest.raises(ValueError, match="learning rate must be between"):
        st.ModuleSettings.from_dict({"learning_rate": "1"}, strict=True)
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda"):
        st.ModuleSettings.from_dict({"device": "tpu"}, strict=True)


def test_a_bad_name_saved_before_does_not_keep_the_module_from_loading(caplog):
    """An older version saved any non-empty site name: loading falls back to the default site."""
    loaded = st.ModuleSettings.from_dict({"site": "St Mary's", "user": "a/b", "device": "cpu"})
    assert (loaded.site, loaded.user, loaded.device) == ("default", "", "cpu")
    assert 'Ignoring saved setting site="St Mary\'s"' in caplog.text and "'/'" in caplog.text


def test_site_store_root_is_beside_slicer_settings(tmp_path):
    settings_file = tmp_path / "NA-MIC" / "Slicer.ini"
    assert st.site_store_root(settings_file) == (tmp_path / "NA-MIC" / "InteractiveAdapt").resolve()


def test_resolve_device():
    assert st.resolve_device("auto", cuda_available=False) == "cpu"
    assert st.resolve_device("Auto", cuda_available=True) == "cuda"
    assert st.resolve_device("cpu", cuda_available=True) == "cpu"
    with pytest.raises(InteractiveAdaptError, match="no NVIDIA GPU"):
        st.resolve_device("cuda", cuda_available=False)


# ---------------------------------------------------------------- the session the module opens


def test_open_session_learns_saves_lists_and_rolls_back(tmp_path, tiny_model_dir, colin_block):
    from InteractiveAdaptLib.interaction import Click

    prefs = st.ModuleSettings(
        site="Site A", user="", device="auto", learning_rate=1e-3, working_spacing_mm=0.75
    )
    store = tmp_path / "InteractiveAdapt"
    session = st.open_session(prefs, store, tiny_model_dir, cuda_available=False)
    assert session.config.device == "cpu" and session.config.adaptation.lr == 1e-3
    assert session.predictor.target_spacing_mm == 0.75
    assert session.provenance("Brain").startswith("Shipped base model 'tiny-test'")
    base_weights = {k: v.clone() for k, v in session.network.state_dict().items()}

    session.start_case(colin_block, (2.5, 1.2, 0.9), "Brain")
    session.add_click(Click(0, 10, 18, 22, True))
    session.learn_pending()
    summary = session.finish_case(None, learn=True)
    assert summary.version == 1
    manifest = next(store.rglob("manifest.json"))
    assert json.loads(manifest.read_text())  # a real site version on disk
    choices = session.version_choices("Brain")
    assert [v for _, v in choices] == [1, 0] and choices[0][0].startswith("Version 1 (")
    assert "learned from 1 case and 1 click," in session.provenance("Brain")
    adapted = session.network.state_dict()
    assert any(not torch.equal(adapted[k], base_weights[k]) for k in base_weights)

    session.start_case(colin_block, (2.5, 1.2, 0.9), "Brain")
    with pytest.raises(InteractiveAdaptError, match="Finish or reset the case"):
        session.rollback("Brain", 0)
    session.reset_case()
    session.finish_case(None, learn=False)
    session.rollback("Brain", 0)
    restored = session.network.state_dict()
    assert all(torch.equal(restored[k], base_weights[k]) for k in base_weights)
    assert session.provenance("Brain").startswith("Shipped base model")
    assert np.isfinite(summary.learn_ms)
