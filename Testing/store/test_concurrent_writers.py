"""Two processes learning in one profile at once (store/lineage.py, store/retention.py, and the session's
save): both load the same version, A saves, then B saves. Nothing is lost: B's version records the
version it truly learned from, A's version stays on disk and survives retention, B's entry names it and
a warning says so. Real processes, real files; each step is ordered through the processes' stdin."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from InteractiveAdaptLib.store.profile_store import VersionInfo
from InteractiveAdaptLib.store.site_store import SiteStore

# A writer process: loads the profile, says which version it has, waits for "save", then saves weights
# only it has, recording the version it loaded as their parent.
STORE_WRITER = """
import json, sys, torch
from InteractiveAdaptLib.store.site_store import SiteStore

root, seed, base = sys.argv[1], int(sys.argv[2]), "a" * 64
profile = SiteStore(root).profile("Hospital A", "Grey matter")
loaded = profile.load(base)
print(json.dumps({"loaded": loaded.info.version}), flush=True)
sys.stdin.readline()
state = {"w": torch.randn(8, 8, generator=torch.Generator().manual_seed(seed))}
info = profile.save(state, None, base_sha256=base, cases_learned=loaded.info.cases_learned + 1,
                    clicks_learned=0, note=str(seed), parent=loaded.info.version)
print(json.dumps({"version": info.version, "parent": info.parent, "other_leaves": info.other_leaves,
                  "warning": info.concurrent_warning}), flush=True)
"""

# A clinician's session in its own process: opens a case (which loads the profile), waits for "save",
# then clicks and finishes the case, which learns and saves.
SESSION_WRITER = """
import hashlib, json, sys
import numpy as np
from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
from InteractiveAdaptLib.interaction import Click
from InteractiveAdaptLib.model.base_model import load_base_model
from InteractiveAdaptLib.store.site_store import SiteStore

root, model_dir, volume_path, row = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
config = SessionConfig(adaptation=AdaptationConfig(lr=1e-3))
session = InteractiveSession(load_base_model(model_dir), config, store=SiteStore(root), site="Hospital A")
session.start_case(np.load(volume_path), (2.5, 1.2, 0.9), "Grey matter")
print(json.dumps({"loaded": session.version}), flush=True)
sys.stdin.readline()
session.add_click(Click(0, 10, row, 22, True))
session.learn_pending()
summary = session.finish_case(None, learn=True)
version = summary.version
digest = hashlib.sha256()
for name, tensor in sorted(session.network.state_dict().items()):
    digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
print(json.dumps({"version": version, "weights": digest.hexdigest(), "warning": summary.warning}), flush=True)
"""


class Writer:
    """A writer process driven line by line: read() its next JSON line, go() lets it save."""

    def __init__(self, script: Path, *args: object) -> None:
        command = [sys.executable, str(script), *map(str, args)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(60)
            raise AssertionError(f"the writer ended: {self.process.stderr.read()[-3000:]}")
        return json.loads(line)

    def go(self) -> dict:
        self.process.stdin.write("save\n")
        self.process.stdin.flush()
        result = self.read()
        assert self.process.wait(120) == 0, self.process.stderr.read()[-3000:]
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "writer.py"
    path.write_text(text)
    return path


def _digest(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_two_processes_saving_one_profile_keep_both_learnings(
    tmp_path: Path, base: str, save: Callable[..., VersionInfo]
) -> None:
    root = tmp_path / "store"
    save(SiteStore(root).profile("Hospital A", "Grey matter"), 1)
    script = _script(tmp_path, STORE_WRITER)
    a, b = Writer(script, root, 101), Writer(script, root, 202)
    try:
        assert a.read() == {"loaded": 1} and b.read() == {"loaded": 1}  # both learn from version 1
        first = a.go()
        second = b.go()
    finally:
        a.stop(), b.stop()
    assert (first["version"], first["parent"], first["other_leaves"]) == (2, 1, [])
    # B's learning did not start from A's version 2: its parent is the version it loaded.
    assert (second["version"], second["parent"], second["other_leaves"]) == (3, 1, [2])
    assert (
        "version 2 holds learning that the new version 3 (learned from version 1) does not"
        in second["warning"]
    )
    assert "roll back to version 2" in second["warning"]

    profile = SiteStore(root).profile("Hospital A", "Grey matter")
    assert [(v.version, v.parent) for v in profile.versions()] == [(1, 0), (2, 1), (3, 1)]
    assert profile.current().version == 3 and profile.current().other_leaves == [2]
    for version, seed in ((2, 101), (3, 202)):  # each version holds the weights its writer learned
        expected = torch.randn(8, 8, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(profile.load(base, version=version).model_state["w"], expected)
    # Retention never removes a version no later version was learned from (A's 2), however strict.
    assert SiteStore(root, keep_last=0).profile("Hospital A", "Grey matter").prune() == []
    assert [v.version for v in profile.versions()] == [1, 2, 3]
    # Learning continued from A's version is a line of its own; 3 stays as the newest of B's line.
    profile.rollback(2)
    assert save(profile, 4).parent == 2
    assert SiteStore(root, keep_last=0).profile("Hospital A", "Grey matter").prune() == [1]
    assert [v.version for v in profile.versions()] == [2, 3, 4]


def test_a_save_from_the_current_version_names_no_other_writer(
    store: SiteStore, save: Callable[..., VersionInfo], caplog: pytest.LogCaptureFixture
) -> None:
    profile = store.profile("Hospital A", "Grey matter")
    assert save(profile, 1, parent=0).other_leaves == []
    with caplog.at_level("WARNING"):
        info = save(profile, 2, parent=1)
    assert (info.parent, info.other_leaves, info.concurrent_warning) == (1, [], "") and not caplog.text
    stale = save(profile, 3, parent=1)  # as if loaded before version 2 was saved elsewhere
    assert (stale.parent, stale.other_leaves) == (1, [2]) and "version 2" in stale.concurrent_warning
    with pytest.raises(ValueError, match="parent"):
        save(profile, 4, parent=-1)


@pytest.mark.slow
def test_two_clinician_sessions_in_two_processes_keep_both_cases(
    tmp_path: Path, tiny_model_dir: Path, colin_block: np.ndarray, base: str
) -> None:
    root, volume = tmp_path / "store", tmp_path / "volume.npy"
    np.save(volume, colin_block)
    script = _script(tmp_path, SESSION_WRITER)
    a, b = Writer(script, root, tiny_model_dir, volume, 18), Writer(script, root, tiny_model_dir, volume, 20)
    try:
        assert a.read() == {"loaded": None} and b.read() == {"loaded": None}  # both on the shipped model
        first = a.go()
        second = b.go()
    finally:
        a.stop(), b.stop()
    assert (first["version"], second["version"]) == (1, 2)
    # The second clinician is told at Finish that both cases are kept, and which version holds which.
    assert first["warning"] == "" and "version 1 holds learning" in second["warning"]
    profile = SiteStore(root).profile("Hospital A", "Grey matter")
    # Session B learned from the shipped model, not from A's case: its version says so.
    assert [(v.version, v.parent) for v in profile.versions()] == [(1, 0), (2, 0)]
    assert profile.current().version == 2 and profile.current().other_leaves == [1]
    sha = profile.versions()[0].base_sha256
    assert _digest(profile.load(sha, version=1).model_state) == first["weights"]
    assert _digest(profile.load(sha, version=2).model_state) == second["weights"]
