"""Placing click points while pan and zoom keep working (mrml/point_placer.py), in real offscreen slice
views (trame-slicer) with real mouse events through each view's interactor: a left click adds a point
where it was made, right-drag zooms, middle- and Shift+left-drag pan, the wheel changes slice, and none
of these add a point or end placing; the points reach the click controller as Place mode's did."""

from __future__ import annotations

import numpy as np
import pytest
import slicer
import vtk
from conftest import GEOMETRIES, add_volume, voxel_ras
from threshold_session_double import ThresholdSessionDouble

from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.app.inline_executor import InlineExecutor
from InteractiveAdaptLib.interaction import Click

pytestmark = pytest.mark.slicer

VIEW_SIZE_PX = 320
# Where drags start: on the image, away from the points the tests place (a drag that starts on a
# point belongs to that point's markups widget, as everywhere in Slicer).
DRAG_FROM = (250, 90)


class Views:
    """Red (axial) and Yellow (sagittal) offscreen views of a real MRI (made once: views are slow to make)."""

    def __init__(self, colin_block) -> None:
        from trame_slicer.core import SlicerApp
        from trame_slicer.views import DirectViewFactory, ViewLayoutDefinition

        self.app = SlicerApp()
        self.app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
        self.red = self.app.view_manager.create_view(ViewLayoutDefinition.axial_view())
        self.yellow = self.app.view_manager.create_view(ViewLayoutDefinition.sagittal_view())
        self.scene = self.app.scene
        self.spec = GEOMETRIES["lps"]
        self.volume = add_volume(self.scene, colin_block, self.spec)
        for view in (self.red, self.yellow):
            view.render_window().SetSize(VIEW_SIZE_PX, VIEW_SIZE_PX)
            view.set_background_volume_id(self.volume.GetID())

    def reset(self) -> None:
        """Views fitted to the image, in their normal mode, two empty click lists and a new placer."""
        interaction = self.scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
        interaction.SetCurrentInteractionMode(interaction.ViewTransform)
        for view in (self.red, self.yellow):
            view.fit_view_to_content()
            view.render()
        self.positive, self.negative = mrml.create_click_nodes(self.scene)
        self.defined: list[tuple[str, int]] = []  # (list name, index) of each PointPositionDefinedEvent
        for node in (self.positive, self.negative):
            node.AddObserver(slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._on_defined)
        self.placer = mrml.PointPlacer()

    def clear(self) -> None:
        """Remove what a test added to the scene."""
        self.placer.stop()
        for class_name in ("vtkMRMLMarkupsNode", "vtkMRMLSegmentationNode"):
            for node in list(self.scene.GetNodesByClass(class_name)):
                self.scene.RemoveNode(node)

    @vtk.calldata_type(vtk.VTK_INT)
    def _on_defined(self, caller, event, index) -> None:
        self.defined.append((caller.GetName(), index))

    def pairs(self) -> list[tuple[object, object]]:
        """What the module hands the placer: (slice node, interactor) of each slice view."""
        return [(view.get_view_node(), view.interactor()) for view in (self.red, self.yellow)]

    def points(self, node) -> list[np.ndarray]:
        return [
            np.array(node.GetNthControlPointPositionWorld(i)) for i in range(node.GetNumberOfControlPoints())
        ]


@pytest.fixture(scope="module")
def offscreen_views(colin_block):
    return Views(colin_block)


@pytest.fixture
def views(offscreen_views):
    offscreen_views.reset()
    yield offscreen_views
    offscreen_views.clear()


# ---------------------------------------------------------------- the mouse


def ras_to_xy(view, ras) -> tuple[int, int]:
    """The pixel of a slice view that shows a world (RAS) point."""
    ras_to_xy_matrix = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Invert(view.get_view_node().GetXYToRAS(), ras_to_xy_matrix)
    x, y, _, _ = ras_to_xy_matrix.MultiplyPoint([*ras, 1.0])
    assert 0 <= x < VIEW_SIZE_PX and 0 <= y < VIEW_SIZE_PX, "the point is not on screen"
    return round(x), round(y)


def xy_to_ras(view, xy) -> np.ndarray:
    return np.array(view.get_view_node().GetXYToRAS().MultiplyPoint([*xy, 0.0, 1.0])[:3])


def move(view, xy, shift: bool = False, ctrl: bool = False) -> None:
    view.interactor().SetEventInformation(int(xy[0]), int(xy[1]), int(ctrl), int(shift), "\0", 0)
    view.interactor().MouseMoveEvent()


def click(view, xy, shift: bool = False, ctrl: bool = False) -> None:
    """A left click as the mouse makes it: move there, press, release."""
    move(view, xy, shift, ctrl)
    view.interactor().LeftButtonPressEvent()
    view.interactor().LeftButtonReleaseEvent()


def drag(view, button: str, start, end, shift: bool = False, steps: int = 6) -> None:
    """Press `button` ("Left", "Middle", "Right") at `start`, move in steps to `end`, release."""
    interactor = view.interactor()
    move(view, start, shift)
    getattr(interactor, f"{button}ButtonPressEvent")()
    for t in np.linspace(0.0, 1.0, steps + 1)[1:]:
        move(view, np.round(np.add(start, t * np.subtract(end, start))), shift)
    getattr(interactor, f"{button}ButtonReleaseEvent")()


def xy_to_ras_offset(view) -> np.ndarray:
    """Where the view's lower-left pixel is in the world: moves when the view pans."""
    matrix = view.get_view_node().GetXYToRAS()
    return np.array([matrix.GetElement(r, 3) for r in range(3)])


# ---------------------------------------------------------------- (a) to (d) of issue 15


def test_a_left_click_adds_one_point_where_clicked_and_placing_stays_on(views):
    red = views.red
    ras = voxel_ras(views.spec, (9, 14, 21))
    red.get_view_node().JumpSliceByOffsetting(*ras)
    views.placer.start(views.positive, views.pairs())
    xy = ras_to_xy(red, ras)
    click(red, xy)
    (point,) = views.points(views.positive)
    np.testing.assert_allclose(point, xy_to_ras(red, xy), atol=1e-6)
    pixel_mm = red.get_view_node().GetFieldOfView()[0] / VIEW_SIZE_PX
    assert np.linalg.norm(point - ras) <= pixel_mm, "the point is not under the mouse"
    assert views.defined == [("Positive clicks", 0)]
    assert views.points(views.negative) == []
    # The views stay in their normal mode (no markups Place mode), and placing stays on.
    interaction = views.scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    assert interaction.GetCurrentInteractionMode() == interaction.ViewTransform
    assert views.placer.node is views.positive
    click(red, (xy[0] + 30, xy[1] - 20))
    assert views.positive.GetNumberOfControlPoints() == 2
    assert views.defined[-1] == ("Positive clicks", 1)


def test_b_right_drag_zooms_without_a_point_and_placing_stays_on(views):
    red, node = views.red, views.red.get_view_node()
    views.placer.start(views.positive, views.pairs())
    fov = np.array(node.GetFieldOfView())
    drag(red, "Right", DRAG_FROM, (DRAG_FROM[0], DRAG_FROM[1] + 60))
    assert not np.allclose(node.GetFieldOfView(), fov), "right-drag did not zoom"
    assert views.positive.GetNumberOfControlPoints() == 0 and views.defined == []
    assert views.placer.node is views.positive
    click(red, (160, 160))  # the next click still places a point
    assert views.positive.GetNumberOfControlPoints() == 1


def test_c_middle_and_shift_left_drags_pan_without_a_point(views):
    red = views.red
    views.placer.start(views.negative, views.pairs())
    for button, shift in (("Middle", False), ("Left", True)):
        origin = xy_to_ras_offset(red)
        drag(red, button, DRAG_FROM, (DRAG_FROM[0] - 40, DRAG_FROM[1] + 40), shift=shift)
        assert not np.allclose(xy_to_ras_offset(red), origin), f"{button} drag (shift={shift}) did not pan"
    assert views.negative.GetNumberOfControlPoints() == 0 and views.defined == []
    assert views.placer.node is views.negative
    click(red, (160, 160))
    assert views.negative.GetNumberOfControlPoints() == 1


def test_d_after_stop_left_clicks_add_nothing(views):
    views.placer.start(views.positive, views.pairs())
    click(views.red, (160, 160))
    views.placer.stop()
    assert views.placer.node is None
    click(views.red, (120, 150))
    click(views.yellow, (160, 160))
    assert views.positive.GetNumberOfControlPoints() == 1 and views.negative.GetNumberOfControlPoints() == 0


# ---------------------------------------------------------------- what is and is not a click


def test_a_left_drag_is_not_a_click_but_hand_jitter_is(views):
    red = views.red
    views.placer.start(views.positive, views.pairs())
    drag(red, "Left", DRAG_FROM, (DRAG_FROM[0] + 40, DRAG_FROM[1] - 30))  # window/level
    assert views.positive.GetNumberOfControlPoints() == 0
    # Out and back to where it started is still a drag.
    drag(red, "Left", (160, 160), (160 + 2 * mrml.CLICK_TOLERANCE_PX, 160), steps=1)
    interactor = red.interactor()
    move(red, (160, 160))
    interactor.LeftButtonPressEvent()
    move(red, (170, 160))
    move(red, (160, 160))
    interactor.LeftButtonReleaseEvent()
    assert views.positive.GetNumberOfControlPoints() == 0
    # A hand that moves a pixel or two while clicking places the point where it pressed.
    drag(red, "Left", (160, 160), (161, 159), steps=2)
    (point,) = views.points(views.positive)
    np.testing.assert_allclose(point, xy_to_ras(red, (160, 160)), atol=1e-6)


def test_the_wheel_changes_slice_and_modified_clicks_place_nothing(views):
    red, node = views.red, views.red.get_view_node()
    views.placer.start(views.positive, views.pairs())
    offset = node.GetSliceOffset()
    move(red, (160, 160))
    red.interactor().MouseWheelForwardEvent()
    assert node.GetSliceOffset() != offset
    click(red, (160, 160), shift=True)
    click(red, (150, 150), ctrl=True)
    assert views.positive.GetNumberOfControlPoints() == 0


def test_a_quick_second_click_places_a_point_and_does_not_maximize_the_view(views):
    """Qt turns the second press of a quick pair into a double click: a point, never the maximize action."""
    red = views.red
    interactor = red.interactor()
    reached_the_view: list[bool] = []
    interactor.AddObserver(
        vtk.vtkCommand.LeftButtonDoubleClickEvent, lambda *_: reached_the_view.append(True)
    )
    views.placer.start(views.positive, views.pairs())
    click(red, (160, 160))
    move(red, (170, 150))
    interactor.InvokeEvent(vtk.vtkCommand.LeftButtonDoubleClickEvent)  # as the Qt view sends it
    interactor.LeftButtonReleaseEvent()
    assert views.positive.GetNumberOfControlPoints() == 2
    assert not reached_the_view, "the double click reached the view (it maximizes the view in Slicer)"


def test_clicks_wait_while_another_tool_has_the_views_in_place_mode(views):
    interaction = views.scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    ruler = views.scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", "Ruler")
    selection = views.scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")
    selection.SetReferenceActivePlaceNodeClassName(ruler.GetClassName())
    selection.SetActivePlaceNodeID(ruler.GetID())
    # Starting takes the views out of Place mode: one click must not make two points.
    interaction.SetCurrentInteractionMode(interaction.Place)
    views.placer.start(views.positive, views.pairs())
    assert interaction.GetCurrentInteractionMode() == interaction.ViewTransform
    # The user picks the ruler while placing: its clicks are the ruler's.
    interaction.SetCurrentInteractionMode(interaction.Place)
    click(views.red, (160, 160))
    assert views.positive.GetNumberOfControlPoints() == 0 and ruler.GetNumberOfControlPoints() == 1
    interaction.SetCurrentInteractionMode(interaction.ViewTransform)
    click(views.red, (120, 120))
    assert views.positive.GetNumberOfControlPoints() == 1


# ---------------------------------------------------------------- the click controller unchanged


def test_clicks_in_red_and_yellow_views_reach_the_click_controller(views):
    scene, spec = views.scene, views.spec
    seg = mrml.create_segmentation(scene, views.volume)
    segment_id = mrml.ensure_segment(seg, None, "Brain")
    session, errors = ThresholdSessionDouble(), []
    controller = mrml.ClickController(
        session, InlineExecutor(), views.volume, seg, segment_id, views.positive, views.negative,
        on_error=lambda error, tb: errors.append(error),
    )  # fmt: skip
    # Red (axial) fixes K for this LPS-stored volume; Yellow (sagittal) fixes I.
    kji_red, kji_yellow = (9, 14, 21), (12, 16, 24)
    ras_red, ras_yellow = voxel_ras(spec, kji_red), voxel_ras(spec, kji_yellow)
    views.red.get_view_node().JumpSliceByOffsetting(*ras_red)
    views.yellow.get_view_node().JumpSliceByOffsetting(*ras_yellow)
    views.placer.start(views.positive, views.pairs())
    drag(views.red, "Right", DRAG_FROM, (DRAG_FROM[0], DRAG_FROM[1] - 40))  # zoom in first
    click(views.red, ras_to_xy(views.red, ras_red))
    views.placer.start(views.negative, views.pairs())
    click(views.yellow, ras_to_xy(views.yellow, ras_yellow))
    assert not errors, errors
    assert session.clicks == [Click(0, 9, 14, 21, True), Click(2, 24, 12, 16, False)]
    assert [r.slice_key for r in controller.records] == [(0, 9), (2, 24)]
    views.placer.stop()
    controller.cleanup()
