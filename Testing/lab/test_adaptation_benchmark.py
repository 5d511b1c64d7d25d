"""The benchmark's methods do what their names say, on real MNI152 slices with a tiny real network."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from interactive_adapt_lab.data.datasets import load_domain
from interactive_adapt_lab.data.streams import STREAMS
from interactive_adapt_lab.evaluation.adaptation_benchmark import (
    MAX_CLICKS,
    methods,
    noc,
    run_stream,
    source_cases_of,
    summarize,
)
from interactive_adapt_lab.evaluation.simulated_user import click_dice_curve
from InteractiveAdaptLib.engine.predictor import Predictor
from InteractiveAdaptLib.geometry import in_plane_spacing
from InteractiveAdaptLib.model.base_model import save_base_model
from InteractiveAdaptLib.model.network import NetworkConfig, build_network


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    torch.manual_seed(0)
    base = save_base_model(
        build_network(NetworkConfig("tiny", (8, 16, 32), 0)), tmp_path_factory.mktemp("m"), {}
    )
    domain = load_domain("mni152")
    cases = STREAMS["mni152-grey-matter"].cases(domain, 3, seed=1000)
    return base, domain, cases, load_domain("colin27")


def weights(network) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in network.state_dict().items()}


def test_no_adaptation_is_the_plain_predictor_and_changes_no_weight(setting):
    base, domain, cases, colin = setting
    before = weights(base.network)
    run = run_stream(base, domain, cases, methods()["none"], 0, colin)
    assert all(torch.equal(before[k], v) for k, v in base.network.state_dict().items())
    predictor = Predictor(base.network)
    for i, case in enumerate(cases):
        spacing = in_plane_spacing(domain.spacing_kji, case.axis)
        rng = np.random.default_rng([0, i])
        plain = click_dice_curve(predictor, case.image(domain), spacing, case.mask(domain), 10, "center", rng)
        np.testing.assert_allclose(run["curves"][i][:10], plain, atol=1e-4)


def test_learning_methods_change_the_weights_they_say(setting):
    base, domain, cases, colin = setting
    state = weights(base.network)
    for name in ("pi", "pi+mi", "entropy-min", "click-only"):
        base.network.load_state_dict(state)
        run = run_stream(base, domain, cases[:2], methods()[name], 0, colin)
        changed = any(not torch.equal(state[k], v) for k, v in base.network.state_dict().items())
        assert changed, f"{name} learned nothing"
        assert len(run["curves"]) == 2 and len(run["curves"][0]) == MAX_CLICKS
    base.network.load_state_dict(state)


def test_clicks_needed_counts_from_one_and_caps():
    curve = np.array([0.5, 0.79, 0.81, 0.86, 0.91] + [0.95] * 15)
    assert (noc(curve, 0.80), noc(curve, 0.85), noc(curve, 0.90)) == (3, 4, 5)
    assert noc(np.full(MAX_CLICKS, 0.5), 0.8) == MAX_CLICKS


def test_summary_checks_the_issue_targets_per_kind_of_stream():
    from interactive_adapt_lab.evaluation.adaptation_report import summary_table

    def method(d1, d5, d10, noc80, noc85, drop=0.0, reached85=1.0):
        keys = ("dice@1", "dice@5", "dice@10", "noc@80", "noc@85", "source_dice_drop", "reached@85")
        return dict(zip(keys, (d1, d5, d10, noc80, noc85, drop, reached85), strict=True))

    def stream(kind, **methods):
        return {"kind": "real", "stream": kind, "orders": 3, "cases": 100, "methods": methods}

    out_of_reach = stream(
        "single",
        none=method(0.1, 0.5, 0.6, 19.0, 19.5, reached85=0.1),
        **{"entropy-min": method(0.1, 0.4, 0.6, 19.0, 20.0), "click-only": method(0.1, 0.4, 0.5, 19.0, 20.0)},
        default=method(0.7, 0.72, 0.75, 10.0, 15.0, drop=0.02, reached85=0.3),
    )
    reachable = stream("single", none=method(0.1, 0.5, 0.6, 12.0, 16.0, reached85=0.7),
                       default=method(0.7, 0.72, 0.75, 6.0, 10.0))  # fmt: skip
    no_headroom = stream(
        "single", none=method(0.6, 0.9, 0.95, 2.0, 3.0), default=method(0.6, 0.9, 0.95, 2.0, 3.0)
    )
    mixed = stream("mixed", none=method(0.6, 0.8, 0.9, 4.0, 6.0), default=method(0.6, 0.785, 0.9, 4.0, 6.0))
    rows = summary_table({"a": out_of_reach, "b": reachable, "c": no_headroom, "d": mixed}).splitlines()[2:]
    # 85 % is out of reach without adaptation (10 % of cases get there), so NoC@80 must drop by 40 %.
    assert "NoC@80 -40 %: yes" in rows[0] and "Dice@5 >= none Dice@10: yes" in rows[0]
    assert "beats entropy-min, click-only: yes" in rows[0] and "source drop <= 0.01: NO" in rows[0]
    assert "19 -> 10 (-47%)" in rows[0] and "| 10% / 30% |" in rows[0]
    assert "NoC@85 -40 %: NO" in rows[1] and "beats the baselines: NO" in rows[1]  # 16 -> 10 is -37 %
    assert "no harm (Dice@5 >= none - 0.01): yes" in rows[2] and "NoC" not in rows[2].split("|")[-2]
    assert "no harm (Dice@5 >= none - 0.01): NO" in rows[3] and "source drop <= 0.01: yes" in rows[3]


def test_curves_hold_their_click_10_value_once_every_level_is_reached():
    from interactive_adapt_lab.evaluation.adaptation_benchmark import run_curves

    stopped_old_format = [0.5, 0.7, 0.8, 0.85, 0.88, 0.9, 0.91, 0.91, 0.92, 0.93] + [1.0] * 10
    going_on = [0.1] * 9 + [0.5] + [0.6] * 9 + [1.0]
    perfect = [0.9] + [1.0] * 19
    curves = run_curves({"curves": [stopped_old_format, going_on, perfect]})
    assert curves[0, 10:].tolist() == [0.93] * 10  # not the 1.0 the old runs wrote
    assert curves[1].tolist() == going_on  # measured values stay as they are
    assert curves[2].tolist() == perfect


def test_a_stream_at_a_finer_working_resolution_segments_there_and_measures_the_source_at_1mm(setting):
    base, domain, cases, colin = setting
    fine = run_stream(base, domain, cases[:2], methods()["none"], 0, colin, working_spacing_mm=0.5)
    coarse = run_stream(base, domain, cases[:2], methods()["none"], 0, colin)
    assert not np.allclose(fine["curves"], coarse["curves"])  # the network saw other pixels
    # Nothing was learned, so the source Dice is the source's own 1 mm figure: no forgetting.
    assert fine["forgetting"] == coarse["forgetting"]
    assert fine["source_dice@5_stream_weights"] == pytest.approx(
        coarse["source_dice@5_stream_weights"], abs=1e-6
    )
    spacings = {name: s.working_spacing_mm for name, s in STREAMS.items()}
    assert spacings["inia19-structure-0.5mm"] == 0.5 and spacings["inia19-structure"] == 1.0


def test_per_structure_profiles_learn_left_and_right_of_a_structure_in_one_profile(setting):
    base, domain, _, colin = setting
    cases = STREAMS["mni152-temporal-mid"].cases(domain, 4, seed=1000)
    assert len({c.target for c in cases}) == 2  # both sides are in the stream
    state = weights(base.network)
    shared = run_stream(base, domain, cases, methods()["pi+mi"], 0, colin)  # one model for the stream
    base.network.load_state_dict(state)
    # 'profiles' is pi+mi with one profile per structure (the default's keying).
    per_structure = run_stream(base, domain, cases, methods()["profiles"], 0, colin)
    base.network.load_state_dict(state)
    # Same learning, so the same curves: one side's cases taught the other's.
    np.testing.assert_allclose(per_structure["curves"], shared["curves"], atol=1e-6)


def test_the_default_differs_from_the_papers_pi_and_mi_only_by_the_listed_product_choices():
    """The product's choices (docs/method.md, section 5): profiles per structure, CCG 25, MI after the
    first click too, gradient clipping at 1."""
    all_methods = methods()
    paper, default = all_methods["pi+mi"].adaptation, all_methods["default"].adaptation
    choices = {"ccg_weight": 25.0, "mi_after_first_click": True, "grad_clip": 1.0}
    assert replace(paper, **choices) == default
    assert all_methods["default"].per_structure_profiles and not all_methods["pi+mi"].per_structure_profiles


def test_the_papers_methods_and_the_baselines_take_the_same_steps_per_case(setting):
    """10 teaching clicks: MI after clicks 2..10 (9 steps, none from f(I, no clicks)) and PI's two
    stages; the baselines get exactly as many steps."""
    base, domain, cases, colin = setting
    state = weights(base.network)
    expected = {"mi": 9, "pi": 2, "pi+mi": 11, "entropy-min": 11, "click-only": 11}
    for name, steps in expected.items():
        base.network.load_state_dict(state)
        run = run_stream(base, domain, cases[:2], methods()[name], 0, colin)
        assert run["steps"] == [steps, steps], f"{name} took {run['steps']} steps per case"
    base.network.load_state_dict(state)


def test_the_papers_methods_follow_the_paper():
    paper = methods()["pi+mi"].adaptation
    assert paper.ccg_weight == 200 and paper.lr == 5e-5 and paper.grad_clip is None
    assert not paper.mi_after_first_click and not paper.pi_stage2_first_click
    assert methods()["pi"].adaptation.mid_interaction is False
    assert methods()["mi"].adaptation.post_interaction is False


def test_forgetting_is_measured_per_profile_on_its_own_structure_against_the_same_clicks(setting):
    """A grey-matter profile is scored on Colin27 grey matter (the stand-in), with the shipped weights
    and with the adapted ones on the same slices and clicks; no learning means no drop at all."""
    base, domain, cases, colin = setting
    state = weights(base.network)
    none = run_stream(base, domain, cases[:2], methods()["none"], 0, colin)
    assert list(none["forgetting"]) == ["tissue:grey matter"]
    grey = none["forgetting"]["tissue:grey matter"]
    assert grey["base"] == grey["adapted"] and grey["cases"] == 8
    assert source_cases_of(colin, "tissue:grey matter") and not source_cases_of(colin, "neuromaps:55")
    cache: dict = {}  # a benchmark measures the shipped weights' control once for all its runs
    for _ in range(2):
        assert (
            run_stream(base, domain, cases[:2], methods()["none"], 0, colin, source_cache=cache)["forgetting"]
            == none["forgetting"]
        )
    assert list(cache) == ["tissue:grey matter"]
    for name in ("default", "pi+mi"):
        base.network.load_state_dict(state)
        run = run_stream(base, domain, cases[:2], methods()[name], 0, colin)
        measured = run["forgetting"]["tissue:grey matter"]
        assert measured["base"] == grey["base"]  # the same control, whatever the method
        assert measured["adapted"] != measured["base"], f"{name}: the adapted profile was not measured"
        summary = summarize([run], source_base=0.8)
        assert summary["source_dice_drop"] == round(measured["base"] - measured["adapted"], 4)
    base.network.load_state_dict(state)


def test_standard_error_respects_that_cases_learn_from_the_ones_before():
    from interactive_adapt_lab.evaluation.adaptation_benchmark import block_bootstrap_se

    def naive(series):
        return np.concatenate(series).std(ddof=1) / np.sqrt(sum(len(v) for v in series))

    # Independent cases: the block bootstrap agrees with the textbook standard error (on average).
    ratios = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        independent = [rng.normal(0.5, 0.1, 100) for _ in range(3)]
        ratios.append(block_bootstrap_se(independent, draws=500) / naive(independent))
    assert 0.85 < np.mean(ratios) < 1.1
    # A stream whose Dice wanders slowly (each case like the one before): far fewer independent cases.
    rng = np.random.default_rng(1)
    wandering = [np.cumsum(rng.normal(0, 0.02, 100)) + 0.5 for _ in range(3)]
    assert block_bootstrap_se(wandering) > 2 * naive(wandering)
