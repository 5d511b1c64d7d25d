"""The web page under what should not happen and what a server's user does: a failure inside the server
(said on the page, logged, and the page goes on), a large study (the page says the memory a case takes),
a study with voxels that are not numbers (said, and segmented), and Ctrl+C on the server while a case
has clicks (warns first, in the terminal and on the page; the second Ctrl+C stops it).

One server (`interactive-adapt serve` with the Colin27 head given at start and the hidden test hook
`--test-fault callback --test-fault pump`: the second and third study listings fail on purpose, in the
listing's callback and in the page's pump) and one headless Chromium, in the order of the tests.
"""

from __future__ import annotations

import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from InteractiveAdaptLib.io.volume_checks import CASE_BYTES_PER_VOXEL
from InteractiveAdaptLib.io.volumes import Volume, read_volume, write_volume

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MRICRON = Path("/usr/share/mricron/templates")
COLIN27, AAL = MRICRON / "ch2.nii.gz", MRICRON / "aal.nii.gz"
THALAMUS_L = 77
UNEXPECTED = "Something unexpected went wrong (TestFault); the server's log has the details."
LARGE = (512, 512, 320)  # 8-bit: a case takes ~2.7 GB, above the note's 2 GiB


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    from interactive_adapt_lab.web_browser import BrowserPage, ServedApp, require_browser

    require_browser()
    folder = tmp_path_factory.mktemp("web-robustness")
    (folder / "studies").mkdir()
    shutil.copy(COLIN27, folder / "studies")
    args = ("--test-fault", "callback", "--test-fault", "pump")
    with ServedApp(folder, study=folder / "studies" / COLIN27.name, exit_after_s=400, args=args) as app:
        assert app.wait_event("study", timeout=120)["name"] == "ch2"
        with BrowserPage(app.url) as page:
            page.wait_views()
            page.wait_text("ia-status", "'ch2' is open")
            yield app, page


def _since(app, mark: int, name: str) -> list[dict]:
    return [e for e in app.events()[mark:] if e["event"] == name]


def _refresh(app, page) -> int:
    mark = len(app.events())
    page.press("ia-refresh-studies")
    return mark


# ------------------------------------------------------------------ failures inside the server


def test_a_failing_result_callback_is_said_on_the_page_and_the_page_goes_on(web):
    app, page = web
    (app.studies / "added.nii.gz").write_bytes(COLIN27.read_bytes())
    mark = _refresh(app, page)  # the second listing: its callback fails (--test-fault callback)
    assert page.wait_text("ia-status", "Something unexpected went wrong", timeout=60) == UNEXPECTED
    assert [e["text"] for e in _since(app, mark, "status")] == [UNEXPECTED]
    assert not _since(app, mark, "studies")  # the callback failed before showing the list
    log = app.log_tail(lines=100_000)
    assert "The callback of job" in log and "TestFault: a failure made on purpose" in log  # the details
    assert "Traceback" not in page.text("ia-status")

    mark = _refresh(app, page)  # the third listing fails in the pump (--test-fault pump), after its callback
    app.wait_event("studies", where=lambda e: "added.nii.gz" in e["keys"], after=mark, timeout=60)
    assert app.wait_event("status", after=mark, timeout=30)["text"] == UNEXPECTED
    assert "The page's update loop failed" in app.log_tail(lines=100_000)

    # The page still follows the server: a listing, then a study opened through it.
    mark = _refresh(app, page)
    app.wait_event("studies", after=mark, timeout=60)
    page.open_study("added.nii.gz")
    app.wait_event("study", where=lambda e: e["name"] == "added", after=mark, timeout=120)
    page.wait_text("ia-status", "'added' is open")
    assert app.process.poll() is None


# ------------------------------------------------------------------ studies the page warns about


def test_a_large_study_says_the_memory_a_case_takes(web):
    from interactive_adapt_lab.web_browser import write_zeros_nrrd

    app, page = web
    write_zeros_nrrd(app.studies / "large.nrrd", LARGE)
    mark = _refresh(app, page)
    app.wait_event("studies", where=lambda e: "large.nrrd" in e["keys"], after=mark, timeout=60)
    page.open_study("large.nrrd")
    app.wait_event("study", where=lambda e: e["name"] == "large", after=mark, timeout=180)
    need = int(np.prod(LARGE)) * (CASE_BYTES_PER_VOXEL + 2) / 1e9
    expected = (
        f"'large.nrrd' is large (512 x 512 x 320 voxels): a case on it takes about {need:.1f} GB of memory"
    )
    status = page.wait_text("ia-status", expected, timeout=60)
    assert "'large' is open" in status  # the usual news, then the note


def test_a_study_with_voxels_that_are_not_numbers_is_said_and_segmented(web):
    from interactive_adapt_lab.web_browser import structure_target

    app, page = web
    head = read_volume(COLIN27)
    array = head.array.astype(np.float32)
    array[:6] = np.nan  # the lowest slices: outside the scanner's reconstructed region
    array[100, 100, 100] = np.inf
    count = 6 * array[0].size + 1
    write_volume(Volume(array, head.ijk_to_ras), app.studies / "nan head.nii.gz")
    mark = _refresh(app, page)
    app.wait_event("studies", where=lambda e: "nan head.nii.gz" in e["keys"], after=mark, timeout=60)
    page.open_study("nan head.nii.gz")
    app.wait_event("study", where=lambda e: e["name"] == "nan head", after=mark, timeout=120)
    status = page.wait_text("ia-status", "not a number", timeout=60)
    assert f"'nan head.nii.gz' has {count:,} voxels that are not a number" in status
    assert "darkest value" in status
    # The views show the head (one infinite voxel would leave their window/level only black).
    deadline = time.monotonic() + 30
    while (bright := float((page.frame(0).mean(axis=-1) > 60).mean())) < 0.1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert bright > 0.1, f"the axial view shows {bright:.1%} bright pixels"

    page.type("ia-new-structure", "Thalamus (L)")
    page.press("ia-add-structure")
    page.wait_text("ia-profile", "learns in profile 'Thalamus'", timeout=120)
    page.press("ia-positive")
    page.wait_class("ia-positive", "v-btn--variant-flat")
    mark = len(app.events())
    page.click_view(0, structure_target(app, read_volume(AAL), "Red", THALAMUS_L))
    segment = app.wait_event(
        "segment", where=lambda e: e["clicks"] == 1 and e["voxels"] > 100, after=mark, timeout=120
    )
    assert segment["volume"] == "nan head" and segment["structure"] == "Thalamus (L)"
    assert not [e for e in _since(app, mark, "status") if "unexpected" in e["text"].lower()]


# ------------------------------------------------------------------ stopping the server


def test_ctrl_c_with_clicks_warns_first_and_stops_the_second_time(web):
    app, page = web
    assert app.events("segment")[-1]["clicks"] == 1  # the case above is open, its click not finished
    mark = len(app.events())
    app.process.send_signal(signal.SIGINT)
    warning = app.wait_event("interrupt", after=mark, timeout=30)
    assert warning["clicks"] == 1
    expected = "the open case has 1 click not finished"
    assert expected in app.wait_event("status", where=lambda e: "Ctrl+C" in e["text"], after=mark)["text"]
    shown = page.wait_text("ia-server-notice", expected, timeout=30)  # stays while later news comes
    assert "press Ctrl+C again to stop" in shown
    time.sleep(2)
    assert app.process.poll() is None  # still serving
    assert re.search(rf"{expected}.*press Ctrl\+C again", app.log_tail(lines=100_000))  # the terminal

    app.process.send_signal(signal.SIGINT)
    assert app.process.wait(timeout=60) == 0
    assert app.events("exit")[-1]["reason"] == "interrupted"
