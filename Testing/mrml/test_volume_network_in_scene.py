"""The click controller (mrml/click_controller.py) with a 3D base model, on a real MRML scene (a real
Colin27 block in each test geometry) and a real session with a small real 3D network: each point, placed
through the view it was clicked in, gives the segment the engine's whole 3D result; undo puts the segment
back; Finish learns from the segment as the user left it (Segment Editor corrections included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from controller_harness import ControllerHarness

from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.app.inline_executor import InlineExecutor
from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
from InteractiveAdaptLib.engine.volume_network import VolumeNetwork
from InteractiveAdaptLib.interaction import Click, FillOptions
from InteractiveAdaptLib.model.base_model import load_base_model, save_base_model
from InteractiveAdaptLib.model.network import VOLUME_IN_CHANNELS, NetworkConfig, build_network

TINY_3D = NetworkConfig("tiny-3d", (8, 16, 32), 0, spatial_dims=3, in_channels=VOLUME_IN_CHANNELS)
SEED = {"lps": (7, 11, 29), "permuted": (29, 7, 11)}  # a voxel (k, j, i) inside the block's head


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.manual_seed(0)
    return save_base_model(build_network(TINY_3D), tmp_path_factory.mktemp("model"), {"name": "tiny-3d"})


def new_session(base, learn: bool = False) -> InteractiveSession:
    adaptation = AdaptationConfig(lr=1e-3, mid_interaction=False, post_interaction=learn)
    return InteractiveSession(load_base_model(base.directory), SessionConfig(adaptation=adaptation))


def weights(session) -> list[torch.Tensor]:
    return [v.clone() for v in session.network.state_dict().values()]


class Harness(ControllerHarness):
    def __init__(self, mri, make_segmentation, session):
        super().__init__(
            mri, make_segmentation, session, ("target",), ("Axial", "Coronal", "Sagittal"), InlineExecutor()
        )
        self.view_of_axis = {axis: view for view, axis in mri.spec.view_axis.items()}

    def click(self, kji, axis: int, positive: bool = True) -> None:
        """A point on voxel (k, j, i), placed through the view that holds array axis `axis` fixed."""
        self.place(self.view_of_axis[axis], kji, positive)

    def reference(self, base, clicks: list[Click]) -> np.ndarray:
        """What the engine's case alone makes of these clicks (a fresh session on the same weights)."""
        case = new_session(base).open_case(
            mrml.volume_array(self.mri.volume), self.geometry.spacing_kji, "target"
        )
        for click in clicks:
            case.click(click, FillOptions())
        return case.mask.astype(np.uint8)


def as_click(kji, axis: int, positive: bool) -> Click:
    rest = [v for a, v in enumerate(kji) if a != axis]
    return Click(axis, kji[axis], rest[0], rest[1], positive)


def test_points_in_two_views_give_the_segment_the_whole_3d_result_and_undo_takes_it_back(
    base, mri_scene, make_segmentation
):
    h = Harness(mri_scene, make_segmentation, new_session(base))
    k, j, i = SEED[mri_scene.spec.name]
    h.click((k, j, i), axis=0)
    assert isinstance(h.controller._case.network, VolumeNetwork)
    first = [as_click((k, j, i), 0, True)]
    assert h.full().reshape(h.full().shape[0], -1).any(axis=1).sum() > 1  # more than the clicked slice
    np.testing.assert_array_equal(h.full(), h.reference(base, first))
    h.click((k + 2, j, i + 3), axis=1, positive=False)
    both = first + [as_click((k + 2, j, i + 3), 1, False)]
    np.testing.assert_array_equal(h.full(), h.reference(base, both))
    assert not np.array_equal(h.reference(base, both), h.reference(base, first))  # the coronal point counts
    assert h.controller.undo_last()
    np.testing.assert_array_equal(h.full(), h.reference(base, first))
    assert h.errors == []


def test_finish_learns_from_the_segment_as_the_user_left_it(base, mri_scene, make_segmentation):
    session = new_session(base, learn=True)
    h = Harness(mri_scene, make_segmentation, session)
    kji = SEED[mri_scene.spec.name]
    h.click(kji, axis=0)
    corrected = h.full()
    corrected[kji[0], :4, :4] = 1  # a Segment Editor correction
    for n in range(corrected.shape[0]):
        mrml.write_slice(h.seg, h.segment_id, h.geometry, 0, n, corrected[n])
    h.controller.finish_case(learn=True)
    # The same case finished by the engine alone with that mask learns the same weights, bit for bit.
    reference = new_session(base, learn=True)
    case = reference.open_case(mrml.volume_array(h.mri.volume), h.geometry.spacing_kji, "target")
    case.click(as_click(kji, 0, True), FillOptions())
    summary = case.finish(corrected)
    assert summary.steps_applied >= 1
    assert all(torch.equal(a, b) for a, b in zip(weights(session), weights(reference), strict=True))
    assert h.errors == []
