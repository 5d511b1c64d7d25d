"""Which views draw while a click is worked on, so that the clicked view shows its mask first.

Drawing a slice view and sending it to the browser takes the event loop 30-90 ms per view here
(software OpenGL, 2 cores), and every change of the scene redraws all three views: the point's marker,
then the clicked slice, then the 3D filling. Measured with `interactive-adapt bench-web`, the clicked
view's mask reached the page hundreds of ms after the server wrote it, behind the other views' frames.
So from the moment a click places a point, the views wait: the clicked view draws once its slice is
written (the marker and the mask in one frame), the other views once the structure is filled in 3D.
A view the user scrolls, zooms or pans draws at once, and no view waits longer than `MAX_WAIT_S`.
And the 3D filling, which would take the cores while the clicked view draws, starts on the worker
once that frame is drawn (`FramesFirst`, at most `MAX_FILL_DELAY_S` later).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from InteractiveAdaptLib.interaction import JobKind
from InteractiveAdaptLib.mrml.point_placer import CLICK_TOLERANCE_PX

MAX_WAIT_S = 2.0
MAX_FILL_DELAY_S = 0.3
# Above the views' interactor style (priority 0), below the point placer (10): runs after the placer
# has added the click's point, before the style may abort the event.
OBSERVER_PRIORITY = 5.0
INTERACTIONS = (
    "MouseWheelForwardEvent",
    "MouseWheelBackwardEvent",
    "RightButtonPressEvent",
    "MiddleButtonPressEvent",
)


class ViewPriority:
    """Holds the views' drawing from a click until its results are written (see the module's docstring)."""

    def __init__(self, views: list[Any], clicks: Callable[[], int], placing: Callable[[], bool]) -> None:
        self._views = views
        self._clicks = clicks  # the open case's click count: a release that added a point is a click
        self._placing = placing  # True while a left click places a point
        self._clicked: Any = None
        self._before = 0
        self._pressing = False
        self._pressed_at = (0, 0)
        self._timer: asyncio.TimerHandle | None = None
        self.frame_drawn = threading.Event()  # cleared by a click, set once the clicked view drew it
        self.frame_drawn.set()
        for view in views:
            view.render_window().AddObserver("EndEvent", lambda *a, v=view: self._drawn(v))
            interactor = view.interactor()
            interactor.AddObserver("LeftButtonPressEvent", self._pressed, OBSERVER_PRIORITY)
            interactor.AddObserver("MouseMoveEvent", self._moved, OBSERVER_PRIORITY)
            interactor.AddObserver(
                "LeftButtonReleaseEvent", lambda *a, v=view: self._released(v), OBSERVER_PRIORITY
            )
            for event in INTERACTIONS:
                interactor.AddObserver(
                    event, lambda *a, v=view: v.set_render_blocked(False), OBSERVER_PRIORITY
                )

    def slice_written(self) -> None:
        """The click's slice is in the segment: the clicked view draws it."""
        if self._clicked is not None:
            self._clicked.set_render_blocked(False)

    def release(self) -> None:
        """The click's work is written (or failed): every view draws."""
        self._clicked = None
        self.frame_drawn.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for view in self._views:
            if view.is_render_blocked:
                view.set_render_blocked(False)

    def _pressed(self, interactor: Any, _event: str) -> None:
        """A press while placing may become a click: hold the drawing already (the point's marker would
        otherwise redraw every view before the mask)."""
        self._before = self._clicks()
        self._pressing = self._placing()
        self._pressed_at = interactor.GetEventPosition()
        if self._pressing:
            self._hold()

    def _moved(self, interactor: Any, _event: str) -> None:
        if not self._pressing or self._clicked is not None:
            return
        x, y = interactor.GetEventPosition()
        if max(abs(x - self._pressed_at[0]), abs(y - self._pressed_at[1])) > CLICK_TOLERANCE_PX:
            self._pressing = False  # a drag, not a click: the user sees it move
            self.release()

    def _released(self, view: Any) -> None:
        self._pressing = False
        if self._clicks() <= self._before:
            if self._clicked is None:
                self.release()  # no point was added (placing off, a drag, a refused click)
            return
        self._clicked = view
        self.frame_drawn.clear()
        self._hold()

    def _drawn(self, view: Any) -> None:
        if view is self._clicked and not view.is_render_blocked:
            self.frame_drawn.set()

    def _hold(self) -> None:
        for each in self._views:
            each.set_render_blocked(True)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_event_loop().call_later(MAX_WAIT_S, self.release)


class FramesFirst:
    """The worker, seen by the workflow: a click's 3D filling waits (on the worker thread) until the clicked
    view drew the click's slice; everything else is the worker's own."""

    def __init__(self, worker: Any, priority: ViewPriority) -> None:
        self._worker = worker
        self._priority = priority

    def submit(self, fn: Callable[..., Any], *args: Any, kind: JobKind = JobKind.OTHER, **kwargs: Any) -> Any:
        if kind is JobKind.FILL:
            frame_drawn, fill = self._priority.frame_drawn, fn

            def fn(*a: Any, **k: Any) -> Any:
                frame_drawn.wait(MAX_FILL_DELAY_S)
                return fill(*a, **k)

        return self._worker.submit(fn, *args, kind=kind, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._worker, name)
