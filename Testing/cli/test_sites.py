"""`interactive-adapt sites ...`: output, effects on the store and clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from InteractiveAdaptLib.cli import main as cli
from InteractiveAdaptLib.store.site_store import SiteStore

BASE = "c" * 64


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A store with two shared profiles and one user profile, three versions each."""
    store = SiteStore(tmp_path / "store")
    for name, user in (("Grey matter", None), ("White matter", None), ("Grey matter", "Dr Smith")):
        profile = store.profile("Hospital A", name, user=user)
        for i in range(1, 4):
            profile.save(
                {"w": torch.full((4,), float(i))}, {"state": {}, "param_groups": []}, base_sha256=BASE,
                cases_learned=i, clicks_learned=5 * i, note=f"case {i}",
            )  # fmt: skip
    return store.root


def run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    code = cli.main(["sites", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_sites_and_profiles(root: Path, capsys) -> None:
    code, out, _ = run(capsys, "list", "--root", root)
    assert code == 0
    assert out.splitlines()[0].split() == ["site", "shared", "profiles", "users", "with", "own", "profiles"]
    assert out.splitlines()[2].split() == ["Hospital", "A", "2", "Dr", "Smith"]
    code, out, _ = run(capsys, "list", "--root", root, "--site", "hospital a")
    rows = [line.split() for line in out.splitlines()[2:]]
    assert code == 0 and [r[:4] for r in rows] == [
        ["(shared)", "Grey", "matter", "3"], ["(shared)", "White", "matter", "3"], ["Dr", "Smith", "Grey", "matter"]
    ]  # fmt: skip
    code, out, _ = run(capsys, "list", "--root", root.parent / "empty")
    assert code == 0 and "No sites" in out


def test_show_prints_a_table_of_versions(root: Path, capsys) -> None:
    SiteStore(root).profile("Hospital A", "Grey matter").pin(2)
    code, out, _ = run(capsys, "show", "--root", root, "--site", "Hospital A", "--profile", "grey matter")
    lines = out.splitlines()
    assert code == 0 and "3 version(s); current: version 3" in lines[0]
    assert lines[1].split() == [
        "version",
        "parent",
        "created",
        "cases",
        "clicks",
        "pinned",
        "current",
        "base",
        "note",
    ]
    cells = [line.split() for line in lines[3:]]
    assert [c[:2] for c in cells] == [["1", "0"], ["2", "1"], ["3", "2"]]
    # created spans three cells ("YYYY-MM-DD HH:MM UTC"); an empty pinned/current cell splits away
    assert cells[1][6:] == ["10", "yes", "cccccccc", "case", "2"] and cells[2][6:] == [
        "15",
        "*",
        "cccccccc",
        "case",
        "3",
    ]
    assert cells[0][2].count("-") == 2 and cells[0][4] == "UTC"  # "YYYY-MM-DD HH:MM UTC"


def test_rollback_pin_unpin_and_prune_change_the_store(root: Path, capsys) -> None:
    where = ["--root", root, "--site", "Hospital A", "--profile", "Grey matter", "--user", "Dr Smith"]
    profile = SiteStore(root).profile("Hospital A", "Grey matter", user="Dr Smith")
    assert run(capsys, "rollback", *where, "--version", "1")[0] == 0
    assert profile.current().version == 1
    assert run(capsys, "pin", *where, "--version", "2")[0] == 0
    assert [v.pinned for v in profile.versions()] == [False, True, False]
    code, out, _ = run(capsys, "prune", *where, "--keep", "0")
    assert code == 0 and out.strip() == "Nothing to remove."  # 1 current, 2 pinned, 3 newest of its line
    assert run(capsys, "unpin", *where, "--version", "2")[0] == 0
    assert run(capsys, "prune", *where, "--keep", "0")[1].strip() == "Removed versions 2."
    code, out, _ = run(capsys, "rollback", *where, "--version", "0")
    assert code == 0 and "shipped base model" in out and profile.current() is None
    assert SiteStore(root).profile("Hospital A", "Grey matter").current().version == 3  # shared one untouched


def test_export_import_and_delete(root: Path, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "hospital-a.zip"
    assert run(capsys, "export", "--root", root, "--site", "Hospital A", "--output", archive)[0] == 0
    other = tmp_path / "other"
    code, out, _ = run(capsys, "import", archive, "--root", other, "--as", "Hospital B")
    assert code == 0 and "Hospital B" in out
    copy = SiteStore(other).profile("Hospital B", "White matter").load(BASE)
    assert torch.equal(copy.model_state["w"], torch.full((4,), 3.0))
    code, _, err = run(capsys, "import", archive, "--root", other, "--as", "Hospital B")
    assert code == 1 and "already exists" in err
    code, _, err = run(capsys, "delete", "--root", other, "--site", "Hospital B")
    assert code == 1 and "--yes" in err and SiteStore(other).sites() == ["Hospital B"]
    assert (
        run(capsys, "delete", "--root", other, "--site", "Hospital B", "--profile", "White matter", "--yes")[
            0
        ]
        == 0
    )
    assert SiteStore(other).profiles("Hospital B") == ["Grey matter"]
    assert run(capsys, "delete", "--root", other, "--site", "Hospital B", "--yes")[0] == 0
    assert SiteStore(other).sites() == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "--site", "Hospital Z", "--profile", "Grey matter"], "There is no site named 'Hospital Z'"),
        (["show", "--site", "Hospital A", "--profile", "Hippocampus"], "Profiles there: 'Grey matter'"),
        (["show", "--site", "../..", "--profile", "Grey matter"], "site name"),
        (["pin", "--site", "Hospital A", "--profile", "a/b", "--version", "1"], "no profile 'a b'"),
        (
            ["rollback", "--site", "Hospital A", "--profile", "Grey matter", "--version", "7"],
            "Versions kept: 1, 2, 3",
        ),
        (["export", "--site", "Hospital A", "--output", "x.rar"], ".zip or .tar.gz"),
        (["import", "missing.zip"], "does not exist"),
        (["list", "--site", "Nowhere"], "Sites there: 'Hospital A'"),
    ],
)
def test_user_mistakes_give_one_clear_line(root: Path, capsys, argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv, "--root", root)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_missing_options_are_argparse_errors(root: Path, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["sites", "show", "--root", str(root), "--site", "Hospital A"])
    assert caught.value.code == 2 and "--profile" in capsys.readouterr().err


def test_default_root_is_the_user_data_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    code, out, _ = run(capsys, "list")
    assert code == 0 and str(tmp_path / "data" / "InteractiveAdapt" / "sites") in out


@pytest.mark.slow  # the interpreter imports torch and every command module
def test_through_a_subprocess(root: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).parents[2])}
    command = [sys.executable, "-m", "InteractiveAdaptLib.cli", "sites", "list", "--root", str(root)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Hospital A" in done.stdout and "Dr Smith" in done.stdout


def test_a_profile_can_be_named_as_its_segment_was(root: Path, capsys) -> None:
    """`--profile` takes the segment's name too: the module's rule maps it to the saved profile."""
    store = SiteStore(root)
    profile = store.profile("Hospital A", "Tumor 1")  # where a segment "Tumor #1" learns
    profile.save({"w": torch.zeros(4)}, None, base_sha256=BASE, cases_learned=1, clicks_learned=2)
    code, out, _ = run(capsys, "show", "--root", root, "--site", "Hospital A", "--profile", "Tumor #1")
    assert code == 0 and "profile 'Tumor 1'" in out
    code, out, _ = run(capsys, "show", "--root", root, "--site", "Hospital A", "--profile", "Grey matter (L)")
    assert code == 0 and "profile 'Grey matter'" in out
