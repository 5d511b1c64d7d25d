"""The session is the only door to a profile's weights and versions: saving, listing, provenance,
rollback, restart and export all apply the same name rule, whatever the segment is called."""

from __future__ import annotations

import zipfile

import pytest
import torch

from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
from InteractiveAdaptLib.errors import CaseStateError
from InteractiveAdaptLib.interaction import Click
from InteractiveAdaptLib.model.base_model import load_base_model
from InteractiveAdaptLib.store.site_store import SiteStore

SPACING = (2.5, 1.2, 0.9)
# Names a clinician may give a segment: characters a folder cannot hold, a side, an umlaut, and a
# name longer than a store name may be.
NAMES = ["Tumor #1", "Hippocampus (L)", "Läsion", "Lesion of the left temporal lobe " * 4]


def weights(session: InteractiveSession) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in session.network.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def learn_one_case(session: InteractiveSession, volume, name: str, row: int) -> int:
    session.start_case(volume, SPACING, name)
    session.add_click(Click(0, 10, row, 22, True))
    session.learn_pending()
    return session.finish_case(None, learn=True).version


@pytest.mark.parametrize("name", NAMES, ids=["hash", "side", "umlaut", "120-characters"])
def test_any_segment_name_saves_lists_rolls_back_and_exports(name, tmp_path, tiny_model_dir, colin_block):
    assert len(NAMES[-1]) > 120
    config = SessionConfig(adaptation=AdaptationConfig(lr=1e-3))
    session = InteractiveSession(
        load_base_model(tiny_model_dir), config, store=SiteStore(tmp_path / "sites"), site="Hospital A"
    )
    base = weights(session)
    assert session.version_choices(name) == [("Shipped base model", 0)]
    assert session.provenance(name).startswith("Shipped base model 'tiny-test'")

    assert learn_one_case(session, colin_block, name, 18) == 1
    first = weights(session)
    assert learn_one_case(session, colin_block, name, 20) == 2
    assert not same(first, weights(session)) and not same(base, first)

    # Listed under the name the segment has, as saved.
    assert [v for _, v in session.version_choices(name)] == [2, 1, 0]
    assert [i.version for i in session.saved_versions(name)] == [2, 1]
    assert "Version 2 of site 'Hospital A'" in session.provenance(name)

    # Rollback reaches the same profile and loads the weights of that version now.
    session.rollback(name, 1)
    assert same(first, weights(session)) and session.version == 1
    assert "Version 1 of site" in session.provenance(name)
    session.rollback(name, 0)
    assert same(base, weights(session))

    # A new session (Slicer closed and opened again) finds the same versions under the same name.
    again = InteractiveSession(
        load_base_model(tiny_model_dir), config, store=SiteStore(tmp_path / "sites"), site="Hospital A"
    )
    assert [v for _, v in again.version_choices(name)] == [2, 1, 0]
    again.rollback(name, 2)
    again.use_profile(name)

    # Export holds that profile's versions; imported elsewhere, they list under the same name.
    archive = session.export_site(tmp_path / "site.zip")
    members = zipfile.ZipFile(archive).namelist()
    assert sum(m.endswith(("v000001.pt", "v000002.pt")) for m in members) == 2
    other = SiteStore(tmp_path / "elsewhere")
    other.import_site(archive)
    moved = InteractiveSession(load_base_model(tiny_model_dir), config, store=other, site="Hospital A")
    assert [v for _, v in moved.version_choices(name)] == [2, 1, 0]

    # Restart from the base model goes through the same door: versions stay listed, weights are the base.
    session.restart_profile_from_base(name)
    assert same(base, weights(session)) and [v for _, v in session.version_choices(name)] == [2, 1, 0]


def test_both_sides_of_a_structure_are_one_profile(tmp_path, tiny_model_dir, colin_block):
    session = InteractiveSession(load_base_model(tiny_model_dir), store=SiteStore(tmp_path), site="A")
    learn_one_case(session, colin_block, "Hippocampus (L)", 18)
    assert session.profile_name("Right hippocampus") == session.profile_name("Hippocampus (L)")
    assert [v for _, v in session.version_choices("Hippocampus_R")] == [1, 0]


def test_rollback_and_export_need_a_closed_case_and_a_store(tiny_model_dir, colin_block, tmp_path):
    session = InteractiveSession(load_base_model(tiny_model_dir), store=SiteStore(tmp_path), site="A")
    session.start_case(colin_block, SPACING, "Tumor #1")
    with pytest.raises(CaseStateError, match="Finish or reset the case"):
        session.rollback("Tumor #1", 0)
    session.finish_case(None, learn=False)
    no_store = InteractiveSession(load_base_model(tiny_model_dir))
    assert no_store.version_choices("Tumor #1") == [("Shipped base model", 0)]
    with pytest.raises(CaseStateError, match="nothing to roll back"):
        no_store.rollback("Tumor #1", 0)
    with pytest.raises(CaseStateError, match="nothing to export"):
        no_store.export_site(tmp_path / "x.zip")


def test_unsaved_learning_survives_a_profile_switch_when_autosave_is_off(
    tmp_path, tiny_model_dir, colin_block
):
    config = SessionConfig(adaptation=AdaptationConfig(lr=1e-3), autosave=False)
    session = InteractiveSession(load_base_model(tiny_model_dir), config, store=SiteStore(tmp_path), site="A")
    assert learn_one_case(session, colin_block, "Caudate", 18) is None  # learned, not saved
    learned = weights(session)
    session.use_profile("Putamen")
    assert not same(learned, weights(session))
    session.use_profile("Caudate")
    assert same(learned, weights(session)) and session.cases_learned == 1
    assert session.version_choices("Caudate") == [("Shipped base model", 0)]  # nothing on disk
