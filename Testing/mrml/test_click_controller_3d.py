"""The click controller (mrml/click_controller.py) on a real MRML scene with real MRI volumes (Colin27)
in non-trivial geometries, driving the engine's real Case and slice propagation on top of the threshold
test double (the double offers what they use of a session; its clicks mark disks here): a click fills the structure along the
K axis in one block write, undo puts the segment back bit for bit, deleting an earlier point places the
later clicks again, reset, the 3D switch and slice range, what Finish learns from, and the worker thread.
The same with the shipped network and real mouse clicks: test_thalamus_in_3d.py."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import slicer
from controller_harness import ControllerHarness
from threshold_session_double import ThresholdSessionDouble

from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.app.inline_executor import InlineExecutor
from InteractiveAdaptLib.app.worker import Worker
from InteractiveAdaptLib.engine.slice_propagation import PropagationConfig
from InteractiveAdaptLib.interaction import FillOptions, JobKind
from InteractiveAdaptLib.mrml.contour_interpolation import contour_interpolation


class RecordingExecutor(InlineExecutor):
    """Runs jobs at once and keeps their kinds."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[JobKind] = []

    def submit(self, fn, *args, kind: JobKind = JobKind.OTHER, **kwargs):
        self.kinds.append(kind)
        return super().submit(fn, *args, kind=kind, **kwargs)


class Harness(ControllerHarness):
    """A 3D-mode controller; clicks on slices of the K axis go through the view that holds K fixed in
    this geometry."""

    def __init__(self, mri, make_segmentation, executor=None):
        self.status: list[str] = []
        super().__init__(
            mri,
            make_segmentation,
            ThresholdSessionDouble(disk=True),
            ("target",),
            ("Axial", "Coronal", "Sagittal"),
            executor or RecordingExecutor(),
            on_status=self.status.append,
        )
        self.k_view = next(v for v, axis in mri.spec.view_axis.items() if axis == 0)

    def click(self, kji, positive: bool = True, view: str | None = None) -> None:
        """Place a point on the voxel (k, j, i) through a view (default: the one holding K fixed)."""
        self.place(view or self.k_view, kji, positive)

    def engine_mask(self, clicks, config: PropagationConfig | None = None) -> np.ndarray:
        """What the engine's case alone makes of these clicks on a fresh double (the reference)."""
        reference = ThresholdSessionDouble(disk=True)
        volume = mrml.volume_array(self.mri.volume)
        case = reference.open_case(volume, self.geometry.spacing_kji, "target", contour_interpolation, config)
        for click in clicks:
            case.click(click, FillOptions(propagate=config.enabled if config else True))
        return case.mask.astype(np.uint8)


@pytest.fixture
def harness(mri_scene, make_segmentation):
    """harness(executor=None): a Harness on the scene of this test."""
    return lambda executor=None: Harness(mri_scene, make_segmentation, executor)


def k_slices(mask: np.ndarray) -> list[int]:
    return [int(n) for n in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))]


# A voxel (k, j, i) of each geometry's array inside a region the double fills over several K slices.
SEED = {"lps": (7, 11, 29), "permuted": (29, 7, 11)}


def test_a_click_fills_the_structure_in_one_block_write_and_says_so(harness, mri_scene):
    h = harness()
    seed = SEED[mri_scene.spec.name]
    events = []
    segmentation = h.seg.GetSegmentation()
    tag = segmentation.AddObserver(
        slicer.vtkSegmentation.SourceRepresentationModified, lambda caller, event: events.append(event)
    )
    h.click(seed)
    segmentation.RemoveObserver(tag)
    assert not h.errors, h.errors
    shown = h.full()
    np.testing.assert_array_equal(shown, h.engine_mask(h.session.clicks))  # the engine's 3D mask
    filled = k_slices(shown)
    assert len(filled) >= 3 and seed[0] in filled
    # Two block writes, one change each (not one per slice): the clicked slice, then the filling.
    assert len(events) <= 2
    assert h.controller.confirmed == [seed[0]]
    assert h.status[-2].startswith("Segmented in ") and h.status[-2].endswith("filling in 3D...")
    assert f", {len(filled) - 1} slices filled in 3D by " in h.status[-1]
    assert h.controller.last_click.fill_ms >= h.controller.last_click.slice_ms
    assert {JobKind.SLICE, JobKind.FILL, JobKind.LEARN} <= set(h.executor.kinds)


def test_undo_puts_back_the_segment_exactly_including_painting_the_filling_covered(harness, mri_scene, blob):
    h = harness()
    seed = SEED[mri_scene.spec.name]
    k, shape = seed[0], h.geometry.shape_kji
    for n in (k - 2, k + 1, shape[0] - 1):  # painted with the Segment Editor, where the filling reaches
        mrml.write_slice(h.seg, h.segment_id, h.geometry, 0, n, blob(h.geometry.slice_shape(0), n))
    before_case = h.full()
    h.click(seed)
    after_first = h.full()
    assert not np.array_equal(after_first, before_case)
    h.click((seed[0], seed[1] + 1, seed[2] - 2), positive=False)  # a correction on the same slice
    after_second = h.full()
    other = next(v for v, axis in mri_scene.spec.view_axis.items() if axis == 1)
    h.click(seed, view=other)  # a slice of another orientation
    assert len(h.session.clicks) == 3 and not h.errors
    assert not np.array_equal(h.full(), after_second)
    for expected in (after_second, after_first, before_case):
        assert h.controller.undo_last()
        np.testing.assert_array_equal(h.full(), expected)
    assert not h.controller.undo_last() and h.session.clicks == [] and h.controller.confirmed == []
    assert h.status[-1] == "Undone a click (0 left)." and not h.errors


def test_deleting_an_earlier_point_places_the_later_clicks_again(harness, mri_scene):
    h = harness()
    seed = SEED[mri_scene.spec.name]
    before_case = h.full()
    low = (seed[0] - 3, seed[1], seed[2])
    h.click(seed)
    h.click(low)
    h.click((seed[0] + 4, seed[1], seed[2]))
    first, *later = h.session.clicks
    h.positive.RemoveNthControlPoint(0)  # not the newest point
    assert h.session.clicks == later and not h.errors
    # exactly what the two remaining clicks make on their own (the double does not learn)
    np.testing.assert_array_equal(h.full(), h.engine_mask(later))
    assert h.controller.confirmed == sorted(c.index for c in later)
    assert h.status[-1] == "Removed a click; the 2 later clicks were placed again (2 left)."
    assert JobKind.REMOVE in h.executor.kinds
    # and the clicks placed again undo exactly, back to the segment before the case
    assert h.controller.undo_last() and h.controller.undo_last()
    np.testing.assert_array_equal(h.full(), before_case)
    assert h.session.clicks == [] and not h.errors


def test_reset_puts_back_every_slice_the_case_filled(harness, mri_scene, blob):
    h = harness()
    seed = SEED[mri_scene.spec.name]
    mrml.write_slice(h.seg, h.segment_id, h.geometry, 0, seed[0] + 1, blob(h.geometry.slice_shape(0), 3))
    before_case = h.full()
    h.click(seed)
    h.click((seed[0] + 4, seed[1], seed[2]))
    h.positive.RemoveNthControlPoint(0)
    h.click(seed, positive=False)
    h.controller.reset_case()
    np.testing.assert_array_equal(h.full(), before_case)
    assert h.session.calls[-1][0] == "reset_case" and h.controller.confirmed == []
    h.click(seed)  # the case goes on with a new 3D mask
    assert h.controller.confirmed == [seed[0]] and len(h.session.clicks) == 1
    shown = h.full()
    np.testing.assert_array_equal(shown[seed[0]], h.engine_mask(h.session.clicks)[seed[0]])
    assert not h.errors


def test_filling_off_and_the_slice_range_apply_from_the_next_click(harness, mri_scene):
    h = harness()
    seed = SEED[mri_scene.spec.name]
    k = seed[0]
    h.controller.fill_3d = False
    h.click(seed)
    assert k_slices(h.full()) == [k]  # only the clicked slice
    assert JobKind.SLICE in h.executor.kinds
    h.controller.undo_last()
    h.controller.fill_3d, h.controller.bounds = True, (k - 1, k + 1)
    h.click(seed)
    assert k_slices(h.full()) == [k - 1, k, k + 1]  # filled, but only within the range
    h.controller.bounds = (None, None)
    h.click((k + 3, seed[1], seed[2]))  # beyond the old range: filled up to it and on beyond it
    assert max(k_slices(h.full())) > k + 3 and not h.errors


def test_finish_learns_the_clicked_filled_and_painted_slices_as_the_segment_holds_them(harness, mri_scene):
    """The engine picks the clicked slice and filled slices up to its budget; slices the user
    painted come on top, so none is left out."""
    h = harness()
    seed = SEED[mri_scene.spec.name]
    h.click(seed)
    filled = k_slices(h.full())
    corrected = mrml.read_slice(h.seg, h.segment_id, h.geometry, 0, filled[0])
    corrected[:2, :] = 1  # a Segment Editor correction on a filled slice
    mrml.write_slice(h.seg, h.segment_id, h.geometry, 0, filled[0], corrected)
    free = [n for n in range(h.geometry.shape_kji[0]) if n not in filled]
    painted = free[: 20 - len(filled)]  # 20 non-empty slices in all: more than the engine's budget
    square = np.zeros(h.geometry.slice_shape(0), np.uint8)
    square[1:16, 2:20] = 1  # wider and taller than the 11 painted slices: painted in K, as it was
    for n in painted:
        mrml.write_slice(h.seg, h.segment_id, h.geometry, 0, n, square)
    final = h.full()
    h.controller.finish_case(learn=True)
    ((accepted, learn),) = h.session.finished
    assert learn and list(accepted)[0] == (0, seed[0])  # the clicked slice first
    assert {(0, n) for n in painted} | {(0, filled[0])} <= set(accepted) <= {(0, n) for n in k_slices(final)}
    assert len(accepted) > PropagationConfig().max_slices_learned
    for (axis, index), mask in accepted.items():
        np.testing.assert_array_equal(np.asarray(mask) > 0, np.take(final, index, axis) > 0)
    assert h.controller.records == [] and h.controller.confirmed == []


def test_the_worker_runs_the_3d_case_and_the_scene_changes_on_poll(harness, mri_scene):
    worker = Worker()
    try:
        h = harness(executor=worker)
        seed = SEED[mri_scene.spec.name]
        before = h.full()
        h.click(seed)
        h.click((seed[0] - 3, seed[1], seed[2]))
        assert worker.drain(30) and not h.errors
        shown = h.full()
        np.testing.assert_array_equal(shown, h.engine_mask(h.session.clicks))
        main = threading.current_thread().name
        assert {thread for name, thread in h.session.calls} == {worker._thread.name}
        assert main != worker._thread.name
        h.controller.undo_last()
        h.controller.undo_last()
        assert worker.drain(30) and not h.errors
        np.testing.assert_array_equal(h.full(), before)
    finally:
        worker.shutdown(timeout=10)


def test_undo_keeps_what_the_user_painted_after_the_click(harness, mri_scene, blob):
    """A correction painted in the Segment Editor after a click, or the Segment Editor's own undo of it,
    is the user's: undoing the click puts back only the slices nobody changed since."""
    h = harness()
    seed = SEED[mri_scene.spec.name]
    before_case = h.full()
    h.click(seed)
    filled = k_slices(h.full())
    corrected = filled[-1]
    painted = blob(h.geometry.slice_shape(0), 5)
    mrml.write_slice(h.seg, h.segment_id, h.geometry, 0, corrected, painted)  # the user's correction
    assert h.controller.undo_last() and not h.errors
    after = h.full()
    np.testing.assert_array_equal(after[corrected], painted)  # the correction stays
    others = [n for n in range(after.shape[0]) if n != corrected]
    np.testing.assert_array_equal(after[others], before_case[others])  # the rest as before the click
    # The Segment Editor's own undo of a click's result, then ours: nothing of the click comes back.
    h.click(seed)
    mrml.write_block(h.seg, h.segment_id, h.geometry, 0, 0, after)
    assert h.controller.undo_last() and not h.errors
    np.testing.assert_array_equal(h.full(), after)


def test_a_finish_that_fails_keeps_the_clicks_for_another_finish(harness, mri_scene):
    from InteractiveAdaptLib.errors import SiteStoreError

    h = harness()
    h.click(SEED[mri_scene.spec.name])
    finish, results = h.session.finish_case, []

    def full_disk(*args, **kwargs):
        h.session.finish_case = finish  # the next Finish works
        raise SiteStoreError("The site folder is full. Free some space.")

    h.session.finish_case = full_disk
    h.controller.finish_case(learn=True, on_done=results.append)
    assert isinstance(results[-1].error, SiteStoreError)
    assert len(h.controller.records) == 1 and h.positive.GetNumberOfControlPoints() == 1
    assert h.controller.started and not h.controller.finishing
    h.controller.finish_case(learn=True, on_done=results.append)
    assert results[-1].ok and results[-1].value.clicks == 1
    assert h.controller.records == [] and h.positive.GetNumberOfControlPoints() == 0
