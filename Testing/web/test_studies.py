"""The web page's studies folder (interactive_adapt_web/studies.py): only what is inside the folder fixed at
start is listed or read, never a FIFO, a link out of the folder or a `..` path; listing and reading stop
when cancelled or past their limits, and free the worker at once; messages name no server path.

Every probe that must not be read is a FIFO (inside or outside the folder, or behind a link): had anything
opened it for reading, it would still hang there, and the test sees that no reader ever held it open.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_idle

from interactive_adapt_web.studies import Limits, StudiesFolder, studies_from_command_line
from InteractiveAdaptLib.app.worker import JobCancelled, Worker
from InteractiveAdaptLib.errors import ImageReadError, InteractiveAdaptError
from InteractiveAdaptLib.io.volumes import Volume, write_dicom_series, write_volume


def _volume(shape=(6, 7, 8), seed=0) -> Volume:
    array = np.random.default_rng(seed).integers(0, 500, shape).astype(np.int16)
    return Volume(array, np.diag([1.0, 1.0, 2.0, 1.0]))


def _never_opened(fifo: Path) -> None:
    """No reader holds `fifo` open (opening it for writing without blocking fails with ENXIO then)."""
    with pytest.raises(OSError) as raised:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert raised.value.errno == errno.ENXIO, f"something opened {fifo} for reading"


@pytest.fixture
def tree(tmp_path) -> dict[str, Path]:
    """A studies folder with two volumes, two DICOM series in one folder, one in another, and traps: a FIFO
    named like a volume, links to outside FIFOs and folders, a text file, a detached NRRD header."""
    root, outside = tmp_path / "studies", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    write_volume(_volume(), root / "head.nii.gz")
    (root / "patient 2").mkdir()
    write_volume(_volume(seed=1), root / "patient 2" / "brain.nrrd")
    (root / "mixed").mkdir()
    for number, (name, slices) in enumerate((("T1", 5), ("T2", 4)), start=1):  # two series in one folder
        for path in write_dicom_series(
            _volume((slices, 8, 8)), tmp_path / name, series_description=name, series_number=number
        ):
            path.rename(root / "mixed" / f"{name}-{path.name}")
    write_dicom_series(_volume((5, 8, 8)), root / "patient 2" / "dicom", series_description="FLAIR")
    (root / "notes.txt").write_text("not an image\n")
    (root / "detached.nrrd").write_text(
        "NRRD0004\ntype: short\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n"
        f"data file: {outside / 'secret.raw'}\n\n"
    )
    os.mkfifo(root / "pipe.nii.gz")
    os.mkfifo(outside / "secret.nii.gz")
    os.mkfifo(outside / "secret.raw")
    (root / "link out.nii.gz").symlink_to(outside / "secret.nii.gz")
    (root / "folder link").symlink_to(outside, target_is_directory=True)
    (root / "link in.nii.gz").symlink_to(root / "head.nii.gz")
    return {"root": root, "outside": outside}


def test_listing_offers_the_folder_s_studies_and_nothing_else(tree):
    listing = StudiesFolder(tree["root"]).list_studies()
    keys = [s.key for s in listing.studies]
    assert keys == [
        "detached.nrrd",
        "head.nii.gz",
        "link in.nii.gz",  # a link that stays inside the folder
        "mixed",
        "patient 2/brain.nrrd",
        "patient 2/dicom",
    ]
    assert listing.note == ""
    mixed = next(s for s in listing.studies if s.key == "mixed")
    assert [s.description for s in mixed.series] == ["T1", "T2"]
    assert [s.number_of_files for s in mixed.series] == [5, 4]
    assert "2 series" in mixed.label
    for fifo in (
        tree["root"] / "pipe.nii.gz",
        tree["outside"] / "secret.nii.gz",
        tree["outside"] / "secret.raw",
    ):
        _never_opened(fifo)


@pytest.mark.parametrize(
    "key",
    [
        "../outside/secret.nii.gz",  # `..`
        "patient 2/../../outside/secret.nii.gz",
        "link out.nii.gz",  # a link out of the folder
        "folder link/secret.nii.gz",  # through a linked folder
        "pipe.nii.gz",  # a FIFO
        "{outside}/secret.nii.gz",  # an absolute path outside
        "/etc/passwd",
        "/no/such/file.nii.gz",  # the same answer whether or not it exists
        "notes.txt",  # not a study
        "",
        None,
        {"path": "/etc/passwd"},
    ],
)
def test_names_outside_the_folder_are_refused_unread(tree, key):
    folder = StudiesFolder(tree["root"])
    if isinstance(key, str):
        key = key.format(outside=tree["outside"])
    with pytest.raises(InteractiveAdaptError) as refused:
        folder.read(key)
    message = folder.public(str(refused.value))
    assert "cannot be opened" in message and "Press Refresh" in message
    assert str(tree["outside"]) not in message and "/" not in message.split("'")[1]
    assert message == str(refused.value) or "/" in str(refused.value)  # nothing to hide in the first place
    for fifo in (tree["root"] / "pipe.nii.gz", tree["outside"] / "secret.nii.gz"):
        _never_opened(fifo)


def test_studies_inside_are_read(tree):
    folder = StudiesFolder(tree["root"])
    assert folder.read("head.nii.gz").array.shape == (6, 7, 8)
    assert folder.read("link in.nii.gz").array.shape == (6, 7, 8)
    assert folder.read("patient 2/brain.nrrd").array.shape == (6, 7, 8)
    assert folder.read("patient 2/dicom").array.shape == (5, 8, 8)
    mixed = next(s for s in folder.list_studies().studies if s.key == "mixed")
    assert folder.read("mixed", mixed.series[1].uid).array.shape == (4, 8, 8)
    with pytest.raises(ImageReadError, match="holds 2 DICOM series: choose one in the series list"):
        folder.read("mixed")


def test_a_detached_nrrd_header_is_refused_unread(tree):
    folder = StudiesFolder(tree["root"])
    with pytest.raises(ImageReadError, match="keeps its voxels in another file"):
        folder.read("detached.nrrd")
    _never_opened(tree["outside"] / "secret.raw")


def test_a_file_not_in_its_named_format_is_refused_before_any_reader_sees_it(tree):
    (tree["root"] / "renamed report.nii").write_text("MRI head: no abnormality seen.\n")
    (tree["root"] / "nrrd in disguise.nii.gz").write_text(
        f"NRRD0004\ndata file: {tree['outside']}/secret.raw\n\n"
    )
    folder = StudiesFolder(tree["root"])
    for key in ("renamed report.nii", "nrrd in disguise.nii.gz"):
        with pytest.raises(ImageReadError, match=f"'{key}' could not be read as an image"):
            folder.read(key)
    _never_opened(tree["outside"] / "secret.raw")


def test_messages_keep_only_names_inside_the_folder(tree):
    folder = StudiesFolder(tree["root"])
    inside = f"The image '{tree['root']}/patient 2/brain.nrrd' is damaged (see {tree['outside']}/x.log)."
    assert folder.public(inside) == "The image 'patient 2/brain.nrrd' is damaged (see x.log)."
    assert folder.public("ITK: /usr/lib/x86_64/libitk.so: error") == "ITK: libitk.so: error"


def test_listing_stops_at_its_file_limit_with_a_note(tree):
    for n in range(30):
        (tree["root"] / f"file {n:02d}.txt").write_text("x")
    listing = StudiesFolder(tree["root"], Limits(max_files=10)).list_studies()
    assert "only the first 10 files of the studies folder were looked at" in listing.note
    assert len(listing.studies) < 6


def test_listing_stops_at_its_time_limit_with_a_note(tree):
    listing = StudiesFolder(tree["root"], Limits(list_seconds=0.0)).list_studies()
    assert "took more than 0 s" in listing.note and "only part of it is listed" in listing.note


def test_a_cancelled_listing_ends_as_cancelled(tree):
    stop = threading.Event()
    stop.set()
    with pytest.raises(JobCancelled):
        StudiesFolder(tree["root"]).list_studies(stop)


def test_cancel_frees_the_worker_from_a_read_that_hangs(tree):
    """A read that never ends (a disk that stopped answering): Cancel ends its job at once, the next job
    runs, and the read's late result is dropped."""
    folder = StudiesFolder(tree["root"])
    release = threading.Event()
    worker = Worker()
    try:
        hanging = worker.submit(
            lambda cancel_event: folder.run_bounded(
                lambda stop: release.wait(60), cancel_event, 60, "Reading"
            ),
            pass_cancel_event=True,
        )
        time.sleep(0.3)
        assert worker.busy
        start = time.monotonic()
        worker.cancel(job_ids=[hanging.id])
        after = worker.submit(lambda: "next job ran")
        assert wait_idle(worker, timeout=5)
        assert time.monotonic() - start < 2
        results = {r.job_id: r for r in worker.poll()}
        assert results[hanging.id].cancelled and results[after.id].value == "next job ran"
    finally:
        release.set()
        worker.shutdown()


def test_a_read_past_its_time_limit_stops_with_a_message(tree):
    folder = StudiesFolder(tree["root"])
    release = threading.Event()
    start = time.monotonic()
    with pytest.raises(ImageReadError, match="took longer than 0 s and was stopped"):
        folder.run_bounded(lambda stop: release.wait(60), None, 0.2, "Reading 'head.nii.gz'")
    assert time.monotonic() - start < 2
    release.set()


def test_the_command_line_fixes_the_folder(tree, tmp_path):
    root, key = studies_from_command_line(str(tree["root"] / "patient 2" / "brain.nrrd"), None)
    assert (root, key) == (tree["root"] / "patient 2", "brain.nrrd")
    assert studies_from_command_line(str(tree["root"] / "mixed"), tree["root"]) == (tree["root"], "mixed")
    assert studies_from_command_line(None, tree["root"]) == (tree["root"], None)
    with pytest.raises(InteractiveAdaptError, match="--studies FOLDER"):
        studies_from_command_line(None, None)
    with pytest.raises(InteractiveAdaptError, match="is not inside the studies folder"):
        studies_from_command_line(str(tree["root"] / "head.nii.gz"), tree["root"] / "patient 2")
    with pytest.raises(InteractiveAdaptError, match="does not exist"):
        studies_from_command_line(str(tmp_path / "missing.nii.gz"), None)
