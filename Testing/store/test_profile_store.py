"""One learning profile's versions (store/profile_store.py): exact round trips of weights and Adam
state, versions and their parents, rollback, pins and retention, crash safety (SIGKILL during saves,
interrupted saves, a full disk), two processes saving at once, damaged or missing files, weights from
another base model, and refused arguments. Shared helpers are fixtures of conftest.py."""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os
import random
import runpy
import signal
import time
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import torch
from torch import nn

from InteractiveAdaptLib.errors import (
    IncompatibleBaseModelError,
    SiteStoreError,
    TorchTooOldError,
    WeightsError,
)
from InteractiveAdaptLib.model import checkpoint
from InteractiveAdaptLib.store.manifest import ProfileFolder
from InteractiveAdaptLib.store.profile_store import VersionInfo
from InteractiveAdaptLib.store.site_store import SiteStore

NEW_BASE = "b" * 64


def test_round_trip_keeps_weights_and_adam_state_identical(
    store: SiteStore,
    tmp_path: Path,
    base: str,
    trained: Callable[[int], tuple[nn.Module, torch.optim.Adam]],
    assert_same: Callable[[object, object], None],
) -> None:
    net, opt = trained(1)
    info = store.profile("Hospital A", "Grey matter").save(
        net.state_dict(), opt.state_dict(), base_sha256=base, cases_learned=2, clicks_learned=7,
        metrics={"dice": 0.81}, note="first case",
    )  # fmt: skip
    loaded = (
        SiteStore(tmp_path / "store").profile("Hospital A", "Grey matter").load(base)
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


def test_versions_parents_and_self_describing_files(
    store: SiteStore, base: str, save: Callable[..., VersionInfo]
) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    assert profile.current() is None and profile.load(base) is None and profile.versions() == []
    for seed in (1, 2, 3):
        save(profile, seed)
    assert [(v.version, v.parent) for v in profile.versions()] == [(1, 0), (2, 1), (3, 2)]
    assert profile.current().version == 3
    manifest = json.loads((profile.path / "manifest.json").read_text())
    assert (
        manifest["current"] == 3 and manifest["profile"] == "Grey matter" and manifest["site"] == "Hospital A"
    )
    entry = manifest["versions"][1]
    assert entry["base_sha256"] == base and entry["cases_learned"] == 2 and entry["clicks_learned"] == 6
    assert entry["sha256"] == checkpoint.sha256_file(profile.path / "v000002.pt")
    # Each version file carries its own metadata (what a lost manifest is rebuilt from).
    assert checkpoint.load_state(profile.path / "v000002.pt")["info"]["parent"] == 1
    assert store.sites() == ["Hospital A"] and store.profiles("Hospital A") == ["Grey matter"]


def test_rollback_then_save_and_rollback_to_base(
    store: SiteStore,
    base: str,
    trained: Callable[[int], tuple[nn.Module, torch.optim.Adam]],
    save: Callable[..., VersionInfo],
    assert_same: Callable[[object, object], None],
) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    for seed in (1, 2, 3):
        save(profile, seed)
    profile.rollback(1)
    assert profile.current().version == 1
    assert_same(trained(1)[0].state_dict(), profile.load(base).model_state)
    assert save(profile, 4).parent == 1  # the new version branches from the rolled-back one
    assert [v.version for v in profile.versions()] == [1, 2, 3, 4]  # nothing was thrown away
    profile.rollback(0)
    assert profile.current() is None and profile.load(base) is None
    assert save(profile, 5).parent == 0
    with pytest.raises(SiteStoreError, match=r"Version 42 .* does not exist\. Versions kept: 1, 2, 3, 4, 5"):
        profile.rollback(42)


def test_pins_and_retention(
    tmp_path: Path,
    base: str,
    trained: Callable[[int], tuple[nn.Module, torch.optim.Adam]],
    save: Callable[..., VersionInfo],
    assert_same: Callable[[object, object], None],
) -> None:
    profile = SiteStore(tmp_path, keep_last=2).profile("Hospital A", "Grey matter")
    save(profile, 1)
    profile.pin(1)
    for seed in range(2, 7):
        save(profile, seed)
    assert [v.version for v in profile.versions()] == [1, 5, 6]  # newest two + the pin
    assert sorted(p.name for p in profile.path.glob("v*.pt") if "optim" not in p.name) == [
        "v000001.pt", "v000005.pt", "v000006.pt"
    ]  # fmt: skip
    assert_same(trained(1)[0].state_dict(), profile.load(base, version=1).model_state)
    profile.unpin(1)
    assert profile.prune() == [1] and not (profile.path / "v000001.pt").exists()
    # After a rollback the parent of the current version stays (loading falls back to it), and so does
    # the version the rollback left: no later version was learned from it (a leaf), so its learning is
    # nowhere else ...
    profile.rollback(5)
    save(profile, 7)
    assert [(v.version, v.parent) for v in profile.versions()] == [(5, 4), (6, 5), (7, 5)]
    save(profile, 8)
    assert [v.version for v in profile.versions()] == [6, 7, 8]  # 5 went: 7 holds what it learned
    # ... and the current version survives whatever the retention says.
    profile.rollback(7)
    assert SiteStore(tmp_path, keep_last=0).profile("Hospital A", "Grey matter").prune() == []
    assert [v.version for v in profile.versions()] == [6, 7, 8]
    with pytest.raises(SiteStoreError, match="does not exist"):
        profile.pin(3)


def test_optimizer_state_is_kept_only_for_the_current_version(
    store: SiteStore,
    base: str,
    trained: Callable[[int], tuple[nn.Module, torch.optim.Adam]],
    save: Callable[..., VersionInfo],
    assert_same: Callable[[object, object], None],
) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    for seed in (1, 2, 3):
        save(profile, seed)
    assert [v.has_optimizer for v in profile.versions()] == [False, False, True]
    assert [p.name for p in profile.path.glob("*.optim.pt")] == ["v000003.optim.pt"]
    assert profile.load(base, version=2).optimizer_state is None
    assert_same(trained(3)[1].state_dict(), profile.load(base).optimizer_state)
    save(profile, 4, optimizer=False)  # a save without optimizer state keeps none, not a stale one
    assert list(profile.path.glob("*.optim.pt")) == [] and profile.load(base).optimizer_state is None


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
    ctx.set_forkserver_preload(["torch", "InteractiveAdaptLib.store.site_store"])  # a fork then starts in ms

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
def test_store_survives_sigkill_during_saves(
    writer, tmp_path: Path, base: str, assert_same: Callable[[object, object], None]
) -> None:
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
        loaded = profile.load(base)
        assert loaded is not None and loaded.warnings == []
        assert not [v.version for v in profile.versions() if v.damaged]  # atomic writes: never a torn file
        assert loaded.info.version >= last_version  # the last acknowledged one, or a later complete one
        assert_same(numbered_state(int(loaded.info.note)), loaded.model_state)
        assert_same(numbered_state(last_number), profile.load(base, version=last_version).model_state)
        if loaded.info.version == last_version:
            assert int(loaded.info.note) == last_number
        assert not list(profile.path.glob(".*.tmp"))  # interrupted writes were cleaned up


@pytest.mark.slow
def test_two_processes_saving_at_once_lose_no_version(
    writer, tmp_path: Path, base: str, assert_same: Callable[[object, object], None]
) -> None:
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
        assert_same(numbered_state(number), profile.load(base, version=version).model_state)


def test_interrupted_save_is_recovered_and_leftovers_removed(
    store: SiteStore,
    monkeypatch,
    base: str,
    trained: Callable[[int], tuple[nn.Module, torch.optim.Adam]],
    save: Callable[..., VersionInfo],
    assert_same: Callable[[object, object], None],
) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    save(profile, 1)
    real = ProfileFolder.write_manifest
    monkeypatch.setattr(ProfileFolder, "write_manifest", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # "killed" after the weights file, before the manifest
        save(profile, 2)
    monkeypatch.setattr(ProfileFolder, "write_manifest", real)
    (profile.path / ".v000009.pt.abc.tmp").write_bytes(b"half")
    (profile.path / "v000009.optim.pt").write_bytes(b"orphan")
    assert profile.current().version == 2  # the committed weights file counts as saved
    assert_same(trained(2)[0].state_dict(), profile.load(base).model_state)
    assert (
        not (profile.path / ".v000009.pt.abc.tmp").exists()
        and not (profile.path / "v000009.optim.pt").exists()
    )


# --------------------------------------------------------------- disk full
@pytest.mark.parametrize("failing_write", [1, 2, 3])  # optimizer file, weights file, manifest
def test_disk_full_keeps_everything_saved_before(
    store: SiteStore,
    monkeypatch,
    failing_write: int,
    base: str,
    trained: Callable[[int], tuple[nn.Module, torch.optim.Adam]],
    save: Callable[..., VersionInfo],
    assert_same: Callable[[object, object], None],
) -> None:
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
    assert_same(trained(2)[0].state_dict(), profile.load(base).model_state)
    assert_same(trained(2)[1].state_dict(), profile.load(base).optimizer_state)
    assert save(profile, 3).version == 3  # and saving works again once there is space


# --------------------------------------------------------------- damage
def test_corrupted_newest_version_falls_back_with_a_warning(
    store: SiteStore,
    caplog,
    base: str,
    trained: Callable[[int], tuple[nn.Module, torch.optim.Adam]],
    save: Callable[..., VersionInfo],
    assert_same: Callable[[object, object], None],
) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    for seed in (1, 2, 3):
        save(profile, seed)
    newest = profile.path / "v000003.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        loaded = profile.load(base)
    assert loaded.info.version == 2 and "Version 3" in loaded.warnings[0] and "damaged" in loaded.warnings[0]
    assert "Version 3" in caplog.text and "using version 2" in caplog.text
    assert_same(trained(2)[0].state_dict(), loaded.model_state)
    assert newest.exists() and profile.versions()[-1].damaged  # kept for inspection, marked
    assert profile.current().version == 2 and save(profile, 4).parent == 2
    with pytest.raises(SiteStoreError, match="damaged"):
        profile.rollback(3)


def test_truncated_version_is_refused_and_skipped(
    store: SiteStore, base: str, save: Callable[..., VersionInfo]
) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    save(profile, 1)
    save(profile, 2)
    path = profile.path / "v000002.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightsError, match="Version 2 .* truncated"):
        profile.load(base, version=2)
    loaded = profile.load(base)
    assert loaded.info.version == 1 and loaded.warnings
    path.unlink()
    (profile.path / "v000001.pt").write_bytes(b"")
    assert profile.load(base) is None  # nothing good left: the shipped base model
    assert profile.current() is None and len(profile.versions()) == 2


def test_damaged_or_missing_manifest_loses_no_version(
    store: SiteStore,
    caplog,
    base: str,
    trained: Callable[[int], tuple[nn.Module, torch.optim.Adam]],
    save: Callable[..., VersionInfo],
    assert_same: Callable[[object, object], None],
) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    for seed in (1, 2, 3):
        save(profile, seed)
    manifest = profile.path / "manifest.json"
    manifest.write_text('{"format": 1, "versions": [')
    with caplog.at_level(logging.WARNING):
        versions = profile.versions()
    assert [(v.version, v.parent) for v in versions] == [(1, 0), (2, 1), (3, 2)]
    assert "damaged" in caplog.text and list(profile.path.glob("manifest.damaged-*.json"))
    assert profile.current().version == 3 and profile.load(base).optimizer_state is not None
    for version in (1, 2, 3):
        assert_same(trained(version)[0].state_dict(), profile.load(base, version=version).model_state)
    manifest.unlink()
    assert [v.version for v in profile.versions()] == [1, 2, 3]
    assert save(profile, 4).version == 4


def test_loading_never_runs_pickle_code(
    store: SiteStore, tmp_path: Path, base: str, save: Callable[..., VersionInfo]
) -> None:
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
    loaded = profile.load(base)
    assert not marker.exists() and loaded.info.version == 1 and "cannot be read" in loaded.warnings[0]


def test_a_torch_below_the_floor_reads_no_version_and_marks_none_damaged(
    store: SiteStore, tmp_path: Path, base: str, save: Callable[..., VersionInfo], monkeypatch
) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    save(profile, 1)
    save(profile, 2)
    archive = store.export_site("Hospital A", tmp_path / "a.zip")
    (profile.path / "manifest.json").unlink()  # opening must read the version files themselves
    other = SiteStore(tmp_path / "other")
    monkeypatch.setattr(torch, "__version__", "2.5.1")  # weights_only=True is bypassable there
    with pytest.raises(TorchTooOldError, match="2.10 or newer"):
        profile.load(base)
    with pytest.raises(TorchTooOldError, match="2.10 or newer"):
        other.import_site(archive)  # an imported site is no way round it
    monkeypatch.undo()
    assert other.sites() == [] and not (profile.path / "manifest.json").exists()  # nothing was written
    assert [(v.version, v.damaged) for v in profile.versions()] == [(1, ""), (2, "")]
    assert profile.load(base).info.version == 2 and profile.load(base).warnings == []


# --------------------------------------------------------------- base model
def test_weights_from_another_base_model_are_refused(
    store: SiteStore, tmp_path: Path, base: str, save: Callable[..., VersionInfo]
) -> None:
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
    assert [v.base_sha256 for v in profile.versions()] == [base, base, NEW_BASE]  # old ones still listed
    with pytest.raises(IncompatibleBaseModelError, match="roll back to version 3"):
        profile.load(NEW_BASE, version=2)
    archive = store.export_site("Hospital A", tmp_path / "a.zip")  # and still exportable
    assert zipfile.ZipFile(archive).getinfo("site/profiles/grey_matter/v000001.pt")


# --------------------------------------------------------------- arguments and unknown profiles
def test_bad_arguments_are_refused_before_anything_is_written(store: SiteStore, base: str) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    with pytest.raises(TypeError):
        profile.save({"w": [1.0]}, None, base_sha256=base, cases_learned=0, clicks_learned=0)
    with pytest.raises(TypeError, match="metrics"):
        profile.save({"w": torch.zeros(1)}, None, base_sha256=base, cases_learned=0, clicks_learned=0,
                     metrics={"t": torch.zeros(1)})  # fmt: skip
    assert not profile.path.exists() and store.sites() == []
    with pytest.raises(ValueError):
        SiteStore(store.root, keep_last=-1)


def test_reading_an_unknown_profile_writes_nothing(store: SiteStore, base: str) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    assert profile.load(base) is None and profile.versions() == [] and profile.current() is None
    assert profile.prune() == [] and not profile.exists()
    profile.rollback(0)
    for call in (lambda: profile.load(base, version=1), lambda: profile.pin(1), lambda: profile.rollback(1)):
        with pytest.raises(SiteStoreError, match="Version 1 .* does not exist"):
            call()
    assert not store.root.exists() and store.sites() == [] and store.profiles("Hospital A") == []
