"""The click controller's 2D mode (mrml/click_controller.py, volume=False) on a real MRML scene with
real MRI volumes (Colin27) in non-trivial geometries, driving the threshold test double or the real
engine session: clicks in each view segment that slice only, undo, deleted points, bad clicks, reset
and finish, the worker thread, and real mouse clicks in offscreen slice views. (The 3D mode, the
default, is tested in test_click_controller_3d.py.)"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import vtk
from conftest import GEOMETRIES, add_slice_node, add_volume, voxel_ras
from controller_harness import ControllerHarness
from threshold_session_double import ThresholdSessionDouble

from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.app.worker import InlineExecutor, Worker
from InteractiveAdaptLib.errors import CaseStateError, InvalidClickError
from InteractiveAdaptLib.interaction import Click


class Harness(ControllerHarness):
    """A controller with one slice view per orientation of `views` (2D mode unless volume=True is given)."""

    def __init__(self, mri, views, make_segmentation, executor=None, **kwargs):
        kwargs.setdefault("volume", False)
        session, executor = ThresholdSessionDouble(), executor or InlineExecutor()
        super().__init__(mri, make_segmentation, session, ("target", "other"), views, executor, **kwargs)
        self.other_id = self.segment_ids[1]

    def click(self, view: str, kji, positive: bool = True) -> None:
        self.place(view, kji, positive)

    def slice_of(self, view: str, kji) -> tuple[int, int]:
        axis = self.mri.spec.view_axis[view]
        return axis, kji[axis]

    def read(self, key) -> np.ndarray:
        return mrml.read_slice(self.seg, self.segment_id, self.geometry, *key)


@pytest.fixture
def harness(mri_scene, views, make_segmentation):
    """harness(executor=None, **kwargs): a Harness on the scene of this test."""
    return lambda executor=None, **kwargs: Harness(mri_scene, views, make_segmentation, executor, **kwargs)


def _composed(shape, writes) -> np.ndarray:
    """The segment after writing (key, mask) pairs in order (later slices win where slices cross)."""
    out = np.zeros(shape, np.uint8)
    for (axis, index), mask in writes:
        sel = [slice(None)] * 3
        sel[axis] = index
        out[tuple(sel)] = mask
    return out


def _shift_in_plane(kji, axis: int, d_row: int, d_col: int) -> tuple[int, int, int]:
    """The voxel d_row / d_col pixels away from `kji` on the same slice."""
    out = list(kji)
    row_axis, col_axis = (a for a in range(3) if a != axis)
    out[row_axis] += d_row
    out[col_axis] += d_col
    return tuple(out)


# ---------------------------------------------------------------- the controller with the test double


def test_clicks_in_each_view_segment_that_slice_only(harness, views, targets):
    h = harness()
    h.controller.start_case()
    assert h.session.profile == "target"
    assert h.session.spacing_kji == pytest.approx(h.geometry.spacing_kji)
    for n, view in enumerate(views):
        kji = targets[n]
        h.click(view, kji)
        key = h.slice_of(view, kji)
        click = h.session.clicks[-1]
        assert (click.axis, click.index) == key and click.positive
        assert (click.row, click.col) == tuple(v for a, v in enumerate(kji) if a != key[0])
        np.testing.assert_array_equal(h.read(key), h.session.predict(*key))
        assert h.read(key)[click.row, click.col] == 1
    assert not h.errors
    assert sorted({r.slice_key for r in h.controller.records}) == sorted(
        h.slice_of(v, targets[n]) for n, v in enumerate(views)
    )
    assert [name for name, _ in h.session.calls] == ["start_case"] + ["add_click", "learn_pending"] * 3
    # points are locked and coloured by their list
    assert all(h.positive.GetNthControlPointLocked(n) for n in range(3))
    assert h.positive.GetDisplayNode().GetSelectedColor() == pytest.approx(mrml.POSITIVE_COLOR)
    assert h.negative.GetDisplayNode().GetSelectedColor() == pytest.approx(mrml.NEGATIVE_COLOR)
    assert mrml.read_segment(h.seg, h.other_id, h.geometry).sum() == 0


def test_undo_restores_the_slice_exactly_including_earlier_painting(harness, targets, blob):
    h = harness()
    kji = targets[0]
    key = h.slice_of("Axial", kji)
    painted = blob(h.geometry.slice_shape(key[0]), 7)
    mrml.write_slice(h.seg, h.segment_id, h.geometry, *key, painted)  # painted with the Segment Editor
    mrml.write_slice(h.seg, h.segment_id, h.geometry, key[0], key[1] - 1, painted)  # and on the next slice
    before_case = h.full()

    h.click("Axial", kji)
    after_first = h.full()
    changed = np.argwhere(after_first != before_case)
    assert len(changed) and set(changed[:, key[0]]) == {key[1]}  # only the clicked slice changed
    h.click("Axial", _shift_in_plane(kji, key[0], 2, -3), positive=False)
    assert len(h.session.clicks) == 2 and not np.array_equal(h.full(), after_first)

    assert h.controller.undo_last()
    np.testing.assert_array_equal(h.full(), after_first)
    assert h.positive.GetNumberOfControlPoints() + h.negative.GetNumberOfControlPoints() == 1
    assert h.controller.undo_last()
    np.testing.assert_array_equal(h.full(), before_case)
    assert not h.controller.undo_last()
    assert h.session.clicks == [] and not h.errors


def test_deleting_an_earlier_point_repredicts_without_it(mri_scene, harness, targets):
    h = harness()
    kji = targets[1]
    axis = mri_scene.spec.view_axis["Coronal"]
    key = h.slice_of("Coronal", kji)
    second = _shift_in_plane(kji, axis, 1, -3)
    h.click("Coronal", kji)
    h.click("Coronal", tuple(second))
    h.click("Sagittal", targets[2])
    assert len(h.session.clicks) == 3 and not h.errors
    # delete the first point (not the last): the coronal slice is re-predicted from the second alone
    h.positive.RemoveNthControlPoint(0)
    assert h.session.clicks[0] == Click(*key, *[v for a, v in enumerate(second) if a != axis], True)
    assert len(h.session.clicks) == 2
    np.testing.assert_array_equal(h.read(key), h.session.predict(*key))
    # delete the second too: no click left on that slice, so it goes back to before the case (empty)
    # (the two slices cross along a line: the sagittal prediction, written later, keeps it)
    h.positive.RemoveNthControlPoint(h.positive.GetNthControlPointIndexByID(h.controller.records[0].point_id))
    sagittal = h.slice_of("Sagittal", targets[2])
    expected = _composed(h.geometry.shape_kji, [(sagittal, h.session.predict(*sagittal))])
    np.testing.assert_array_equal(h.full(), expected)
    assert [name for name, _ in h.session.calls].count("remove_click") == 2 and not h.errors


def test_bad_clicks_are_removed_and_reported_without_reaching_the_session(mri_scene, harness, targets):
    h = harness()
    geometry = h.geometry
    outside = geometry.kji_to_world(np.array(geometry.shape_kji) + 2)
    h.views["Axial"].JumpSliceByOffsetting(*outside)
    h.positive.AddControlPointWorld(vtk.vtkVector3d(*outside))
    assert isinstance(h.errors[-1], InvalidClickError) and "outside the image" in str(h.errors[-1])
    # a point that no slice view holds (e.g. placed in 3D)
    ras = voxel_ras(mri_scene.spec, targets[0])
    for view in h.views.values():
        view.JumpSliceByOffsetting(*(ras + 9))
    h.negative.AddControlPointWorld(vtk.vtkVector3d(*ras))
    assert "not on a slice view" in str(h.errors[-1])
    assert h.positive.GetNumberOfControlPoints() == h.negative.GetNumberOfControlPoints() == 0
    assert "add_click" not in [name for name, _ in h.session.calls]


def test_session_errors_remove_the_point_and_reach_the_gui(harness, targets):
    h = harness()
    h.session.add_click = lambda click: (_ for _ in ()).throw(CaseStateError("No case is open. Start one."))
    h.click("Axial", targets[0])
    assert str(h.errors[-1]) == "No case is open. Start one."
    assert h.positive.GetNumberOfControlPoints() == 0 and h.controller.records == []


def test_reset_restores_every_touched_slice_and_finish_reads_back_corrections(harness, targets):
    h = harness()
    before = h.full()
    h.click("Axial", targets[0])
    h.click("Sagittal", targets[2], positive=False)
    h.click("Sagittal", targets[2])
    h.controller.reset_case()
    np.testing.assert_array_equal(h.full(), before)
    assert h.positive.GetNumberOfControlPoints() + h.negative.GetNumberOfControlPoints() == 0
    assert h.session.calls[-1][0] == "reset_case"

    kji = targets[1]
    h.click("Coronal", kji)
    key = h.slice_of("Coronal", kji)
    corrected = h.read(key)
    corrected[:2, :] = 1  # a Segment Editor correction after the prediction
    mrml.write_slice(h.seg, h.segment_id, h.geometry, *key, corrected)
    done = []
    h.controller.finish_case(learn=False, on_done=done.append)
    ((accepted, learn),) = h.session.finished
    assert learn is False and list(accepted) == [key]
    np.testing.assert_array_equal(accepted[key], corrected)
    assert done and done[0].ok and done[0].value.clicks == 1
    assert h.controller.records == [] and h.positive.GetNumberOfControlPoints() == 0
    np.testing.assert_array_equal(h.read(key), corrected)  # the accepted segment stays
    # the next click starts a new case by itself
    h.click("Coronal", kji)
    assert [name for name, _ in h.session.calls][-3:] == ["start_case", "add_click", "learn_pending"]


def test_finish_learns_slices_the_user_painted_without_clicking(harness, targets):
    """A structure clicked on one axial slice and painted (as with the Segment Editor) on two others:
    the painted slices reach the session too; the lines the clicked slice crosses do not."""
    h = harness()
    h.click("Axial", targets[0])
    h.click("Sagittal", targets[2])  # a crossing slice: its writes are not painting
    clicked = h.slice_of("Axial", targets[0])
    axis, index = clicked
    painted = {}
    for offset in (2, 4):
        key = (axis, index + offset)
        mask = np.zeros_like(h.read(key))
        mask[5:12, 6:14] = 1
        mrml.write_slice(h.seg, h.segment_id, h.geometry, *key, mask)
        painted[key] = mask
    h.controller.finish_case(learn=True)
    ((accepted, learn),) = h.session.finished
    sagittal = h.slice_of("Sagittal", targets[2])
    assert learn and set(accepted) == {clicked, sagittal, *painted}
    for key, mask in painted.items():
        np.testing.assert_array_equal(accepted[key], mask)


def test_worker_thread_runs_the_session_and_the_scene_changes_on_poll(harness, views, targets):
    worker = Worker()
    try:
        h = harness(executor=worker)
        h.session.delay_s = 0.01
        h.controller.start_case()
        keys = []
        for n, view in enumerate(views):
            kji = targets[n]
            h.click(view, kji)
            keys.append(h.slice_of(view, kji))
        assert h.full().sum() == 0  # nothing applied before the GUI polls
        assert worker.wait_idle(10)
        worker.poll()
        writes = [(key, h.session.predict(*key)) for key in keys]
        np.testing.assert_array_equal(h.full(), _composed(h.geometry.shape_kji, writes))
        threads = {thread for _, thread in h.session.calls}
        assert threads == {"InteractiveAdapt worker"} and threading.current_thread().name not in threads
        # undo through the worker too, in order
        h.controller.undo_last()
        h.controller.undo_last()
        assert worker.wait_idle(10)
        worker.poll()
        np.testing.assert_array_equal(h.full(), _composed(h.geometry.shape_kji, writes[:1]))
        assert not h.errors
    finally:
        assert worker.shutdown(timeout=5)


def test_a_point_deleted_before_its_prediction_arrives_changes_nothing(harness, targets):
    worker = Worker()
    try:
        h = harness(executor=worker)
        h.session.delay_s = 0.05
        h.click("Axial", targets[0])
        h.controller.undo_last()  # before any poll
        assert worker.wait_idle(10)
        worker.poll()
        assert h.full().sum() == 0 and h.session.clicks == [] and not h.errors
    finally:
        worker.shutdown(timeout=5)


# ---------------------------------------------------------------- real mouse clicks in slice views


def _mouse_click(view, ras) -> None:
    """A left click through the view's interactor at the screen position of a world point."""
    xy_to_ras = view.get_view_node().GetXYToRAS()
    ras_to_xy = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Invert(xy_to_ras, ras_to_xy)
    x, y, _, _ = ras_to_xy.MultiplyPoint([*ras, 1.0])
    size = view.render_window().GetSize()
    assert 0 <= x < size[0] and 0 <= y < size[1]
    interactor = view.interactor()
    interactor.SetEventInformation(round(x), round(y), 0, 0, "\0", 0)
    interactor.MouseMoveEvent()
    interactor.LeftButtonPressEvent()
    interactor.LeftButtonReleaseEvent()


def test_real_mouse_clicks_in_red_and_yellow_views_go_through_the_controller(colin_block):
    from trame_slicer.core import SlicerApp
    from trame_slicer.views import DirectViewFactory, ViewLayoutDefinition

    app = SlicerApp()
    app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
    red = app.view_manager.create_view(ViewLayoutDefinition.axial_view())
    yellow = app.view_manager.create_view(ViewLayoutDefinition.sagittal_view())
    spec = GEOMETRIES["lps"]
    volume = add_volume(app.scene, colin_block, spec)
    for view in (red, yellow):
        view.render_window().SetSize(320, 320)
        view.set_background_volume_id(volume.GetID())
        view.fit_view_to_content()
    seg = mrml.create_segmentation(app.scene, volume)
    segment_id = mrml.ensure_segment(seg, None, "Brain")
    positive, negative = mrml.create_click_nodes(app.scene)
    session, errors = ThresholdSessionDouble(), []
    controller = mrml.ClickController(
        session, InlineExecutor(), volume, seg, segment_id, positive, negative, on_error=lambda error, tb: errors.append(error),
        volume=False,
    )  # fmt: skip
    geometry = controller.geometry

    # positive click in the Red (axial) view: axial fixes K for this LPS-stored volume
    kji = (9, 14, 21)
    ras = voxel_ras(spec, kji)
    red.get_view_node().JumpSliceByOffsetting(*ras)
    red.render()
    placer = mrml.PointPlacer()
    views = [(v.get_view_node(), v.interactor()) for v in (red, yellow)]
    placer.start(positive, views)
    _mouse_click(red, ras)
    assert positive.GetNumberOfControlPoints() == 1 and not errors
    assert session.clicks == [Click(0, 9, 14, 21, True)]
    red_slice = mrml.read_slice(seg, segment_id, geometry, 0, 9)
    np.testing.assert_array_equal(red_slice, session.predict(0, 9))
    assert red_slice[14, 21] == 1
    full = mrml.read_segment(seg, segment_id, geometry)
    assert full.sum() == red_slice.sum()  # nothing outside that slice
    # placing stays on: the next click also places a point (no re-arming needed)
    assert placer.node is positive

    # negative click in the Yellow (sagittal) view: sagittal fixes I here
    kji2 = (12, 16, 24)  # off the Red plane, so the click does not land on its intersection line
    ras2 = voxel_ras(spec, kji2)
    yellow.get_view_node().JumpSliceByOffsetting(*ras2)
    yellow.render()
    placer.start(negative, views)
    _mouse_click(yellow, ras2)
    assert negative.GetNumberOfControlPoints() == 1 and not errors
    assert session.clicks[-1] == Click(2, 24, 12, 16, False)
    assert sorted({r.slice_key for r in controller.records}) == [(0, 9), (2, 24)]

    # Ctrl+Z in the module == undo_last: the sagittal slice goes back exactly
    assert controller.undo_last()
    assert negative.GetNumberOfControlPoints() == 0
    np.testing.assert_array_equal(mrml.read_segment(seg, segment_id, geometry), full)
    placer.stop()
    controller.cleanup()


# ---------------------------------------------------------------- the real engine session


def test_the_controller_drives_the_real_engine_session(mri_scene, targets, tiny_model_dir, tmp_path):
    """Contract check with InteractiveSession (tiny untrained network): clicks, undo, removal, finish."""
    from InteractiveAdaptLib.app.settings import ModuleSettings, open_session
    from InteractiveAdaptLib.interaction import Click

    session = open_session(
        ModuleSettings(site="Test site"), tmp_path / "store", tiny_model_dir, cuda_available=False
    )
    nodes = mrml.prepare_case_nodes(mri_scene.scene, mri_scene.volume)
    errors: list = []
    worker = Worker()
    try:
        controller = mrml.ClickController(
            session, worker, nodes.volume, nodes.segmentation, nodes.segment_id, nodes.positive, nodes.negative,
            on_error=lambda error, tb: errors.append((error, tb)), volume=False,
        )  # fmt: skip
        geometry = controller.geometry
        kji = targets[0]
        axis = mri_scene.spec.view_axis["Axial"]
        view = add_slice_node(mri_scene.scene, "Red", "Axial", voxel_ras(mri_scene.spec, kji))
        assert view is not None
        for d_col, node in [(0, nodes.positive), (3, nodes.negative), (-3, nodes.positive)]:
            voxel = _shift_in_plane(kji, axis, 0, d_col)
            node.AddControlPointWorld(vtk.vtkVector3d(*voxel_ras(mri_scene.spec, voxel)))
        assert worker.drain(60)
        assert not errors, errors
        assert all(isinstance(c, Click) for c in session.clicks) and len(session.clicks) == 3
        key = (axis, kji[axis])
        np.testing.assert_array_equal(
            mrml.read_slice(nodes.segmentation, nodes.segment_id, geometry, *key), session.prediction(*key)
        )
        after_two = session.clicks[:2]
        controller.undo_last()
        assert worker.drain(60) and session.clicks == after_two and not errors
        np.testing.assert_array_equal(
            mrml.read_slice(nodes.segmentation, nodes.segment_id, geometry, *key), session.prediction(*key)
        )
        nodes.positive.RemoveNthControlPoint(0)  # the first click: re-predicted from the negative one alone
        assert worker.drain(60) and not errors
        assert [c.positive for c in session.clicks] == [False]
        finished: list = []
        controller.finish_case(learn=True, on_done=finished.append)
        assert worker.drain(60)
        assert finished[0].ok, finished[0].traceback
        assert finished[0].value.version == 1 and list((tmp_path / "store").rglob("v000001.pt"))
    finally:
        worker.shutdown(timeout=10)
