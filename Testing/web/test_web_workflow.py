"""The web front end end to end, as a clinician uses it: `interactive-adapt serve` in its own process and a
real headless Chromium clicking on the page (interactive_adapt_lab/web_browser.py).

One server and one browser for the whole flow (starting them takes seconds): open a volume chosen in the
page's list of the studies folder, add a structure, positive and negative points in two views with the
buttons and the keys, undo, finish the case (a new site version on disk), roll back, open a second
patient from a DICOM folder put into the studies folder meanwhile (Refresh lists it) without mixing the
two. Clicks land where a clinician would click: the deepest pixel of the AAL atlas structure in that
view (AAL is on the Colin27 grid). What the server did is read from its event
log, what the user sees from the page and its frames.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from InteractiveAdaptLib.engine.click_simulation import deepest_point
from InteractiveAdaptLib.interaction import JobKind
from InteractiveAdaptLib.io.volumes import Volume, read_volume, write_dicom_series
from InteractiveAdaptLib.store.site_store import SiteStore

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MRICRON = Path("/usr/share/mricron/templates")
COLIN27 = MRICRON / "ch2.nii.gz"
AAL = MRICRON / "aal.nii.gz"
THALAMUS_L = 77  # AAL label (aal.nii.txt)
AXIAL, CORONAL = 0, 1  # the views' order on the page: axial, coronal, sagittal
SITE = "Browser test"


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    from interactive_adapt_lab.web_browser import BrowserPage, ServedApp, require_browser

    require_browser()
    folder = tmp_path_factory.mktemp("web")
    (folder / "studies").mkdir()
    shutil.copy(COLIN27, folder / "studies")
    with ServedApp(folder, studies=folder / "studies", site=SITE, exit_after_s=420) as app:
        app.wait_event("ready", timeout=120)
        with BrowserPage(app.url) as page:
            yield app, page


@pytest.fixture(scope="module")
def atlas() -> Volume:
    return read_volume(AAL)


def _target(app, atlas: Volume, view: str, label: int = THALAMUS_L) -> tuple[float, float]:
    from interactive_adapt_lab.web_browser import structure_target

    return structure_target(app, atlas, view, label)


def _outside(app, atlas: Volume, view: str, label: int = THALAMUS_L) -> tuple[float, float]:
    """A pixel of brain tissue 8-15 pixels outside the structure: where a negative click goes."""
    from scipy import ndimage

    from interactive_adapt_lab.web_browser import view_mask

    mask = view_mask(app.views()[view], atlas.array, atlas.ijk_to_ras, label)
    brain = view_mask(app.views()[view], atlas.array > 0, atlas.ijk_to_ras, True)
    ring = ndimage.binary_dilation(mask, iterations=15) & ~ndimage.binary_dilation(mask, iterations=8) & brain
    row, col = deepest_point(ring)
    return float(col), float(row)


def _wait_changed(page, view: int, before: np.ndarray, pixels: int, timeout: float = 15) -> int:
    """Wait until the view's frame differs from `before` in more than `pixels` pixels (frames stream in
    after the server wrote the segment); the count seen last."""
    from interactive_adapt_lab.web_browser import changed_pixels

    deadline = time.monotonic() + timeout
    while True:
        changed = changed_pixels(before, page.frame(view))
        if changed > pixels or time.monotonic() > deadline:
            return changed
        time.sleep(0.2)


def _wait_segment(app, after: int, **expected) -> dict:
    return app.wait_event(
        "segment", where=lambda e: all(e[k] == v for k, v in expected.items()), after=after, timeout=90
    )


def test_open_click_undo_finish_rollback_second_patient(web, atlas, tmp_path):
    app, page = web
    # Open a volume chosen in the page's list of the studies folder.
    page.wait_text("ia-studies-note", "1 study in 'studies'")
    page.open_study("ch2.nii.gz")
    study = app.wait_event("study", timeout=120)
    assert study["name"] == "ch2" and study["shape"] == [181, 217, 181]
    page.wait_views()
    page.wait_text("ia-status", "'ch2' is open")

    page.type("ia-new-structure", "Thalamus (L)")
    page.press("ia-add-structure")
    page.wait_text("ia-status", "added")
    page.wait_text("ia-profile", "learns in profile 'Thalamus'", timeout=120)

    # A positive point in the axial view (button): the segment appears there, on the server and on screen.
    page.press("ia-positive")
    page.wait_text("ia-clicked-slices", "none yet")
    before = page.frame(AXIAL)
    mark = len(app.events())
    page.click_view(AXIAL, _target(app, atlas, "Red"))
    _wait_segment(app, mark, clicks=1, positive=1)
    app.wait_event("segment", where=lambda e: e["voxels"] > 100, after=mark, timeout=90)
    page.wait_text("ia-clicked-slices", "Clicked slices: 90")
    # The latency line: the server's figure, then the one this browser measured up to the frame.
    latency = page.wait_text("ia-latency", "on your screen after")
    assert latency.startswith("Last click: slice ready after"), latency
    assert _wait_changed(page, AXIAL, before, 200) > 200  # the mask, not only the point's marker

    # A second positive point in the coronal view, then a negative one there with the N key.
    before = page.frame(CORONAL)
    mark = len(app.events())
    page.click_view(CORONAL, _target(app, atlas, "Green"))
    _wait_segment(app, mark, clicks=2, positive=2)
    # Both clicks filled in 3D and learned from (each click's last job), and the page says so.
    deadline = time.monotonic() + 90
    while sum(e["what"] == JobKind.LEARN.name for e in app.events("job")) < 2:
        assert time.monotonic() < deadline, "the clicks' work never ended"
        time.sleep(0.1)
    page.wait_text("ia-status", "filled in 3D by")
    page.wait_gone("ia-busy")
    # The panel counts both clicks and lists the axial one's slice (the coronal click is on a J slice).
    assert page.text("ia-status").endswith("(2 clicks).") and page.text("ia-clicked-slices") == (
        "Clicked slices: 90"
    )
    # The README's picture of the page (IA_SCREENSHOT names where it goes; the test's folder otherwise).
    page.screenshot(Path(os.environ.get("IA_SCREENSHOT", tmp_path / "web.png")))
    page.key("n")
    page.wait_class("ia-negative", "v-btn--variant-flat")  # the key reached the server: placing negatives
    mark = len(app.events())
    page.click_view(CORONAL, _outside(app, atlas, "Green"))
    negative = _wait_segment(app, mark, clicks=3, negative=1)
    assert _wait_changed(page, CORONAL, before, 50) > 50
    assert negative["voxels"] > 0

    # Ctrl+Z undoes the negative point: its marker and its effect go.
    from selenium.webdriver.common.keys import Keys

    mark = len(app.events())
    page.key(Keys.CONTROL, "z")
    undone = _wait_segment(app, mark, clicks=2, negative=0)
    assert undone["positive"] == 2

    # Finish the case, learning from it: version 1 of the profile on disk, listed on the page.
    mark = len(app.events())
    page.press("ia-finish")
    finished = app.wait_event("finished", after=mark, timeout=180)
    assert finished["version"] == 1
    profile = SiteStore(app.store).profile(SITE, "Thalamus")
    assert [v.version for v in profile.versions()] == [1] and profile.current().version == 1
    page.wait_text("ia-status", "saved version 1 of 'Thalamus'")
    page.wait_text("ia-profile", "learned from 1 case and 2 clicks")  # one case: no plural

    # Roll back to the shipped model: the version stays on disk, the shipped model is current again.
    page.choose("ia-version", "Shipped base model")
    page.press("ia-rollback")
    page.wait_text("ia-status", "rolled back to the shipped model", timeout=60)
    profile = SiteStore(app.store).profile(SITE, "Thalamus")
    assert [v.version for v in profile.versions()] == [1] and profile.current() is None

    # A second patient from a DICOM folder copied into the studies folder now (Refresh lists it): its own
    # segmentation; the first patient's segment stays.
    kept = app.events("segment")[-1]["voxels"]
    brain = read_volume(MRICRON / "ch2bet.nii.gz")
    dicom = app.studies / "second patient"
    write_dicom_series(Volume(brain.array[::2, ::2, ::2].astype(np.int16), _halved(brain.ijk_to_ras)), dicom)
    mark = len(app.events())
    page.open_study("second patient/", refresh=True)
    second = app.wait_event("study", after=mark, timeout=120)
    scene = app.wait_event("scene", after=mark)["volumes"]
    assert scene["ch2"] == {"Thalamus (L)": kept}
    assert scene[second["name"]] == {}
    page.wait_text("ia-status", f"'{second['name']}' is open")
    assert page.text("ia-clicked-slices") == ""


def _halved(ijk_to_ras: np.ndarray) -> np.ndarray:
    m = ijk_to_ras.copy()
    m[:3, :3] *= 2
    return m
