"""The volumetric benchmark (evaluation/volumetric_*.py) on real Colin27 structures: ITK's contour
interpolation between slices, the simulated user who clicks in the view that is worst, the per-slice and
Fill-between-slices baselines, the product's case with the 2D network and with a (small, real) 3D network,
the structure groups, the learning streams' patients, and the command's files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interactive_adapt_lab.evaluation import volumetric_methods as vm
from interactive_adapt_lab.evaluation import volumetric_streams as vs
from interactive_adapt_lab.evaluation.volumetric_structures import structures
from InteractiveAdaptLib.errors import WeightsError
from InteractiveAdaptLib.interaction import Click, SlicePrediction
from InteractiveAdaptLib.model.base_model import save_base_model
from InteractiveAdaptLib.model.location import find_base_model_dir
from InteractiveAdaptLib.model.network import VOLUME_IN_CHANNELS, NetworkConfig, build_network
from InteractiveAdaptLib.mrml.contour_interpolation import contour_interpolation

pytestmark = pytest.mark.slow

TINY_3D = NetworkConfig("tiny-3d", (8, 16, 32), 0, spatial_dims=3, in_channels=VOLUME_IN_CHANNELS)


@pytest.fixture(scope="module")
def caudate(engine_domain):
    colin = engine_domain("colin27")
    return colin, colin.target_mask("aal:Caudate_L")


@pytest.fixture(scope="module")
def session():
    try:
        return vm.make_session(find_base_model_dir("colin27-unet-default"))
    except WeightsError as error:
        pytest.skip(f"No 2D model is shipped in this checkout. {error}")


@pytest.fixture(scope="module")
def tiny_volume_model(tmp_path_factory):
    """A small real 3D network whose last layer leans to the background: its crops stay small (an
    untrained network's half-full answers would grow every crop to a whole head, minutes of CPU)."""
    torch.manual_seed(0)
    network = build_network(TINY_3D)
    last_bias = [p for name, p in network.named_parameters() if name.endswith("bias")][-1]
    with torch.no_grad():
        last_bias.copy_(torch.tensor([4.0, -4.0]))
    folder = tmp_path_factory.mktemp("models") / "tiny-volume"
    return save_base_model(network, folder, {"name": "tiny-volume"}).directory


def test_contour_interpolation_fills_between_labelled_slices_only(caudate):
    _, mask = caudate
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    sparse = np.zeros_like(mask)
    kept = slices[::4]
    sparse[kept] = mask[kept]
    filled = contour_interpolation(sparse, 0)
    np.testing.assert_array_equal(filled[kept], mask[kept])  # the labelled slices stay as they are
    between = slices[(slices > kept[0]) & (slices < kept[-1]) & ~np.isin(slices, kept)]
    assert np.mean([filled[k].any() for k in between]) > 0.8  # (the caudate's tail comes and goes)
    assert not filled[: kept[0]].any() and not filled[kept[-1] + 1 :].any()
    assert vm.dice3d(filled, mask) > 0.8


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
    method = vm.PerSlice(recorder)
    curve, seconds = vm.play_case(method, colin.image, colin.spacing_kji, mask, seed=0)
    assert len(curve) == vm.MAX_CLICKS and seconds > 0
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1)
    assert recorder.slices[0] == int(np.argmax(areas))  # the user starts on the largest cross-section
    one_slice = areas.max() / mask.sum()
    assert curve[0] <= 2 * one_slice / (1 + one_slice) + 1e-6  # one slice cannot cover more
    assert len(set(recorder.slices)) > 3  # the user moves on to the slices with the most error


def test_fill_between_clicks_every_kth_slice_and_fills_the_rest(caudate, session):
    colin, mask = caudate
    recorder = SliceRecorder(session)
    method = vm.FillBetween(recorder, step=3)
    curve, _ = vm.play_case(method, colin.image, colin.spacing_kji, mask, seed=0)
    start = recorder.slices[0]
    assert all((k - start) % 3 == 0 for k in recorder.slices)
    per_slice, _ = vm.play_case(vm.PerSlice(session), colin.image, colin.spacing_kji, mask, seed=0)
    assert curve[9] > per_slice[9]  # after 10 clicks the filled slices count


def test_the_command_writes_the_figures_of_every_method_and_structure_and_resumes(
    tmp_path, session, tiny_volume_model
):
    from InteractiveAdaptLib.cli.main import main

    output = tmp_path / "volumetric.json"
    args = [
        "bench-volumetric",
        "--quick",
        "--output",
        str(output),
        "--threads",
        "1",
        "--model",
        str(tiny_volume_model),
    ]
    assert main(args) == 0
    result = json.loads(output.read_text())
    assert result["quick"] is True and result["command"].startswith("interactive-adapt bench-volumetric")
    assert {"per-slice", "fill-between", "fill-between-k2", "slice-network", "volume-network"} <= set(
        result["methods"]
    )
    assert result["methods"]["fill-between"]["step"] in ("fill-between-k2", "fill-between-k3")
    for method in result["methods"].values():
        for figures in method["structures"].values():
            assert figures["group"] == "validation" and figures["head"] == "colin27"
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
            assert len(figures["curve"]) == 10
    stream = result["stream"]["mni152-t2"]
    assert stream["learning"]["cases_per_order"] == stream["control"]["cases_per_order"] == 2
    assert {"noc@80_first_half", "noc@80_second_half", "max_forgetting"} <= set(stream["learning"])
    assert set(result["targets"]) and all(isinstance(v, bool) for v in result["targets"].values())
    report = output.with_suffix(".md").read_text()
    assert "| validation | colin27 | volume-network |" in report and "mni152-t2 | learning" in report
    assert output.with_suffix(".png").stat().st_size > 10_000
    # Stopped and started again, it reuses every finished run: the same figures.
    partial = tmp_path / "volumetric-partial"
    runs = sorted(partial.rglob("*.json"))
    assert len(runs) == 2 * 5 + 2  # 2 structures x 5 methods (two fill-between steps), 2 streams
    assert main(args) == 0
    assert json.loads(output.read_text())["methods"] == result["methods"]


def test_the_product_default_fills_between_and_beyond_the_clicked_slices(caudate, session):
    colin, mask = caudate
    default, _ = vm.play_case(
        vm.ProductCase(session, "slice-network"), colin.image, colin.spacing_kji, mask, seed=0
    )
    per_slice, _ = vm.play_case(vm.PerSlice(session), colin.image, colin.spacing_kji, mask, seed=0)
    assert default[0] > per_slice[0] + 0.05  # one click already reaches beyond its slice


class FixedMasks:
    """A stand-in session that returns the true slice (tests the filling, not the network)."""

    def __init__(self, mask):
        self.mask = mask

    def add_click(self, click):
        return SlicePrediction(click.axis, click.index, self.mask[click.index].astype(np.uint8), 0.0)


def test_fill_between_interpolates_only_next_to_the_click_and_matches_the_whole_stack(caudate):
    _, mask = caudate
    method = vm.FillBetween(FixedMasks(mask), step=3)
    shown = np.zeros(mask.shape, bool)
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    clicked = np.zeros_like(mask)
    for index in (slices[len(slices) // 2], slices[2], slices[-3], slices[len(slices) // 3], slices[0] - 3):
        shown = method.click(Click(0, int(index), 0, 0, True), shown)
        clicked[index] = mask[index]
        np.testing.assert_array_equal(shown, contour_interpolation(clicked, 0))


class Shown:
    """A method that shows a fixed 3D result whatever the click (tests the user, not a network)."""

    views = vm.ALL_VIEWS

    def __init__(self, mask):
        self.mask = mask


def test_the_user_clicks_in_the_view_and_slice_that_are_worst(caudate):
    _, mask = caudate
    shown = mask.copy()
    k, j, i = np.argwhere(mask).mean(axis=0).astype(int)
    shown[:, j, :] = False  # a whole coronal slice of the structure is missing
    allowed = np.ones(mask.shape[0], bool)
    click = vm.user_click(shown, mask, vm.ALL_VIEWS, allowed, "center", np.random.default_rng(0))
    assert (click.axis, click.index, click.positive) == (1, j, True)
    axial_only = vm.user_click(shown, mask, (0,), allowed, "center", np.random.default_rng(0))
    assert axial_only.axis == 0
    assert vm.user_click(mask, mask, vm.ALL_VIEWS, allowed, "center", np.random.default_rng(0)) is None


def test_the_groups_choose_on_validation_pairs_only_and_report_the_rest(engine_domain):
    domains = {head: engine_domain(head) for head in ("colin27", "mni152")}
    chosen = structures(domains)
    groups = {group for _, _, group in chosen}
    assert groups == {"validation", "compact", "test", "cortical", "large"}
    validation = {target for _, target, group in chosen if group == "validation"}
    assert "aal:Rectus_L" in validation and "aal:Caudate_L" not in validation
    assert ("mni152", "tissue:white matter", "large") in chosen and ("colin27", "brain", "large") in chosen
    assert not validation & {target for _, target, group in chosen if group == "test"}


def test_a_stream_patient_is_the_head_moved_with_its_structure(engine_domain):
    domain = engine_domain("mni152")
    truth = domain.target_mask("aal:Caudate_L")
    image, mask = vs.patient(domain, "aal:Caudate_L", seed=3)
    assert image.shape == truth.shape and mask.any()
    assert 0.3 < vm.dice3d(mask, truth) < 1.0  # moved, not lost
    # The structure moved with the image: its mean intensity is the original's, within the bias.
    assert abs(float(image[mask].mean()) - float(domain.image[truth].mean())) < 0.5
    again, _ = vs.patient(domain, "aal:Caudate_L", seed=3)
    np.testing.assert_array_equal(image, again)


def test_a_stream_repeats_every_structure_equally_often():
    cases = vs.stream_cases("mni152-t2", order=0)
    assert len(cases) == vs.CASES
    counts = {target: cases.count(target) for target in set(cases)}
    assert set(counts.values()) == {4}  # 10 structures (both sides), 40 cases
    assert cases != vs.stream_cases("mni152-t2", order=1)
