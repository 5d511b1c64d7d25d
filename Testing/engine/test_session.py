"""The interactive session on real Colin27 slices with a real (tiny, untrained) network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interactive_adapt_lab.data.datasets import load_domain
from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
from InteractiveAdaptLib.errors import InteractiveAdaptError
from InteractiveAdaptLib.interaction import Click
from InteractiveAdaptLib.model.base_model import save_base_model
from InteractiveAdaptLib.model.network import NetworkConfig, build_network
from InteractiveAdaptLib.store.site_store import SiteStore

TINY = NetworkConfig("tiny", (8, 16, 32), 0)
AXIAL = 90  # a Colin27 slice through the middle of the brain


@pytest.fixture(scope="module")
def colin():
    return load_domain("colin27")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.manual_seed(0)
    return save_base_model(build_network(TINY), tmp_path_factory.mktemp("model"), {"name": "tiny"})


def make_session(base, store=None, **adaptation) -> InteractiveSession:
    config = SessionConfig(adaptation=AdaptationConfig(**{"lr": 1e-3, **adaptation}))
    return InteractiveSession(base, config, store=store, site="Test hospital")


def weights(session) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in session.network.state_dict().items()}


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def brain_slice_click(colin, positive=True, row=110, col=90) -> Click:
    return Click(0, AXIAL, row, col, positive)


def test_prediction_is_a_mask_of_the_slice_shape(base, colin):
    session = make_session(base)
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    prediction = session.add_click(brain_slice_click(colin))
    assert prediction.mask.shape == colin.image[AXIAL].shape
    assert prediction.mask.dtype == np.uint8 and set(np.unique(prediction.mask)) <= {0, 1}
    assert (prediction.axis, prediction.index) == (0, AXIAL)
    assert prediction.latency_ms > 0


def test_mid_interaction_pulls_previous_clicks_prediction_towards_pseudo_label(base, colin):
    session = make_session(base)
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    first = brain_slice_click(colin)
    second = Click(0, AXIAL, 40, 40, False)
    session.add_click(first)
    session.learn_pending()
    shown = session.add_click(second)  # y_t, shown before learning
    prepared = session.prepared_slice((0, AXIAL))
    pseudo = torch.as_tensor(shown.mask, dtype=torch.long)[None]

    def loss_towards_pseudo_label() -> float:
        logits = session.predictor.logits(prepared, [(first.row, first.col, True)])
        return float(F.cross_entropy(logits, pseudo))

    before_w, before = weights(session), loss_towards_pseudo_label()
    assert session.learn_pending() is True
    assert not same_weights(before_w, weights(session))
    assert loss_towards_pseudo_label() < before
    assert session.learn_pending() is False  # nothing pending any more


def test_prediction_is_shown_before_learning(base, colin):
    session = make_session(base)
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    before = weights(session)
    session.add_click(brain_slice_click(colin))
    assert same_weights(before, weights(session))  # MI has not run yet
    session.add_click(Click(0, AXIAL, 40, 40, False))  # runs the pending MI first
    assert not same_weights(before, weights(session))


def test_undo_restores_weights_optimizer_mask_and_clicks_bit_for_bit(base, colin):
    session = make_session(base)
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    session.add_click(brain_slice_click(colin))
    session.learn_pending()
    mask_before = session.prediction(0, AXIAL).copy()
    w_before = weights(session)
    opt_before = {k: v.clone() for k, v in session.adapter.optimizer.state_dict()["state"][0].items()}
    session.add_click(Click(0, AXIAL, 40, 40, False))
    session.learn_pending()
    assert not same_weights(w_before, weights(session))
    restored = session.undo()
    assert same_weights(w_before, weights(session))
    opt_after = session.adapter.optimizer.state_dict()["state"][0]
    assert all(torch.equal(opt_before[k], opt_after[k]) for k in opt_before)
    np.testing.assert_array_equal(restored.mask, mask_before)
    assert len(session.clicks) == 1
    assert session.undo() is None  # no click left on that slice
    with pytest.raises(InteractiveAdaptError, match="no click to undo"):
        session.undo()


def test_post_interaction_runs_both_stages_and_saves_a_version(base, colin, tmp_path):
    store = SiteStore(tmp_path / "store")
    session = make_session(base, store=store, mid_interaction=False)
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    session.add_click(brain_slice_click(colin))
    before = weights(session)
    accepted = {(0, AXIAL): colin.target_mask("brain")[AXIAL]}
    summary = session.finish_case(accepted)
    assert summary.steps_applied == 2 and summary.slices_learned == 1 and summary.version == 1
    assert not same_weights(before, weights(session))
    loaded = store.profile("Test hospital", "brain").load(base.sha256)
    assert same_weights(loaded.model_state, weights(session))
    assert loaded.optimizer_state is not None
    assert loaded.info.cases_learned == 1 and loaded.info.clicks_learned == 1


def test_painted_only_slice_gets_a_synthetic_first_click(base, colin):
    session = make_session(base, mid_interaction=False)
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    painted = colin.target_mask("brain")[AXIAL + 5]
    summary = session.finish_case({(0, AXIAL + 5): painted})
    assert summary.slices_learned == 1 and summary.steps_applied == 2


def test_dont_learn_and_reset_restore_the_case_start_weights(base, colin, tmp_path):
    store = SiteStore(tmp_path / "store")
    session = make_session(base, store=store)
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    start = weights(session)
    for click in (brain_slice_click(colin), Click(0, AXIAL, 40, 40, False), Click(0, AXIAL, 60, 90, True)):
        session.add_click(click)
    session.learn_pending()
    session.reset_case()
    assert same_weights(start, weights(session)) and session.clicks == []
    session.add_click(brain_slice_click(colin))
    session.add_click(Click(0, AXIAL, 40, 40, False))
    summary = session.finish_case(learn=False)
    assert summary.version is None and same_weights(start, weights(session))
    assert store.profile("Test hospital", "brain").versions() == []


def test_cancelled_finish_ends_the_case_without_learning_or_saving(base, colin, tmp_path):
    store = SiteStore(tmp_path / "store")
    session = make_session(base, store=store)
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    start = weights(session)
    session.add_click(brain_slice_click(colin))
    session.add_click(Click(0, AXIAL, 40, 40, False))
    accepted = {(0, AXIAL + n): colin.target_mask("brain")[AXIAL + n] for n in range(4)}
    asked = []

    def stop_after_two_slices() -> bool:  # the user presses Cancel while the third slice is learned
        asked.append(1)
        return len(asked) > 2

    summary = session.finish_case(accepted, should_stop=stop_after_two_slices)
    assert summary.cancelled and summary.version is None and summary.steps_applied == 0
    assert same_weights(start, weights(session)) and not session.case_open
    assert store.profile("Test hospital", "brain").versions() == []


def test_case_local_mid_interaction_keeps_only_post_interaction(base, colin):
    session = make_session(base, mi_scope="case", post_interaction=False)
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    start = weights(session)
    session.add_click(brain_slice_click(colin))
    session.add_click(Click(0, AXIAL, 40, 40, False))
    session.learn_pending()
    assert not same_weights(start, weights(session))
    session.finish_case()
    assert same_weights(start, weights(session))


def test_profiles_are_separate_and_a_new_profile_starts_from_base(base, colin, tmp_path):
    store = SiteStore(tmp_path / "store")
    session = make_session(base, store=store)
    base_w = weights(session)
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    session.add_click(brain_slice_click(colin))
    session.finish_case()
    brain_w = weights(session)
    assert not same_weights(base_w, brain_w)
    session.start_case(colin.image, colin.spacing_kji, "thalamus", normalized=True)
    assert same_weights(base_w, weights(session)) and session.version is None
    session.finish_case(learn=False)
    # A new session of the same site continues where the brain profile left off.
    again = make_session(base, store=store)
    again.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    assert same_weights(brain_w, weights(again)) and again.version == 1 and again.cases_learned == 1


def test_non_finite_loss_leaves_weights_untouched(base, colin):
    session = make_session(base)
    volume = colin.image.copy()
    volume[AXIAL, 100:120, 80:100] = np.nan
    session.start_case(volume, colin.spacing_kji, "brain", normalized=True)
    start = weights(session)
    session.add_click(brain_slice_click(colin))
    assert session.learn_pending() is False
    assert same_weights(start, weights(session))
    assert session.adapter.steps_rejected == 1


def test_undo_memory_is_bounded_and_dropped_at_finish(base, colin):
    session = make_session(base)
    session.config.undo_depth = 2
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    for k in range(5):
        session.add_click(Click(0, AXIAL, 60 + 10 * k, 90, k % 2 == 0))
        session.learn_pending()
    assert sum(e.weights is not None for e in session._undo) == 2
    assert len(session.clicks) == 5  # clicks stay undoable; only old weight snapshots go
    session.finish_case(learn=False)
    assert len(session._undo) == 0 and session._case_start is None


def test_undo_snapshots_are_recycled_and_stay_bit_for_bit(base, colin):
    def optimizer_state(session):
        state = session.adapter.optimizer.state_dict()["state"]
        return {i: {k: v.clone() for k, v in entry.items()} for i, entry in state.items()}

    def same_optimizer(a, b):
        return a.keys() == b.keys() and all(torch.equal(a[i][k], b[i][k]) for i in a for k in a[i])

    session = make_session(base)
    session.config.undo_depth = 2
    reused = set()
    for case in range(2):
        session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
        states = []
        for k in range(5):
            states.append((weights(session), optimizer_state(session)))
            session.add_click(Click(0, AXIAL, 60 + 10 * k, 90, k % 2 == 0))
            session.learn_pending()
        in_use = {t.data_ptr() for e in session._undo if e.weights for t in e.weights.model.values()}
        if case == 1:  # the second case's snapshots live in the first case's memory
            assert in_use <= reused
        for k in (4, 3):  # the two clicks that still have their snapshot
            session.undo()
            assert same_weights(states[k][0], weights(session))
            assert same_optimizer(states[k][1], optimizer_state(session))
        session.finish_case(learn=False)
        assert len(session._spare_snapshots) <= 2
        reused = {t.data_ptr() for s in session._spare_snapshots for t in s.model.values()}


def test_clear_errors_for_bad_input(base, colin):
    session = make_session(base)
    with pytest.raises(InteractiveAdaptError, match="No case is open"):
        session.add_click(brain_slice_click(colin))
    with pytest.raises(InteractiveAdaptError, match="3D scalar volume"):
        session.start_case(np.zeros((10, 10)), (1, 1, 1), "brain")
    with pytest.raises(InteractiveAdaptError, match="spacing"):
        session.start_case(colin.image, (1.0, 0.0, 1.0), "brain")
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    with pytest.raises(InteractiveAdaptError, match="outside the image"):
        session.add_click(Click(0, AXIAL, 500, 10, True))
    with pytest.raises(InteractiveAdaptError, match="outside the volume"):
        session.add_click(Click(1, 9999, 10, 10, True))


@pytest.fixture(scope="module")
def small_volume(colin):
    return colin.image[80:86, 60:100, 50:90].copy()


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("click"),
            st.integers(-1, 3),  # axis, incl. invalid
            st.integers(-2, 45),  # index, incl. outside
            st.integers(-3, 45),
            st.integers(-3, 45),
            st.booleans(),
        ),
        st.tuples(st.just("undo")),
        st.tuples(st.just("learn")),
        st.tuples(st.just("reset")),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_fuzzed_click_sequences_raise_only_documented_errors(base, small_volume, ops):
    session = make_session(base)
    session.start_case(small_volume, (1.0, 1.0, 1.0), "brain", normalized=True)
    for op in ops:
        try:
            if op[0] == "click":
                session.add_click(Click(*op[1:]))
            elif op[0] == "undo":
                session.undo()
            elif op[0] == "learn":
                session.learn_pending()
            else:
                session.reset_case()
        except InteractiveAdaptError:
            pass
        for click in session.clicks:  # every accepted click is inside the volume
            assert 0 <= click.index < small_volume.shape[click.axis]
    summary = session.finish_case()
    assert summary.clicks >= 0


@pytest.fixture(scope="module")
def guarded_base(colin, tmp_path_factory):
    """A tiny base model shipped with guard slices (held-out Colin27 slices, fixed clicks)."""
    from InteractiveAdaptLib.engine.forgetting_guard import GUARD_FILE, ForgettingGuard
    from InteractiveAdaptLib.engine.predictor import Predictor

    torch.manual_seed(0)
    model = save_base_model(build_network(TINY), tmp_path_factory.mktemp("guarded"), {"name": "tiny"})
    brain = colin.target_mask("brain")
    images = [colin.image[k] for k in (70, 100)]
    masks = [brain[k] for k in (70, 100)]
    ForgettingGuard.build(Predictor(model.network), images, masks).save(model.directory / GUARD_FILE)
    return model


def test_forgetting_guard_reverts_a_harmful_post_interaction_update(guarded_base, colin):
    session = InteractiveSession(
        guarded_base,
        SessionConfig(adaptation=AdaptationConfig(lr=5e-2, mid_interaction=False), forgetting_guard=True),
    )
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    session.add_click(brain_slice_click(colin))
    before = weights(session)
    score_before = session.guard.score(session.predictor)
    wrong = ~colin.target_mask("brain")[AXIAL]  # an accepted mask that teaches the opposite of the brain
    summary = session.finish_case({(0, AXIAL): wrong})
    assert summary.guard_reverted and summary.steps_applied == 0
    assert same_weights(before, weights(session))
    assert session.guard.score(session.predictor) == pytest.approx(score_before)


def test_forgetting_guard_keeps_an_update_within_its_threshold(guarded_base, colin):
    session = InteractiveSession(
        guarded_base,
        SessionConfig(adaptation=AdaptationConfig(lr=1e-3, mid_interaction=False), forgetting_guard=True),
    )
    session.guard.threshold = 1.0  # any drop is allowed
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    session.add_click(brain_slice_click(colin))
    before = weights(session)
    summary = session.finish_case({(0, AXIAL): colin.target_mask("brain")[AXIAL]})
    assert not summary.guard_reverted and summary.steps_applied == 2
    assert not same_weights(before, weights(session))


def test_a_profile_from_another_base_model_is_refused_until_the_user_restarts_it(base, colin, tmp_path):
    from InteractiveAdaptLib.errors import IncompatibleBaseModelError

    store = SiteStore(tmp_path / "store")
    old_weights = {k: v + 1 for k, v in base.fresh_state().items()}
    store.profile("Test hospital", "brain").save(
        old_weights, None, base_sha256="0" * 64, cases_learned=3, clicks_learned=9
    )
    session = make_session(base, store=store)
    with pytest.raises(IncompatibleBaseModelError):
        session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    session.restart_profile_from_base("brain")
    assert same_weights(weights(session), base.fresh_state()) and session.version is None
    session.start_case(colin.image, colin.spacing_kji, "brain", normalized=True)
    session.add_click(brain_slice_click(colin))
    assert session.finish_case().version == 2  # the old version 1 stays listed
    assert [v.version for v in store.profile("Test hospital", "brain").versions()] == [1, 2]
