"""Bad input through the web page: each gets a clear message in the status line, in a clinician's words, and
nothing the site saved is lost.

One server (`interactive-adapt serve` with the Colin27 head given at start: its folder is the studies
folder) and one headless Chromium for the whole file. First a case is finished with learning (version 1 of
profile 'Thalamus' on disk); then, through the page, files put into the studies folder: one deleted after
it was listed, a text file named .nii, a 4D series, a colour volume (the open head stays the one shown),
a label map (the AAL atlas) and a volume too large for this computer (its header declares 16 GiB of
voxels: refused before they are read), files that are no study (a text file, a FIFO: not listed), a
click outside the image (no point kept),
the page open in a second tab (both warn, and the warning goes once the second tab is closed). At the
end version 1 is still on disk, unchanged and current, and no status line ever showed a traceback.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from InteractiveAdaptLib.interaction import JobKind
from InteractiveAdaptLib.io.volumes import Volume, read_volume
from InteractiveAdaptLib.store.site_store import SiteStore

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MRICRON = Path("/usr/share/mricron/templates")
COLIN27 = MRICRON / "ch2.nii.gz"
AAL = MRICRON / "aal.nii.gz"  # on the Colin27 grid
THALAMUS_L, THALAMUS_R = 77, 78  # AAL labels (aal.nii.txt)
AXIAL = 0  # the views' order on the page: axial (Red), coronal (Green), sagittal (Yellow)
VIEW_INDEX = {"Red": 0, "Green": 1, "Yellow": 2}
SITE = "Browser test"
PROFILE = "Thalamus"
# What a status line must never show: Python's own words for a failure.
TECHNICAL = ("Traceback", 'File "', "Exception", "Something unexpected went wrong")


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    from interactive_adapt_lab.web_browser import BrowserPage, ServedApp, require_browser

    require_browser()
    folder = tmp_path_factory.mktemp("web-bad-input")
    (folder / "studies").mkdir()
    shutil.copy(COLIN27, folder / "studies")
    with ServedApp(folder, study=folder / "studies" / COLIN27.name, site=SITE, exit_after_s=300) as app:
        study = app.wait_event("study", timeout=120)
        assert study["name"] == "ch2"
        with BrowserPage(app.url) as page:
            page.wait_views()
            page.wait_text("ia-status", "'ch2' is open")
            yield app, page


@pytest.fixture(scope="module")
def atlas() -> Volume:
    return read_volume(AAL)


@pytest.fixture(scope="module")
def head() -> Volume:
    return read_volume(COLIN27)


@pytest.fixture(scope="module")
def saved(web, atlas) -> dict:
    """A case finished with learning: version 1 of profile 'Thalamus', as it is on disk now."""
    app, page = web
    page.type("ia-new-structure", "Thalamus (L)")
    page.press("ia-add-structure")
    page.wait_text("ia-profile", f"learns in profile '{PROFILE}'", timeout=120)
    page.press("ia-positive")
    page.wait_text("ia-clicked-slices", "none yet")
    mark = len(app.events())
    page.click_view(AXIAL, _target(app, atlas, "Red", THALAMUS_L))
    app.wait_event("segment", where=lambda e: e["clicks"] == 1 and e["voxels"] > 100, after=mark, timeout=90)
    mark = len(app.events())
    page.press("ia-finish")
    assert app.wait_event("finished", after=mark, timeout=180)["version"] == 1
    page.wait_text("ia-status", f"saved version 1 of '{PROFILE}'")
    snapshot = _on_disk(app)
    assert [v[0] for v in snapshot["versions"]] == [1] and snapshot["current"] == 1
    return snapshot


# ------------------------------------------------------------------ bad files


def _missing(folder: Path) -> Path:
    """A volume that is listed, then deleted before it is opened."""
    path = folder / "no such scan.nii.gz"
    shutil.copy(COLIN27, path)
    return path


def _text_named_nifti(folder: Path) -> Path:
    path = folder / "renamed report.nii"
    path.write_text("MRI head, 12 March: no abnormality seen.\n")
    return path


def _series_4d(folder: Path) -> Path:
    path = folder / "fmri series.nii.gz"
    voxels = np.random.default_rng(0).integers(0, 500, (3, 10, 10, 10), dtype=np.int16)  # (t, k, j, i)
    image = sitk.GetImageFromArray(voxels, isVector=False)
    assert image.GetDimension() == 4 and image.GetSize() == (10, 10, 10, 3)
    sitk.WriteImage(image, str(path))
    return path


def _colour(suffix: str):
    def write(folder: Path) -> Path:
        path = folder / f"colour map{suffix}"
        rgb = np.random.default_rng(0).integers(0, 255, (10, 10, 10, 3), dtype=np.uint8)
        image = sitk.GetImageFromArray(rgb, isVector=True)
        assert image.GetNumberOfComponentsPerPixel() == 3 and image.GetDimension() == 3
        sitk.WriteImage(image, str(path))
        return path

    return write


def _label_map(folder: Path) -> Path:
    return Path(shutil.copy(AAL, folder / "atlas labels.nii.gz"))


def _too_large(folder: Path) -> Path:
    from interactive_adapt_lab.web_browser import write_zeros_nrrd

    return write_zeros_nrrd(folder / "whole body.nrrd", (4096, 4096, 1024))


BAD_FILES = {
    # case: (how the file is made, what the status line must say)
    "deleted after listing": (_missing, ("cannot be opened", "moved or deleted")),
    "text file named .nii": (_text_named_nifti, ("could not be read as an image", "NIfTI")),
    "4D series": (_series_4d, ("4 dimensions", "needs one 3D volume")),
    "RGB NIfTI": (_colour(".nii.gz"), ("colour (RGB)", "grey-scale")),
    "RGB NRRD": (_colour(".nrrd"), ("colour (RGB)", "grey-scale")),
    "label map": (_label_map, ("'atlas labels.nii.gz' looks like a label map", "Open the MRI itself")),
    "too large": (_too_large, ("'whole body.nrrd' is too large to segment here", "Crop it")),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_says_why_and_keeps_the_open_study(web, saved, case):
    from interactive_adapt_lab.web_browser import changed_pixels

    app, page = web
    make, expected = BAD_FILES[case]
    path = make(app.studies)
    frames = [page.frame(i) for i in range(3)]
    mark = len(app.events())

    page.press("ia-refresh-studies")
    app.wait_event("studies", where=lambda e: path.name in e["keys"], after=mark, timeout=60)
    if case == "deleted after listing":
        path.unlink()
    page.open_study(path.name)
    status = app.wait_event("status", after=mark, timeout=60)["text"]
    for words in expected:
        assert words.lower() in status.lower(), f"{case}: the status says '{status}'"
    _no_technical(status)
    # Wait for this message itself: the previous case's message may share the expected words.
    shown = page.wait_text("ia-status", status)
    assert shown == status  # what the page shows is what the server said, nothing else
    if case in ("deleted after listing", "text file named .nii", "label map", "too large"):
        assert path.name in status  # which file it means

    # The head that was open is still the patient, shown as before.
    page.wait_text("ia-profile", "'Thalamus (L)' learns in profile")
    assert not _since(app, mark, "study") and not _since(app, mark, "scene")
    assert app.process.poll() is None, app.log_tail()
    time.sleep(0.5)  # a new volume would have replaced the frames by now
    for index, before in enumerate(frames):
        after = page.frame(index)
        assert after.shape == before.shape
        assert changed_pixels(before, after) < 0.01 * after.shape[0] * after.shape[1], f"view {index} changed"


def test_files_that_are_no_study_are_not_listed(web):
    app, page = web
    (app.studies / "report.txt").write_text("MRI head, 12 March: no abnormality seen.\n")
    os.mkfifo(app.studies / "scanner pipe.nii.gz")
    mark = len(app.events())
    page.press("ia-refresh-studies")
    listed = app.wait_event("studies", after=mark, timeout=60)["keys"]
    assert "ch2.nii.gz" in listed
    assert "report.txt" not in listed and "scanner pipe.nii.gz" not in listed
    assert app.process.poll() is None, app.log_tail()


# ------------------------------------------------------------------ a click outside the image


def test_click_outside_the_image_says_so_and_keeps_no_point(web, saved, atlas, head):
    app, page = web
    mark = len(app.events())
    page.type("ia-new-structure", "Thalamus (R)")
    page.press("ia-add-structure")
    page.wait_text("ia-profile", f"'Thalamus (R)' learns in profile '{PROFILE}'", timeout=120)
    # The case's image is ready: from now on the worker runs only what a click starts.
    app.wait_event("job", where=lambda e: e["what"] == JobKind.PREPARE.name, after=mark)
    page.press("ia-positive")
    page.wait_class("ia-positive", "v-btn--variant-flat")  # placing positive points
    page.wait_text("ia-clicked-slices", "none yet")

    view, xy = _outside_pixel(app, head)
    mark = len(app.events())
    page.click_view(VIEW_INDEX[view], xy)
    status = page.wait_text("ia-status", "outside the image", timeout=30)
    assert "click inside the image" in status.lower()
    _no_technical(status)
    assert [e["text"] for e in _since(app, mark, "status")] == [status]
    time.sleep(1.0)  # a kept point would start segmenting on the worker
    assert not _since(app, mark, "segment") and not _since(app, mark, "job")
    assert page.text("ia-clicked-slices") == "Clicked slices: none yet."

    # A click inside right after: the case's first point, the outside one was not kept.
    mark = len(app.events())
    page.click_view(AXIAL, _target(app, atlas, "Red", THALAMUS_R))
    first = app.wait_event("segment", after=mark, timeout=90)
    assert (first["clicks"], first["positive"], first["negative"]) == (1, 1, 0)
    assert first["structure"] == "Thalamus (R)" and first["volume"] == "ch2"


# ------------------------------------------------------------------ two tabs


def test_second_tab_warns_both_until_closed(web):
    from selenium.webdriver.common.by import By

    from interactive_adapt_lab.web_browser import BrowserPage

    app, page = web
    assert not page.driver.find_elements(By.ID, "ia-tabs-warning")  # one tab: no warning
    with BrowserPage(app.url) as second:
        for tab in (page, second):
            warning = tab.wait_text("ia-tabs-warning", "open in 2 tabs", timeout=60)
            assert "keep one and close the others" in warning
    deadline = time.monotonic() + 30
    while page.driver.find_elements(By.ID, "ia-tabs-warning") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not page.driver.find_elements(By.ID, "ia-tabs-warning"), "the warning stayed after closing the tab"
    assert app.process.poll() is None, app.log_tail()


# ------------------------------------------------------------------ nothing lost


def test_nothing_saved_is_lost(web, saved):
    app, page = web
    assert _on_disk(app) == saved
    statuses = [e["text"] for e in app.events("status")]
    assert len(statuses) > len(BAD_FILES)  # every message of this file, read below
    for text in statuses:
        _no_technical(text)
    _no_technical(page.text("ia-status"))
    # No failure of ours in the server's log. (wslink may log one of its own when a tab closes while a
    # frame is being sent to it: "Cannot write to closing transport", in its and aiohttp's code only.)
    failing = re.findall(r'File "([^"]+)"', app.log_tail(lines=100_000))
    ours = [path for path in failing if "InteractiveAdaptLib" in path or "interactive_adapt_web" in path]
    assert not ours, f"a failure in our code: {ours}"
    assert app.process.poll() is None


# ------------------------------------------------------------------ helpers


def _on_disk(app) -> dict:
    """The profile's versions as the site store lists them, with the bytes of their weight files."""
    profile = SiteStore(app.store).profile(SITE, PROFILE)
    versions = [
        (
            v.version,
            v.sha256,
            v.created,
            v.damaged,
            hashlib.sha256((profile.path / v.file).read_bytes()).hexdigest(),
        )
        for v in profile.versions()
    ]
    current = profile.current()
    return {"versions": versions, "current": current.version if current else None}


def _since(app, mark: int, name: str) -> list[dict]:
    """The events `name` from the `mark`-th event of the log on."""
    return [e for e in app.events()[mark:] if e["event"] == name]


def _no_technical(text: str) -> None:
    for word in TECHNICAL:
        assert word not in text, f"the status line shows '{word}': {text}"


def _target(app, atlas: Volume, view: str, label: int) -> tuple[float, float]:
    from interactive_adapt_lab.web_browser import structure_target

    return structure_target(app, atlas, view, label)


def _outside_pixel(app, volume: Volume) -> tuple[str, tuple[float, float]]:
    """A view pixel far from both the image and the view's edge, in the black margin around the head:
    the middle of the widest margin of the axial or sagittal view."""
    from scipy import ndimage

    best = None
    for name in ("Red", "Yellow"):
        event = app.views()[name]
        width, height = event["size"]
        ys, xs = np.mgrid[0:height, 0:width]
        xy = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size), np.ones(xs.size)])
        ras = np.asarray(event["xy_to_ras"], float) @ xy
        ijk = np.floor(np.linalg.inv(volume.ijk_to_ras) @ ras + 0.5)[:3]
        inside = np.all((ijk >= 0) & (ijk < np.array(volume.array.shape[::-1])[:, None]), axis=0)
        outside = ~inside.reshape(height, width)
        distance = ndimage.distance_transform_edt(np.pad(outside, 1))[1:-1, 1:-1]  # to the image or the edge
        row, col = np.unravel_index(np.argmax(distance), distance.shape)
        if best is None or distance[row, col] > best[0]:
            best = (distance[row, col], name, (float(col), float(row)))
    assert best[0] >= 10, f"no view shows a margin around the image (widest {best[0]:.0f} pixels)"
    return best[1], best[2]
