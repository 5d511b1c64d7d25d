"""Site store: versions, rollback, retention, crash safety, concurrency, damage, names, archives."""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os
import random
import runpy
import signal
import tarfile
import time
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from InteractiveAdaptLib.errors import IncompatibleBaseModelError, SiteStoreError, WeightsError
from InteractiveAdaptLib.model import checkpoint
from InteractiveAdaptLib.store.names import check_name, folder_name, suggest_name
from InteractiveAdaptLib.store.profile_store import ProfileStore
from InteractiveAdaptLib.store.site_store import SiteStore, default_store_root

BASE = "a" * 64
NEW_BASE = "b" * 64


def trained(seed: int) -> tuple[nn.Module, torch.optim.Adam]:
    """A tiny real network with a real Adam state after one step."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.InstanceNorm2d(4, affine=True), nn.ReLU(), nn.Conv2d(4, 1, 1)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(2, 3, 8, 8)).pow(2).mean().backward()
    opt.step()
    return net, opt


def assert_same(a: object, b: object) -> None:
    """Nested dicts/lists of tensors and plain values are equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


def save(store: ProfileStore, seed: int, *, base: str = BASE, optimizer: bool = True, **kw):
    net, opt = trained(seed)
    return store.save(
        net.state_dict(), opt.state_dict() if optimizer else None, base_sha256=base,
        cases_learned=kw.pop("cases", seed), clicks_learned=kw.pop("clicks", 3 * seed), **kw,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> SiteStore:
    return SiteStore(tmp_path / "store", keep_last=10)


def test_round_trip_keeps_weights_and_adam_state_identical(store: SiteStore, tmp_path: Path) -> None:
    net, opt = trained(1)
    info = store.profile("Hospital A", "Grey matter").save(
        net.state_dict(), opt.state_dict(), base_sha256=BASE, cases_learned=2, clicks_learned=7,
        metrics={"dice": 0.81}, note="first case",
    )  # fmt: skip
    loaded = (
        SiteStore(tmp_path / "store").profile("Hospital A", "Grey matter").load(BASE)
    )  # a fresh process's view
    assert loaded is not None and loaded.warnings == []
    assert_same(net.state_dict(), loaded.model_state)
    assert_same(opt.state_dict(), loaded.optimizer_state)
    assert (
        loaded.info.version,
        loaded.info.parent,
        loaded.info.cases_learned,
        loaded.info.clicks_learned,
    ) == (1, 0, 2, 7)
    assert loaded.info.metrics == {"dice": 0.81} and loaded.info.note == "first case" and loaded.info == info
    assert datetime.fromisoformat(info.created).utcoffset().total_seconds() == 0
    # Learning continues exactly: one more Adam step from the loaded state matches the original one.
    net2, _ = trained(99)
    net2.load_state_dict(loaded.model_state)
    opt2 = torch.optim.Adam(net2.parameters(), lr=1e-3)
    opt2.load_state_dict(loaded.optimizer_state)
    x = torch.randn(2, 3, 8, 8)
    for n, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        n(x).pow(2).mean().backward()
        o.step()
    assert_same(net.state_dict(), net2.state_dict())


def test_versions_parents_and_self_describing_files(store: SiteStore) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    assert profile.current() is None and profile.load(BASE) is None and profile.versions() == []
    for seed in (1, 2, 3):
        save(profile, seed)
    assert [(v.version, v.parent) for v in profile.versions()] == [(1, 0), (2, 1), (3, 2)]
    assert profile.current().version == 3
    manifest = json.loads((profile.path / "manifest.json").read_text())
    assert (
        manifest["current"] == 3 and manifest["profile"] == "Grey matter" and manifest["site"] == "Hospital A"
    )
    entry = manifest["versions"][1]
    assert entry["base_sha256"] == BASE and entry["cases_learned"] == 2 and entry["clicks_learned"] == 6
    assert entry["sha256"] == checkpoint.sha256_file(profile.path / "v000002.pt")
    # Each version file carries its own metadata (what a lost manifest is rebuilt from).
    assert checkpoint.load_state(profile.path / "v000002.pt")["info"]["parent"] == 1
    assert store.sites() == ["Hospital A"] and store.profiles("Hospital A") == ["Grey matter"]


def test_rollback_then_save_and_rollback_to_base(store: SiteStore) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    for seed in (1, 2, 3):
        save(profile, seed)
    profile.rollback(1)
    assert profile.current().version == 1
    assert_same(trained(1)[0].state_dict(), profile.load(BASE).model_state)
    assert save(profile, 4).parent == 1  # the new version branches from the rolled-back one
    assert [v.version for v in profile.versions()] == [1, 2, 3, 4]  # nothing was thrown away
    profile.rollback(0)
    assert profile.current() is None and profile.load(BASE) is None
    assert save(profile, 5).parent == 0
    with pytest.raises(SiteStoreError, match=r"Version 42 .* does not exist\. Versions kept: 1, 2, 3, 4, 5"):
        profile.rollback(42)


def test_pins_and_retention(tmp_path: Path) -> None:
    profile = SiteStore(tmp_path, keep_last=2).profile("Hospital A", "Grey matter")
    save(profile, 1)
    profile.pin(1)
    for seed in range(2, 7):
        save(profile, seed)
    assert [v.version for v in profile.versions()] == [1, 5, 6]  # newest two + the pin
    assert sorted(p.name for p in profile.path.glob("v*.pt") if "optim" not in p.name) == [
        "v000001.pt", "v000005.pt", "v000006.pt"
    ]  # fmt: skip
    assert_same(trained(1)[0].state_dict(), profile.load(BASE, version=1).model_state)
    profile.unpin(1)
    assert profile.prune() == [1] and not (profile.path / "v000001.pt").exists()
    # After a rollback the parent of the current version stays (loading falls back to it) ...
    profile.rollback(5)
    save(profile, 7)
    assert [v.version for v in profile.versions()] == [5, 6, 7]
    save(profile, 8)
    assert [v.version for v in profile.versions()] == [7, 8]
    # ... and the current version survives whatever the retention says.
    profile.rollback(7)
    assert SiteStore(tmp_path, keep_last=0).profile("Hospital A", "Grey matter").prune() == [8]
    assert [v.version for v in profile.versions()] == [7]
    with pytest.raises(SiteStoreError, match="does not exist"):
        profile.pin(3)


def test_optimizer_state_is_kept_only_for_the_current_version(store: SiteStore) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    for seed in (1, 2, 3):
        save(profile, seed)
    assert [v.has_optimizer for v in profile.versions()] == [False, False, True]
    assert [p.name for p in profile.path.glob("*.optim.pt")] == ["v000003.optim.pt"]
    assert profile.load(BASE, version=2).optimizer_state is None
    assert_same(trained(3)[1].state_dict(), profile.load(BASE).optimizer_state)
    save(profile, 4, optimizer=False)  # a save without optimizer state keeps none, not a stale one
    assert list(profile.path.glob("*.optim.pt")) == [] and profile.load(BASE).optimizer_state is None


# --------------------------------------------------------------- crash safety and concurrency
WRITER = '''
import os
import torch
from InteractiveAdaptLib.store.site_store import SiteStore


def numbered_state(i):
    g = torch.Generator().manual_seed(i)
    return {"conv.weight": torch.randn(64, 32, 3, 3, generator=g), "conv.bias": torch.randn(64, generator=g)}


def write(root, log_path, first, count, keep_last):
    """Save versions forever (or `count`), logging each one whose save returned, fsync'ed."""
    profile = SiteStore(root, keep_last=keep_last).profile("Hospital A", "Grey matter")
    with open(log_path, "a") as log:
        for i in range(first, first + count):
            optimizer = {"state": {0: {"step": torch.tensor(float(i))}}, "param_groups": [{"lr": 1e-4, "params": [0]}]}
            info = profile.save(numbered_state(i), optimizer, base_sha256="a" * 64, cases_learned=i,
                                clicks_learned=0, note=str(i))
            log.write(f"{info.version} {i}\\n")
            log.flush()
            os.fsync(log.fileno())


if __name__ == "__main__":
    write(*ARGS)
'''


@pytest.fixture(scope="module")
def writer(tmp_path_factory: pytest.TempPathFactory):
    """(start(args) -> Process, numbered_state): writer processes forked from a server that has torch loaded."""
    script = tmp_path_factory.mktemp("writer") / "writer.py"
    script.write_text(WRITER)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "InteractiveAdaptLib.site_store"])  # a fork then starts in ms

    def start(*args: object) -> multiprocessing.Process:
        kwargs = {"init_globals": {"ARGS": args}, "run_name": "__main__"}
        process = ctx.Process(target=runpy.run_path, args=(str(script),), kwargs=kwargs, daemon=True)
        process.start()
        return process

    return start, runpy.run_path(str(script), run_name="writer")["numbered_state"]


def acknowledged(log_path: Path) -> list[tuple[int, int]]:
    """(version, content number) of every save that returned; a line torn by the kill is not one."""
    text = log_path.read_text() if log_path.exists() else ""
    return [tuple(map(int, line.split())) for line in text.split("\n")[:-1]]


@pytest.mark.slow
def test_store_survives_sigkill_during_saves(writer, tmp_path: Path) -> None:
    start, numbered_state = writer
    log_path, rng = tmp_path / "acks.log", random.Random(5)
    for kill in range(20):
        acked_before = len(acknowledged(log_path))
        process = start(str(tmp_path / "store"), str(log_path), 1000 * (kill + 1), 10**6, 4)
        deadline = time.monotonic() + 60
        while len(acknowledged(log_path)) == acked_before:  # let it save at least once, then strike
            assert process.is_alive() and time.monotonic() < deadline, f"writer {kill} never saved"
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.03))
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        assert process.exitcode == -signal.SIGKILL

        last_version, last_number = acknowledged(log_path)[-1]
        profile = SiteStore(tmp_path / "store", keep_last=4).profile("Hospital A", "Grey matter")
        loaded = profile.load(BASE)
        assert loaded is not None and loaded.warnings == []
        assert not [v.version for v in profile.versions() if v.damaged]  # atomic writes: never a torn file
        assert loaded.info.version >= last_version  # the last acknowledged one, or a later complete one
        assert_same(numbered_state(int(loaded.info.note)), loaded.model_state)
        assert_same(numbered_state(last_number), profile.load(BASE, version=last_version).model_state)
        if loaded.info.version == last_version:
            assert int(loaded.info.note) == last_number
        assert not list(profile.path.glob(".*.tmp"))  # interrupted writes were cleaned up


@pytest.mark.slow
def test_two_processes_saving_at_once_lose_no_version(writer, tmp_path: Path) -> None:
    start, numbered_state = writer
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    processes = [
        start(str(tmp_path / "store"), str(log), first, 25, 1000)
        for log, first in zip(logs, (0, 500), strict=True)
    ]
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    acks = acknowledged(logs[0]) + acknowledged(logs[1])
    assert len(acks) == 50 and len({v for v, _ in acks}) == 50  # version numbers never collided
    profile = SiteStore(tmp_path / "store").profile("Hospital A", "Grey matter")
    assert sorted(v.version for v in profile.versions()) == list(range(1, 51))
    for version, number in acks:
        assert_same(numbered_state(number), profile.load(BASE, version=version).model_state)


def test_interrupted_save_is_recovered_and_leftovers_removed(store: SiteStore, monkeypatch) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    save(profile, 1)
    real = ProfileStore._write_manifest
    monkeypatch.setattr(ProfileStore, "_write_manifest", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # "killed" after the weights file, before the manifest
        save(profile, 2)
    monkeypatch.setattr(ProfileStore, "_write_manifest", real)
    (profile.path / ".v000009.pt.abc.tmp").write_bytes(b"half")
    (profile.path / "v000009.optim.pt").write_bytes(b"orphan")
    assert profile.current().version == 2  # the committed weights file counts as saved
    assert_same(trained(2)[0].state_dict(), profile.load(BASE).model_state)
    assert (
        not (profile.path / ".v000009.pt.abc.tmp").exists()
        and not (profile.path / "v000009.optim.pt").exists()
    )


# --------------------------------------------------------------- damage
def test_corrupted_newest_version_falls_back_with_a_warning(store: SiteStore, caplog) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    for seed in (1, 2, 3):
        save(profile, seed)
    newest = profile.path / "v000003.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        loaded = profile.load(BASE)
    assert loaded.info.version == 2 and "Version 3" in loaded.warnings[0] and "damaged" in loaded.warnings[0]
    assert "Version 3" in caplog.text and "using version 2" in caplog.text
    assert_same(trained(2)[0].state_dict(), loaded.model_state)
    assert newest.exists() and profile.versions()[-1].damaged  # kept for inspection, marked
    assert profile.current().version == 2 and save(profile, 4).parent == 2
    with pytest.raises(SiteStoreError, match="damaged"):
        profile.rollback(3)


def test_truncated_version_is_refused_and_skipped(store: SiteStore) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    save(profile, 1)
    save(profile, 2)
    path = profile.path / "v000002.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightsError, match="Version 2 .* truncated"):
        profile.load(BASE, version=2)
    loaded = profile.load(BASE)
    assert loaded.info.version == 1 and loaded.warnings
    path.unlink()
    (profile.path / "v000001.pt").write_bytes(b"")
    assert profile.load(BASE) is None  # nothing good left: the shipped base model
    assert profile.current() is None and len(profile.versions()) == 2


def test_damaged_or_missing_manifest_loses_no_version(store: SiteStore, caplog) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    for seed in (1, 2, 3):
        save(profile, seed)
    manifest = profile.path / "manifest.json"
    manifest.write_text('{"format": 1, "versions": [')
    with caplog.at_level(logging.WARNING):
        versions = profile.versions()
    assert [(v.version, v.parent) for v in versions] == [(1, 0), (2, 1), (3, 2)]
    assert "damaged" in caplog.text and list(profile.path.glob("manifest.damaged-*.json"))
    assert profile.current().version == 3 and profile.load(BASE).optimizer_state is not None
    for version in (1, 2, 3):
        assert_same(trained(version)[0].state_dict(), profile.load(BASE, version=version).model_state)
    manifest.unlink()
    assert [v.version for v in profile.versions()] == [1, 2, 3]
    assert save(profile, 4).version == 4


def test_loading_never_runs_pickle_code(store: SiteStore, tmp_path: Path) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    save(profile, 1)
    save(profile, 2)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = profile.path / "v000002.pt"
    torch.save({"format": 1, "info": {}, "model_state": {"w": torch.zeros(1)}, "x": Evil()}, evil)
    manifest = json.loads((profile.path / "manifest.json").read_text())
    manifest["versions"][1]["sha256"] = checkpoint.sha256_file(evil)  # even with a matching checksum
    (profile.path / "manifest.json").write_text(json.dumps(manifest))
    loaded = profile.load(BASE)
    assert not marker.exists() and loaded.info.version == 1 and "cannot be read" in loaded.warnings[0]


# --------------------------------------------------------------- base model
def test_weights_from_another_base_model_are_refused(store: SiteStore, tmp_path: Path) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    save(profile, 1)
    save(profile, 2)
    with pytest.raises(IncompatibleBaseModelError) as caught:
        profile.load(NEW_BASE)
    message = str(caught.value)
    assert "different base model" in message and "roll back to version 0" in message and "Restart" in message
    with pytest.raises(IncompatibleBaseModelError, match="another base model"):
        save(profile, 3, base=NEW_BASE)  # would graft new-base weights onto old-base history
    assert profile.compatible_versions(NEW_BASE) == []
    profile.restart_from_base(NEW_BASE)  # the user agreed
    assert profile.load(NEW_BASE) is None
    info = save(profile, 3, base=NEW_BASE)
    assert (info.version, info.parent) == (3, 0)
    assert [v.base_sha256 for v in profile.versions()] == [BASE, BASE, NEW_BASE]  # old ones still listed
    with pytest.raises(IncompatibleBaseModelError, match="roll back to version 3"):
        profile.load(NEW_BASE, version=2)
    archive = store.export_site("Hospital A", tmp_path / "a.zip")  # and still exportable
    assert zipfile.ZipFile(archive).getinfo("site/profiles/grey_matter/v000001.pt")


# --------------------------------------------------------------- names
BAD_NAMES = ["", "   ", "..", ".", "../etc", "a/b", "a\\b", "/abs", ".hidden", "trailing.", "tab\there",
             "nul\x00byte", "new\nline", "C:", "con", "LPT1", "x" * 65, "semi;colon", "star*"]  # fmt: skip


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_that_could_escape_the_root_are_rejected(store: SiteStore, tmp_path: Path, name: str) -> None:
    before = sorted(tmp_path.rglob("*"))
    for call in (
        lambda: store.profile(name, "Grey matter"),
        lambda: store.profile("Hospital A", name),
        lambda: store.profile("Hospital A", "Grey matter", user=name),
        lambda: store.profiles(name),
        lambda: store.delete_site(name),
    ):
        with pytest.raises(SiteStoreError) as caught:
            call()
        assert "name" in str(caught.value) and "Traceback" not in str(caught.value)
    assert sorted(tmp_path.rglob("*")) == before


def test_name_rules_and_folder_mapping(store: SiteStore) -> None:
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
def populate(store: SiteStore) -> dict[tuple[str | None, str], ProfileStore]:
    profiles = {
        (None, "Grey matter"): store.profile("Hospital A", "Grey matter"),
        (None, "White matter"): store.profile("Hospital A", "White matter"),
        ("Dr Smith", "Grey matter"): store.profile("Hospital A", "Grey matter", user="Dr Smith"),
    }
    for k, profile in enumerate(profiles.values()):
        for seed in range(3):
            save(profile, 10 * k + seed)
    profiles[(None, "Grey matter")].pin(1)
    profiles[(None, "White matter")].rollback(2)
    return profiles


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_export_import_round_trip(store: SiteStore, tmp_path: Path, suffix: str) -> None:
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
                    original.load(BASE, v.version).model_state, copy.load(BASE, v.version).model_state
                )
            assert_same(original.load(BASE).optimizer_state, copy.load(BASE).optimizer_state)
    with pytest.raises(SiteStoreError, match="already exists. Nothing was imported"):
        other.import_site(archive)
    save(other.profile("Hospital A", "Grey matter"), 50)
    other.import_site(archive, replace=True)  # asked for: the imported copy replaces the site
    assert other.profile("Hospital A", "Grey matter").current().version == 3
    with pytest.raises(SiteStoreError, match="site name"):
        other.import_site(archive, "../escape")
    with pytest.raises(SiteStoreError, match=r"\.zip or \.tar\.gz"):
        store.export_site("Hospital A", tmp_path / "export.rar")


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


def test_import_refuses_links_bad_names_and_tampering(store: SiteStore, tmp_path: Path) -> None:
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


def test_delete_profile_and_site(store: SiteStore) -> None:
    profiles = populate(store)
    profiles[(None, "White matter")].delete()
    assert store.profiles("Hospital A") == ["Grey matter"]
    with pytest.raises(SiteStoreError, match="no profile"):
        profiles[(None, "White matter")].delete()
    store.delete_site("Hospital A")
    assert store.sites() == [] and [p.name for p in store.root.iterdir()] == []
    with pytest.raises(SiteStoreError, match="There is no site named 'Hospital A'"):
        store.export_site("Hospital A", store.root / "x.zip")


# --------------------------------------------------------------- disk full
@pytest.mark.parametrize("failing_write", [1, 2, 3])  # optimizer file, weights file, manifest
def test_disk_full_keeps_everything_saved_before(store: SiteStore, monkeypatch, failing_write: int) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    save(profile, 1)
    save(profile, 2)
    before = {p.name: p.read_bytes() for p in profile.path.iterdir()}
    calls, real_replace = [], os.replace

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == failing_write:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", replace)
    with pytest.raises(SiteStoreError) as caught:
        save(profile, 3)
    message = str(caught.value)
    assert "disk" in message and "full" in message and "Nothing saved before was lost" in message
    assert "version 2" in message
    monkeypatch.setattr(checkpoint.os, "replace", real_replace)
    assert {p.name: p.read_bytes() for p in profile.path.iterdir()} == before  # no half version left behind
    assert profile.current().version == 2
    assert_same(trained(2)[0].state_dict(), profile.load(BASE).model_state)
    assert_same(trained(2)[1].state_dict(), profile.load(BASE).optimizer_state)
    assert save(profile, 3).version == 3  # and saving works again once there is space


def test_bad_arguments_are_refused_before_anything_is_written(store: SiteStore) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    with pytest.raises(TypeError):
        profile.save({"w": [1.0]}, None, base_sha256=BASE, cases_learned=0, clicks_learned=0)
    with pytest.raises(TypeError, match="metrics"):
        profile.save({"w": torch.zeros(1)}, None, base_sha256=BASE, cases_learned=0, clicks_learned=0,
                     metrics={"t": torch.zeros(1)})  # fmt: skip
    assert not profile.path.exists() and store.sites() == []
    with pytest.raises(ValueError):
        SiteStore(store.root, keep_last=-1)


def test_reading_an_unknown_profile_writes_nothing(store: SiteStore) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    assert profile.load(BASE) is None and profile.versions() == [] and profile.current() is None
    assert profile.prune() == [] and not profile.exists()
    profile.rollback(0)
    for call in (lambda: profile.load(BASE, version=1), lambda: profile.pin(1), lambda: profile.rollback(1)):
        with pytest.raises(SiteStoreError, match="Version 1 .* does not exist"):
            call()
    assert not store.root.exists() and store.sites() == [] and store.profiles("Hospital A") == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_either_refused_or_stays_inside_the_root(text: str) -> None:
    root = Path("/srv/store").resolve()
    try:
        name = check_name(text)
    except SiteStoreError as error:
        assert "name" in str(error)
    else:
        assert (root / folder_name(name)).resolve().parent == root and folder_name(name) not in (".", "..")
    suggestion = suggest_name(text)  # free text such as a segment name always maps to a valid name
    assert (
        check_name(suggestion, "profile") == suggestion
        and (root / folder_name(suggestion)).resolve().parent == root
    )
    if text.strip() and check_name_ok(text):
        assert suggestion == check_name(text)


def check_name_ok(text: str) -> bool:
    try:
        check_name(text)
    except SiteStoreError:
        return False
    return True


def test_suggested_names_for_segment_names() -> None:
    assert suggest_name("Left/Right (L)") == "Left Right L"
    assert suggest_name("  ../../etc/passwd ") == "etc passwd"
    assert suggest_name("CON") == "profile CON" and suggest_name("\x00\n") == "Unnamed"
    assert suggest_name("Grey matter") == "Grey matter" and len(suggest_name("x" * 200)) == 64
