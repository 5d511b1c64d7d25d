"""One case from its first click to its finish (engine/case.py, with the slice network of
engine/slice_propagation.py behind it): a structure in 3D from clicks on a few slices, on real Colin27
structures with the shipped network and ITK's contour interpolation (Slicer's vtkITK) between clicked
slices; undo, removing a click, reset and what the finish learns from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
from InteractiveAdaptLib.engine.slice_propagation import PropagationConfig
from InteractiveAdaptLib.errors import CaseStateError, WeightsError
from InteractiveAdaptLib.interaction import Click, FillOptions, Removal
from InteractiveAdaptLib.model.base_model import load_base_model
from InteractiveAdaptLib.model.location import find_base_model_dir
from InteractiveAdaptLib.mrml.contour_interpolation import MAX_PIECES, TooFragmented, contour_interpolation

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def thalamus(engine_domain):
    colin = engine_domain("colin27")
    return colin, colin.target_mask("aal:Thalamus_L")


def open_case(
    colin, learn: bool = False, config: PropagationConfig | None = None, interpolate=contour_interpolation
):
    try:
        base = load_base_model(find_base_model_dir())
    except WeightsError as error:
        pytest.skip(f"No base model is shipped in this checkout yet. {error}")
    adaptation = (
        AdaptationConfig() if learn else AdaptationConfig(mid_interaction=False, post_interaction=False)
    )
    session = InteractiveSession(base, SessionConfig(adaptation=adaptation))
    return session.open_case(
        colin.image, colin.spacing_kji, "thalamus", interpolate, normalized=True, propagation=config
    )


def centre_click(truth: np.ndarray, index: int, positive: bool = True) -> Click:
    depth = ndimage.distance_transform_edt(truth[index])
    row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return Click(0, index, float(row), float(col), positive)


def structure_slices(truth: np.ndarray) -> np.ndarray:
    return np.flatnonzero(truth.any(axis=(1, 2)))


def test_two_clicks_on_two_slices_give_a_connected_segment_between_them(thalamus):
    colin, truth = thalamus
    slices = structure_slices(truth)
    low, high = int(slices[len(slices) // 4]), int(slices[3 * len(slices) // 4])
    case = open_case(colin)
    case.click(centre_click(truth, low))
    case.click(centre_click(truth, high))
    assert case.confirmed_slices == [low, high]
    between = case.mask[low : high + 1]
    assert all(s.any() for s in between)  # every slice between the two clicked ones is filled
    assert ndimage.label(between)[1] == 1  # one connected piece
    per_slice = np.zeros_like(truth)
    per_slice[low], per_slice[high] = case.mask[low], case.mask[high]
    assert dice(case.mask, truth) > dice(per_slice, truth) + 0.3


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_one_click_propagates_beyond_it_and_stops_near_the_structure(thalamus):
    colin, truth = thalamus
    slices = structure_slices(truth)
    middle = int(np.argmax(truth.reshape(truth.shape[0], -1).sum(axis=1)))
    case = open_case(colin)
    update = case.click(centre_click(truth, middle))
    reached = structure_slices(case.mask)
    assert reached[0] < middle < reached[-1]  # both ways
    assert reached[0] >= slices[0] - 10 and reached[-1] <= slices[-1] + 10  # it stops (not 181 slices)
    first, last = update.slice_range
    assert first <= reached[0] and reached[-1] <= last


def test_a_correction_re_propagates_only_up_to_the_next_confirmed_slices(thalamus):
    colin, truth = thalamus
    slices = structure_slices(truth)
    a, b, c = (int(slices[round(f * (len(slices) - 1))]) for f in (0.2, 0.5, 0.8))
    case = open_case(colin)
    for index in (b, a, c):
        case.click(centre_click(truth, index))
    before = case.mask.copy()
    rows, cols = np.nonzero(truth[b])
    # A negative click on the near edge of the structure in slice b: b and the gaps next to it change.
    update = case.click(Click(0, b, float(rows.min()), float(cols[np.argmin(rows)]), False))
    first, last = update.slice_range
    assert a < first <= b <= last < c  # within the gaps next to b
    np.testing.assert_array_equal(case.mask[: a + 1], before[: a + 1])
    np.testing.assert_array_equal(case.mask[c:], before[c:])
    assert not np.array_equal(case.mask[b], before[b])


def state(session) -> list[torch.Tensor]:
    tensors = [v.clone() for v in session.network.state_dict().values()]
    for _, slot in sorted(session.adapter.optimizer.state_dict()["state"].items()):
        tensors += [v.clone() for _, v in sorted(slot.items()) if isinstance(v, torch.Tensor)]
    return tensors


def test_undo_restores_the_3d_mask_and_the_weights_bit_for_bit(thalamus):
    colin, truth = thalamus
    slices = structure_slices(truth)
    case = open_case(colin, learn=True)
    coronal = int(np.median(np.nonzero(truth)[1]))
    clicks = [centre_click(truth, int(slices[round(f * (len(slices) - 1))])) for f in (0.5, 0.1, 0.9, 0.3)]
    clicks.insert(
        2,
        Click(
            1, coronal, float(np.median(np.nonzero(truth)[0])), float(np.median(np.nonzero(truth)[2])), True
        ),
    )
    clicks += [Click(0, c.index, c.row + 2, c.col + 1, k % 2 == 0) for k, c in enumerate(clicks)]
    history = []
    for click in clicks:  # 10 clicks: past the 8 weight snapshots the session keeps
        history.append((case.mask.copy(), state(case.session)))
        case.click(click)
        case.learn_pending()
    for mask, weights in reversed(history):
        case.undo()
        np.testing.assert_array_equal(case.mask, mask)
        assert all(torch.equal(x, y) for x, y in zip(state(case.session), weights, strict=True))
    with pytest.raises(CaseStateError, match="no click to undo"):
        case.undo()


def test_a_click_in_another_orientation_is_shown_and_undone(thalamus):
    colin, truth = thalamus
    case = open_case(colin)
    ks, js, is_ = np.nonzero(truth)
    middle = int(np.median(ks))
    case.click(centre_click(truth, middle))
    before = case.mask.copy()
    coronal = int(np.median(js))
    click = Click(1, coronal, float(np.median(ks)), float(np.median(is_)), True)
    case.click(click)
    np.testing.assert_array_equal(case.mask[:, coronal], case.session.prediction(1, coronal) > 0)
    assert case.mask[:, coronal].any()
    case.undo()
    np.testing.assert_array_equal(case.mask, before)


def test_propagation_can_be_switched_off_and_bounded(thalamus):
    colin, truth = thalamus
    middle = int(np.argmax(truth.reshape(truth.shape[0], -1).sum(axis=1)))
    off = open_case(colin)
    off.click(centre_click(truth, middle), FillOptions(propagate=False))
    assert list(structure_slices(off.mask)) == [middle]  # the clicked slice only
    bounded = open_case(colin)
    bounded.click(centre_click(truth, middle), FillOptions(bounds=(middle - 2, middle + 3)))
    reached = structure_slices(bounded.mask)
    assert reached[0] >= middle - 2 and reached[-1] <= middle + 3 and len(reached) > 1
    with pytest.raises(CaseStateError, match="empty"):
        bounded.click(centre_click(truth, middle + 1), FillOptions(bounds=(10, 5)))


def test_slices_the_interpolator_cannot_fill_are_propagated_instead(thalamus):
    colin, truth = thalamus
    slices = structure_slices(truth)
    low, high = int(slices[len(slices) // 3]), int(slices[2 * len(slices) // 3])

    def refuses(mask, axis):
        raise TooFragmented("too many pieces")

    case = open_case(colin, interpolate=refuses)
    case.click(centre_click(truth, low))
    case.click(centre_click(truth, high))
    assert all(s.any() for s in case.mask[low : high + 1])


def test_contour_interpolation_refuses_a_speckled_mask_instead_of_aborting():
    speckled = np.zeros((3, 60, 60), bool)
    speckled[0, ::3, ::3] = True  # 400 separate pixels: ITK would abort the process past 255
    speckled[2, 10:20, 10:20] = True
    assert (speckled[0].sum()) > MAX_PIECES
    with pytest.raises(TooFragmented):
        contour_interpolation(speckled, 0)


def test_the_accepted_slices_are_the_clicked_ones_then_filled_ones_within_the_budget(thalamus):
    colin, truth = thalamus
    slices = structure_slices(truth)
    case = open_case(colin, config=PropagationConfig(max_slices_learned=6))
    clicked = [int(slices[round(f * (len(slices) - 1))]) for f in (0.3, 0.7)]
    for index in clicked:
        case.click(centre_click(truth, index))
    accepted = case.learning_slices(case.mask)
    assert len(accepted) == 6 and {(0, k) for k in clicked} <= set(accepted)
    assert all(mask.any() for mask in accepted.values())
    edited = case.mask.copy()
    edited[clicked[0]] = False  # the user erased a slice before accepting: the segment counts
    assert not case.learning_slices(edited)[(0, clicked[0])].any()
    with pytest.raises(CaseStateError, match="shape"):
        case.learning_slices(edited[1:])
    painted = edited.copy()
    far = int(slices[-1])
    painted[far, 100:104, 80:84] = True  # painted without a click, far from the clicked slices
    learned = case.learning_slices(painted, expected=edited)
    assert (0, far) in learned and learned[(0, far)].sum() >= 16


def test_a_negative_click_on_a_propagated_slice_corrects_it_instead_of_emptying_it(thalamus):
    colin, truth = thalamus
    middle = int(np.argmax(truth.reshape(truth.shape[0], -1).sum(axis=1)))
    case = open_case(colin)
    case.click(centre_click(truth, middle))
    target = middle + 2
    shown = case.mask[target].copy()
    assert shown.any() and target not in case.confirmed_slices
    rows, cols = np.nonzero(shown)
    edge = int(np.argmax(cols))  # the rightmost pixel shown: the user removes a spill there
    case.click(Click(0, target, float(rows[edge]), float(cols[edge]), False))
    # The propagation's own click stays with the user's: a lone negative click would give nothing.
    assert case.mask[target].sum() > 0.5 * shown.sum()
    assert target in case.confirmed_slices


def test_the_clicked_slice_can_be_shown_before_the_filling_with_the_same_result(thalamus):
    colin, truth = thalamus
    middle = int(np.argmax(truth.reshape(truth.shape[0], -1).sum(axis=1)))
    at_once = open_case(colin)
    at_once.click(centre_click(truth, middle))
    in_two = open_case(colin)
    update = in_two.click(centre_click(truth, middle), fill_now=False)
    assert update.slice_range == (middle, middle) and update.filled == 0
    assert list(structure_slices(in_two.mask)) == [middle]  # only the clicked slice so far
    filled = in_two.fill()
    assert filled.filled > 0
    np.testing.assert_array_equal(in_two.mask, at_once.mask)
    assert in_two.fill().blocks == []  # nothing left to fill
    in_two.click(centre_click(truth, middle + 3), fill_now=False)
    in_two.undo()  # the pending filling goes with its click
    np.testing.assert_array_equal(in_two.mask, at_once.mask)


def test_the_case_result_is_the_network_result_after_every_step(thalamus):
    """The case writes only what its network reports as changed: after clicks in two orientations,
    fills, undo and removal, the result shown is the slice network's own mask."""
    colin, truth = thalamus
    slices = structure_slices(truth)
    case = open_case(colin)
    ks, js, is_ = np.nonzero(truth)
    clicks = [
        centre_click(truth, int(slices[len(slices) // 2])),
        Click(1, int(np.median(js)), float(np.median(ks)), float(np.median(is_)), True),
        centre_click(truth, int(slices[len(slices) // 5])),
        centre_click(truth, int(slices[4 * len(slices) // 5]), positive=False),
    ]
    for n, click in enumerate(clicks):
        case.click(click, fill_now=n % 2 == 0)
        np.testing.assert_array_equal(case.mask, case.network.mask)
    case.fill()
    np.testing.assert_array_equal(case.mask, case.network.mask)
    case.undo()
    np.testing.assert_array_equal(case.mask, case.network.mask)
    case.remove(clicks[0])
    np.testing.assert_array_equal(case.mask, case.network.mask)


def test_removing_an_earlier_click_places_the_later_ones_again(thalamus):
    colin, truth = thalamus
    slices = structure_slices(truth)
    low, middle, high = (int(slices[round(f * (len(slices) - 1))]) for f in (0.25, 0.5, 0.75))
    case = open_case(colin, learn=True)
    clicks = [centre_click(truth, index) for index in (middle, low, high)]
    for click in clicks:
        case.click(click)
        case.learn_pending()
    removal = case.remove(clicks[1])
    assert removal.kind is Removal.REDONE and [u.click for u in removal.redone] == [clicks[2]]
    assert case.clicks == [clicks[0], clicks[2]] and removal.confirmed == sorted([middle, high])
    reference = open_case(colin, learn=True)
    for click in (clicks[0], clicks[2]):  # the same case without the removed click
        reference.click(click)
        reference.learn_pending()
    np.testing.assert_array_equal(case.mask, reference.mask)
    assert case.remove(clicks[2]).kind is Removal.UNDONE
    assert case.remove(clicks[2]).kind is Removal.ABSENT


def test_reset_keeps_the_case_open_and_finish_ends_it(thalamus):
    colin, truth = thalamus
    middle = int(np.argmax(truth.reshape(truth.shape[0], -1).sum(axis=1)))
    case = open_case(colin, learn=True)
    before = state(case.session)
    case.click(centre_click(truth, middle))
    case.learn_pending()
    case.click(centre_click(truth, middle, positive=False))
    case.learn_pending()
    case.reset()
    assert case.open and case.clicks == [] and not case.mask.any() and case.confirmed_slices == []
    assert all(torch.equal(x, y) for x, y in zip(state(case.session), before, strict=True))
    case.click(centre_click(truth, middle))
    summary = case.finish(case.mask, learn=True)
    assert summary.clicks == 1 and summary.slices_learned >= 1 and not case.open
    with pytest.raises(CaseStateError, match="ended"):
        case.click(centre_click(truth, middle))
    with pytest.raises(CaseStateError, match="ended"):
        case.finish(None)


def test_a_finish_whose_save_fails_keeps_the_case_and_a_retry_learns_it_once(thalamus, tmp_path):
    """The version cannot be saved (here a file stands where the profile's folder goes): the case stays
    open with its clicks, nothing is counted, and Finish again learns the case exactly once."""
    from InteractiveAdaptLib.errors import SiteStoreError
    from InteractiveAdaptLib.store.site_store import SiteStore

    colin, truth = thalamus
    base = load_base_model(find_base_model_dir())
    middle = int(np.argmax(truth.reshape(truth.shape[0], -1).sum(axis=1)))
    finished = {}
    for name, blocked in (("reference", False), ("retried", True)):
        store = SiteStore(tmp_path / name)
        session = InteractiveSession(base, SessionConfig(), store, site="Hospital A")
        case = session.open_case(
            colin.image, colin.spacing_kji, "thalamus", contour_interpolation, normalized=True
        )
        for click in (centre_click(truth, middle), centre_click(truth, middle + 3)):
            case.click(click)
            case.learn_pending()
        if blocked:
            folder = store.profile("Hospital A", "thalamus").path
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.write_text("not a folder")
            with pytest.raises(SiteStoreError):
                case.finish(case.mask)
            assert case.open and len(case.clicks) == 2 and session.cases_learned == 0
            folder.unlink()
        summary = case.finish(case.mask)
        assert summary.version == 1 and not case.open and session.cases_learned == 1
        finished[name] = state(session)
    assert all(torch.equal(x, y) for x, y in zip(finished["reference"], finished["retried"], strict=True))
