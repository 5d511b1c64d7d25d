"""Left clicks in slice views -> control points, while the views keep their normal mouse actions.

In Slicer's markups Place mode the markups widgets take the right button (a right-drag does not zoom,
a right click ends placing), and a left drag places a point too. The placer leaves the views in
ViewTransform mode instead, where right-drag zooms, middle-drag and Shift+left-drag pan, the wheel
changes slice and left-drag sets window/level, and watches each view's interactor: a left press and
release without modifiers and without moving more than a few pixels adds a control point at the
pressed position, which fires PointPositionDefinedEvent with its index exactly as Place mode does.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import slicer
import vtk

# Hand jitter between press and release (device pixels) that still makes a click; more is a drag.
CLICK_TOLERANCE_PX = 3
# Above the views' interactor style (priority 0): it aborts the events a widget consumes, so an
# observer below it would miss the release of a click on a point or slice intersection.
OBSERVER_PRIORITY = 10.0


@dataclass
class _Press:
    """A left press that may still become a click."""

    interactor: Any
    slice_node: Any
    xy: tuple[int, int]


class PointPlacer:
    """Adds a control point to one point list for each left click in the slice views it watches.

    The owner hands in the views as (slice node, interactor) pairs; the placer never touches the GUI.
    Placing stays on until `stop` (or `start` with another list), whatever mouse actions come between.
    """

    def __init__(self) -> None:
        self._node: Any = None
        self._observations: list[tuple[Any, int]] = []
        self._press: _Press | None = None

    @property
    def node(self) -> Any:
        """The point list a click adds to now, or None when placing is off."""
        return self._node

    def start(self, markups_node: Any, views: Iterable[tuple[Any, Any]]) -> None:
        """Add each left click in `views` ((slice node, interactor) pairs) to `markups_node`."""
        self.stop()
        self._node = markups_node
        interaction = _interaction_node(markups_node.GetScene())
        # Place mode would add a second point for the same click (and take the right button back).
        if interaction is not None and interaction.GetCurrentInteractionMode() == interaction.Place:
            interaction.SetCurrentInteractionMode(interaction.ViewTransform)
        for slice_node, interactor in views:
            self._observe(interactor, slice_node)

    def stop(self) -> None:
        """No more points on click; the views are left exactly as they are."""
        for interactor, tag in self._observations:
            interactor.RemoveObserver(tag)
        self._observations.clear()
        self._node = None
        self._press = None

    # ------------------------------------------------------------ interactor events

    def _observe(self, interactor: Any, slice_node: Any) -> None:
        def on_double_click(caller: Any, event: Any) -> None:
            # A quick second click comes as a double click instead of a press: it places a point
            # too, and must not maximize the view.
            if self._on_press(interactor, slice_node):
                interactor.GetCommand(double_click_tag).SetAbortFlag(1)

        double_click_tag = interactor.AddObserver(
            vtk.vtkCommand.LeftButtonDoubleClickEvent, on_double_click, OBSERVER_PRIORITY
        )
        self._observations.append((interactor, double_click_tag))
        handlers = {
            vtk.vtkCommand.LeftButtonPressEvent: self._on_press,
            vtk.vtkCommand.MouseMoveEvent: self._on_move,
            vtk.vtkCommand.LeftButtonReleaseEvent: self._on_release,
        }
        for event, handler in handlers.items():
            callback = functools.partial(handler, interactor, slice_node)
            self._observations.append(
                (interactor, interactor.AddObserver(event, callback, OBSERVER_PRIORITY))
            )

    def _on_press(self, interactor: Any, slice_node: Any, caller: Any = None, event: Any = None) -> bool:
        self._press = None
        if not self._accepts(interactor):
            return False
        self._press = _Press(interactor, slice_node, tuple(interactor.GetEventPosition()))
        return True

    def _on_move(self, interactor: Any, slice_node: Any, caller: Any, event: Any) -> None:
        if self._press is not None and not _still_a_click(self._press, interactor):
            self._press = None  # a drag (window/level, pan): not a click

    def _on_release(self, interactor: Any, slice_node: Any, caller: Any, event: Any) -> None:
        press, self._press = self._press, None
        if press is None or not _still_a_click(press, interactor) or not self._accepts(interactor):
            return
        self._place(press)

    def _accepts(self, interactor: Any) -> bool:
        """A plain left button, placing on, and the views in their normal mode (no other tool placing)."""
        node = self._node
        if node is None or node.GetScene() is None:
            return False
        if interactor.GetShiftKey() or interactor.GetControlKey() or interactor.GetAltKey():
            return False  # Shift pans, Ctrl blends layers, Alt rotates/moves the slice intersections
        interaction = _interaction_node(node.GetScene())
        return interaction is None or interaction.GetCurrentInteractionMode() == interaction.ViewTransform

    def _place(self, press: _Press) -> None:
        manager = slicer.vtkMRMLAbstractSliceViewDisplayableManager
        xyz = [0.0, 0.0, 0.0]
        manager.ConvertDeviceToXYZ(press.interactor, press.slice_node, *press.xy, xyz)
        ras = [0.0, 0.0, 0.0]
        manager.ConvertXYZToRAS(press.slice_node, xyz, ras)
        # The click controller takes the view under the mouse from the crosshair; make sure it is this one.
        crosshair = self._node.GetScene().GetFirstNodeByClass("vtkMRMLCrosshairNode")
        if crosshair is not None:
            crosshair.SetCursorPositionXYZ(xyz, press.slice_node)
        self._node.AddControlPointWorld(vtk.vtkVector3d(*ras))


def _interaction_node(scene: Any) -> Any:
    return scene.GetNodeByID("vtkMRMLInteractionNodeSingleton") if scene is not None else None


def _still_a_click(press: _Press, interactor: Any) -> bool:
    if press.interactor is not interactor:
        return False
    x, y = interactor.GetEventPosition()
    return math.hypot(x - press.xy[0], y - press.xy[1]) <= CLICK_TOLERANCE_PX
