"""`interactive-adapt serve` as a command: it stops by itself after its lifetime, warns when it listens
beyond this computer, and refuses a study path that does not exist before it serves anything."""

from __future__ import annotations

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


def test_listening_beyond_this_computer_warns(tmp_path):
    with _served(tmp_path, "--host", "0.0.0.0") as app:
        app.wait_event("ready", timeout=120)
        app.process.wait(timeout=60)
        assert "other computers can reach this page" in app.log_tail(lines=1000)
    with _served(tmp_path / "local") as app:  # the default: this computer only, no warning
        app.wait_event("ready", timeout=120)
        app.process.wait(timeout=60)
        assert "other computers" not in app.log_tail(lines=1000)


def test_a_missing_study_is_refused_before_serving(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "no such scan.nii.gz"), "--port", "0"]) == 1
    assert "does not exist. Check the path" in capsys.readouterr().err
