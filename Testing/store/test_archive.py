"""Unpacking site archives safely (store/archive.py, through SiteStore.import_site): entries that would
land outside the target folder, links, bad site names, tampered files and files that are no archive are
refused, and nothing is left behind; an archive without the export's description, with too many entries,
or unpacking to more than the limit or the free space is refused from its table, before anything is
written (a zip bomb writes nothing), and an entry that inflates past its declared size writes no more.
Shared helpers are fixtures of conftest.py."""

from __future__ import annotations

import gzip
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
    assert not store.root.exists()  # refused from the archive's table: not even a staging folder


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


# --------------------------------------------------------------- size, count and export info, before writing
EXPORT = json.dumps({"format": 1, "site": "Bomb"}).encode()


def bytes_written() -> int:
    """Bytes this process has handed to write() so far (Linux /proc/self/io)."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        pytest.skip("this system does not count a process's writes")
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("wchar:")))


def zeros_zip(path: Path, megabytes: int, *, export: bool) -> Path:
    """A small zip holding one entry of `megabytes` MB of zeros (it compresses about 1000 to 1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        if export:
            zf.writestr("interactive-adapt-export.json", EXPORT)
        zf.writestr("site/site.json", json.dumps({"name": "Bomb"}))
        with zf.open("site/profiles/bomb/v000001.pt", "w", force_zip64=True) as entry:
            block = bytes(1 << 20)
            for _ in range(megabytes):
                entry.write(block)
    return path


@pytest.mark.parametrize("export", [False, True], ids=["no-export-info", "over-the-limit"])
def test_a_zip_bomb_is_refused_with_nothing_written(tmp_path: Path, export: bool) -> None:
    bomb = zeros_zip(tmp_path / "bomb.zip", 300, export=export)
    assert bomb.stat().st_size < 1_000_000  # 300 MB unpacked
    store = (
        SiteStore(tmp_path / "store", import_limit_bytes=100 << 20)
        if export
        else SiteStore(tmp_path / "store")
    )
    before = bytes_written()
    with pytest.raises(SiteStoreError) as caught:
        store.import_site(bomb)
    assert bytes_written() - before < 100_000  # judged from the archive's table: nothing was unpacked
    message = str(caught.value)
    if export:
        assert "more than 104.9 MB" in message and "Nothing was imported" in message
    else:
        assert "not a site exported by InteractiveAdapt" in message
    assert not store.root.exists()


def test_an_entry_that_inflates_past_its_declared_size_writes_no_more(tmp_path: Path) -> None:
    liar = tmp_path / "liar.zip"
    with zipfile.ZipFile(liar, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("interactive-adapt-export.json", EXPORT)
        zf.writestr("site/site.json", json.dumps({"name": "Bomb"}))
        zf.writestr("site/profiles/bomb/v000001.pt", bytes(10 << 20))
    data = bytearray(liar.read_bytes())
    table = data.rfind(b"PK\x01\x02")  # the zip's table entry of the last file: say it holds 1000 bytes
    data[table + 24 : table + 28] = (1000).to_bytes(4, "little")
    liar.write_bytes(bytes(data))
    store = SiteStore(tmp_path / "store")
    before = bytes_written()
    with pytest.raises(SiteStoreError, match="damaged"):
        store.import_site(liar)
    assert bytes_written() - before < 100_000
    assert store.sites() == [] and [p.name for p in store.root.iterdir()] == []


def test_too_many_entries_or_entries_outside_the_site_are_refused_before_writing(tmp_path: Path) -> None:
    crowded = tmp_path / "crowded.zip"
    with zipfile.ZipFile(crowded, "w") as zf:
        zf.writestr("interactive-adapt-export.json", EXPORT)
        for n in range(60):
            zf.writestr(f"site/profiles/p{n}/manifest.json", "{}")
    store = SiteStore(tmp_path / "store", import_max_entries=50)
    with pytest.raises(SiteStoreError, match="more than 50 entries"):
        store.import_site(crowded)
    stray = tmp_path / "stray.zip"
    with zipfile.ZipFile(stray, "w") as zf:
        zf.writestr("interactive-adapt-export.json", EXPORT)
        zf.writestr("site/site.json", "{}")
        zf.writestr("notes/readme.txt", "hello")
    with pytest.raises(SiteStoreError, match="not a site exported by InteractiveAdapt"):
        store.import_site(stray)
    assert not store.root.exists()


def _tar_member(name: str, data: bytes | None, size: int | None = None) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data) if size is None else size
    header = info.tobuf(tarfile.GNU_FORMAT)
    return header if data is None else header + data + bytes(-len(data) % tarfile.BLOCKSIZE)


def test_an_archive_larger_than_the_free_space_is_refused_before_writing(tmp_path: Path) -> None:
    # A tar whose third header declares a petabyte (and holds none of it): refused at that header.
    huge = tmp_path / "huge.tar.gz"
    with gzip.open(huge, "wb") as gz:
        gz.write(_tar_member("interactive-adapt-export.json", EXPORT))
        gz.write(_tar_member("site/site.json", b'{"name": "Bomb"}'))
        gz.write(_tar_member("site/profiles/bomb/v000001.pt", None, size=1 << 50))
    roomy = SiteStore(tmp_path / "store", import_limit_bytes=1 << 60)
    with pytest.raises(
        SiteStoreError, match=r"needs more than .* of free disk space in .* Free some disk space"
    ):
        roomy.import_site(huge)
    with pytest.raises(SiteStoreError, match="would unpack to more than 4.3 GB"):
        SiteStore(tmp_path / "store").import_site(huge)  # the default limit comes first
    assert not roomy.root.exists()
