"""The click controller: markups events -> the engine's case on the worker -> segment blocks on the main thread.

Each click goes through the engine's case (engine/case.py): its slice is shown first, then the structure
filled in 3D along the volume's K axis (propagated beyond the clicked slices, interpolated between them);
the slices each step changed are written into the segment in one block.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import slicer
import vtk
from vtkmodules.util.misc import calldata_type

from InteractiveAdaptLib.errors import CaseStateError, InteractiveAdaptError
from InteractiveAdaptLib.interaction import (
    Block,
    Bounds,
    CaseSession,
    CaseUpdate,
    Click,
    ClickTimes,
    EngineCase,
    ErrorCallback,
    FillOptions,
    Interpolator,
    JobKind,
    Removal,
    StatusCallback,
)
from InteractiveAdaptLib.mrml.click_record import ClickRecord
from InteractiveAdaptLib.mrml.markups import style_click_node
from InteractiveAdaptLib.mrml.segment_writer import SegmentWriter
from InteractiveAdaptLib.mrml.segments import prepare_segmentation, segment_or_error, segment_profile
from InteractiveAdaptLib.mrml.slice_views import (
    cursor_slice_node,
    find_slice_node,
    ras_to_slice_pixel,
    slice_axis,
)
from InteractiveAdaptLib.mrml.volume import volume_array, volume_geometry

log = logging.getLogger(__name__)


class ClickController(slicer.util.VTKObservationMixin):
    """Turns points placed in slice views into clicks of the engine's case, and the case's updates into
    segment blocks.

    Case calls run through `executor` (the worker thread, or InlineExecutor); their results are applied
    to the scene in the callbacks, on the thread that polls the executor (Slicer's main thread).
    `fill_3d` switches the propagation beyond the clicked slices on or off (interpolation between
    clicked slices stays), `bounds` (first, last slice of the K axis, None for no bound) limits it; both
    apply from the next click. Deleting the last point undoes that click: the segment goes back exactly
    to what it was before the click. Deleting an earlier point undoes the clicks back to it and places
    the later ones again (their slices are predicted, filled and learned again).
    """

    def __init__(
        self,
        session: CaseSession,
        executor: Any,
        volume_node: Any,
        segmentation_node: Any,
        segment_id: str,
        positive_node: Any,
        negative_node: Any,
        profile: str = "",
        on_error: ErrorCallback | None = None,
        on_status: StatusCallback | None = None,
        resolve_slice_node: Callable[[Any], Any] | None = None,
        interpolate: Interpolator | None = None,
    ) -> None:
        super().__init__()
        self.fill_3d = True  # propagate beyond the clicked slices (from the next click on)
        self.bounds: Bounds = (None, None)  # slices of the K axis the filling stays within
        self.confirmed: list[int] = []  # the clicked slices of the K axis, as the case says
        self._interpolate = interpolate  # None: ITK's contour interpolation (Slicer's Fill between slices)
        self._case: EngineCase | None = None  # the engine's case: touched on the worker only
        self._applied: list[ClickRecord] = []  # clicks whose blocks are in the segment, in order
        self.session, self.executor, self.volume_node = session, executor, volume_node
        self.segmentation_node, self.segment_id = segmentation_node, segment_id
        self.positive_node, self.negative_node = positive_node, negative_node
        self.geometry = volume_geometry(volume_node)
        prepare_segmentation(segmentation_node, volume_node)
        segment_or_error(segmentation_node, segment_id)
        self.writer = SegmentWriter(segmentation_node, segment_id, self.geometry)
        self.profile = profile or segment_profile(segmentation_node, segment_id)
        self._on_error = on_error or (lambda error, tb: log.error("%s", error))
        self._on_status = on_status or (lambda text: log.info("%s", text))
        scene = volume_node.GetScene()
        self._resolve = resolve_slice_node or (
            lambda ras: find_slice_node(scene, ras, cursor_slice_node(scene))
        )
        self.records: list[ClickRecord] = []
        self._started = False
        self.finishing = False  # Finish case is learning: a new point waits for it
        self._muted = 0
        self.last_click: ClickTimes | None = None  # the newest click's wait (status and latency lines)
        for node, positive in ((positive_node, True), (negative_node, False)):
            style_click_node(node, positive)
            self.addObserver(
                node, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._on_point_defined
            )
            self.addObserver(node, slicer.vtkMRMLMarkupsNode.PointRemovedEvent, self._on_point_removed)

    @property
    def options(self) -> FillOptions:
        """How the next click fills the structure."""
        return FillOptions(bool(self.fill_3d), tuple(self.bounds))

    # ------------------------------------------------------------ case lifecycle (main thread)

    def start_case(self) -> None:
        """Open the engine's case on the volume; clicks placed before it is open queue behind it."""
        volume = volume_array(self.volume_node)
        self._started = True
        self.writer.start()  # what the user paints from now on is found against the segment as it is
        self.executor.submit(
            self._open_case,
            volume,
            self.geometry.spacing_kji,
            self.profile,
            owner=self,
            kind=JobKind.PREPARE,
            on_done=self._on_started,
        )

    def _open_case(self, volume: np.ndarray, spacing_kji: tuple, profile: str) -> None:
        """Worker thread: the engine's case on the volume."""
        self._case = None
        interpolate = self._interpolate
        if interpolate is None:  # scipy and vtkITK: imported when a case starts, not when the module loads
            from InteractiveAdaptLib.mrml.contour_interpolation import contour_interpolation

            interpolate = contour_interpolation
        self._case = self.session.open_case(volume, spacing_kji, profile, interpolate)

    def _require_case(self) -> EngineCase:
        """Worker thread: the open case, or a clear error when it did not start."""
        if self._case is None:
            raise CaseStateError("The case has not started. Place the point again.")
        return self._case

    def undo_last(self) -> bool:
        """Delete the newest point (which undoes its click); False if there is none."""
        if not self.records:
            return False
        record = self.records[-1]
        record.node.RemoveNthControlPoint(record.node.GetNthControlPointIndexByID(record.point_id))
        return True

    def reset_case(self) -> None:
        """Forget every click of the case and put the segment back as it was before the case."""
        self.executor.cancel(owner=self)  # this case's jobs only: a queued export or rollback goes on
        for record in reversed(self._applied):  # newest first, each back to what it found
            self._restore_blocks(record)
        self._clear_points()
        self.executor.submit(self._reset_case, owner=self, kind=JobKind.RESET, on_done=self._on_simple)

    def _reset_case(self) -> None:
        """Worker thread: reset the engine's case, unless its start was cancelled."""
        if self._case is not None and self._case.open:
            self._case.reset()

    def finish_case(self, learn: bool = True, on_done: Callable[[Any], None] | None = None) -> None:
        """Accept the case: post-interaction learning on the segment as it is now (Segment Editor
        corrections included): the clicked slices, slices of the 3D result the engine picks, and slices
        the user painted. When learning fails (e.g. the version cannot be saved) the case stays as it
        was, clicks included, so that Finish can be pressed again."""
        final = self.writer.read() if learn else None
        expected = self.writer.expected

        def done(result: Any) -> None:
            self.finishing = False
            if learn and result.error is None:  # its own points only: the lists may hold a next case's
                self.writer.stop()
                for record in self.records:
                    self._remove_point(record.node, record.point_id)
                self._clear_points(every_point=False)
                self._started = False
            (on_done or self._on_simple)(result)

        if not learn:  # closing: nothing to retry, the points go now
            self.writer.stop()
            self._clear_points()
            self._started = False
        self.finishing = learn
        self.executor.submit(
            self._finish_case, final, expected, learn, owner=self, kind=JobKind.FINISH if learn else JobKind.CLOSE,
            on_done=done, pass_cancel_event=True,
        )  # fmt: skip

    def _finish_case(
        self, final: np.ndarray | None, expected: np.ndarray | None, learn: bool, cancel_event: Any
    ) -> Any:
        """Worker thread: finish the case; the Cancel button stops its learning between steps."""
        case = self._case
        if case is None or not case.open:
            return None
        summary = case.finish(final, expected, learn=learn, should_stop=cancel_event.is_set)
        self._case = None  # ended (a failure above keeps it open for another Finish)
        return summary

    def cleanup(self) -> None:
        """Stop observing the point lists."""
        self.removeObservers()

    @property
    def started(self) -> bool:
        """True from start_case (or the first click) until finish_case."""
        return self._started

    # ------------------------------------------------------------ markups events

    @calldata_type(vtk.VTK_INT)
    def _on_point_defined(self, caller: Any, event: Any, index: int | None = None) -> None:
        if self._muted:
            return
        if index is not None:
            self._add_point(caller, index)
            return
        # Points defined inside a modify block arrive as one event without an index: take every
        # defined point of the list that is not a click yet.
        known = {r.point_id for r in self.records if r.node is caller}
        for n in range(caller.GetNumberOfControlPoints()):
            defined = caller.GetNthControlPointPositionStatus(n) == caller.PositionDefined
            if defined and caller.GetNthControlPointID(n) not in known:
                self._add_point(caller, n)

    def _add_point(self, caller: Any, index: int) -> None:
        positive = caller is self.positive_node
        point_id = caller.GetNthControlPointID(index)
        if self.finishing:
            self._remove_point(caller, point_id)
            self._on_status("The case is being finished; place the point again when it is done.")
            return
        ras = caller.GetNthControlPointPositionWorld(index)
        try:
            axis = slice_axis(self._resolve(ras), self.geometry)
            slice_index, row, col = ras_to_slice_pixel(ras, self.geometry, axis)
            click = Click(axis=axis, index=slice_index, row=row, col=col, positive=positive)
        except InteractiveAdaptError as error:
            self._remove_point(caller, point_id)
            self._on_error(error, "")
            return
        caller.SetNthControlPointLocked(index, True)
        record = ClickRecord(click, caller, point_id, placed_at=time.perf_counter())
        self.records.append(record)
        if not self._started:
            self.start_case()
        # The clicked slice is shown first, the filling after it; the MI step runs before the next click.
        submit, done = self.executor.submit, functools.partial
        submit(self._call, "click", click, self.options, False, owner=self, kind=JobKind.SLICE,
               on_done=done(self._on_slice, record))  # fmt: skip
        submit(self._call, "fill", owner=self, kind=JobKind.FILL, on_done=done(self._on_filled, record))
        submit(self._call, "learn_pending", owner=self, kind=JobKind.LEARN, on_done=self._on_simple)

    def _call(self, method: str, *args: Any) -> Any:
        """Worker thread: one of the case's methods (its slice first, the filling after, its learning)."""
        return getattr(self._require_case(), method)(*args)

    @calldata_type(vtk.VTK_INT)
    def _on_point_removed(self, caller: Any, event: Any, index: int | None = None) -> None:
        if self._muted:
            return
        present = {caller.GetNthControlPointID(n) for n in range(caller.GetNumberOfControlPoints())}
        for record in [r for r in reversed(self.records) if r.node is caller and r.point_id not in present]:
            self._drop(record)

    # ------------------------------------------------------------ results (main thread)

    def _on_started(self, result: Any) -> None:
        if not result.ok:
            self._started = False  # the next click starts the case again
        if result.error is not None:
            self._on_error(result.error, result.traceback)

    def _on_simple(self, result: Any) -> None:
        if result.error is not None:
            self._on_error(result.error, result.traceback)

    def _on_slice(self, record: ClickRecord, result: Any) -> None:
        if record not in self.records:
            return  # the point was deleted before its result arrived (its undo is queued)
        update = self._apply(record, result, drop_on_failure=True)
        if update is None:
            return
        self.confirmed = list(update.confirmed)
        self.last_click = ClickTimes(len(self.records), (time.perf_counter() - record.placed_at) * 1000)
        self._on_status(self.last_click.status)

    def _on_filled(self, record: ClickRecord, result: Any) -> None:
        if record not in self.records or not record.applied:
            return  # deleted (its undo is queued) or its slice failed
        update = self._apply(record, result, drop_on_failure=False)
        if update is None or self.last_click is None:
            return
        self.last_click.fill_ms = (time.perf_counter() - record.placed_at) * 1000
        self.last_click.filled, self.last_click.clicks = update.filled, len(self.records)
        self._on_status(self.last_click.status)

    def _apply(self, record: ClickRecord, result: Any, drop_on_failure: bool) -> CaseUpdate | None:
        """Write a worker result's blocks for `record`; None when it failed (the error is reported, and
        with `drop_on_failure` the point is taken away) or could not be written."""
        if not result.ok:
            if drop_on_failure:
                self.records.remove(record)
                self._remove_point(record.node, record.point_id)
            if result.error is not None:
                self._on_error(result.error, result.traceback)
            return None
        try:
            self._write_blocks(record, result.value.blocks)
        except InteractiveAdaptError as error:
            self._on_error(error, "")
            return None
        return result.value

    def _write_blocks(self, record: ClickRecord, blocks: list[Block]) -> None:
        """Write a click's blocks, keeping what each replaced (for an exact undo)."""
        record.saved += self.writer.write(blocks)
        record.applied = True
        if record not in self._applied:
            self._applied.append(record)

    def _restore_blocks(self, record: ClickRecord) -> None:
        """Put back what a click's blocks replaced, newest first: the segment as the click found it."""
        self.writer.restore(record.saved)
        record.saved, record.applied = [], False
        if record in self._applied:
            self._applied.remove(record)

    def _drop(self, record: ClickRecord) -> None:
        later = self.records[self.records.index(record) + 1 :]
        self.records.remove(record)
        self.executor.submit(
            self._call,
            "remove",
            record.click,
            self.options,
            owner=self,
            kind=JobKind.REMOVE if later else JobKind.UNDO,
            on_done=functools.partial(self._on_removed, record, later),
        )

    def _on_removed(self, record: ClickRecord, later: list[ClickRecord], result: Any) -> None:
        if result.error is not None:
            self._on_error(result.error, result.traceback)
            return
        if not result.ok:
            return  # cancelled (the case was reset or closed): the reset put the segment back
        removal = result.value
        try:
            for done in reversed(later if removal.kind is Removal.REDONE else []):
                self._restore_blocks(done)
            self._restore_blocks(record)
            for update in removal.redone:
                again = next((r for r in later if r.click is update.click), None)
                if again is not None:
                    self._write_blocks(again, update.blocks)
        except InteractiveAdaptError as error:
            self._on_error(error, "")
        self.confirmed = list(removal.confirmed)
        n, left = len(removal.redone), len(self.records)
        redone = f"Removed a click; the {n} later click{'s were' if n != 1 else ' was'} placed again"
        self._on_status(
            f"{redone} ({left} left)." if removal.kind is Removal.REDONE else f"Undone a click ({left} left)."
        )

    @contextlib.contextmanager
    def _quiet(self):
        """The controller's own changes to the point lists are no clicks."""
        self._muted += 1
        try:
            yield
        finally:
            self._muted -= 1

    def _remove_point(self, node: Any, point_id: str) -> None:
        with self._quiet():
            if (index := node.GetNthControlPointIndexByID(point_id)) >= 0:
                node.RemoveNthControlPoint(index)

    def _clear_points(self, every_point: bool = True) -> None:
        with self._quiet():
            for node in (self.positive_node, self.negative_node) if every_point else ():
                node.RemoveAllControlPoints()
        self.records.clear()
        self._applied.clear()
        self.confirmed = []
