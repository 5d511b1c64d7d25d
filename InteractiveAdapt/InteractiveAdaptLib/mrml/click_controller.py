"""The click controller: markups events -> engine session on the worker -> segment slices on the main thread.

Two modes. In 3D mode (the default) each click goes through the engine's VolumeCase: its slice is
predicted and the structure is filled along the volume's K axis (propagated beyond the clicked slices,
interpolated between them); the slices it changed are written into the segment in one block. In 2D mode
(`volume=False`) each click segments only the slice it is on.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import slicer
import vtk
from vtkmodules.util.misc import calldata_type

from InteractiveAdaptLib.errors import CaseStateError, InteractiveAdaptError
from InteractiveAdaptLib.interaction import CaseSession, Click, SliceKey, SlicePrediction
from InteractiveAdaptLib.mrml.markups import style_click_node
from InteractiveAdaptLib.mrml.segments import (
    prepare_segmentation,
    read_block,
    read_segment,
    read_slice,
    segment_or_error,
    segment_profile,
    write_block,
    write_slice,
)
from InteractiveAdaptLib.mrml.slice_views import (
    cursor_slice_node,
    find_slice_node,
    ras_to_slice_pixel,
    slice_axis,
)
from InteractiveAdaptLib.mrml.volume import volume_array, volume_geometry
from InteractiveAdaptLib.mrml.volume_clicks import Block, Bounds, VolumeWork, _session_index, require

log = logging.getLogger(__name__)

MAX_PAINTED_SLICES = 20  # painted (unclicked) slices learned per case: Finish stays quick
# The worker's descriptions of a case's jobs (the progress line shows them; the web front end orders
# the drawing of its views by them, its tests and benchmark wait for them): the case's start, then per
# click its slice ("Segmenting (positive click)"), the 3D filling and the learning step.
PREPARE_JOB = "Preparing the image"
SLICE_JOB = "Segmenting"
FILL_JOB = "Filling the structure in 3D"
LEARN_JOB = "Learning from the click"


@dataclass
class ClickRecord:
    """One click of the current case, as the scene knows it."""

    click: Click
    node: Any
    point_id: str
    snapshot: np.ndarray | None = None  # the slice just before this click's prediction was written
    snapshot_time: int = 0  # the controller's write clock when the snapshot was taken
    applied: bool = False
    placed_at: float = 0.0  # time.perf_counter() when the point arrived: the user's wait starts there
    saved: list[Block] = field(default_factory=list)  # 3D mode: the segment where this click wrote

    @property
    def slice_key(self) -> SliceKey:
        """(axis, index) of the slice the click is on."""
        return self.click.slice_key


def painted_slices(
    current: np.ndarray, reference: np.ndarray, skip: set[SliceKey], limit: int = MAX_PAINTED_SLICES
) -> dict[SliceKey, np.ndarray]:
    """The slices where `current` differs from `reference` (the user painted them), outside `skip`, in
    the orientation painted in (the one whose fewest slices hold all the painting), at most `limit`
    evenly spread, each with its mask in `current`."""
    painted = current != reference
    for axis, index in skip:
        np.moveaxis(painted, axis, 0)[index] = False
    touched = [np.flatnonzero(np.moveaxis(painted, a, 0).any(axis=(1, 2))) for a in range(3)]
    axis = min(range(3), key=lambda a: len(touched[a]))
    indices = touched[axis]
    if len(indices) > limit:
        indices = indices[np.linspace(0, len(indices) - 1, limit).round().astype(int)]
    return {(axis, int(n)): np.take(current, int(n), axis).astype(np.uint8) for n in indices}


ErrorCallback = Callable[[BaseException, str], None]
StatusCallback = Callable[[str], None]


class ClickController(slicer.util.VTKObservationMixin):
    """Turns points placed in slice views into session clicks and session results into segment slices.

    Session calls run through `executor` (the worker thread, or InlineExecutor); their results are
    applied to the scene in the callbacks, on the thread that polls the executor (Slicer's main thread).
    Deleting the last point undoes that click: the segment goes back exactly to what it was before the
    click.

    3D mode (`volume=True`): `fill_3d` switches the propagation beyond the clicked slices on or off
    (interpolation between clicked slices stays), `bounds` (first, last slice of the K axis, None for
    no bound) limits it; both apply from the next click. Deleting an earlier point undoes the clicks
    back to it and places the later ones again (their slices are predicted, filled and learned again).

    2D mode: deleting an earlier point re-predicts that slice without it. Slices of different axes
    cross along a line: a restore leaves that line as the other slice's newer prediction wrote it.
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
        volume: bool = True,
        interpolate: Callable[[np.ndarray, int], np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self.volume_mode = volume
        self.fill_3d = True  # 3D mode: propagate beyond the clicked slices (from the next click on)
        self.bounds: Bounds = (None, None)  # 3D mode: slices of the K axis the filling stays within
        self.confirmed: list[int] = []  # 3D mode: the clicked slices of the K axis, as the case says
        self._interpolate = interpolate  # None: ITK's contour interpolation (Slicer's Fill between slices)
        self._work: VolumeWork | None = None  # the worker's 3D case: touched on the worker only
        self._applied: list[ClickRecord] = []  # 3D mode: clicks whose blocks are in the segment, in order
        self._expected: np.ndarray | None = None  # 3D mode: the segment as the controller left it
        self.session = session
        self.executor = executor
        self.volume_node = volume_node
        self.segmentation_node = segmentation_node
        self.segment_id = segment_id
        self.positive_node = positive_node
        self.negative_node = negative_node
        self.geometry = volume_geometry(volume_node)
        prepare_segmentation(segmentation_node, volume_node)
        segment_or_error(segmentation_node, segment_id)
        self.profile = profile or segment_profile(segmentation_node, segment_id)
        self._on_error = on_error or (lambda error, tb: log.error("%s", error))
        self._on_status = on_status or (lambda text: log.info("%s", text))
        scene = volume_node.GetScene()
        self._resolve = resolve_slice_node or (
            lambda ras: find_slice_node(scene, ras, cursor_slice_node(scene))
        )
        self.records: list[ClickRecord] = []
        self._base: dict[tuple[int, int], tuple[np.ndarray, int]] = {}  # before the first click there
        self._clock = 0  # counts slice writes
        self._last_write: dict[tuple[int, int], tuple[int, np.ndarray]] = {}  # (clock, content)
        self._started = False
        self._start_segment: np.ndarray | None = None
        self._muted = 0
        self.last_wait_ms: float | None = None  # click to mask in the segment, for the newest click
        self.last_fill_ms: float | None = None  # 3D mode: click to the filled structure in the segment
        for node, positive in ((positive_node, True), (negative_node, False)):
            style_click_node(node, positive)
            self.addObserver(
                node, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._on_point_defined
            )
            self.addObserver(node, slicer.vtkMRMLMarkupsNode.PointRemovedEvent, self._on_point_removed)

    # ------------------------------------------------------------ case lifecycle (main thread)

    def start_case(self) -> None:
        """Hand the volume to the session; clicks placed before it finishes queue behind it."""
        volume = volume_array(self.volume_node)
        self._started = True
        # The segment as the case found it: what the user paints from now on, outside the clicked
        # slices, is found against it when the case is finished.
        self._start_segment = read_segment(self.segmentation_node, self.segment_id, self.geometry)
        self._expected = self._start_segment.copy() if self.volume_mode else None
        self.executor.submit(
            self._start_session,
            volume,
            self.geometry.spacing_kji,
            self.profile,
            owner=self,
            description=PREPARE_JOB,
            on_done=self._on_started,
        )

    def _start_session(self, volume: np.ndarray, spacing_kji: tuple, profile: str) -> None:
        """Worker thread: open the session's case (and in 3D mode its 3D mask)."""
        self._work = None
        self.session.start_case(volume, spacing_kji, profile)
        if self.volume_mode:
            self._work = VolumeWork(self.session, self._interpolate)

    def undo_last(self) -> bool:
        """Delete the newest point (which undoes its click); False if there is none."""
        if not self.records:
            return False
        record = self.records[-1]
        record.node.RemoveNthControlPoint(record.node.GetNthControlPointIndexByID(record.point_id))
        return True

    def reset_case(self) -> None:
        """Forget every click of the case and put each touched slice back as it was before the case."""
        self.executor.cancel(owner=self)  # this case's jobs only: a queued export or rollback goes on
        for record in reversed(self._applied):  # 3D: newest first, each back to what it found
            self._restore_blocks(record)
        # newest first, so that where slices cross, the oldest (pre-case) content is written last
        for key, (content, _) in sorted(self._base.items(), key=lambda item: -item[1][1]):
            self._write(*key, content)
        self._clear_points()
        self.executor.submit(
            self._reset_session, owner=self, description="Resetting the case", on_done=self._on_simple
        )

    def _reset_session(self) -> None:
        """Worker thread: reset the session's case, unless its start was cancelled."""
        if self.session.case_open:
            self.session.reset_case()
            if self.volume_mode:
                self._work = VolumeWork(self.session, self._interpolate)

    def accepted_masks(self) -> dict[SliceKey, np.ndarray]:
        """Each clicked slice as it is in the segment now (Segment Editor corrections included), and the
        slices the user painted in this case without clicking them, in the orientation they were
        painted in (the engine learns a painted slice from a click at its centre). At most MAX_PAINTED_SLICES
        painted slices, evenly spread, keep Finish quick."""
        keys = sorted({record.slice_key for record in self.records})
        accepted = {
            key: read_slice(self.segmentation_node, self.segment_id, self.geometry, *key) for key in keys
        }
        if self._start_segment is None:
            return accepted
        current = read_segment(self.segmentation_node, self.segment_id, self.geometry)
        # the controller's own writes are not painting
        accepted.update(painted_slices(current, self._start_segment, set(keys)))
        return accepted

    def finish_case(self, learn: bool = True, on_done: Callable[[Any], None] | None = None) -> None:
        """Accept the case: post-interaction learning on the segment as it is now (Segment Editor
        corrections included). 3D mode: the clicked slices, then slices of the 3D result the engine picks
        (VolumeCase.accepted_slices), then slices the user painted; 2D mode: the clicked and painted
        slices."""
        final = expected = None
        try:
            if self.volume_mode:  # the slices are picked on the worker, where the case is
                accepted, expected = {}, self._expected
                final = (
                    read_segment(self.segmentation_node, self.segment_id, self.geometry) if learn else None
                )
            else:
                accepted = self.accepted_masks()
        except CaseStateError:
            if learn:
                raise
            accepted = {}  # the segment is gone (e.g. the scene is closing): just end the case
        self._clear_points()
        self._started, self._start_segment, self._expected = False, None, None
        self.executor.submit(
            self._finish_session,
            accepted or None,
            learn,
            final,
            expected,
            owner=self,
            description="Learning from the finished case" if learn else "Finishing the case",
            on_done=on_done or self._on_simple,
            pass_cancel_event=True,
        )

    def _finish_session(
        self,
        accepted: dict | None,
        learn: bool,
        final: np.ndarray | None,
        expected: np.ndarray | None,
        cancel_event: Any,
    ) -> Any:
        """Worker thread: finish the case (3D mode: pick the slices to learn from the segment `final`);
        the Cancel button stops its learning between steps."""
        if final is not None and self._work is not None and self.session.case_open:
            accepted = self._work.accepted(final)
            if expected is not None:  # what the user painted, where the controller did not write it
                painted = painted_slices(final, expected, set(accepted))
                accepted.update({key: mask for key, mask in painted.items() if key not in accepted})
            accepted = accepted or None
        self._work = None
        return self.session.finish_case(accepted, learn=learn, should_stop=cancel_event.is_set)

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
        kind = "positive" if positive else "negative"
        if self.volume_mode:  # the clicked slice is shown first, the filling after it
            self.executor.submit(
                self._click_volume,
                click,
                self.fill_3d,
                self.bounds,
                owner=self,
                description=f"{SLICE_JOB} ({kind} click)",
                on_done=functools.partial(self._on_volume_prediction, record),
            )
            self.executor.submit(
                self._fill_volume,
                click,
                owner=self,
                description=FILL_JOB,
                on_done=functools.partial(self._on_volume_filled, record),
            )
        else:
            self.executor.submit(
                self.session.add_click,
                click,
                owner=self,
                description=f"{SLICE_JOB} ({kind} click)",
                on_done=functools.partial(self._on_prediction, record),
            )
        # Show first, learn after: the MI step runs before the next click is processed.
        self.executor.submit(
            self.session.learn_pending,
            owner=self,
            description=LEARN_JOB,
            on_done=self._on_simple,
        )

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

    def _on_prediction(self, record: ClickRecord, result: Any) -> None:
        if record not in self.records:
            return  # the point was deleted before its prediction arrived
        if not result.ok:
            self.records.remove(record)
            self._remove_point(record.node, record.point_id)
            if result.error is not None:
                self._on_error(result.error, result.traceback)
            return
        prediction = result.value
        key = (int(prediction.axis), int(prediction.index))
        try:
            current = read_slice(self.segmentation_node, self.segment_id, self.geometry, *key)
            self._base.setdefault(key, (current, self._clock))
            record.snapshot, record.snapshot_time = current, self._clock
            self._write(*key, prediction.mask)
        except InteractiveAdaptError as error:
            self._on_error(error, "")
            return
        record.applied = True
        # What the user waited: from the point's arrival to the mask written into the segment.
        self.last_wait_ms = (time.perf_counter() - record.placed_at) * 1000
        self._on_status(f"Segmented in {self.last_wait_ms:.0f} ms ({len(self.records)} clicks).")

    def _on_simple(self, result: Any) -> None:
        if result.error is not None:
            self._on_error(result.error, result.traceback)

    # ------------------------------------------------------------ 3D mode

    def _click_volume(self, click: Click, fill: bool, bounds: Bounds) -> Any:
        """Worker thread: the click's slice through the case's 3D mask (the filling waits)."""
        return require(self._work).click(click, fill, bounds, now=False)

    def _fill_volume(self, click: Click) -> Any:
        """Worker thread: fill the structure around the click's slice."""
        return require(self._work).fill_pending(click)

    def _on_volume_prediction(self, record: ClickRecord, result: Any) -> None:
        if record not in self.records:
            return  # the point was deleted before its result arrived (its undo is queued)
        update = self._apply_volume(record, result, drop_on_failure=True)
        if update is None:
            return
        self.confirmed = list(update.confirmed)
        self.last_wait_ms = (time.perf_counter() - record.placed_at) * 1000
        self._on_status(
            f"Segmented in {self.last_wait_ms:.0f} ms ({len(self.records)} clicks); filling in 3D..."
        )

    def _on_volume_filled(self, record: ClickRecord, result: Any) -> None:
        if record not in self.records or not record.applied:
            return  # deleted (its undo is queued) or its slice failed
        update = self._apply_volume(record, result, drop_on_failure=False)
        if update is None:
            return
        self.last_fill_ms = (time.perf_counter() - record.placed_at) * 1000
        filled = f"{update.filled} slice{'s' if update.filled != 1 else ''}"
        self._on_status(
            f"Segmented in {self.last_wait_ms:.0f} ms, {filled} filled in 3D by {self.last_fill_ms:.0f} ms "
            f"({len(self.records)} clicks)."
        )

    def _apply_volume(self, record: ClickRecord, result: Any, drop_on_failure: bool) -> Any | None:
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

    def _drop_volume(self, click: Click, fill: bool, bounds: Bounds) -> Any:
        """Worker thread: take the click out of the case (the later clicks are placed again)."""
        return require(self._work).remove(click, fill, bounds)

    def _on_volume_dropped(self, record: ClickRecord, later: list[ClickRecord], result: Any) -> None:
        if result.error is not None:
            self._on_error(result.error, result.traceback)
            return
        if not result.ok:
            return  # cancelled (the case was reset or closed): the reset put the segment back
        kind, redone, confirmed = result.value
        try:
            for done in reversed(later if kind == "redo" else []):
                self._restore_blocks(done)
            self._restore_blocks(record)
            for update in redone:
                again = next((r for r in later if r.click is update.click), None)
                if again is not None:
                    self._write_blocks(again, update.blocks)
        except InteractiveAdaptError as error:
            self._on_error(error, "")
        self.confirmed = list(confirmed)
        if kind == "redo":
            self._on_status(
                f"Removed a click; the {len(redone)} later click{'s were' if len(redone) != 1 else ' was'} "
                f"placed again ({len(self.records)} left)."
            )
        else:
            self._on_status(f"Undone a click ({len(self.records)} left).")

    def _write_blocks(self, record: ClickRecord, blocks: list[Block]) -> None:
        """Write a click's blocks, keeping what each replaced (for an exact undo)."""
        for block in blocks:
            count = block.data.shape[block.axis]
            saved = read_block(
                self.segmentation_node, self.segment_id, self.geometry, block.axis, block.first, count
            )
            record.saved.append(Block(block.axis, block.first, saved))
            self._write_block(block)
        record.applied = True
        if record not in self._applied:
            self._applied.append(record)

    def _restore_blocks(self, record: ClickRecord) -> None:
        """Put back what a click's blocks replaced, newest first: the segment as the click found it."""
        for block in reversed(record.saved):
            self._write_block(block)
        record.saved, record.applied = [], False
        if record in self._applied:
            self._applied.remove(record)

    def _write_block(self, block: Block) -> None:
        write_block(
            self.segmentation_node, self.segment_id, self.geometry, block.axis, block.first, block.data
        )
        if self._expected is not None:
            count = block.data.shape[block.axis]
            np.moveaxis(self._expected, block.axis, 0)[block.first : block.first + count] = np.moveaxis(
                block.data > 0, block.axis, 0
            )

    # ------------------------------------------------------------ removing clicks

    def _drop(self, record: ClickRecord) -> None:
        if self.volume_mode:
            later = self.records[self.records.index(record) + 1 :]
            self.records.remove(record)
            self.executor.submit(
                self._drop_volume,
                record.click,
                self.fill_3d,
                self.bounds,
                owner=self,
                description="Undoing the click"
                if not later
                else "Removing the click; placing the later clicks again",
                on_done=functools.partial(self._on_volume_dropped, record, later),
            )
            return
        was_last = record is self.records[-1]
        later_same_slice = [
            r for r in self.records[self.records.index(record) + 1 :] if r.slice_key == record.slice_key
        ]
        self.records.remove(record)
        self.executor.submit(
            self._drop_from_session,
            record.click,
            owner=self,
            description="Undoing the click" if was_last else "Removing the click",
            on_done=functools.partial(self._on_dropped, record, later_same_slice),
        )

    def _drop_from_session(self, click: Click) -> tuple[str, SlicePrediction | None]:
        """Worker thread: undo the click if it is the session's last, else remove it."""
        clicks = list(self.session.clicks)
        n = _session_index(clicks, click)
        if n is None:
            return ("absent", None)
        if n == len(clicks) - 1:
            return ("undo", self.session.undo())
        return ("remove", self.session.remove_click(n))

    def _on_dropped(self, record: ClickRecord, later_same_slice: list[ClickRecord], result: Any) -> None:
        if result.error is not None:
            self._on_error(result.error, result.traceback)
            return
        kind, prediction = result.value if result.ok else ("absent", None)
        key = record.slice_key
        try:
            if kind == "undo" and record.applied:
                if record.snapshot is not None:
                    self._restore(key, record.snapshot, record.snapshot_time)
                elif prediction is not None:
                    self._write(*key, prediction.mask)
                elif key in self._base:
                    self._restore(key, *self._base[key])
            elif kind == "remove":
                if prediction is not None:
                    self._write(int(prediction.axis), int(prediction.index), prediction.mask)
                elif key in self._base:
                    self._restore(key, *self._base[key])
                for later in later_same_slice:
                    later.snapshot = None  # what it covered was predicted with the removed click
        except InteractiveAdaptError as error:
            self._on_error(error, "")
        if all(r.slice_key != key for r in self.records):
            self._base.pop(key, None)
        self._on_status(f"{'Undone' if kind == 'undo' else 'Removed'} a click ({len(self.records)} left).")

    # ------------------------------------------------------------ helpers

    def _write(self, axis: int, index: int, mask: np.ndarray) -> None:
        write_slice(self.segmentation_node, self.segment_id, self.geometry, axis, index, mask)
        self._clock += 1
        self._last_write[(axis, index)] = (self._clock, (np.asarray(mask) > 0).astype(np.uint8))

    def _restore(self, key: tuple[int, int], content: np.ndarray, taken_at: int) -> None:
        """Write saved slice content back, except on the lines where a crossing slice that still has
        clicks was written after the save: there its newer content stays."""
        axis, index = key
        row_axis, _ = (a for a in range(3) if a != axis)
        content = np.array(content, copy=True)
        for other_axis, other_index in {r.slice_key for r in self.records}:
            written_at, other = self._last_write.get((other_axis, other_index), (0, None))
            if other_axis == axis or written_at <= taken_at:
                continue
            other_rows, _ = (a for a in range(3) if a != other_axis)
            line = other[index, :] if other_rows == axis else other[:, index]
            if other_axis == row_axis:
                content[other_index, :] = line
            else:
                content[:, other_index] = line
        self._write(*key, content)

    def _remove_point(self, node: Any, point_id: str) -> None:
        index = node.GetNthControlPointIndexByID(point_id)
        if index >= 0:
            self._muted += 1
            try:
                node.RemoveNthControlPoint(index)
            finally:
                self._muted -= 1

    def _clear_points(self) -> None:
        self._muted += 1
        try:
            for node in (self.positive_node, self.negative_node):
                node.RemoveAllControlPoints()
        finally:
            self._muted -= 1
        self.records.clear()
        self._base.clear()
        self._last_write.clear()
        self._applied.clear()
        self.confirmed = []
