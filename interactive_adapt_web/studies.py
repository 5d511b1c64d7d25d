"""The studies the web page may open: the volume files and DICOM series of one folder fixed at start.

The page never names a path of the server: it picks a study from the list this module makes, by its
name relative to the folder (`Study.key`), and `StudiesFolder.locate` refuses any name that leaves the
folder (`..`, an absolute path, a symbolic link to elsewhere) or that is not a regular file or a folder
(a FIFO, a socket or a device is never opened). Only regular files that were checked this way are read
(study_files.py): a DICOM folder's series are made from its checked files (not by GDCM, which would
open everything in the folder), and a NIfTI or NRRD file must be self-contained (a detached NRRD header
could name any file of the server).

Listing and reading are bounded: the listing stops after `Limits.max_files` entries or
`Limits.list_seconds`, a read after `Limits.read_seconds`, and both stop at once when their job is
cancelled (`run_bounded`: the worker is free again even if a read in progress cannot be interrupted).
Messages for the page go through `StudiesFolder.public`, which keeps only names relative to the folder.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from interactive_adapt_web.study_files import (
    VOLUME_SUFFIXES,
    Budget,
    StopListing,
    check_self_contained,
    choose_series,
    dicom_series,
)
from InteractiveAdaptLib.app.worker import JobCancelled
from InteractiveAdaptLib.errors import ImageReadError, InteractiveAdaptError
from InteractiveAdaptLib.io.dicom_reading import SeriesInfo, read_dicom_series
from InteractiveAdaptLib.io.volume_checks import check_not_label_map
from InteractiveAdaptLib.io.volumes import Volume, read_volume, volume_from_sitk


@dataclass(frozen=True)
class Limits:
    """How much one listing or one read may take before it stops with a message."""

    max_files: int = 20_000  # entries looked at (files and folders)
    list_seconds: float = 30.0
    read_seconds: float = 300.0


@dataclass(frozen=True)
class Study:
    """A volume file, or a folder holding DICOM series, of the studies folder."""

    key: str  # the name relative to the studies folder ('/'-separated; '.' for the folder itself)
    series: tuple[SeriesInfo, ...] = field(default=(), repr=False)  # a DICOM folder's series

    @property
    def dicom(self) -> bool:
        return bool(self.series)

    @property
    def name(self) -> str:
        """The study's name in the scene: the file name without its extension, or the folder's name."""
        name = PurePosixPath(self.key).name
        for suffix in VOLUME_SUFFIXES:
            name = name.removesuffix(suffix)
        return name or self.key

    @property
    def label(self) -> str:
        """What the page's list shows."""
        if not self.dicom:
            return self.key
        where = "(this folder)" if self.key == "." else f"{self.key}/"
        if len(self.series) > 1:
            return f"{where}  ·  DICOM, {len(self.series)} series"
        only = self.series[0]
        description = f"'{only.description}'" if only.description else "no description"
        return f"{where}  ·  DICOM, {description}, {only.number_of_files} files"


@dataclass
class StudyListing:
    """What a listing found, and a note when it had to stop early."""

    studies: list[Study]
    note: str = ""


class StudiesFolder:
    """The folder whose studies the page may open; nothing outside it is ever read."""

    def __init__(self, root: str | Path, limits: Limits | None = None) -> None:
        given = Path(root)
        self.root = given.resolve()
        if not self.root.is_dir():
            raise InteractiveAdaptError(f"The studies folder '{given}' is not a folder. Check the path.")
        self.limits = limits or Limits()
        self._given = str(given.absolute())
        self._one_read = threading.Lock()  # one read or listing at a time, even an abandoned one

    # ------------------------------------------------------------ what the page may name

    def locate(self, key: Any) -> Path:
        """The real path of study `key` (a name relative to the folder, as the list gives it).

        Raises:
            InteractiveAdaptError: the name leaves the folder (`..`, absolute, a link to elsewhere), does
                not exist (any more), or is neither a regular file nor a folder. Nothing is opened, and
                the message is the same whether or not something exists outside the folder.
        """
        text = key if isinstance(key, str) else ""
        relative = PurePosixPath(text.replace("\\", "/"))
        name = relative.name or "That study"
        refused = InteractiveAdaptError(
            f"'{name}' cannot be opened: it is not among the studies of the studies folder (moved or "
            "deleted?). Press Refresh and choose one from the list."
        )
        if not text or "\0" in text or len(text) > 4096 or relative.is_absolute() or ".." in relative.parts:
            raise refused
        try:
            path = self.root.joinpath(*relative.parts).resolve(strict=True)
            mode = path.stat().st_mode  # the resolved path holds no link: this is the file itself
        except (OSError, RuntimeError):
            raise refused from None
        if not path.is_relative_to(self.root):
            raise refused
        if stat.S_ISDIR(mode) or (stat.S_ISREG(mode) and path.name.lower().endswith(VOLUME_SUFFIXES)):
            return path
        raise refused

    def key_of(self, path: str | Path) -> str:
        """The key of a path inside the folder (the study given on the command line)."""
        return Path(path).resolve().relative_to(self.root).as_posix()

    def public(self, text: str) -> str:
        """`text` for the page: paths inside the folder as their relative names, any other path as its
        last name only."""
        for prefix in {str(self.root), self._given}:
            text = text.replace(prefix + os.sep, "").replace(prefix, self.root.name)
        return re.sub(r"(?<![\w.~])/[^\s'\"]+", lambda m: m.group().rstrip("/").rsplit("/", 1)[-1], text)

    # ------------------------------------------------------------ listing

    def list_studies(self, stop: threading.Event | None = None) -> StudyListing:
        """Every volume file and DICOM folder under the folder (links to folders are not followed), in
        name order; stops early, with a note, at the limits or when `stop` is set."""
        budget = Budget(self.limits.max_files, self.limits.list_seconds, stop)
        studies: list[Study] = []
        note = ""
        try:
            folders = [self.root]
            while folders:
                folder = folders.pop(0)
                files, subfolders = self._entries(folder, budget)
                folders = sorted(subfolders) + folders  # depth first, in name order
                key = folder.relative_to(self.root).as_posix()
                for path, _ in files:
                    if path.name.lower().endswith(VOLUME_SUFFIXES):
                        studies.append(Study(path.relative_to(self.root).as_posix()))
                series = dicom_series(files, budget)
                if series:
                    studies.append(Study(key, tuple(series)))
        except StopListing as reason:
            if stop is not None and stop.is_set():
                raise JobCancelled from None
            note = str(reason)
        studies.sort(key=lambda s: s.key)
        return StudyListing(studies, note)

    def _entries(self, folder: Path, budget: Budget) -> tuple[list[tuple[Path, Path]], list[Path]]:
        """The regular files of `folder` (with their real paths, inside the studies folder) and its
        subfolders; hidden entries, links that leave the folder and special files are left out unread."""
        files, folders = [], []
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return [], []
        for entry in entries:
            budget.step()
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_symlink():
                    real = Path(entry.path).resolve(strict=True)
                    if real.is_relative_to(self.root) and stat.S_ISREG(real.stat().st_mode):
                        files.append((Path(entry.path), real))
                elif entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    files.append((Path(entry.path), Path(entry.path)))
            except (OSError, RuntimeError):
                continue
        return files, folders

    # ------------------------------------------------------------ reading

    def read(self, key: Any, series_uid: str | None = None, stop: threading.Event | None = None) -> Volume:
        """The volume of study `key` (for a DICOM folder, its series `series_uid`, or its only one).

        Raises:
            ImageReadError: not one 3D grey-scale MRI (a label map included), too large for this computer
                (refused from a file's header before its voxels are read), or unreadable.
        """
        path = self.locate(key)
        name = path.name if path != self.root else self.root.name
        try:
            if path.is_dir():
                budget = Budget(self.limits.max_files, self.limits.read_seconds, stop)
                try:
                    series = dicom_series(self._entries(path, budget)[0], budget)
                except StopListing as reason:
                    raise ImageReadError(f"'{name}' could not be read: {reason}") from None
                volume = volume_from_sitk(
                    read_dicom_series(choose_series(series, series_uid, name)), f"'{name}'"
                )
                check_not_label_map(volume.array, f"'{name}'")
                return volume
            check_self_contained(path)
            volume = read_volume(path)
            check_not_label_map(volume.array, f"'{name}'", path)  # an atlas or a segmentation
            return volume
        except OSError as exc:
            raise ImageReadError(
                f"'{name}' could not be read ({exc.strerror or type(exc).__name__})."
            ) from None

    def run_bounded(
        self, fn: Callable[[threading.Event], Any], cancel: threading.Event | None, seconds: float, what: str
    ) -> Any:
        """`fn(stop)` on a thread of its own, waited for here until it ends, `cancel` is set (raises
        JobCancelled) or `seconds` have passed (raises ImageReadError): either way the caller is free at
        once, `stop` asks `fn` to end early and its late result is dropped. One runs at a time."""
        stop = threading.Event()
        outcome: dict[str, Any] = {}

        def run() -> None:
            with self._one_read:
                if stop.is_set():
                    return
                try:
                    outcome["value"] = fn(stop)
                except BaseException as exc:  # handed to the caller below
                    outcome["error"] = exc

        thread = threading.Thread(target=run, name="InteractiveAdapt study reader", daemon=True)
        thread.start()
        deadline = time.monotonic() + seconds
        while thread.is_alive():
            thread.join(0.05)
            if cancel is not None and cancel.is_set():
                stop.set()
                raise JobCancelled
            if thread.is_alive() and time.monotonic() > deadline:
                stop.set()
                raise ImageReadError(
                    f"{what} took longer than {seconds:.0f} s and was stopped. Choose a smaller study, or "
                    "check that the studies folder is on a disk that answers."
                )
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")


def studies_from_command_line(study: str | None, studies: str | Path | None) -> tuple[Path, str | None]:
    """The studies folder and the key of the study to open at start, from `serve`'s arguments: the
    folder is `--studies`, else the folder that holds the study; without a study `--studies` is needed."""
    if study is not None:
        path = Path(study)
        if not path.exists():
            raise InteractiveAdaptError(f"'{study}' does not exist. Check the path and try again.")
        root = Path(studies).resolve() if studies is not None else path.resolve().parent
        if not path.resolve().is_relative_to(root):
            raise InteractiveAdaptError(
                f"'{study}' is not inside the studies folder '{studies}': the page opens only the studies "
                "of that folder. Give a study inside it, or leave --studies out."
            )
        return root, path.resolve().relative_to(root).as_posix()
    if studies is None:
        raise InteractiveAdaptError(
            "Say which studies the page may open: --studies FOLDER (the volume files and DICOM folders "
            "inside it), or the study to open at start."
        )
    if not Path(studies).is_dir():
        raise InteractiveAdaptError(f"The studies folder '{studies}' is not a folder. Check the path.")
    return Path(studies).resolve(), None
