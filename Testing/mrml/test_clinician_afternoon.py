"""A clinician's afternoon with the module's workflow (mrml/workflow.py), nothing simulated below the mouse.

Real left clicks in offscreen Red (axial), Yellow (sagittal) and Green (coronal) slice views place the
points; the module's own path does the rest (Workflow -> CaseManager -> ClickController -> Worker thread
-> InteractiveSession with the SHIPPED base model, store under the Slicer settings folder):

1. Patient A (Colin27 T1 stored as a sagittal stack, 1 x 1 x 2 mm): the left hippocampus, then the left caudate, each
   a structure of its own with its own learning profile. Before Finish, a Segment Editor-style paint on
   a slice that was never clicked: Finish learns from it too, and from slices of the 3D result.
2. A caudate case on A is open when patient B (the better Colin27 scan as a 1.2 mm axial series) is chosen: the
   clinician is asked, says No (A goes on), then Yes; B gets its own segmentation and A's segment is not
   touched by B's clicks.
3. B's right hippocampus teaches the same profile as A's left one (version 2); rolling the hippocampus back
   to version 1 leaves the caudate's version alone; a structure renamed moves to another profile.
4. Slicer is "closed" (worker and session gone) and reopened: the store lists the same versions.

Each step checks what the user would see: segments, their geometry, versions per profile, status text.
"""

from __future__ import annotations

import numpy as np
import pytest
import slicer
from conftest import COLIN27
from offscreen_views import (
    add_volume_node,
    largest_cross_section,
    mouse_click,
    offscreen_app,
    ras_to_view_xy,
    restacked,
)

from interactive_adapt_lab.data.datasets import aal_names
from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.app.settings import ModuleSettings, open_session, site_store_root
from InteractiveAdaptLib.app.worker import Worker
from InteractiveAdaptLib.engine.click_simulation import first_click, next_click
from InteractiveAdaptLib.engine.predictor import dice
from InteractiveAdaptLib.errors import WeightsError
from InteractiveAdaptLib.model.location import find_base_model_dir

pytestmark = [pytest.mark.slow, pytest.mark.slicer]

AAL = COLIN27.with_name("aal.nii.gz")  # on the Colin27 grid (both scans)
PATIENT_B_FILE = COLIN27.with_name("ch2better.nii.gz")
SITE, USER = "Afternoon hospital", "Dr Test"
MAX_CLICKS = 3


class Clinician:
    """The module's panel and the clinician in front of it: answers questions, reads the status line."""

    def __init__(self, scene, views, store_root, model_dir):
        self.scene, self.views, self.store_root, self.model_dir = scene, views, store_root, model_dir
        self.answers: list[bool] = []
        self.questions: list[str] = []
        self.status: list[str] = []
        self.errors: list[tuple[BaseException, str]] = []
        self.open()

    def open(self):
        """Slicer starts and the module opens (a new worker and session on the same store)."""
        self.worker = Worker()
        self.workflow = mrml.Workflow(
            self.scene,
            self.worker,
            lambda s: open_session(s, self.store_root, self.model_dir, cuda_available=False),
            ModuleSettings(site=SITE, user=USER),
            ask=self._ask,
            on_status=self.status.append,
            on_error=lambda error, tb: self.errors.append((error, tb)),
        )

    def close(self):
        self.workflow.close()
        assert self.worker.shutdown(timeout=60)

    def _ask(self, question: str) -> bool:
        self.questions.append(question)
        return self.answers.pop(0)

    def wait(self):
        assert self.worker.drain(180), "the worker did not finish in time"
        assert not self.errors, self.errors

    def versions(self, structure: str) -> list[int]:
        self.workflow.select_structure(self.segment_named(structure))
        if not self.workflow.session_ready:  # a new Slicer run: the panel shows them once it is loaded
            self.workflow.panel()
            self.wait()
        return [version for _, version in self.workflow.panel().versions]

    def segment_named(self, name: str) -> str:
        return next(sid for sid, n in self.workflow.structures() if n == name)

    def segment(self, volume=None, segment_id=None) -> np.ndarray:
        w = self.workflow
        segmentation = mrml.segmentation_of(self.scene, volume or w.volume)
        return mrml.read_segment(
            segmentation, segment_id or w.segment_id, mrml.volume_geometry(volume or w.volume)
        )

    def click_until_good(
        self, view, target: np.ndarray, seed: int = 0
    ) -> tuple[tuple[int, int], list[float]]:
        """Real clicks in `view` on the target's largest slice, like the simulated user, up to MAX_CLICKS."""
        w = self.workflow
        geometry = mrml.volume_geometry(w.volume)
        axis = mrml.slice_axis(view.get_view_node(), geometry)
        index = largest_cross_section(target, axis)
        truth = np.take(target, index, axis)
        centre = geometry.kji_to_world(np.insert(np.array(truth.shape) / 2.0, axis, index))
        view.get_view_node().JumpSliceByOffsetting(*centre)
        view.render()
        rng = np.random.default_rng(seed)
        click, dices = first_click(truth, "center", rng), []
        for _ in range(MAX_CLICKS):
            row, col, positive = click
            w.start_placing(positive, [(v.get_view_node(), v.interactor()) for v in self.views])
            ras = geometry.kji_to_world(np.insert(np.array([row, col], float), axis, index))
            mouse_click(view, ras_to_view_xy(view, ras))
            self.wait()
            assert self.status[-1].startswith("Segmented in "), self.status[-1]
            shown = mrml.read_slice(w.segmentation, w.segment_id, geometry, axis, index)
            dices.append(dice(shown, truth))
            if dices[-1] >= 0.8:
                break
            click = next_click(shown, truth, "center", rng)
        w.stop_placing()
        return (axis, index), dices


def patient_b_scan():
    """The better Colin27 scan (0.5 mm) as another site's 1.2 mm axial series, and the AAL atlas on its
    grid: (engine Volume, atlas array)."""
    import SimpleITK as sitk

    from InteractiveAdaptLib.io.volumes import volume_from_sitk

    scan = sitk.DICOMOrient(sitk.ReadImage(str(PATIENT_B_FILE)), "LPS")
    size = [int(n * s / 1.2) for n, s in zip(scan.GetSize(), scan.GetSpacing(), strict=True)]
    grid = sitk.Image(size, sitk.sitkInt16)
    grid.SetSpacing((1.2, 1.2, 1.2))
    grid.SetOrigin(scan.GetOrigin())
    grid.SetDirection(scan.GetDirection())
    mri = sitk.Resample(scan, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkInt16)
    atlas = sitk.Resample(sitk.ReadImage(str(AAL)), grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return volume_from_sitk(mri), sitk.GetArrayFromImage(atlas)


def aal_mask(volume, name: str) -> np.ndarray:
    """The AAL structure on a volume's grid (the atlas stored like the volume)."""
    label = next(n for n, structure in aal_names().items() if structure == name)
    return volume == label


@pytest.fixture(scope="module")
def shipped_model_dir():
    try:
        return find_base_model_dir()
    except WeightsError as error:
        pytest.skip(f"No base model is shipped in this checkout yet. {error}")


def test_an_afternoon_of_two_patients_and_three_structures(shipped_model_dir, tmp_path):
    app, views = offscreen_app("axial", "sagittal", "coronal")
    red, yellow, green = views["axial"], views["sagittal"], views["coronal"]
    scene = app.scene
    mri_a = restacked(COLIN27, "PIL", 2)
    atlas_a = restacked(AAL, "PIL", 2).array
    mri_b, atlas_b = patient_b_scan()
    patient_a = add_volume_node(scene, mri_a, "Patient A")
    patient_b = add_volume_node(scene, mri_b, "Patient B")
    store_root = site_store_root(tmp_path / "Slicer settings" / "Slicer.ini")
    doctor = Clinician(scene, list(views.values()), store_root, shipped_model_dir)
    w = doctor.workflow
    try:
        # ---- 1. Patient A: hippocampus, with a painted correction, then caudate
        assert w.set_volume(patient_a)
        for view in views.values():
            assert view.get_view_node().GetScene() is scene
            view.fit_view_to_content()
        seg_a = w.segmentation
        assert seg_a.GetName() == "Patient A segmentation" and seg_a.GetDisplayNode() is not None
        assert w.panel().profile.startswith("Add or choose the structure")
        assert w.add_structure("Hippocampus (L)") and w.profile == "Hippocampus"
        assert w.panel().profile == "Loading the network..."  # it starts loading on the worker
        doctor.wait()
        assert w.panel().versions == [("Shipped base model", 0)]  # filled before any click
        hippocampus_a = aal_mask(atlas_a, "Hippocampus_L")
        key, dices = doctor.click_until_good(red, hippocampus_a)
        assert dices[-1] >= 0.5, f"hippocampus in the Red view: Dice {dices}"
        geometry_a = mrml.volume_geometry(patient_a)
        # A Segment Editor-style paint on a slice the clinician never clicked: it is learned too.
        painted_index = key[1] + 3
        painted = np.take(hippocampus_a, painted_index, key[0]).astype(np.uint8)
        assert painted.any()
        mrml.write_slice(seg_a, w.segment_id, geometry_a, key[0], painted_index, painted)
        finished = []
        w.finish(learn=True, on_done=finished.append)
        doctor.wait()
        summary = finished[0].value
        # the clicked slice, the painted one and slices of the 3D result (each click fills in 3D)
        assert summary.slices_learned > 2 and summary.version == 1, summary
        assert doctor.status[-1].endswith("saved version 1 of 'Hippocampus'."), doctor.status[-1]

        assert w.add_structure("Caudate (L)") and w.profile == "Caudate"
        assert [n for _, n in w.structures()] == ["Hippocampus (L)", "Caudate (L)"]
        caudate_a = aal_mask(atlas_a, "Caudate_L")
        _, dices = doctor.click_until_good(yellow, caudate_a)
        assert dices[-1] >= 0.5, f"caudate in the Yellow view: Dice {dices}"
        w.finish(learn=True)
        doctor.wait()
        assert doctor.status[-1].endswith("saved version 1 of 'Caudate'."), doctor.status[-1]
        assert doctor.versions("Caudate (L)") == [1, 0] and doctor.versions("Hippocampus (L)") == [1, 0]

        # ---- 2. A caudate case on A is open when patient B is chosen
        w.select_structure(doctor.segment_named("Caudate (L)"))
        doctor.click_until_good(green, caudate_a, seed=1)
        clicks = w.clicks
        a_before = doctor.segment()
        doctor.answers = [False]
        assert not w.set_volume(patient_b)
        assert "Caudate (L)" in doctor.questions[-1] and "'Patient A'" in doctor.questions[-1]
        assert w.volume is patient_a and w.clicks == clicks  # No: A's case goes on
        doctor.answers = [True]
        assert w.set_volume(patient_b) and w.clicks == 0
        seg_b = w.segmentation
        assert seg_b is not seg_a and seg_b.GetName() == "Patient B segmentation"
        role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
        assert seg_b.GetNodeReference(role) is patient_b and seg_a.GetNodeReference(role) is patient_a
        assert w.structures() == []
        assert w.add_structure("Hippocampus (R)") and w.profile == "Hippocampus"
        assert w.panel().versions[0][1] == 1  # the profile A's case taught
        hippocampus_b = aal_mask(atlas_b, "Hippocampus_R")
        _, dices = doctor.click_until_good(red, hippocampus_b)
        np.testing.assert_array_equal(
            doctor.segment(patient_a, seg_a.GetSegmentation().GetSegmentIdBySegmentName("Caudate (L)")),
            a_before,
        )  # B's clicks never reach A
        assert doctor.segment().sum() > 0
        w.finish(learn=True)
        doctor.wait()
        assert doctor.status[-1].endswith("saved version 2 of 'Hippocampus'."), doctor.status[-1]

        # ---- 3. Roll back the hippocampus only; rename a structure
        w.select_structure(doctor.segment_named("Hippocampus (R)"))
        assert [v for _, v in w.panel().versions] == [2, 1, 0]
        assert w.rollback(1)
        doctor.wait()
        assert doctor.status[-1] == "'Hippocampus' rolled back to version 1.", doctor.status[-1]
        assert w.panel().profile.startswith("'Hippocampus (R)' learns in profile 'Hippocampus'. Version 1 ")
        w.add_structure("Caudate (R)")
        assert w.profile == "Caudate" and w.panel().profile.split(". ", 1)[1].startswith("Version 1 ")
        w.select_structure(doctor.segment_named("Hippocampus (R)"))
        assert w.rename_structure("Amygdala (R)") and w.profile == "Amygdala"
        assert w.panel().versions == [("Shipped base model", 0)]
        assert "not adapted to site" in w.panel().profile
        versions_before_closing = {"Caudate (R)": doctor.versions("Caudate (R)")}
        w.select_structure(doctor.segment_named("Amygdala (R)"))
        assert w.rename_structure("Hippocampus (R)") and [v for _, v in w.panel().versions] == [2, 1, 0]
        hippocampus_summary = w.panel().profile

        # ---- 4. Slicer closed and reopened: the same versions from the store
        doctor.close()
        doctor.open()
        w = doctor.workflow
        assert w.set_volume(patient_b)
        assert doctor.versions("Hippocampus (R)") == [2, 1, 0]
        assert w.panel().profile == hippocampus_summary  # still version 1 in use after the rollback
        assert {name: doctor.versions(name) for name in versions_before_closing} == versions_before_closing
    finally:
        doctor.worker.shutdown(timeout=60)
