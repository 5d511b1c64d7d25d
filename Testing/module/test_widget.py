"""The module's own widget (InteractiveAdapt/InteractiveAdapt.py, unmodified) under real Qt (PySide6,
offscreen) on a real MRML scene with real offscreen slice views and mouse clicks; only what the Slicer
application provides is stood in for (Testing/module/slicer_app.py says what and how)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from offscreen_views import mouse_click, offscreen_app, ras_to_view_xy, show_in_views
from slicer_app import load_module_file, slicer_application

from InteractiveAdaptLib.mrml.volume import add_volume_node

pytestmark = [pytest.mark.slicer]


def _head() -> tuple[np.ndarray, np.ndarray]:
    """A small synthetic head: a bright ball in darker tissue, 1 x 1 x 2 mm."""
    k, j, i = np.mgrid[:24, :48, :48]
    ball = ((k - 12) * 2) ** 2 + (j - 24) ** 2 + (i - 24) ** 2 < 12**2
    image = (np.where(ball, 180.0, 60.0) + np.random.default_rng(0).normal(0, 3, ball.shape)).astype(
        np.float32
    )
    return image, np.diag([1.0, 1.0, 2.0, 1.0])


class Module:
    """The module as Slicer runs it: the widget's setup, enter and exit, the Qt event loop between."""

    def __init__(self, tmp_path, main_window: bool = True) -> None:
        self.app, self.views = offscreen_app("axial", "sagittal")
        self.scene = self.app.scene
        image, ijk_to_ras = _head()
        self.volume = add_volume_node(self.scene, image, ijk_to_ras, "Patient A")
        show_in_views(self.views.values(), self.volume)
        self.names = {"Red": self.views["axial"], "Yellow": self.views["sagittal"]}
        self.tmp_path = tmp_path
        self.main_window = main_window

    def __enter__(self):
        settings = self.tmp_path / "settings" / "Slicer.ini"
        settings.parent.mkdir(parents=True, exist_ok=True)
        self._stand_ins = slicer_application(self.scene, self.names if self.main_window else None, settings)
        self.slicer = self._stand_ins.__enter__()
        self.file = load_module_file()
        self.panel = self.slicer.qt.QWidget()
        self.panel.isEntered = False
        self.widget = self.file.InteractiveAdaptWidget(self.panel)
        self.widget.setup()
        self.ui = self.widget.ui
        return self

    def __exit__(self, *exc):
        try:
            self.widget.cleanup()
        finally:
            self._stand_ins.__exit__(*exc)

    def enter(self) -> None:
        self.panel.isEntered = True
        self.widget.enter()

    def exit(self) -> None:
        self.panel.isEntered = False
        self.widget.exit()

    def run(self, seconds: float = 0.2, until=None) -> None:
        """Qt's event loop for `seconds` (or until `until()` is true, 60 s at most)."""
        deadline = time.monotonic() + (60 if until else seconds)
        while time.monotonic() < deadline:
            self.slicer.app.processEvents()
            if until is not None and until():
                return
            time.sleep(0.005)
        assert until is None, "the module did not get there in time"


def test_the_module_opens_and_closes(tmp_path):
    with Module(tmp_path) as m:
        m.enter()
        m.run(0.3)
        m.exit()


def _ball_centre_ras(m) -> np.ndarray:
    from InteractiveAdaptLib.mrml.volume import volume_geometry

    return volume_geometry(m.volume).kji_to_world(np.array([12.0, 24.0, 24.0]))


def _click_the_ball(m) -> None:
    """A real left click on the ball's centre in the Red view; back once its work is done."""
    red = m.views["axial"]
    red.get_view_node().JumpSliceByOffsetting(*_ball_centre_ras(m))
    red.render()
    clicks = m.widget.workflow.clicks
    mouse_click(red, ras_to_view_xy(red, _ball_centre_ras(m)))
    m.run(until=lambda: m.widget.workflow.clicks == clicks + 1 and not m.widget.logic.worker.busy)


def _open_a_case(m, *structures: str) -> None:
    """The module entered, the network loaded, the structures added (the last is segmented) and one
    positive click on the ball: a case open with one click."""
    m.enter()
    m.run(until=lambda: m.widget.workflow.session_ready)
    for name in structures or ("Ball",):
        _add_structure(m, name)
    m.ui.positivePointButton.click()
    _click_the_ball(m)


def _add_structure(m, name: str = "Ball") -> None:
    m.ui.newStructureComboBox.setCurrentText(name)
    m.ui.addStructureButton.click()
    assert m.widget.workflow.structure_name == name


def test_placing_ends_with_the_module_and_leaves_other_modules_their_clicks(tmp_path):
    """Leaving the module (e.g. for the Segment Editor, whose effects observe the views at priority 1.0)
    stops placing: a left click then belongs to the other module alone, and adds no case click."""
    with Module(tmp_path) as m:
        m.enter()
        _add_structure(m)
        m.ui.positivePointButton.click()
        assert m.widget.workflow.placing is True and m.ui.positivePointButton.isChecked()
        red, presses = m.views["axial"], []
        red.get_view_node().JumpSliceByOffsetting(*_ball_centre_ras(m))
        red.render()
        red.interactor().AddObserver("LeftButtonPressEvent", lambda *a: presses.append("effect"), 1.0)
        m.exit()
        mouse_click(red, ras_to_view_xy(red, _ball_centre_ras(m)))
        m.run(0.2)
        positive, negative = m.widget.workflow.positive, m.widget.workflow.negative
        assert positive.GetNumberOfControlPoints() == negative.GetNumberOfControlPoints() == 0
        assert presses == ["effect"] and m.widget.workflow.placing is None
        assert not m.ui.positivePointButton.isChecked()
        m.enter()  # back in the module: placing starts again only when asked
        mouse_click(red, ras_to_view_xy(red, _ball_centre_ras(m)))
        assert positive.GetNumberOfControlPoints() == 0


WORKER = "InteractiveAdapt worker"


def test_the_worker_thread_never_calls_qt_or_slicer_util(tmp_path):
    """Qt objects (the cursor, processEvents) belong to the main thread: the network loads on the worker
    when the module opens, and clicks and Finish run there too."""
    touched: list[str] = []

    def watch(frame, event, arg):
        if threading.current_thread().name != WORKER:
            return
        if event == "c_call" and "PySide6" in str(
            getattr(arg, "__module__", "") or type(getattr(arg, "__self__", None))
        ):
            touched.append(f"{arg!r}")
        elif event == "call" and frame.f_globals.get("__name__") in ("slicer.util", "qt"):
            touched.append(f"{frame.f_globals['__name__']}.{frame.f_code.co_name}")

    threading.setprofile(watch)
    try:
        with Module(tmp_path) as m:
            _open_a_case(m)
            m.ui.finishCaseButton.click()
            # "not busy" comes with the result in the queue; the status line waits for the next tick
            m.run(until=lambda: "Case finished" in m.ui.statusLabel.text())
            assert "Case finished" in m.ui.statusLabel.text()
    finally:
        threading.setprofile(None)
    assert touched == []


def test_without_monai_entering_offers_the_install_instead_of_failing(tmp_path):
    """PyTorch from another extension, MONAI missing: the module neither loads the network (it would fail
    with 'unexpected') nor shows an error; the panel says versions show once the packages are in."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("torch>=2.10\nmonai-that-is-not-installed>=1.5\n")
    with Module(tmp_path) as m:
        m.widget.logic.dependencies.requirements_path = requirements
        m.enter()
        _add_structure(m)
        m.run(0.3)
        assert not m.widget.workflow.session_ready and not m.widget.logic.worker.busy
        assert m.slicer.dialogs.shown == []
        assert m.ui.profileLabel.text().startswith("Versions show once")


def test_entering_changes_nothing_in_the_scene_and_a_saved_structure_is_taken_up(tmp_path):
    """Entering the module neither creates a segmentation nor turns the views; a scene that remembers the
    patient and structure (saved, or imported while the module is open) opens on that structure."""
    from InteractiveAdaptLib import mrml

    module = Module(tmp_path)
    red = module.views["axial"].get_view_node()
    before = [red.GetSliceToRAS().GetElement(r, c) for r in range(4) for c in range(4)]
    with module as m:
        m.enter()
        m.run(0.2)
        assert m.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0
        assert [red.GetSliceToRAS().GetElement(r, c) for r in range(4) for c in range(4)] == before
        m.exit()
        m.widget.cleanup()  # as Slicer closes; the saved scene is opened in a new Slicer below
        segmentation = mrml.create_segmentation(m.scene, m.volume)
        segmentation.GetSegmentation().AddEmptySegment("", "Left thing")
        right = segmentation.GetSegmentation().AddEmptySegment("", "Right thing")
        node = m.widget.logic.getParameterNode()
        node.SetParameter("segmentID", right)
        node.SetNodeReferenceID("inputVolume", m.volume.GetID())
        again = m.file.InteractiveAdaptWidget(m.panel)
        again.setup()
        m.widget, m.ui = again, again.ui
        m.enter()
        assert again.workflow.segment_id == right and again.workflow.volume is m.volume
        assert m.ui.structureComboBox.currentText() == "Right thing"
        # a scene imported while the module is open: its patient and structure are taken up
        m.scene.StartState(m.scene.ImportState)
        other = add_volume_node(m.scene, _head()[0], _head()[1], "Patient B")
        seg_b = mrml.create_segmentation(m.scene, other)
        chosen = seg_b.GetSegmentation().AddEmptySegment("", "Imported thing")
        node.SetNodeReferenceID("inputVolume", other.GetID())
        node.SetParameter("segmentID", chosen)
        m.scene.EndState(m.scene.ImportState)
        m.run(0.1)
        assert again.workflow.volume is other and again.workflow.segment_id == chosen


def test_failing_jobs_show_one_dialog_at_a_time_and_results_are_never_applied_re_entrantly(tmp_path):
    """An unexpected failure opens a dialog; its own event loop runs the module's timer, whose results
    must not be applied inside it (nor stack more dialogs): later failures wait for the first to close."""
    with Module(tmp_path) as m:
        m.enter()
        worker = m.widget.logic.worker
        depth, deepest = [0], [0]
        tick = worker.tick

        def counted(*args, **kwargs):
            depth[0] += 1
            deepest[0] = max(deepest[0], depth[0])
            try:
                return tick(*args, **kwargs)
            finally:
                depth[0] -= 1

        worker.tick = counted

        def boom():
            raise ZeroDivisionError("in a job")

        for _ in range(3):
            worker.submit(boom, on_done=lambda result: m.widget.showError(result.error, result.traceback))
        m.run(until=lambda: not worker.busy and len(m.slicer.dialogs.shown) >= 1)
        m.run(0.5)
        assert deepest[0] == 1, "results were applied inside a dialog's event loop"
        assert m.slicer.dialogs.deepest == 1 and len(m.slicer.dialogs.shown) == 1
        assert "ZeroDivisionError" in m.ui.statusLabel.text()


def test_the_module_runs_without_a_main_window(tmp_path):
    """Slicer's generic 'no main window' tests: no layout manager, no main window."""
    with Module(tmp_path, main_window=False) as m:
        m.enter()
        m.run(0.1)
        m.exit()
    assert not m.widget.logic.worker.alive


def test_the_timer_rests_while_the_module_is_hidden_and_idle(tmp_path):
    with Module(tmp_path) as m:
        m.enter()
        assert m.widget.timer.isActive()
        m.run(until=lambda: not m.widget.logic.worker.busy)
        m.exit()
        m.run(0.2)
        assert not m.widget.timer.isActive()
        done = []
        m.widget.logic.worker.submit(lambda: "later", on_done=done.append)  # e.g. an export still running
        assert m.widget.timer.isActive()
        m.run(until=lambda: done)
        m.run(0.2)
        assert not m.widget.timer.isActive()
        m.enter()
        assert m.widget.timer.isActive()


def test_closing_stops_learning_at_once_and_reload_reads_the_library_afresh(tmp_path):
    """Slicer closing (or the developer's Reload) while Finish learns: the learning stops between its
    steps and nothing half-learned is saved; Reload runs the module file again with a fresh library."""
    import sys
    from pathlib import Path

    library = {
        k: v
        for k, v in sys.modules.items()
        if k == "InteractiveAdaptLib" or k.startswith("InteractiveAdaptLib.")
    }
    m = Module(tmp_path)
    m.__enter__()
    try:
        _open_a_case(m)
        m.ui.finishCaseButton.click()  # Finish's learning is queued on the worker
        m.widget.cleanup()  # cancels the learning: the worker stops between its steps
        assert not m.widget.logic.worker.alive
        assert list(Path(m.widget.logic.storeRoot).rglob("v??????.pt")) == []  # nothing half-learned saved
        workflow_class = type(m.widget.workflow)
        m.widget.onReload()
        assert not [k for k in sys.modules if k.startswith("InteractiveAdaptLib")]
        again = load_module_file()  # Slicer runs the module file again: its imports read the library
        assert again.mrml.Workflow is not workflow_class
    finally:
        m._stand_ins.__exit__(None, None, None)
        for name in [k for k in sys.modules if k.startswith("InteractiveAdaptLib")]:
            del sys.modules[name]
        sys.modules.update(library)  # the other tests hold the library's classes


@pytest.mark.parametrize("learn", [True, False])
def test_closing_the_scene_asks_before_it_drops_a_case(tmp_path, learn):
    from pathlib import Path

    with Module(tmp_path) as m:
        _open_a_case(m)
        m.slicer.dialogs.answers = [learn]
        m.scene.Clear(0)
        m.run(until=lambda: not m.widget.logic.worker.busy)
        kind, question = m.slicer.dialogs.shown[-1]
        assert kind == "yes/no" and "The scene is closing" in question and "1 click not finished" in question
        saved = list(Path(m.widget.logic.storeRoot).rglob("v??????.pt"))  # weights, not optimiser files
        assert len(saved) == (1 if learn else 0)


def test_a_scene_saved_with_an_open_case_opens_again_on_its_patient_and_structure(tmp_path):
    """Save the scene (files written by the scene's own storage nodes) in the middle of a case, then open
    it in a new Slicer: the module takes up that patient and that structure, not the first one."""
    import slicer

    saved = tmp_path / "saved"
    saved.mkdir()
    with Module(tmp_path / "first") as m:
        _open_a_case(m, "Left thing", "Right thing")  # the case is open, unfinished
        w = m.widget.workflow
        for node, name in ((w.volume, "patient.nrrd"), (w.segmentation, "patient.seg.nrrd")):
            node.AddDefaultStorageNode()
            node.GetStorageNode().SetFileName(str(saved / name))
            assert node.GetStorageNode().WriteData(node)
        m.scene.SetRootDirectory(str(saved))
        m.scene.SetURL(str(saved / "scene.mrml"))
        assert m.scene.Commit()
        right = w.segment_id
    with Module(tmp_path / "second") as again:
        again.scene.Clear(0)
        again.scene.SetURL(str(saved / "scene.mrml"))
        assert again.scene.Import()
        again.enter()
        w = again.widget.workflow
        assert w.volume is not None and w.volume.GetName() == "Patient A"
        assert w.segment_id == right and again.ui.structureComboBox.currentText() == "Right thing"
        assert isinstance(w.segmentation, slicer.vtkMRMLSegmentationNode) and w.clicks == 0
