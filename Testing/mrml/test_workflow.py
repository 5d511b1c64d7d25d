"""The module's workflow (mrml/workflow.py) on a real MRML scene with real MRI volumes: one segmentation
per patient, structures named by the user (each its own profile), nothing dropped without asking,
rejected clicks in the status line, and a cancelled rollback or finish reported as such."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import vtk
from conftest import GEOMETRIES, add_slice_node, add_volume, tilt_slice_node, voxel_ras
from controller_harness import prepare_case_nodes
from threshold_session_double import ThresholdSessionDouble

from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.app.inline_executor import InlineExecutor
from InteractiveAdaptLib.app.worker import Worker
from InteractiveAdaptLib.errors import CaseStateError, ImageReadError, InteractiveAdaptError

TARGET_KJI = (7, 11, 29)


class Panel:
    """What the module's panel shows and answers: the status line, dialogs asked, errors shown."""

    def __init__(self, mri, executor=None, answer=True):
        self.mri = mri
        self.answer = answer
        self.questions: list[str] = []
        self.status: list[str] = []
        self.errors: list[BaseException] = []
        self.sessions: list[ThresholdSessionDouble] = []
        self.views = {v: add_slice_node(mri.scene, v, v) for v in ("Axial", "Coronal", "Sagittal")}
        for name in self.views:  # each view shows a layer stack, as Slicer's layout gives it
            composite = mri.scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
            composite.SetLayoutName(name)
        self.workflow = mrml.Workflow(
            mri.scene,
            executor or InlineExecutor(),
            self._open_session,
            {"site": "Test hospital"},
            ask=self._ask,
            on_status=self.status.append,
            on_error=lambda error, tb: self.errors.append(error),
        )

    def _open_session(self, settings):
        self.sessions.append(ThresholdSessionDouble(disk=True))  # disks: the 3D filling is predictable
        return self.sessions[-1]

    def _ask(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer

    def open_structure(self, name: str):
        """Patient A opened and a structure of that name added: the workflow, ready to click."""
        self.workflow.set_volume(self.mri.volume)
        self.workflow.add_structure(name)
        return self.workflow

    def click(self, kji=TARGET_KJI, view="Axial", positive=True, spec=None):
        ras = voxel_ras(spec or self.mri.spec, kji)
        self.views[view].JumpSliceByOffsetting(*ras)
        self.workflow.prepare_case()
        node = self.workflow.positive if positive else self.workflow.negative
        node.AddControlPointWorld(vtk.vtkVector3d(*ras))

    def segment(self, segment_id=None):
        w = self.workflow
        return mrml.read_segment(w.segmentation, segment_id or w.segment_id, mrml.volume_geometry(w.volume))


def second_patient(mri):
    """Another image in another geometry: (volume node, its geometry spec)."""
    spec = GEOMETRIES["lps" if mri.spec.name != "lps" else "permuted"]
    kji_block = np.ascontiguousarray(mri.array.transpose(np.argsort(mri.spec.transpose)))
    block = np.ascontiguousarray(np.flip(kji_block, 2).transpose(spec.transpose))
    return add_volume(mri.scene, block, spec, name="Patient B"), spec


def test_a_patient_opens_with_its_own_displayed_segmentation_in_views_turned_to_its_planes(mri_scene):
    panel = Panel(mri_scene)
    tilt_slice_node(panel.views["Axial"], "Y", 20)
    assert panel.workflow.set_volume(mri_scene.volume)
    segmentation = panel.workflow.segmentation
    assert segmentation.GetName() == "MRI segmentation"
    assert segmentation.GetDisplayNode() is not None
    assert mrml.segmentation_of(mri_scene.scene, mri_scene.volume) is segmentation
    geometry = mrml.volume_geometry(mri_scene.volume)
    assert mrml.slice_axis(panel.views["Axial"], geometry) == mri_scene.spec.view_axis["Axial"]
    for n in range(mri_scene.scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = mri_scene.scene.GetNthNodeByClass(n, "vtkMRMLSliceCompositeNode")
        assert composite.GetBackgroundVolumeID() == mri_scene.volume.GetID()
    assert panel.workflow.structures() == [] and panel.workflow.segment_id == ""
    with pytest.raises(CaseStateError, match="structure"):
        panel.workflow.prepare_case()  # no nameless "Structure" that would teach every structure's profile


def test_structures_are_added_by_name_stepped_and_renamed_each_with_its_own_profile(mri_scene):
    panel = Panel(mri_scene)
    w = panel.workflow
    w.set_volume(mri_scene.volume)
    assert w.add_structure("Hippocampus (L)") and w.add_structure("  caudate ")
    assert [name for _, name in w.structures()] == ["Hippocampus (L)", "caudate"]
    assert w.profile == "caudate"
    assert w.step_structure(1) and w.structure_name == "Hippocampus (L)" and w.profile == "Hippocampus"
    assert w.step_structure(-1) and w.structure_name == "caudate"
    assert w.add_structure("HIPPOCAMPUS (l)") and w.structure_name == "Hippocampus (L)"  # no duplicate
    assert len(w.structures()) == 2
    assert w.rename_structure("Amygdala (L)") and w.profile == "Amygdala"
    assert "'Amygdala (L)' learns in profile 'Amygdala'" in w.panel().profile
    assert w.panel().versions == [("Shipped base model", 0)]
    with pytest.raises(CaseStateError):
        w.add_structure("   ")
    assert panel.questions == []  # no clicks, nothing to ask


def test_a_new_patient_while_a_case_is_open_asks_and_never_mixes_patients(mri_scene):
    panel = Panel(mri_scene, answer=False)
    w = panel.open_structure("Hippocampus")
    panel.click()
    a_segment = panel.segment()
    assert a_segment.sum() > 0 and w.clicks == 1
    patient_b, spec_b = second_patient(mri_scene)

    assert not w.set_volume(patient_b)  # "No": A's case goes on untouched
    assert "1 click" in panel.questions[-1] and "Hippocampus" in panel.questions[-1]
    assert w.volume is mri_scene.volume and w.clicks == 1
    for action in (lambda: w.add_structure("Caudate"), lambda: w.rename_structure("Amygdala")):
        assert not action()
    assert len(panel.questions) == 3 and [n for _, n in w.structures()] == ["Hippocampus"]

    panel.answer = True
    assert w.set_volume(patient_b)
    assert w.clicks == 0 and w.volume is patient_b
    assert w.segmentation is not mrml.segmentation_of(mri_scene.scene, mri_scene.volume)
    assert w.segmentation.GetName() == "Patient B segmentation" and w.structures() == []
    w.add_structure("Hippocampus")
    target_b = tuple(int(v) for v in np.array(TARGET_KJI)[list(spec_b.transpose)])
    panel.click(target_b, spec=spec_b)
    assert panel.errors == [] and panel.segment().sum() > 0
    a_segmentation = mrml.segmentation_of(mri_scene.scene, mri_scene.volume)
    a_id = a_segmentation.GetSegmentation().GetNthSegmentID(0)
    np.testing.assert_array_equal(
        mrml.read_segment(a_segmentation, a_id, mrml.volume_geometry(mri_scene.volume)), a_segment
    )  # A's segment stays as it was: B's clicks went into B's segmentation
    assert panel.sessions[0].finished[-1][1] is False  # A's case ended without learning

    assert w.set_volume(mri_scene.volume) and w.segmentation is a_segmentation  # back to A: same nodes


def test_a_segmentation_of_another_patient_is_never_written(mri_scene):
    panel = Panel(mri_scene)
    panel.workflow.set_volume(mri_scene.volume)
    other, _ = second_patient(mri_scene)
    with pytest.raises(CaseStateError, match="belongs to 'MRI'"):
        prepare_case_nodes(mri_scene.scene, other, panel.workflow.segmentation)


def test_label_maps_are_refused_with_a_message(mri_scene):
    labels = mri_scene.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "Labels")
    labels.SetAndObserveImageData(mri_scene.volume.GetImageData())
    with pytest.raises(InteractiveAdaptError):
        Panel(mri_scene).workflow.set_volume(labels)


def test_rejected_clicks_go_to_the_status_line_not_to_an_error_dialog(mri_scene):
    panel = Panel(mri_scene)
    w = panel.open_structure("Brain")
    w.prepare_case()
    w.positive.AddControlPointWorld(vtk.vtkVector3d(500.0, 500.0, 500.0))  # on no slice view, off the image
    assert panel.errors == [] and w.clicks == 0
    assert "slice view" in panel.status[-1] or "outside the image" in panel.status[-1]


def test_points_defined_inside_a_modify_block_become_clicks(mri_scene):
    panel = Panel(mri_scene)
    w = panel.open_structure("Brain")
    w.prepare_case()
    ras = voxel_ras(mri_scene.spec, TARGET_KJI)
    panel.views["Axial"].JumpSliceByOffsetting(*ras)
    was = w.positive.StartModify()
    w.positive.AddControlPointWorld(vtk.vtkVector3d(*ras))
    w.positive.EndModify(was)  # the event comes without the point's index
    assert panel.errors == [] and w.clicks == 1 and panel.segment().sum() > 0


def test_rollback_asks_first_and_a_cancelled_one_says_so(mri_scene):
    panel = Panel(mri_scene, answer=False)
    w = panel.open_structure("Brain")
    panel.click()
    assert not w.rollback(0) and w.clicks == 1  # kept the case

    worker = Worker()
    try:
        panel.answer = True
        w.executor = w.cases.executor = worker
        gate = worker.submit(time.sleep, 0.3, description="Busy")
        assert w.rollback(0)
        worker.cancel()
        assert worker.drain(10) and gate is not None
        assert panel.status[-1] == "Rollback cancelled: 'Brain' keeps its version."
    finally:
        worker.shutdown(timeout=10)


def test_finish_reports_what_was_learned(mri_scene):
    panel = Panel(mri_scene)
    w = panel.open_structure("Brain")
    panel.click()
    done = []
    w.finish(learn=True, on_done=done.append)
    assert done[0].ok and w.clicks == 0
    learned = done[0].value.slices_learned
    assert learned > 1  # the clicked slice and slices of the structure filled in 3D
    assert panel.status[-1].startswith(f"Case finished (1 clicks): {learned} slices learned")


def test_the_3d_switch_and_slice_range_reach_the_case_and_the_clicked_slices_are_listed(mri_scene):
    panel = Panel(mri_scene)
    w = panel.open_structure("Brain")
    k_view = next(v for v, axis in mri_scene.spec.view_axis.items() if axis == 0)
    seed = tuple(np.array(TARGET_KJI)[list(mri_scene.spec.transpose)])  # (k, j, i) of this geometry
    assert w.panel().clicked_slices == [] and w.panel().clicked_slices_text == "Clicked slices: none yet."
    w.set_fill(False, -1, -1)  # before any case: kept for the case that opens next
    assert panel.status[-1].startswith("3D filling is off: a click segments its own slice")
    panel.click(seed, view=k_view)
    controller = w.cases.controller
    assert (controller.fill_3d, controller.bounds) == (False, (None, None))
    assert w.panel().clicked_slices == [seed[0]]
    panel.click((seed[0] + 2, *seed[1:]), view=k_view)
    assert w.panel().clicked_slices_text == f"Clicked slices: {seed[0]}, {seed[0] + 2}"
    w.undo()
    assert w.panel().clicked_slices == [seed[0]]
    w.set_fill(True, seed[0] - 1, seed[0] + 4)  # during the case: from the next click on
    assert (controller.fill_3d, controller.bounds) == (True, (seed[0] - 1, seed[0] + 4))
    assert panel.status[-1] == (
        f"Each click fills the structure in 3D, within slices {seed[0] - 1} to {seed[0] + 4} "
        "(from the next click)."
    )
    w.set_fill(True, 3)
    assert controller.bounds == (3, None) and panel.status[-1].endswith(
        ", from slice 3 on (from the next click)."
    )
    with pytest.raises(CaseStateError, match="The slice range 9 to 4 is empty"):
        w.set_fill(True, 9, 4)
    k_slices = mrml.volume_geometry(mri_scene.volume).shape_kji[0]
    with pytest.raises(CaseStateError, match=f"This image has slices 0 to {k_slices - 1}"):
        w.set_fill(True, k_slices)
    assert controller.bounds == (3, None)  # a wrong range changes nothing
    w.finish(learn=False)
    assert w.panel().clicked_slices == [] and w.panel().clicked_slices_text == "Clicked slices: none yet."


def test_volume_of_a_missing_file_or_4d_is_refused_before_anything_changes(mri_scene):
    panel = Panel(mri_scene)
    panel.workflow.set_volume(mri_scene.volume)
    vector = mri_scene.scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "RGB")
    with pytest.raises((InteractiveAdaptError, ImageReadError)):
        panel.workflow.set_volume(vector)
    assert panel.workflow.volume is mri_scene.volume


def test_resetting_a_case_cancels_its_own_jobs_only(mri_scene):
    panel = Panel(mri_scene)
    w = panel.open_structure("Brain")
    panel.click()
    worker = Worker()
    try:
        w.executor = w.cases.executor = w.cases.controller.executor = worker
        release = threading.Event()
        worker.submit(release.wait, 5, description="Busy")
        exported = []
        worker.submit(exported.append, "site.zip", description="Exporting the site")  # queued, not the case's
        w.reset()
        release.set()
        assert worker.drain(10)
        assert exported == ["site.zip"] and w.clicks == 0
    finally:
        worker.shutdown(timeout=10)


def test_a_saved_scene_is_taken_up_with_its_own_nodes(mri_scene):
    first = Panel(mri_scene)
    first.workflow.set_volume(mri_scene.volume)
    first.workflow.add_structure("Hippocampus")
    first.workflow.add_structure("Caudate")
    first.workflow.prepare_case()
    remembered = first.workflow.structures()[0][0]
    lists = mri_scene.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode")

    again = Panel(mri_scene)  # the module opened on the saved scene: the parameter node remembers these
    again.workflow.restore(mri_scene.volume, remembered)
    assert again.workflow.segmentation is first.workflow.segmentation
    assert again.workflow.structure_name == "Hippocampus"
    again.workflow.prepare_case()
    assert again.workflow.positive is first.workflow.positive  # no second pair of point lists
    assert mri_scene.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode") == lists


def test_the_network_loads_on_the_worker_once_while_the_gui_goes_on(mri_scene):
    release, opened, ready = threading.Event(), [], []
    panel = Panel(mri_scene)
    w = panel.workflow

    def slow_open(settings):  # engine imports and network loading take a while
        release.wait(5)
        opened.append(settings)
        return ThresholdSessionDouble()

    worker = Worker()
    try:
        w.executor = w.cases.executor = worker
        w.cases._open_session = slow_open
        w.preload_session(on_ready=lambda: ready.append(True))
        w.preload_session(on_ready=lambda: ready.append(True))  # asked again meanwhile: no second load
        assert not w.session_ready and opened == []  # the main thread did not wait
        release.set()
        assert worker.drain(10)
        assert w.session_ready and len(opened) == 1 and ready == [True]
        w.set_volume(mri_scene.volume)
        w.add_structure("Brain")
        assert w.panel().versions == [("Shipped base model", 0)] and len(opened) == 1
    finally:
        worker.shutdown(timeout=10)


@pytest.mark.parametrize("deleted", ["segmentation", "positive", "negative"])
def test_deleting_the_segmentation_or_a_point_list_mid_case_ends_the_case_and_says_so(mri_scene, deleted):
    """Deleting a node the case writes to (in the Data module, or by closing part of a scene) ends the
    case without learning and tells the user; nothing is written into a node that left the scene."""
    panel = Panel(mri_scene)
    w = panel.open_structure("Target")
    panel.click()
    assert w.clicks == 1 and not panel.errors
    session = panel.sessions[-1]
    node = {"segmentation": w.segmentation, "positive": w.positive, "negative": w.negative}[deleted]
    mri_scene.scene.RemoveNode(node)
    assert w.clicks == 0 and w.cases.controller is None
    assert session.finished and session.finished[-1][1] is False  # ended without learning
    assert "deleted" in panel.status[-1] and "without learning" in panel.status[-1]
    if deleted != "segmentation":  # the structure is still there: a new click starts a new case
        panel.click()
        assert w.clicks == 1 and not panel.errors


def test_slice_zero_can_bound_the_filling(mri_scene):
    panel = Panel(mri_scene)
    w = panel.open_structure("Target")
    w.set_fill(True, 0, 5)
    assert w.slice_range == (0, 5)
    w.set_fill(True, -1, -1)  # the spin boxes' "none"
    assert w.slice_range == (None, None)


def test_a_case_still_finishing_never_takes_the_next_case_s_points(mri_scene):
    """Finish learns on the worker while the user goes on with another structure: the finished case's
    clean-up removes its own points only, never the next case's (both use the same point lists)."""
    worker = Worker()
    try:
        panel = Panel(mri_scene, executor=worker)
        w = panel.open_structure("Target")
        panel.click()
        assert worker.drain(30) and w.clicks == 1
        panel.sessions[-1].delay_s = 0.3  # Finish takes a while on the worker
        w.finish(learn=True)
        assert w.add_structure("Other") and panel.questions == []  # nothing to drop: it is being learned
        panel.click()
        assert worker.drain(30) and not panel.errors, panel.errors
        assert w.clicks == 1 and w.positive.GetNumberOfControlPoints() == 1
        assert any(learn for _, learn in panel.sessions[-1].finished)  # the first case was learned
    finally:
        worker.shutdown(timeout=10)
