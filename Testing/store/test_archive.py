"""Unpacking site archives safely (store/archive.py, through SiteStore.import_site): entries that would
land outside the target folder, links, bad site names, tampered files and files that are no archive are
refused, and nothing is left behind. Shared helpers are fixtures of conftest.py."""

from __future__ import annotations

import json
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from InteractiveAdaptLib.errors import SiteStoreError
from InteractiveAdaptLib.store.profile_store import ProfileStore
from InteractiveAdaptLib.store.site_store import SiteStore


def malicious_zip(path: Path, name: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("interactive-adapt-export.json", json.dumps({"format": 1, "site": "Evil"}))
        zf.writestr("site/site.json", json.dumps({"name": "Evil"}))
        zf.writestr(name, b"gotcha")
    return path


@pytest.mark.parametrize(
    "entry", ["../../evil.txt", "/tmp/evil.txt", "site/../../evil.txt", "site\\..\\evil.txt", "C:evil"]
)
def test_import_refuses_entries_that_escape(tmp_path: Path, entry: str) -> None:
    store = SiteStore(tmp_path / "root" / "store")
    with pytest.raises(SiteStoreError, match="Nothing was imported"):
        store.import_site(malicious_zip(tmp_path / "evil.zip", entry))
    assert not list(tmp_path.rglob("evil.txt")) and store.sites() == []
    assert [p.name for p in store.root.iterdir()] == []  # the staging folder went too


def test_import_refuses_links_bad_names_and_tampering(
    store: SiteStore,
    tmp_path: Path,
    populate: Callable[[SiteStore], dict[tuple[str | None, str], ProfileStore]],
) -> None:
    link_tar = tmp_path / "link.tar.gz"
    with tarfile.open(link_tar, "w:gz") as tf:
        member = tarfile.TarInfo("site/profiles/x")
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(member)
    with pytest.raises(SiteStoreError, match="links"):
        store.import_site(link_tar)
    with pytest.raises(SiteStoreError, match="site name"):
        store.import_site(malicious_zip(tmp_path / "name.zip", "site/x"), "a/b")
    bad_info = tmp_path / "bad_info.zip"
    with zipfile.ZipFile(bad_info, "w") as zf:
        zf.writestr("interactive-adapt-export.json", json.dumps({"format": 1, "site": "../../x"}))
        zf.writestr("site/site.json", "{}")
    with pytest.raises(SiteStoreError, match="site name"):
        store.import_site(bad_info)
    populate(store)
    good = store.export_site("Hospital A", tmp_path / "good.zip")
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tampered, "w") as out:
        for item in src.infolist():
            data = src.read(item)
            out.writestr(item, data[:-10] if item.filename.endswith("v000002.pt") else data)
    with pytest.raises(SiteStoreError, match="damaged.*checksum"):
        store.import_site(tampered, "Hospital C")
    (tmp_path / "notes.txt").write_text("not an archive")
    with pytest.raises(SiteStoreError, match="not a .zip or .tar.gz"):
        store.import_site(tmp_path / "notes.txt")
    assert store.sites() == ["Hospital A"]
