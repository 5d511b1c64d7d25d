"""`interactive-adapt serve` as a command: it stops by itself after its lifetime, prints the page's address
with a token made at this start, listens beyond this computer only when told twice (--host and
--allow-remote, then with a warning), and refuses before serving anything a study that does not exist, a
study outside the studies folder, or no studies folder at all."""

from __future__ import annotations

import re

import pytest

from InteractiveAdaptLib.cli.main import main

pytestmark = pytest.mark.slow


def _served(tmp_path, *args: str):
    from interactive_adapt_lab.web_browser import ServedApp

    return ServedApp(tmp_path, exit_after_s=3, args=args)


def test_server_stops_by_itself_after_its_lifetime(tmp_path):
    with _served(tmp_path) as app:
        app.wait_event("ready", timeout=120)
        assert app.process.wait(timeout=60) == 0
        assert app.events("exit") == [app.events()[-1]] and app.events("exit")[0]["reason"] == "lifetime"


def test_each_start_prints_the_address_with_a_new_token(tmp_path):
    tokens = []
    for run in ("first", "second"):
        with _served(tmp_path / run) as app:
            assert re.fullmatch(rf"http://127\.0\.0\.1:{app.port}/\?secret=[\w-]{{43}}", app.url)
            tokens.append(app.token)
            app.process.wait(timeout=60)
    assert tokens[0] != tokens[1] and "wslink-secret" not in tokens


def test_listening_beyond_this_computer_needs_allow_remote(tmp_path, capsys):
    assert main(["serve", "--studies", str(tmp_path), "--host", "0.0.0.0", "--port", "0"]) == 1
    assert "add --allow-remote" in capsys.readouterr().err
    with _served(tmp_path / "remote", "--host", "0.0.0.0", "--allow-remote") as app:
        app.wait_event("ready", timeout=120)
        assert "secret=" in app.url  # the address to give the other computers, with its token
        app.process.wait(timeout=60)
        assert "other computers can reach this page" in app.log_tail(lines=1000)
    with _served(tmp_path / "local") as app:  # the default: this computer only, no warning
        app.wait_event("ready", timeout=120)
        app.process.wait(timeout=60)
        assert "other computers" not in app.log_tail(lines=1000)


def test_a_missing_study_is_refused_before_serving(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "no such scan.nii.gz"), "--port", "0"]) == 1
    assert "does not exist. Check the path" in capsys.readouterr().err


def test_the_studies_folder_is_required_and_holds_the_study(tmp_path, capsys):
    assert main(["serve", "--port", "0"]) == 1
    assert "--studies FOLDER" in capsys.readouterr().err
    (tmp_path / "studies").mkdir()
    (tmp_path / "elsewhere.nii.gz").write_bytes(b"")
    assert main(["serve", str(tmp_path / "elsewhere.nii.gz"), "--studies", str(tmp_path / "studies")]) == 1
    assert "is not inside the studies folder" in capsys.readouterr().err
