"""The site store (store/site_store.py): sites, users and their profiles, where a profile's folder is
(one profile whatever the case of its names), export and import round trips of a whole site, and
deleting profiles and sites, which waits for (or refuses while) another program changes one of the
site's profiles. Shared helpers are fixtures of conftest.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from InteractiveAdaptLib.errors import SiteStoreError
from InteractiveAdaptLib.store.names import check_name
from InteractiveAdaptLib.store.profile_store import ProfileStore, VersionInfo
from InteractiveAdaptLib.store.site_store import SiteStore, default_store_root


def test_name_rules_and_folder_mapping(store: SiteStore, save: Callable[..., VersionInfo]) -> None:
    with pytest.raises(SiteStoreError, match=r"contains '/'.*letters, digits, spaces"):
        check_name("Left/Right", "profile")
    with pytest.raises(SiteStoreError, match="too long"):
        check_name("y" * 65)
    assert check_name("  Hôpital Nord-2 v1.5_b ") == "Hôpital Nord-2 v1.5_b"
    save(store.profile("Hôpital Nord", "Grey matter", user="Dr Smith"), 1)
    same = store.profile("hôpital nord", "grey_matter", user="dr smith")  # one profile, whatever the case
    assert same.path.relative_to(store.root).as_posix() == "hôpital_nord/users/dr_smith/profiles/grey_matter"
    assert same.profile == "Grey matter" and same.current().version == 1
    assert store.users("Hôpital Nord") == ["Dr Smith"] and store.profiles("Hôpital Nord", user="Dr Smith") == [
        "Grey matter"
    ]  # fmt: skip
    assert store.profiles("Hôpital Nord") == []  # shared profiles are separate from a user's
    assert default_store_root().name == "sites" and "InteractiveAdapt" in str(default_store_root())


# --------------------------------------------------------------- export / import / delete
@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_export_import_round_trip(
    store: SiteStore,
    tmp_path: Path,
    suffix: str,
    base: str,
    save: Callable[..., VersionInfo],
    assert_same: Callable[[object, object], None],
    populate: Callable[[SiteStore], dict[tuple[str | None, str], ProfileStore]],
) -> None:
    originals = populate(store)
    archive = store.export_site("hospital a", tmp_path / f"export{suffix}")
    other = SiteStore(tmp_path / "other")
    assert other.import_site(archive) == "Hospital A"
    assert other.import_site(archive, "Hospital B") == "Hospital B"
    assert other.sites() == ["Hospital A", "Hospital B"]
    for site in other.sites():
        for (user, name), original in originals.items():
            copy = other.profile(site, name, user=user)
            assert [(v.version, v.parent, v.pinned, v.sha256) for v in copy.versions()] == [
                (v.version, v.parent, v.pinned, v.sha256) for v in original.versions()
            ]
            assert copy.current() == original.current()
            for v in original.versions():
                assert_same(
                    original.load(base, v.version).model_state, copy.load(base, v.version).model_state
                )
            assert_same(original.load(base).optimizer_state, copy.load(base).optimizer_state)
    with pytest.raises(SiteStoreError, match="already exists. Nothing was imported"):
        other.import_site(archive)
    save(other.profile("Hospital A", "Grey matter"), 50)
    other.import_site(archive, replace=True)  # asked for: the imported copy replaces the site
    assert other.profile("Hospital A", "Grey matter").current().version == 3
    with pytest.raises(SiteStoreError, match="site name"):
        other.import_site(archive, "../escape")
    with pytest.raises(SiteStoreError, match=r"\.zip or \.tar\.gz"):
        store.export_site("Hospital A", tmp_path / "export.rar")


def test_delete_profile_and_site(
    store: SiteStore, populate: Callable[[SiteStore], dict[tuple[str | None, str], ProfileStore]]
) -> None:
    profiles = populate(store)
    profiles[(None, "White matter")].delete()
    assert store.profiles("Hospital A") == ["Grey matter"]
    with pytest.raises(SiteStoreError, match="no profile"):
        profiles[(None, "White matter")].delete()
    store.delete_site("Hospital A")
    assert store.sites() == [] and [p.name for p in store.root.iterdir()] == []
    with pytest.raises(SiteStoreError, match="There is no site named 'Hospital A'"):
        store.export_site("Hospital A", store.root / "x.zip")


# A process in the middle of changing a profile: it holds the profile's lock until told to go on.
HOLDER = """
import sys, filelock
lock = filelock.FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
"""


def test_deleting_or_replacing_a_site_waits_for_the_saves_in_its_profiles(
    store: SiteStore,
    tmp_path: Path,
    save: Callable[..., VersionInfo],
    populate: Callable[[SiteStore], dict[tuple[str | None, str], ProfileStore]],
) -> None:
    profiles = populate(store)
    archive = store.export_site("Hospital A", tmp_path / "a.zip")
    save(profiles[("Dr Smith", "Grey matter")], 40)  # learned after the export: a replace would drop it
    lock = profiles[("Dr Smith", "Grey matter")].path / ".lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        impatient = SiteStore(store.root, lock_timeout=0.5)
        with pytest.raises(SiteStoreError, match="being changed by another InteractiveAdapt"):
            impatient.delete_site("Hospital A")
        with pytest.raises(SiteStoreError, match="being changed by another InteractiveAdapt"):
            impatient.import_site(archive, replace=True)
        assert store.sites() == ["Hospital A"]  # nothing was deleted or replaced
        assert (lock.parent / "v000004.pt").is_file()
        assert [p.name for p in store.root.iterdir()] == ["hospital_a"]  # no staging or trash left
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert profiles[("Dr Smith", "Grey matter")].current().version == 4
    store.import_site(archive, replace=True)  # once the save is done, the replace goes ahead
    assert store.profile("Hospital A", "Grey matter", user="Dr Smith").current().version == 3
    store.delete_site("Hospital A")
    assert store.sites() == []
