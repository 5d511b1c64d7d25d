"""The page's list of studies: what the studies folder holds (studies.py), the study and DICOM series
chosen in it, and the worker jobs that list the folder and read a study, both cancellable and bounded.

Page state: `studies` (entries {id, label}; the id is the study's name relative to the folder),
`study_id`, `series` (the chosen DICOM folder's series when it has several: {uid, label}), `series_uid`
and `studies_note` (what the last listing found, or why it stopped early). Every message for the page
goes through `StudiesFolder.public`: no path of the server outside the folder's own names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from interactive_adapt_web.studies import StudiesFolder, Study, StudyListing
from interactive_adapt_web.study_files import series_label
from InteractiveAdaptLib.errors import InteractiveAdaptError
from InteractiveAdaptLib.io.volumes import Volume

LIST_JOB = "Listing the studies"


class StudyList:
    """Lists `folder` on `worker` at once and on ctrl.refresh_studies; ctrl.select_study picks a study."""

    def __init__(
        self,
        server: Any,
        folder: StudiesFolder,
        worker: Any,
        on_status: Callable[[str], None],
        on_error: Callable[[BaseException, str], None],
        emit: Callable[..., None] = lambda event, **fields: None,
    ) -> None:
        self.state, self.folder, self.worker = server.state, folder, worker
        self._status, self._error, self._emit = on_status, on_error, emit
        self._studies: dict[str, Study] = {}
        server.controller.select_study = self.select
        server.controller.refresh_studies = self.refresh
        self.state.studies_folder = folder.root.name
        self.refresh()

    def refresh(self) -> None:
        """List the folder again (on the worker)."""

        def listed(result: Any) -> None:
            if self._failed(result, "Listing the studies cancelled."):
                return
            self.show(result.value)

        seconds = self.folder.limits.list_seconds + 5  # the listing stops itself first, with its note
        self.worker.submit(
            lambda cancel_event: self.folder.run_bounded(
                self.folder.list_studies, cancel_event, seconds, "Listing the studies folder"
            ),
            description=LIST_JOB,
            on_done=listed,
            pass_cancel_event=True,
        )

    def show(self, listing: StudyListing) -> None:
        self._studies = {study.key: study for study in listing.studies}
        self.state.studies = [{"id": s.key, "label": s.label} for s in listing.studies]
        count = len(listing.studies)
        found = f"{count} stud{'y' if count == 1 else 'ies'} in '{self.folder.root.name}'"
        self.state.studies_note = f"{found}: {listing.note}" if listing.note else f"{found}."
        self.select(self.state.study_id if self.state.study_id in self._studies else None)
        self._emit("studies", keys=list(self._studies), note=listing.note)

    def select(self, key: Any) -> None:
        """Make `key` the chosen study; a DICOM folder with several series offers them to choose from."""
        study = self._studies.get(key) if isinstance(key, str) else None
        self.state.study_id = study.key if study else None
        series = study.series if study else ()
        self.state.series = (
            [{"uid": s.uid, "label": series_label(s)} for s in series] if len(series) > 1 else []
        )
        if self.state.series_uid not in [s.uid for s in series]:
            self.state.series_uid = None

    def open(self, key: Any, series_uid: Any, on_opened: Callable[[Volume, str], None]) -> None:
        """Read study `key` (series `series_uid` of a DICOM folder) on the worker; `on_opened(volume,
        name)` then runs on the page's loop. A key that is not a study of the folder is refused here,
        before anything is read."""
        key = key if key is not None else self.state.study_id
        if not key:
            return self._status("Choose a study in the list first.")
        series_uid = series_uid if isinstance(series_uid, str) and series_uid else None
        try:
            self.folder.locate(key)
        except InteractiveAdaptError as error:
            return self._status(self.folder.public(str(error)))
        self.select(key)
        self.state.study_id, self.state.series_uid = key, series_uid  # also before the first listing came
        name = Study(key).name

        def opened(result: Any) -> None:
            if not self._failed(result, "Opening cancelled."):
                on_opened(result.value, name)

        def read(cancel_event: threading.Event) -> Volume:
            return self.folder.run_bounded(
                lambda stop: self.folder.read(key, series_uid, stop),
                cancel_event,
                self.folder.limits.read_seconds,
                f"Reading '{name}'",
            )

        self.worker.submit(read, description=f"Reading {name}", on_done=opened, pass_cancel_event=True)

    def _failed(self, result: Any, cancelled: str) -> bool:
        """Say on the page why a job gave no value (cancelled, or failed); False when it has one."""
        if result.cancelled:
            self._status(cancelled)
        elif isinstance(result.error, InteractiveAdaptError):
            self._status(self.folder.public(str(result.error)))
        elif result.error is not None:
            self._error(result.error, result.traceback)  # the log has the details, the page a sentence
        return result.cancelled or result.error is not None
