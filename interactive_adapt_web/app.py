"""The web front end's wiring: page events -> the module's `Workflow`, worker results -> page state.

One process serves one user: one MRML scene (trame-slicer's `SlicerApp`) whose axial, coronal and
sagittal slice views stream to the page, one `Workflow` on that scene (the same class the Slicer
module drives), one worker thread for everything that takes time (reading a study, the network,
learning, rollback). The asyncio loop that streams the views only takes the worker's finished results
(`Worker.poll`, a few ms each), so compute never blocks it.

`event_log`, when given, receives one JSON line per thing a test or benchmark needs to see from the
Python side (ready, study opened, segment voxels after each result, status lines, saved versions).
The pump, failures in it and the server's end (lifetime, Ctrl+C) live in lifecycle.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trame_slicer import module as trame_slicer_module
from trame_slicer.core import LayoutManager, SlicerApp
from trame_slicer.rca_view import register_rca_factories
from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition
from wslink.websocket import LinkProtocol

from interactive_adapt_web.event_log import EventLog
from interactive_adapt_web.lifecycle import PageWorker, ServerLife, unexpected_text
from interactive_adapt_web.page import build_page
from interactive_adapt_web.studies import StudiesFolder
from interactive_adapt_web.study_list import StudyList
from interactive_adapt_web.view_priority import FramesFirst, ViewPriority
from InteractiveAdaptLib.app import settings as prefs
from InteractiveAdaptLib.errors import InteractiveAdaptError
from InteractiveAdaptLib.io.volume_checks import fill_non_numbers
from InteractiveAdaptLib.model.location import find_base_model_dir
from InteractiveAdaptLib.mrml import COMMON_STRUCTURES, Workflow
from InteractiveAdaptLib.mrml.volume import add_volume_node

log = logging.getLogger(__name__)

LAYOUT_ID = "InteractiveAdapt"
STILL_QUALITY = 90  # JPEG quality of the views' frames (trame-rca's still quality)


class _ClientCounter(LinkProtocol):
    """Tells `count` +1 when a page's connection opens and -1 when it closes, however it closes."""

    def __init__(self, count: Any) -> None:
        super().__init__()
        self._count = count

    def onConnect(self, request: Any, client_id: str) -> None:  # noqa: N802 (wslink's name)
        self._count(1)

    def onClose(self, client_id: str) -> None:  # noqa: N802 (wslink's name)
        self._count(-1)


class WebApp:
    """The page's behaviour on one scene; `server` is a trame server (vue3 client)."""

    def __init__(
        self,
        server: Any,
        settings: prefs.ModuleSettings,
        store_root: str | Path,
        studies: StudiesFolder | str | Path,
        model_dir: str | Path | None = None,
        event_log: str | Path | None = None,
        exit_after_s: float | None = None,
        view_priority: bool = True,
        test_faults: Sequence[str] = (),
    ) -> None:
        self.server, self.state, self.ctrl = server, server.state, server.controller
        self.settings = settings
        self.store_root = Path(store_root)
        self.model_dir = Path(model_dir) if model_dir else find_base_model_dir()
        self.log = EventLog(event_log)
        self.life = ServerLife(self, exit_after_s)
        self._pending_action: tuple[Any, tuple] | None = None
        self._answer: bool | None = None
        self._clients = 0
        self._render_start: float | None = None

        server.enable_module(trame_slicer_module)
        self.slicer = SlicerApp()
        # One quality for every frame: with two, each change was drawn twice (a quick frame, then the
        # same one again sharper), and the views' drawing is what delays the mask on screen.
        register_rca_factories(
            self.slicer.view_manager,
            server,
            slice_view_ui_f=lambda *a: None,
            interactive_quality=STILL_QUALITY,
        )
        self.layout_manager = LayoutManager(self.slicer.scene, self.slicer.view_manager, server)
        # Axial large on the left, coronal above sagittal on the right.
        right = [ViewLayoutDefinition.coronal_view(), ViewLayoutDefinition.sagittal_view()]
        views = [ViewLayoutDefinition.axial_view(), Layout(LayoutDirection.Vertical, right)]
        self.layout_manager.register_layout(LAYOUT_ID, Layout(LayoutDirection.Horizontal, views))
        self.layout_manager.set_layout(LAYOUT_ID)

        self.worker = PageWorker(lambda error: self.set_status(unexpected_text(error)), test_faults)
        folder = studies if isinstance(studies, StudiesFolder) else StudiesFolder(studies)
        self.study_list = StudyList(server, folder, self.worker, self.set_status, self._on_error, self.emit)
        # Off only to measure what it gains (bench-web): then every view draws every change at once.
        self.priority = (
            ViewPriority(
                self.slice_views(), lambda: self.workflow.clicks, lambda: self.workflow.placing is not None
            )
            if view_priority
            else None
        )
        self.workflow = Workflow(
            self.slicer.scene,
            FramesFirst(self.worker, self.priority) if self.priority else self.worker,
            self._open_session,
            settings,
            ask=self._ask,
            on_status=self.set_status,
            on_error=self._on_error,
        )
        self.state.common_structures = list(COMMON_STRUCTURES)
        self.state.trame__title = f"InteractiveAdapt: {settings.site}"
        build_page(server, self.layout_manager, f"InteractiveAdapt  ·  site '{settings.site}'")
        for name in (
            "open_study",
            "add_structure",
            "select_structure",
            "place",
            "undo",
            "finish",
            "rollback",
            "cancel",
            "answer",
            "key",
        ):
            self.ctrl[name] = getattr(self, name)
        self.server.trigger("key")(self.key)
        self.ctrl.on_server_ready.add(self._on_ready)
        server.add_protocol_to_configure(self._watch_clients)
        for view in self.slice_views():  # the browser sets the size: keep the image fitted to it
            view.interactor().AddObserver("WindowResizeEvent", lambda *a, v=view: self._resized(v))
            if self.log.on:  # how long each frame takes to draw (the benchmark's analysis)
                window = view.render_window()
                window.AddObserver(
                    "StartEvent", lambda *a: setattr(self, "_render_start", time.perf_counter())
                )
                window.AddObserver("EndEvent", lambda w, e: self._rendered(w))
        self.workflow.preload_session(on_ready=self.refresh)

    # ------------------------------------------------------------ actions (page events)

    def open_study(self, key: str | None = None, series_uid: str | None = None) -> None:
        """Read the study chosen in the list (a file or DICOM series of the studies folder: study_list.py)
        on the worker, then make it the patient: its own segmentation, shown in the three views."""
        show = self._show_study
        self.study_list.open(key, series_uid, lambda volume, name: self._guarded(show, volume, name))
        self.refresh_busy()

    def add_structure(self, name: str | None = None) -> None:
        name = name if name is not None else self.state.new_structure
        if self._guarded(self.workflow.add_structure, name or ""):
            self.state.new_structure = ""
            self._prepare_case()
        self.refresh()

    def select_structure(self, segment_id: str) -> None:
        if self._guarded(self.workflow.select_structure, segment_id):
            self._prepare_case()
        self.refresh()

    def place(self, mode: str) -> None:
        """Positive or negative points on the next left clicks; the same button again stops placing."""
        if self.workflow.placing is (mode == "positive"):
            self.workflow.stop_placing()
        else:
            views = [(view.get_view_node(), view.interactor()) for view in self.slice_views()]
            self._guarded(self.workflow.start_placing, mode == "positive", views)
        self.refresh()

    def undo(self) -> None:
        self._guarded(self.workflow.undo)
        if self.log.on:  # an undo may restore the segment at once, without the worker
            self.log.segment(self.workflow)

    def finish(self) -> None:
        self._guarded(self.workflow.finish, bool(self.state.learn), self._finished)
        self.refresh()

    def rollback(self) -> None:
        if self.state.version is None:
            return self.set_status("Choose the version to go back to first.")
        self._guarded(self.workflow.rollback, int(self.state.version), lambda result: self.refresh())

    def cancel(self) -> None:
        self.worker.cancel()

    def key(self, key: str) -> None:
        """P, N and Ctrl+Z, as in the Slicer module."""
        if key == "undo":
            return self.undo()
        if self.workflow.segment_id:
            self.place("positive" if key == "p" else "negative")

    def answer(self, yes: bool) -> None:
        """The user's answer to the question on the page: run the waiting action again with it."""
        action, self._pending_action = self._pending_action, None
        self.state.question = ""
        if action is not None and yes:
            self._answer = True
            try:
                self._guarded(action[0], *action[1])
            finally:
                self._answer = None
        self.refresh()

    # ------------------------------------------------------------ what the page shows

    def refresh(self) -> None:
        """Show the workflow's panel state: structures, profile, versions, clicked slices, the last click."""
        panel, state = self.workflow.panel(on_ready=self.refresh), self.state
        state.structures = [{"id": sid, "name": name} for sid, name in panel.structures]
        state.structure_id = panel.structure_id or None
        state.has_volume = bool(panel.patient)
        state.has_structure = bool(panel.structure_id)
        state.placing = "" if panel.placing is None else ("positive" if panel.placing else "negative")
        state.clicked_slices = panel.clicked_slices_text if panel.structure_id else ""
        state.latency = panel.latency
        state.profile = panel.profile
        state.versions = [{"label": label, "version": version} for label, version in panel.versions]
        if state.version not in [v for _, v in panel.versions]:
            state.version = None

    def set_status(self, text: str) -> None:
        """The workflow's news: the status line, and the panel it may have changed."""
        self.state.status = text
        panel = self.workflow.panel(engine_installed=False)  # no store reads on every click
        self.state.clicked_slices = panel.clicked_slices_text if panel.structure_id else ""
        self.state.latency = panel.latency
        self.emit("status", text=text)
        if panel.last_click is not None:  # what the click's user waited, for tests and bench-web
            click = panel.last_click
            self.emit("click", slice_ms=round(click.slice_ms, 1), fill_ms=click.fill_ms, clicks=click.clicks)

    def slice_views(self) -> list[Any]:
        return self.slicer.view_manager.get_slice_views()

    def emit(self, event: str, **fields: Any) -> None:
        """One line of the event log (tests and benchmarks read it)."""
        self.log.emit(event, **fields)

    def _show_study(self, volume: Any, name: str) -> None:
        # The voxels that are not numbers (the note says how many) shown as the darkest value, as the
        # engine treats them: one infinite voxel would make the views' window/level show only black.
        node = add_volume_node(self.slicer.scene, fill_non_numbers(volume.array), volume.ijk_to_ras, name)
        if not self.workflow.set_volume(node):  # the user kept the open case
            self.slicer.scene.RemoveNode(node)
            return
        for view in self.slice_views():
            self._resized(view)
        if volume.notes:  # what the user must know about this image (its memory, voxels not numbers)
            self.set_status(" ".join((self.state.status or "", *volume.notes)).strip())
        self.emit("study", name=name, node=node.GetID(), shape=list(volume.array.shape))
        if self.log.on:
            self.log.scene(self.slicer.scene)
        self.refresh()

    def _resized(self, view: Any) -> None:
        """Fit the image to the view's new size; the event log gets the view's pixel -> RAS matrix."""
        if self.workflow.volume is None:
            return
        view.fit_view_to_content()
        view.render()
        node = view.get_view_node()
        xy_to_ras = [[node.GetXYToRAS().GetElement(r, c) for c in range(4)] for r in range(4)]
        size = list(view.render_window().GetSize())
        self.emit("view", name=node.GetName(), size=size, xy_to_ras=xy_to_ras)

    def _rendered(self, window: Any) -> None:
        start = self._render_start
        if start is not None:
            self.emit(
                "render", ms=round((time.perf_counter() - start) * 1000, 1), size=list(window.GetSize())
            )

    def _finished(self, result: Any) -> None:
        summary = result.value
        self.emit("finished", version=getattr(summary, "version", None), error=repr(result.error))
        self.refresh()

    def _prepare_case(self) -> None:
        """Start the case now (the image is prepared on the worker, seconds for a whole head) so that
        the first click does not wait for it."""
        # Only with the network loaded: opening the session here would hold up the views' event loop
        # (while it loads, the case starts with the first click, as in the module).
        if self.workflow.segment_id and not self.workflow.clicks and self.workflow.session_ready:
            self._guarded(self.workflow.prepare_case)

    def _open_session(self, settings: prefs.ModuleSettings) -> Any:
        return prefs.open_session(settings, self.store_root, self.model_dir)

    def _ask(self, question: str) -> bool:
        """A question from the workflow: the answer given on the page, else ask it there (the action
        runs again on 'Drop them')."""
        if self._answer is not None:
            return self._answer
        self.state.question = question
        return False

    def _guarded(self, action: Any, *args: Any) -> Any:
        """Run a workflow action; a clinician's error goes to the status line, a question to the page."""
        try:
            done = action(*args)
        except InteractiveAdaptError as error:
            self.set_status(str(error))
            return False
        if self.state.question and self._pending_action is None:
            self._pending_action = (action, args)
        return done

    def _on_error(self, error: BaseException, traceback: str = "") -> None:
        if isinstance(error, InteractiveAdaptError):
            return self.set_status(str(error))
        log.error("Unexpected failure: %r\n%s", error, traceback)
        self.set_status(unexpected_text(error))

    def _watch_clients(self, protocol: Any) -> None:
        """Count the page's connections (one per tab) on the server side: trame's client_exited comes
        from the closing tab itself and is lost when the browser quits, crashes or loses the network."""
        protocol.registerLinkProtocol(_ClientCounter(self._count_clients))

    def _count_clients(self, step: int) -> None:
        self._clients = max(0, self._clients + step)
        with self.state:
            self.state.clients = max(1, self._clients)

    def refresh_busy(self) -> None:
        busy = self.worker.busy
        if busy != self.state.busy:
            self.state.busy = busy
        if busy:  # trame sends a state value only when it changed
            self.state.busy_text = self.worker.current_description or ""

    def _on_ready(self, **_: Any) -> None:
        self.emit("ready")
        self.life.start()

    def close(self) -> None:
        self.workflow.close()
        self.worker.shutdown(cancel_pending=True, timeout=10)
        self.log.close()
