"""The module's registered self-test (mrml/self_test.py, what Slicer's test runner and CTest run) in a
Qt-free Slicer core: the whole flow with PyTorch and the shipped model, and its torch-free part in a
Python where torch cannot be imported, as on the extension build machines (it passes, says what it
skipped, and asks nothing)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, add_slice_node, make_core

from InteractiveAdaptLib.app.settings import ModuleSettings, open_session
from InteractiveAdaptLib.app.worker import Worker
from InteractiveAdaptLib.model.location import find_base_model_dir
from InteractiveAdaptLib.mrml.self_test import SKIPPED_LEARNING, run_self_test


def test_the_whole_flow_runs_with_the_shipped_model(tmp_path):
    core = make_core()
    add_slice_node(core.scene, "Red", "Axial")
    worker = Worker()
    said: list[str] = []
    try:
        run_self_test(
            core.scene,
            worker,
            lambda settings: open_session(settings, tmp_path, find_base_model_dir(), cuda_available=False),
            ModuleSettings(site="Self test", device="cpu"),
            tmp_path,
            learning=True,
            drain=lambda: worker.drain(120),
            say=said.append,
        )
    finally:
        worker.shutdown(timeout=30)
    assert SKIPPED_LEARNING not in said and len(said) == 3


SCRIPT = """
import sys, tempfile
sys.modules["torch"] = None  # any "import torch" now fails, as in a Slicer without PyTorch
sys.path[:0] = {paths!r}
from conftest import add_slice_node, make_core
from InteractiveAdaptLib.app import dependencies
from InteractiveAdaptLib.app.settings import ModuleSettings
from InteractiveAdaptLib.app.worker import Worker
from InteractiveAdaptLib.mrml.self_test import run_self_test

def no_session(settings):
    raise AssertionError("the torch-free self-test opened an engine session")

core = make_core()
add_slice_node(core.scene, "Red", "Axial")
worker = Worker()
run_self_test(core.scene, worker, no_session, ModuleSettings(site="Self test"), tempfile.mkdtemp(),
              learning=dependencies.can_import("torch"), drain=lambda: worker.drain(30))
worker.shutdown()
print("SELF-TEST PASSED")
"""


def test_without_torch_the_self_test_passes_and_says_what_it_skipped():
    paths = [str(REPO / "InteractiveAdapt"), str(REPO / "Testing")]
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT.format(paths=paths))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if "No module named 'slicer'" in result.stderr:
        pytest.fail(result.stderr)
    assert result.returncode == 0, result.stderr[-3000:]
    assert SKIPPED_LEARNING in result.stdout and "SELF-TEST PASSED" in result.stdout
