"""The left thalamus of Colin27 in 3D, clicked as a clinician would in the module: real left clicks in an
offscreen axial (Red) slice view place the points, and the module's own path does the rest (Workflow ->
CaseManager -> ClickController -> Worker thread -> the engine's Case + InteractiveSession with the
SHIPPED base model, ITK's contour interpolation between clicked slices). Every check reads the segment
back from the scene.

(a) two clicks ten axial slices apart: one connected structure fills every slice between them;
(b) a correction on the middle clicked slice changes only the slices between its clicked neighbours;
(c) undo puts the segment back exactly, painting the filling had covered included;
(d) 3D filling off: a click segments its own slice; a slice range bounds the filling;
(e) Finish learns from the 3D result: more slices than were clicked;
(f) deleting an earlier point gives what the later clicks alone give.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import COLIN27
from offscreen_views import add_volume_node, mouse_click, offscreen_app, ras_to_view_xy
from scipy import ndimage

from interactive_adapt_lab.data.datasets import aal_names
from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.app.settings import ModuleSettings, open_session
from InteractiveAdaptLib.app.worker import Worker
from InteractiveAdaptLib.errors import WeightsError
from InteractiveAdaptLib.io.volumes import volume_from_sitk
from InteractiveAdaptLib.model.location import find_base_model_dir

pytestmark = [pytest.mark.slow, pytest.mark.slicer]

AAL = COLIN27.with_name("aal.nii.gz")  # on the Colin27 grid


@pytest.fixture(scope="module")
def colin():
    """One offscreen axial view showing Colin27 (the whole T1 volume), and the left thalamus on its grid."""
    try:
        model_dir = find_base_model_dir()
    except WeightsError as error:
        pytest.skip(f"No base model is shipped in this checkout yet. {error}")
    app, views = offscreen_app("axial")
    volume = volume_from_sitk(sitk.ReadImage(str(COLIN27)))
    node = add_volume_node(app.scene, volume, "Colin27")
    label = next(n for n, name in aal_names().items() if name == "Thalamus_L")
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(AAL))) == label
    views["axial"].set_background_volume_id(node.GetID())
    views["axial"].fit_view_to_content()
    return app, views["axial"], node, truth, model_dir


class Clinician:
    """The module's panel on Colin27 with the left thalamus as the structure; clicks with the mouse."""

    def __init__(self, colin, store_root):
        self.app, self.view, self.volume, self.truth, model_dir = colin
        scene = self.app.scene
        for n in reversed(range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"))):
            scene.RemoveNode(scene.GetNthNodeByClass(n, "vtkMRMLSegmentationNode"))  # each test its own
        self.status: list[str] = []
        self.errors: list = []
        self.worker = Worker()
        self.workflow = mrml.Workflow(
            scene,
            self.worker,
            lambda s: open_session(s, store_root, model_dir, cuda_available=False),
            ModuleSettings(site="3D hospital"),
            ask=lambda question: True,
            on_status=self.status.append,
            on_error=lambda error, tb: self.errors.append((error, tb)),
        )
        assert self.workflow.set_volume(self.volume) and self.workflow.add_structure("Thalamus (L)")
        self.geometry = mrml.volume_geometry(self.volume)
        assert mrml.slice_axis(self.view.get_view_node(), self.geometry) == 0  # axial = the K axis

    def close(self):
        self.workflow.close()
        assert self.worker.shutdown(timeout=60)

    def wait(self):
        assert self.worker.drain(180), "the worker did not finish in time"
        assert not self.errors, self.errors

    def undo(self):
        """Ctrl+Z, then wait for the segment to be put back."""
        self.workflow.undo()
        self.wait()

    def click(self, k: int, row: float, col: float, positive: bool = True) -> None:
        """A real left click on voxel (k, row, col) in the axial view, then wait for the result."""
        ras = self.geometry.kji_to_world((k, row, col))
        self.view.get_view_node().JumpSliceByOffsetting(*ras)
        self.view.render()
        self.workflow.start_placing(positive, [(self.view.get_view_node(), self.view.interactor())])
        mouse_click(self.view, ras_to_view_xy(self.view, ras))
        self.wait()
        self.workflow.stop_placing()
        click = self.workflow.session().clicks[-1]
        assert (click.axis, click.index, click.positive) == (0, k, positive)

    def centre_click(self, k: int, positive: bool = True) -> None:
        """A click at the deepest point of the thalamus on axial slice k."""
        depth = ndimage.distance_transform_edt(self.truth[k])
        self.click(k, *np.unravel_index(int(np.argmax(depth)), depth.shape), positive)

    def segment(self) -> np.ndarray:
        w = self.workflow
        return mrml.read_segment(w.segmentation, w.segment_id, self.geometry)


@pytest.fixture
def clinician(colin, tmp_path):
    doctor = Clinician(colin, tmp_path / "store")
    yield doctor
    doctor.close()


def slices_of(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_a_two_clicks_ten_slices_apart_give_one_connected_structure_between_them(clinician):
    doctor = clinician
    structure = slices_of(doctor.truth)
    low = int(structure[len(structure) // 4])
    high = low + 10
    doctor.centre_click(low)
    doctor.centre_click(high)
    segment = doctor.segment() > 0
    between = segment[low : high + 1]
    assert all(s.any() for s in between)  # every slice between the clicked ones is filled
    assert ndimage.label(between)[1] == 1  # one connected piece
    clicked_only = np.zeros_like(segment)
    clicked_only[[low, high]] = segment[[low, high]]
    assert dice(segment, doctor.truth) > dice(clicked_only, doctor.truth) + 0.3
    assert doctor.workflow.panel().clicked_slices == [low, high]
    assert doctor.workflow.panel().clicked_slices_text == f"Clicked slices: {low}, {high}"
    assert doctor.status[-1].startswith("Segmented in ") and "slices filled in 3D by" in doctor.status[-1]
    assert doctor.status[-1].endswith("(2 clicks).")


def test_b_a_correction_on_the_middle_clicked_slice_changes_only_the_slices_between_its_neighbours(
    clinician,
):
    doctor = clinician
    structure = slices_of(doctor.truth)
    a, b, c = (int(structure[round(f * (len(structure) - 1))]) for f in (0.2, 0.5, 0.8))
    for k in (b, a, c):
        doctor.centre_click(k)
    before = doctor.segment()
    rows, cols = np.nonzero(doctor.truth[b])
    # a negative click on the near edge of the thalamus on slice b
    doctor.click(b, float(rows.min()), float(cols[np.argmin(rows)]), positive=False)
    after = doctor.segment()
    changed = slices_of(after != before)
    assert b in changed and changed.min() > a and changed.max() < c
    assert doctor.workflow.panel().clicked_slices == [a, b, c]


def test_c_undo_puts_the_segment_back_exactly(clinician):
    doctor = clinician
    w = doctor.workflow
    structure = slices_of(doctor.truth)
    k = int(structure[len(structure) // 4])
    # Segment Editor painting before the case: on the slices around the click, and far away
    painted = np.zeros(doctor.geometry.slice_shape(0), np.uint8)
    painted[60:90, 40:70] = 1
    for n in [*range(k - 3, k + 4), 10]:
        mrml.write_slice(w.segmentation, w.segment_id, doctor.geometry, 0, n, painted)
    before_case = doctor.segment()
    doctor.centre_click(k)
    after_first = doctor.segment()
    covered = [n for n in range(k - 3, k + 4) if not np.array_equal(after_first[n], before_case[n])]
    assert len(covered) > 1  # the click's slice and slices it filled, over the painting
    doctor.centre_click(k + 6)
    assert not np.array_equal(doctor.segment(), after_first)
    doctor.undo()
    np.testing.assert_array_equal(doctor.segment(), after_first)
    doctor.undo()
    np.testing.assert_array_equal(doctor.segment(), before_case)
    assert w.panel().clicked_slices == [] and w.clicks == 0


def test_d_filling_off_segments_the_clicked_slice_only_and_a_slice_range_bounds_the_filling(clinician):
    doctor = clinician
    w = doctor.workflow
    structure = slices_of(doctor.truth)
    k = int(structure[len(structure) // 4])
    w.set_fill(False)
    doctor.centre_click(k)
    assert list(slices_of(doctor.segment())) == [k]  # its own slice only
    doctor.undo()
    w.set_fill(True)
    doctor.centre_click(k)
    free = list(slices_of(doctor.segment()))  # how far the filling goes without a range
    doctor.undo()
    assert not doctor.segment().any()
    w.set_fill(True, k - 2, k + 2)
    assert doctor.status[-1] == (
        f"Each click fills the structure in 3D, within slices {k - 2} to {k + 2} (from the next click)."
    )
    doctor.centre_click(k)
    bounded = list(slices_of(doctor.segment()))
    assert bounded == [n for n in free if k - 2 <= n <= k + 2]  # the same filling, cut at the range
    assert len(free) > len(bounded) > 1


def test_e_finish_learns_from_the_3d_result(clinician):
    doctor = clinician
    w = doctor.workflow
    structure = slices_of(doctor.truth)
    low = int(structure[len(structure) // 3])
    doctor.centre_click(low)
    doctor.centre_click(low + 8)
    finished = []
    w.finish(learn=True, on_done=finished.append)
    doctor.wait()
    summary = finished[0].value
    assert summary.slices_learned > 2 and summary.clicks == 2 and summary.version == 1, summary
    assert doctor.status[-1].startswith(f"Case finished (2 clicks): {summary.slices_learned} slices learned")


def test_f_deleting_an_earlier_point_places_the_later_clicks_again(clinician):
    doctor = clinician
    w = doctor.workflow
    structure = slices_of(doctor.truth)
    low = int(structure[len(structure) // 4])
    before_case = doctor.segment()
    doctor.centre_click(low)
    doctor.centre_click(low + 8)
    w.positive.RemoveNthControlPoint(0)  # the first point, not the newest
    doctor.wait()
    assert doctor.status[-1] == "Removed a click; the 1 later click was placed again (1 left)."
    assert w.panel().clicked_slices == [low + 8] and len(w.session().clicks) == 1
    without_first = doctor.segment()
    # the same as if the first click had never been placed: undo, and click the second one alone
    doctor.undo()
    np.testing.assert_array_equal(doctor.segment(), before_case)
    doctor.centre_click(low + 8)
    np.testing.assert_array_equal(doctor.segment(), without_first)
