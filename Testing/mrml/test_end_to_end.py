"""End to end in offscreen slice views with the shipped model on a real MRI (issue 7).

What a clinician does, with nothing simulated below the mouse: real left clicks in the Red (axial) and
Yellow (sagittal) views of an offscreen trame-slicer layout place the control points, and the module's
own path does the rest: CaseManager -> ClickController -> Worker thread -> InteractiveSession with the
SHIPPED base model, found where the module finds it (model.location.find_base_model_dir: models/<name>/ of this
checkout). The clicks go where the simulated user of engine/click_simulation.py (centre mode) would put them: the first in
the middle of the structure, each next one in the middle of the largest error of the mask now shown.

Each clicked slice is checked against the session's prediction for it; the axial (Red) clicks are on a
slice of the array's J axis, which shows its own prediction only, and the sagittal (Yellow) clicks on
the K axis fill the structure in 3D from there (test_thalamus_in_3d.py follows the 3D filling closely).

The image is the Colin27 T1 (a real MRI) stored as a sagittal stack with every second sagittal slice, so
the IJK -> RAS matrix permutes and flips the axes and the voxels are 1 x 1 x 2 mm: the slice a view shows
is not the array's first axis, and one view's slices need in-plane resampling.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import COLIN27, REPO
from controller_harness import prepare_case_nodes
from offscreen_views import add_volume_node, largest_cross_section, mouse_click, ras_to_view_xy, restacked

from interactive_adapt_lab.data.cases import aal_pair_split
from interactive_adapt_lab.data.datasets import aal_names, aal_pair
from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.app.settings import ModuleSettings, open_session, site_store_root
from InteractiveAdaptLib.app.worker import Worker
from InteractiveAdaptLib.engine.click_simulation import first_click, next_click
from InteractiveAdaptLib.engine.predictor import dice
from InteractiveAdaptLib.errors import WeightsError
from InteractiveAdaptLib.interaction import Click
from InteractiveAdaptLib.model.checkpoint import sha256_file
from InteractiveAdaptLib.model.location import find_base_model_dir
from InteractiveAdaptLib.store.site_store import SiteStore

pytestmark = [pytest.mark.slow, pytest.mark.slicer]

AAL_ATLAS = COLIN27.with_name("aal.nii.gz")  # on the Colin27 grid
# The left supramarginal gyrus: its AAL pair is in the held-out test split, so the network never
# learned it as a target; it is folded cortex, not a blob that any click fills.
STRUCTURE = "SupraMarginal_L"
SEGMENT_NAME = "Supramarginal gyrus"
# Stored as sagittal slices (I -> posterior, J -> inferior, K -> left), every second one kept.
STORAGE_ORIENTATION = "PIL"
SAGITTAL_STEP = 2
MIN_DICE = 0.7
MAX_CLICKS = 3
VIEW_SIZE_PX = 400
SITE, USER = "Test hospital", "Dr Test"


# ---------------------------------------------------------------- the shipped model


@pytest.fixture(scope="module")
def shipped_model_dir() -> Path:
    """The base model the module would load in this checkout; skip only while none is shipped."""
    try:
        return find_base_model_dir()
    except WeightsError as error:
        pytest.skip(f"No base model is shipped in this checkout yet. {error}")


# ---------------------------------------------------------------- measuring the MI step


class MidInteractionProbe:
    """Wraps the session's learn_pending (on the worker thread) to measure each mid-interaction step:
    the cross-entropy of f(I, C_{t-1}) against y_t = argmax f(I, C_t), just before and just after it."""

    def __init__(self, session) -> None:
        self.session = session
        self.steps: list[tuple[float, float]] = []
        self._learn_pending = session.learn_pending
        session.learn_pending = self  # add_click and finish_case call it through the instance too

    def _cross_entropy(self, prepared, previous_clicks, pseudo_label) -> float:
        logits = self.session.predictor.logits(prepared, previous_clicks)
        return float(F.cross_entropy(logits, pseudo_label))

    def __call__(self) -> bool:
        pending = self.session._pending
        if pending is None:
            return self._learn_pending()
        key, previous_clicks, shown_logits = pending.key, pending.previous, pending.logits
        prepared = self.session.prepared_slice(key)
        pseudo_label = shown_logits.argmax(dim=1)  # y_t on the network grid, (1, h, w)
        before = self._cross_entropy(prepared, previous_clicks, pseudo_label)
        ran = self._learn_pending()
        if ran:
            self.steps.append((before, self._cross_entropy(prepared, previous_clicks, pseudo_label)))
        return ran


# ---------------------------------------------------------------- the test


def test_clicks_in_red_and_yellow_views_segment_a_held_out_structure_and_finish_saves_a_site_version(
    shipped_model_dir, tmp_path
):
    from trame_slicer.core import SlicerApp
    from trame_slicer.views import DirectViewFactory, ViewLayoutDefinition

    started = time.perf_counter()
    label = next(n for n, name in aal_names().items() if name == STRUCTURE)
    assert aal_pair(label) in aal_pair_split()["test"], (
        "the target must be a structure the model never learned"
    )
    mri = restacked(COLIN27, STORAGE_ORIENTATION, SAGITTAL_STEP)
    structure = restacked(AAL_ATLAS, STORAGE_ORIENTATION, SAGITTAL_STEP).array == label
    axes = mri.ijk_to_ras[:3, :3]
    assert not np.allclose(axes, np.diag(np.diag(axes))), "the test needs a permuted IJK->RAS"
    weights_sha_before = sha256_file(shipped_model_dir / "weights.pt")

    app = SlicerApp()
    app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
    red = app.view_manager.create_view(ViewLayoutDefinition.axial_view())
    yellow = app.view_manager.create_view(ViewLayoutDefinition.sagittal_view())
    volume_node = add_volume_node(app.scene, mri, "Colin27 T1")
    for view in (red, yellow):
        view.render_window().SetSize(VIEW_SIZE_PX, VIEW_SIZE_PX)
        view.set_background_volume_id(volume_node.GetID())
        view.fit_view_to_content()

    # What the module does on "Positive point": nodes prepared, a session opened for the settings
    # (store under the Slicer settings folder), the case started on the worker thread.
    settings_folder = tmp_path / "Slicer settings"
    store_root = site_store_root(settings_folder / "Slicer.ini")
    segmentation = mrml.create_segmentation(app.scene, volume_node)
    segment_id = segmentation.GetSegmentation().AddEmptySegment("", SEGMENT_NAME)
    nodes = prepare_case_nodes(app.scene, volume_node, segmentation, segment_id)
    sessions, errors = [], []

    def open_probed_session(settings):
        session = open_session(settings, store_root, shipped_model_dir, cuda_available=False)
        sessions.append((session, MidInteractionProbe(session)))
        return session

    worker = Worker()
    try:
        cases = mrml.CaseManager(worker, open_probed_session)
        cases.prepare(
            app.scene,
            ModuleSettings(site=SITE, user=USER),  # the module's defaults otherwise
            nodes,
            on_error=lambda error, tb: errors.append((error, tb)),
        )
        ((session, probe),) = sessions
        placer = mrml.PointPlacer()
        controller = cases.controller
        geometry = controller.geometry
        assert cases.profile == SEGMENT_NAME

        def segment_slice(axis: int, index: int) -> np.ndarray:
            return mrml.read_slice(nodes.segmentation, nodes.segment_id, geometry, axis, index)

        def click_like_the_simulated_user(view, expected_axis: int) -> tuple[tuple[int, int], list[float]]:
            """Up to MAX_CLICKS real clicks in `view` on the structure's largest slice; stops at MIN_DICE."""
            axis = mrml.slice_axis(view.get_view_node(), geometry)
            assert axis == expected_axis
            index = largest_cross_section(structure, axis)
            target = np.take(structure, index, axis)
            slice_centre = geometry.kji_to_world(np.insert(np.array(target.shape) / 2.0, axis, index))
            view.get_view_node().JumpSliceByOffsetting(*slice_centre)
            view.render()
            rng = np.random.default_rng(0)
            click = first_click(target, "center", rng)
            dices: list[float] = []
            for _ in range(MAX_CLICKS):
                row, col, positive = click
                ras = geometry.kji_to_world(np.insert(np.array([row, col], float), axis, index))
                placer.start(
                    nodes.positive if positive else nodes.negative,
                    [(view.get_view_node(), view.interactor())],
                )
                mouse_click(view, ras_to_view_xy(view, ras))
                # the view under the mouse (the crosshair's) decides the slice, even where views cross
                assert mrml.cursor_slice_node(app.scene) is view.get_view_node()
                assert worker.drain(60), "the worker did not finish in time"
                assert not errors, errors
                assert session.clicks[-1] == Click(axis, index, row, col, positive), "missed the pixel"
                shown = segment_slice(axis, index)
                # the clicked slice shows its prediction; a slice clicked in another view crosses it on a
                # line and is shown on top there
                off_crossing = np.ones(shown.shape, bool)
                for _axis, other_index in crossing:
                    off_crossing[other_index, :] = False  # the J slices are the K slices' rows here
                np.testing.assert_array_equal(
                    shown[off_crossing], session.prediction(axis, index)[off_crossing]
                )
                dices.append(dice(shown, target))
                if dices[-1] >= MIN_DICE:
                    break
                click = next_click(shown, target, "center", rng)
            placer.stop()
            return (axis, index), dices

        # Red (axial): the array's J axis for this sagittal stack
        crossing: list[tuple[int, int]] = []
        red_key, red_dices = click_like_the_simulated_user(red, expected_axis=1)
        crossing.append(red_key)
        assert red_dices[-1] >= MIN_DICE, f"Red view: Dice {red_dices} after {len(red_dices)} clicks"
        written = mrml.read_segment(nodes.segmentation, nodes.segment_id, geometry)
        red_mask = segment_slice(*red_key)
        assert written.sum() == red_mask.sum() > 0, "only the clicked slice may be written"

        # Yellow (sagittal): the array's K axis
        yellow_key, yellow_dices = click_like_the_simulated_user(yellow, expected_axis=0)
        assert yellow_dices[-1] >= MIN_DICE, (
            f"Yellow view: Dice {yellow_dices} after {len(yellow_dices)} clicks"
        )
        written = mrml.read_segment(nodes.segmentation, nodes.segment_id, geometry)
        # the sagittal clicks filled the structure along K beyond their slice
        filled_k = np.flatnonzero(written.reshape(written.shape[0], -1).any(axis=1))
        assert len(filled_k) > 2 and yellow_key[1] in filled_k, filled_k
        clicked_only = np.zeros_like(written)
        clicked_only[yellow_key[1]] = written[yellow_key[1]]
        clicked_only[:, red_key[1], :] = written[:, red_key[1], :]
        assert dice(written, structure) > dice(clicked_only, structure), "the 3D filling did not help"
        # the Red slice shows its own result, on top of the filling
        np.testing.assert_array_equal(np.take(written, red_key[1], axis=1), red_mask)
        assert nodes.positive.GetNumberOfControlPoints() + nodes.negative.GetNumberOfControlPoints() == len(
            session.clicks
        )

        # MI ran (and changed the weights) after every click. Its effect is measured on the first step of
        # the case: f(I, C_0) moved towards the pseudo-label y_1 that was shown. Only that step is free of
        # the Adam momentum of earlier clicks (one optimiser for the whole stream, docs/method.md): measured
        # with the trained model, a later step's cross-entropy on its own slice went up as well as down,
        # because its update still carries much of the previous slices' gradients.
        assert len(probe.steps) == len(session.clicks), "an MI step was skipped"
        (first_before, first_after), *_ = probe.steps
        assert first_after < first_before, f"the first MI step did not move towards y_1: {probe.steps}"

        # Finish case: post-interaction learning and a new site version under the settings folder.
        clicks = len(session.clicks)
        finished = []
        cases.controller.finish_case(learn=True, on_done=finished.append)
        assert worker.drain(120)
        assert finished and finished[0].ok, finished[0].traceback if finished else "no result"
        summary = finished[0].value
        assert summary.version == 1 and summary.slices_learned >= 2 and summary.steps_applied > 0
        assert store_root.is_relative_to(settings_folder) and store_root.is_dir()
        loaded = SiteStore(store_root).profile(SITE, SEGMENT_NAME, USER).load(session.base.sha256)
        assert loaded is not None and loaded.info.version == 1
        assert loaded.info.cases_learned == 1 and loaded.info.clicks_learned == clicks
        own = session.network.state_dict()
        assert loaded.model_state.keys() == own.keys()
        assert all(torch.equal(loaded.model_state[k], own[k].cpu()) for k in own), "saved weights differ"
        base = session.base.fresh_state()
        assert not all(torch.equal(base[k], own[k].cpu()) for k in own), "the case taught the network nothing"
        assert sha256_file(shipped_model_dir / "weights.pt") == weights_sha_before, (
            "the shipped model changed"
        )
        cases.close()
    finally:
        worker.shutdown(timeout=30)
    print(  # shown with pytest -s: what the shipped model reached
        f"\nDice after each click: Red view {np.round(red_dices, 3).tolist()}, Yellow view "
        f"{np.round(yellow_dices, 3).tolist()}; "
        f"MI cross-entropy (before, after) {np.round(probe.steps, 4).tolist()}; "
        f"{time.perf_counter() - started:.1f} s"
    )


# ---------------------------------------------------------------- the README screenshot


def _screenshot_script():
    """scripts/render_screenshot.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "render_screenshot", REPO / "scripts" / "render_screenshot.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _near(pixels: np.ndarray, rgb, tolerance: int = 40) -> np.ndarray:
    return np.abs(pixels.astype(int) - np.array(rgb) * 255).max(axis=-1) <= tolerance


def test_screenshot_script_renders_several_structures_and_the_clicks_the_right_way_up(shipped_model_dir):
    script = _screenshot_script()
    width, height = script.SIZE_PX
    pixels, done = script.render_structures(shipped_model_dir)
    assert pixels.shape == (height, width, 3) and pixels.dtype == np.uint8
    assert pixels.std() > 20, "a blank or flat frame, not an MRI slice"
    assert list(done["structures"]) == [name for _, name, _ in script.STRUCTURES]

    # Each structure's fill: its colour blended over grey voxels, in its own place. Slicer's axial view is
    # radiological: the patient's right is on the screen's left, and every structure is a RIGHT one.
    grey = np.abs(pixels[..., 0].astype(int) - pixels[..., 2]) < 12
    for _, name, colour in script.STRUCTURES:
        tint = np.array(colour) - np.array(colour).mean()
        overlay = (pixels.astype(int) - pixels.mean(axis=-1, keepdims=True)) @ tint > 0.6 * (
            tint @ tint
        ) * 100
        overlay &= ~grey
        assert overlay.sum() > 150, f"the {name} segment is not visible"
        assert np.nonzero(overlay)[1].mean() < width / 2, f"{name} is drawn mirrored left-right"
        assert max(done["structures"][name]["dice"]) > 0.6, done["structures"][name]

    # The last structure's clicks are drawn where they were clicked, in their colour (a point inside the
    # segment shows through its half-transparent fill). View y runs bottom-up, picture rows top-down, so
    # this also checks that the picture is not upside down.
    *_, (_, last, fill) = script.STRUCTURES
    for (_, _, positive), (x, y) in zip(done["structures"][last]["clicks"], done["view_xy"], strict=True):
        colour = np.array(mrml.POSITIVE_COLOR if positive else mrml.NEGATIVE_COLOR)
        around = pixels[height - 1 - y - 1 : height - y + 1, x - 1 : x + 2]
        assert (_near(around, colour) | _near(around, (colour + np.array(fill)) / 2)).all(), (
            f"no {'green' if positive else 'red'} point at ({x}, {y})"
        )

    path = script.save_png(pixels, Path(tempfile.mkdtemp()) / "Screenshot.png")
    assert 10_000 < path.stat().st_size < 300_000, "the PNG must stay compact for the README"
    from PIL import Image

    with Image.open(path) as image:
        assert image.size == (width, height) and image.format == "PNG"
