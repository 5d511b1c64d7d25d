"""`interactive-adapt serve` as a command: it stops by itself after its lifetime (the page told ahead), and
at once on Ctrl+C when no case has clicks to lose, prints the page's address
with a token made at this start, listens beyond this computer only when told twice (--host and
--allow-remote, then with a warning), and refuses before serving anything a study that does not exist, a
study outside the studies folder, or no studies folder at all."""

from __future__ import annotations

import re

import pytest

from InteractiveAdaptLib.cli.main import main

pytestmark = pytest.mark.slow


def _served(tmp_path, *args: str, exit_after_s: float = 3):
    from interactive_adapt_lab.web_browser import ServedApp

    return ServedApp(tmp_path, exit_after_s=exit_after_s, args=args)


def test_server_stops_by_itself_after_its_lifetime(tmp_path):
    with _served(tmp_path) as app:
        app.wait_event("ready", timeout=120)
        assert app.process.wait(timeout=60) == 0
        assert app.events("exit") == [app.events()[-1]] and app.events("exit")[0]["reason"] == "lifetime"
        # The page was told ahead (at once: the lifetime is shorter than the warning's 30 s).
        warned = [e for e in app.events("status") if e["text"].startswith("This server stops in")]
        assert len(warned) == 1 and warned[0]["t"] < app.events("exit")[0]["t"]
        assert re.fullmatch(
            r"This server stops in [1-3] s \(its lifetime, set at its start\)\.", warned[0]["text"]
        )


def test_ctrl_c_without_a_case_stops_at_once(tmp_path):
    import signal

    with _served(tmp_path, exit_after_s=300) as app:
        app.wait_event("ready", timeout=120)
        app.process.send_signal(signal.SIGINT)
        assert app.process.wait(timeout=60) == 0
        assert not app.events("interrupt") and app.events("exit")[-1]["reason"] == "interrupted"


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
