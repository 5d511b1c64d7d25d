"""The volumetric benchmark (evaluation/volumetric_benchmark.py) on real Colin27 structures with the
shipped network: ITK's contour interpolation between slices, the 3D simulated user, the per-slice and
Fill-between-slices baselines, and the command's files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from interactive_adapt_lab.evaluation import volumetric_benchmark as vb
from InteractiveAdaptLib.errors import WeightsError
from InteractiveAdaptLib.interaction import Click, SlicePrediction
from InteractiveAdaptLib.model.location import find_base_model_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def caudate(engine_domain):
    colin = engine_domain("colin27")
    return colin, colin.target_mask("aal:Caudate_L")


@pytest.fixture(scope="module")
def session():
    try:
        return vb.make_session(find_base_model_dir())
    except WeightsError as error:
        pytest.skip(f"No base model is shipped in this checkout yet. {error}")


def test_contour_interpolation_fills_between_labelled_slices_only(caudate):
    _, mask = caudate
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    sparse = np.zeros_like(mask)
    kept = slices[::4]
    sparse[kept] = mask[kept]
    filled = vb.contour_interpolation(sparse, 0)
    np.testing.assert_array_equal(filled[kept], mask[kept])  # the labelled slices stay as they are
    between = slices[(slices > kept[0]) & (slices < kept[-1]) & ~np.isin(slices, kept)]
    assert np.mean([filled[k].any() for k in between]) > 0.8  # (the caudate's tail comes and goes)
    assert not filled[: kept[0]].any() and not filled[kept[-1] + 1 :].any()
    assert vb.dice3d(filled, mask) > 0.8


class SliceRecorder:
    """The session, recording which slice each click went to."""

    def __init__(self, session):
        self.session, self.slices = session, []

    def __getattr__(self, name):
        return getattr(self.session, name)

    def add_click(self, click):
        self.slices.append(click.index)
        return self.session.add_click(click)


def test_per_slice_clicking_segments_only_the_clicked_slices(caudate, session):
    colin, mask = caudate
    recorder = SliceRecorder(session)
    method = vb.PerSlice(recorder)
    curve, seconds = vb.play_case(method, colin.image, colin.spacing_kji, mask, seed=0)
    assert len(curve) == vb.MAX_CLICKS and seconds > 0
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1)
    assert recorder.slices[0] == int(np.argmax(areas))  # the user starts on the largest cross-section
    one_slice = areas.max() / mask.sum()
    assert curve[0] <= 2 * one_slice / (1 + one_slice) + 1e-6  # one slice cannot cover more
    assert len(set(recorder.slices)) > 3  # the user moves on to the slices with the most error


def test_fill_between_clicks_every_kth_slice_and_fills_the_rest(caudate, session):
    colin, mask = caudate
    recorder = SliceRecorder(session)
    method = vb.FillBetween(recorder, step=3)
    curve, _ = vb.play_case(method, colin.image, colin.spacing_kji, mask, seed=0)
    start = recorder.slices[0]
    assert all((k - start) % 3 == 0 for k in recorder.slices)
    per_slice, _ = vb.play_case(vb.PerSlice(session), colin.image, colin.spacing_kji, mask, seed=0)
    assert curve[9] > per_slice[9]  # after 10 clicks the filled slices count


def test_the_command_writes_the_figures_of_every_method_and_structure_and_resumes(tmp_path, session):
    from InteractiveAdaptLib.cli.main import main

    output = tmp_path / "volumetric.json"
    assert main(["bench-volumetric", "--quick", "--output", str(output), "--threads", "1"]) == 0
    result = json.loads(output.read_text())
    assert result["quick"] is True and result["command"].startswith("interactive-adapt bench-volumetric")
    assert {"per-slice", "fill-between", "default", "propagate-only", "interpolate-only"} <= set(
        result["methods"]
    )
    for method in result["methods"].values():
        for figures in method["structures"].values():
            assert figures["kind"] in ("compact", "cortical") and figures["trained"] in ("yes", "no")
            assert {
                "dice@1",
                "dice@3",
                "dice@5",
                "dice@10",
                "noc@80",
                "noc@85",
                "noc@90",
                "seconds_per_case",
            } <= set(figures)
    stream = result["stream"]
    assert stream["default+learning"]["cases_per_order"] == 2  # the caudate, left and right
    assert {"noc@80_first_half", "noc@80_second_half"} <= set(stream["default"])
    assert set(result["targets"]) and all(isinstance(v, bool) for v in result["targets"].values())
    report = output.with_suffix(".md").read_text()
    assert "| per-slice | compact |" in report and "default+learning" in report
    assert output.with_suffix(".png").stat().st_size > 10_000
    # Stopped and started again, it reuses every finished run: the same figures.
    partial = tmp_path / "volumetric-partial"
    runs = sorted(partial.rglob("*.json"))
    assert len(runs) == 2 * 5 + 2  # 2 structures x 5 methods (one fill-between step), 2 streams
    assert main(["bench-volumetric", "--quick", "--output", str(output), "--threads", "1"]) == 0
    assert json.loads(output.read_text())["methods"] == result["methods"]


def test_the_product_default_fills_between_and_beyond_the_clicked_slices(caudate, session):
    colin, mask = caudate
    default, _ = vb.play_case(vb.ThreeD(session), colin.image, colin.spacing_kji, mask, seed=0)
    per_slice, _ = vb.play_case(vb.PerSlice(session), colin.image, colin.spacing_kji, mask, seed=0)
    assert default[0] > per_slice[0] + 0.05  # one click already reaches beyond its slice


class FixedMasks:
    """A stand-in session that returns the true slice (tests the filling, not the network)."""

    def __init__(self, mask):
        self.mask = mask

    def add_click(self, click):
        return SlicePrediction(click.axis, click.index, self.mask[click.index].astype(np.uint8), 0.0)


def test_fill_between_interpolates_only_next_to_the_click_and_matches_the_whole_stack(caudate):
    _, mask = caudate
    method = vb.FillBetween(FixedMasks(mask), step=3)
    shown = np.zeros(mask.shape, bool)
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    clicked = np.zeros_like(mask)
    for index in (slices[len(slices) // 2], slices[2], slices[-3], slices[len(slices) // 3], slices[0] - 3):
        shown = method.click(Click(0, int(index), 0, 0, True), shown)
        clicked[index] = mask[index]
        np.testing.assert_array_equal(shown, vb.contour_interpolation(clicked, 0))
