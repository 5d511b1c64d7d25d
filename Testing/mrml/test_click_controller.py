"""The click controller (mrml/click_controller.py) on a real MRML scene with real MRI volumes (Colin27)
in non-trivial geometries: bad clicks and failing clicks, a point deleted before its result arrives,
real mouse clicks in offscreen Red and Yellow slice views, and the real engine session behind it.
(Filling, undo, removal, reset and finish in 3D with the test double: test_click_controller_3d.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import vtk
from conftest import GEOMETRIES, add_slice_node, add_volume, voxel_ras, wait_idle
from controller_harness import ControllerHarness, prepare_case_nodes
from threshold_session_double import ThresholdSessionDouble

from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.app.inline_executor import InlineExecutor
from InteractiveAdaptLib.app.worker import Worker
from InteractiveAdaptLib.errors import CaseStateError, InvalidClickError
from InteractiveAdaptLib.interaction import Click
from InteractiveAdaptLib.mrml.contour_interpolation import contour_interpolation


class Harness(ControllerHarness):
    """A controller with one slice view per orientation of `views`."""

    def __init__(self, mri, views, make_segmentation, executor=None, **kwargs):
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
    h.session.add_click = lambda click, hints=None: (_ for _ in ()).throw(
        CaseStateError("No case is open. Start one.")
    )
    h.click("Axial", targets[0])
    assert str(h.errors[-1]) == "No case is open. Start one."
    assert h.positive.GetNumberOfControlPoints() == 0 and h.controller.records == []


def test_a_point_deleted_before_its_prediction_arrives_changes_nothing(harness, targets):
    worker = Worker()
    try:
        h = harness(executor=worker)
        h.session.delay_s = 0.05
        h.click("Axial", targets[0])
        h.controller.undo_last()  # before any poll
        assert wait_idle(worker, 10)
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
    session, errors = ThresholdSessionDouble(disk=True), []
    controller = mrml.ClickController(
        session, InlineExecutor(), volume, seg, segment_id, positive, negative, on_error=lambda error, tb: errors.append(error),
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
    reference = ThresholdSessionDouble(disk=True).open_case(
        mrml.volume_array(volume), geometry.spacing_kji, "Brain", contour_interpolation
    )
    reference.click(Click(0, 9, 14, 21, True))
    np.testing.assert_array_equal(full, reference.mask)  # the engine's 3D result, filled along K
    assert (full.reshape(full.shape[0], -1).sum(1) > 0).sum() > 1
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
    reference.click(Click(2, 24, 12, 16, False))
    np.testing.assert_array_equal(mrml.read_segment(seg, segment_id, geometry), reference.mask)

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
    nodes = prepare_case_nodes(mri_scene.scene, mri_scene.volume)
    errors: list = []
    worker = Worker()
    try:
        controller = mrml.ClickController(
            session, worker, nodes.volume, nodes.segmentation, nodes.segment_id, nodes.positive, nodes.negative,
            on_error=lambda error, tb: errors.append((error, tb)),
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
        )  # the clicked slice shows the network's prediction; the 3D filling is around it
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
