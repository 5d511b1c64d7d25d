"""A store the user may only read, and file system errors (store/access.py): reading works without the
lock file (and writes nothing, not even repairs), export works, and every change or unreadable file is
a SiteStoreAccessError that names the folder and what to do, never a bare OSError. A version whose file
cannot be read is not marked damaged. The store is made read-only with real file modes, and read by a
real process that cannot pass over them (as root, one without the capabilities that would)."""

from __future__ import annotations

import ctypes
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from InteractiveAdaptLib.store.profile_store import ProfileStore
from InteractiveAdaptLib.store.site_store import SiteStore

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="file modes and capabilities as on Linux")

_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 24, 1, 2

READER = """
import json, sys
from InteractiveAdaptLib.errors import SiteStoreError
from InteractiveAdaptLib.store.site_store import SiteStore

root, archive, base = sys.argv[1], sys.argv[2], "a" * 64
store = SiteStore(root)
out = {}


def attempt(name, call):
    try:
        out[name] = ["ok", call()]
    except SiteStoreError as exc:
        out[name] = [type(exc).__name__, str(exc)]


profile = store.profile("Hospital A", "Grey matter")
attempt("sites", store.sites)
attempt("profiles", lambda: store.profiles("Hospital A"))
attempt("versions", lambda: [(v.version, v.parent, v.damaged) for v in profile.versions()])
attempt("current", lambda: profile.current().version)
attempt("load", lambda: profile.load(base).info.version)
attempt("load 1", lambda: profile.load(base, version=1).info.version)
attempt("white matter", lambda: [v.version for v in store.profile("Hospital A", "White matter").versions()])
attempt("export", lambda: str(store.export_site("Hospital A", archive)))
if sys.argv[3:] != ["changes"]:
    print(json.dumps(out))
    sys.exit()
attempt("save", lambda: profile.save({}, None, base_sha256=base, cases_learned=0, clicks_learned=0).version)
attempt("rollback", lambda: profile.rollback(1))
attempt("pin", lambda: profile.pin(2))
attempt("delete profile", profile.delete)
attempt("delete site", lambda: store.delete_site("Hospital A"))
attempt("new site", lambda: store.profile("Hospital B", "Grey matter").save({}, None, base_sha256=base,
        cases_learned=0, clicks_learned=0).version)
print(json.dumps(out))
"""


def _without_permission_override() -> None:
    """In the child: as root, give up the capabilities that pass over file modes (inherited by exec)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_reader(tmp_path: Path, root: Path, archive: Path, *, changes: bool = False) -> dict:
    """Run READER on `root` in a process bound by file modes (its changes too if asked); its results by action."""
    script = tmp_path / "reader.py"
    script.write_text(READER)
    try:
        done = subprocess.run(
            [sys.executable, str(script), str(root), str(archive), "changes" if changes else "reads"],
            capture_output=True, text=True, timeout=300, preexec_fn=_without_permission_override,
        )  # fmt: skip
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot start a process bound by file modes here: {exc}")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))
    }


def _chmod_tree(root: Path, *, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        mode = mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        path.chmod(mode)


@pytest.fixture
def read_only(store: SiteStore) -> Iterator[Callable[[], None]]:
    """Call it to make the whole store read-only; the test's end makes it writable again."""
    yield lambda: _chmod_tree(store.root, writable=False)
    if store.root.exists():
        _chmod_tree(store.root, writable=True)


def test_a_read_only_store_reads_exports_and_refuses_changes_clearly(
    store: SiteStore,
    tmp_path: Path,
    read_only: Callable[[], None],
    populate: Callable[[SiteStore], dict[tuple[str | None, str], ProfileStore]],
) -> None:
    populate(store)
    grey = store.profile("Hospital A", "Grey matter")
    (grey.path / ".lock").unlink(missing_ok=True)  # as copied onto a read-only share: no lock file
    (store.profile("Hospital A", "White matter").path / "manifest.json").unlink()  # and one list lost
    read_only()
    before = _snapshot(store.root)
    out = run_reader(tmp_path, store.root, tmp_path / "copy.zip", changes=True)

    assert out["sites"] == ["ok", ["Hospital A"]]
    assert out["profiles"] == ["ok", ["Grey matter", "white_matter"]]  # no list: named by its folder
    assert out["versions"] == ["ok", [[1, 0, ""], [2, 1, ""], [3, 2, ""]]]
    assert out["current"] == ["ok", 3] and out["load"] == ["ok", 3] and out["load 1"] == ["ok", 1]
    assert out["white matter"] == ["ok", [1, 2, 3]]  # rebuilt from the version files, in memory only
    assert out["export"] == ["ok", str(tmp_path / "copy.zip")]
    for action in ("save", "rollback", "pin", "delete profile", "delete site", "new site"):
        kind, message = out[action]
        assert kind == "SiteStoreAccessError", (action, out[action])
        assert "cannot be written" in message and "try again" in message, (action, message)
    assert (
        "read-only or belongs to another user" in out["save"][1]
        and "Nothing saved before was lost" in out["save"][1]
    )
    assert str(grey.path) in out["save"][1]
    assert _snapshot(store.root) == before  # nothing written: no lock file, no repaired manifest

    copy = SiteStore(tmp_path / "other")  # the export of the read-only store is a whole site
    assert copy.import_site(tmp_path / "copy.zip") == "Hospital A"
    assert [v.version for v in copy.profile("Hospital A", "White matter").versions()] == [1, 2, 3]


def test_unreadable_files_are_store_errors_and_never_marked_damaged(
    store: SiteStore,
    tmp_path: Path,
    read_only: Callable[[], None],
    populate: Callable[[SiteStore], dict[tuple[str | None, str], ProfileStore]],
) -> None:
    populate(store)
    grey = store.profile("Hospital A", "Grey matter")
    newest, manifest = (
        grey.path / "v000003.pt",
        store.profile("Hospital A", "White matter").path / "manifest.json",
    )
    newest.chmod(0)
    manifest.chmod(0)
    try:
        out = run_reader(tmp_path, store.root, tmp_path / "copy.zip")
    finally:
        newest.chmod(0o600)
        manifest.chmod(0o600)
    kind, message = out["load"]
    assert kind == "SiteStoreAccessError" and "cannot be read (Permission denied)" in message
    assert str(newest) in message and "network drive" in message and "Nothing was changed" in message
    assert out["load 1"] == ["ok", 1] and out["versions"][0] == "ok"
    assert out["white matter"][0] == "SiteStoreAccessError" and str(manifest) in out["white matter"][1]
    assert out["export"][0] == "SiteStoreAccessError"
    # Readable again, nothing was marked damaged and the current version is still the newest.
    assert [(v.version, v.damaged) for v in grey.versions()] == [(1, ""), (2, ""), (3, "")]
    assert grey.current().version == 3
