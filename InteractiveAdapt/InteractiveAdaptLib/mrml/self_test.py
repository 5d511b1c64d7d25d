"""The module's self-test (run by Slicer's test runner and CTest), kept here so that plain pytest runs
the very same steps. Without PyTorch (e.g. on the extension build machines) it checks the torch-free part
(patient, segmentation, structures) and says that the learning part was skipped; it never asks to install
anything."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk

from InteractiveAdaptLib.mrml.segments import read_segment
from InteractiveAdaptLib.mrml.slice_views import slice_nodes
from InteractiveAdaptLib.mrml.volume import volume_geometry
from InteractiveAdaptLib.mrml.workflow import Workflow

SKIPPED_LEARNING = (
    "PyTorch is not installed, so the clicking and learning part of the self-test was skipped. "
    "Press a point button in the module once to install it, then run the test again."
)
BALL_CENTRE_RAS = (-30.0, -32.0, 30.0)  # voxel (i=30, j=32, k=12) of the test volume


def add_ball_volume(scene: Any) -> Any:
    """A small MRI-like volume: a bright ball in noise, 2.5 mm slices, LPS-stored like DICOM."""
    k, j, i = np.mgrid[:24, :64, :64]
    ball = ((k - 12) * 2.5) ** 2 + (j - 32) ** 2 + (i - 30) ** 2 < 15**2
    array = (ball * 600 + np.random.default_rng(0).normal(200, 20, ball.shape)).astype(np.int16)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "SelfTestMRI")
    node.SetIJKToRASDirections([[-1, 0, 0], [0, -1, 0], [0, 0, 1]])
    node.SetSpacing(1.0, 1.0, 2.5)
    slicer.util.updateVolumeFromArray(node, array)
    node.CreateDefaultDisplayNodes()
    return node


def run_self_test(
    scene: Any,
    executor: Any,
    open_session: Callable[[Any], Any],
    settings: Any,
    store_root: str | Path,
    learning: bool,
    drain: Callable[[], bool],
    say: Callable[[str], None] = print,
) -> None:
    """Patient -> structure -> (with PyTorch) a click segments its slice and fills the ball in 3D ->
    Finish saves a site version.

    Raises AssertionError with what went wrong."""
    questions: list[str] = []
    errors: list[BaseException] = []
    status: list[str] = []
    workflow = Workflow(
        scene,
        executor,
        open_session,
        settings,
        ask=lambda question: questions.append(question) or False,
        on_status=status.append,
        on_error=lambda error, traceback: errors.append(error),
    )
    say("A small MRI-like volume opens with its own segmentation")
    volume = add_ball_volume(scene)
    assert workflow.set_volume(volume), "the volume did not open"
    assert workflow.segmentation.GetName() == "SelfTestMRI segmentation", workflow.segmentation.GetName()
    assert workflow.segmentation.GetDisplayNode() is not None, "the segmentation is not displayed"
    assert workflow.add_structure("Ball (L)") and workflow.profile == "Ball", workflow.profile
    if not learning:
        say(SKIPPED_LEARNING)
        return
    say("A positive point in the slice view segments that slice and fills the ball in 3D")
    workflow.prepare_case()
    view = slice_nodes(scene)[0]
    view.JumpSliceByOffsetting(*BALL_CENTRE_RAS)
    workflow.positive.AddControlPointWorld(vtk.vtkVector3d(*BALL_CENTRE_RAS))
    assert drain(), "the click was not segmented in time"
    assert not errors, errors
    segment = read_segment(workflow.segmentation, workflow.segment_id, volume_geometry(volume))
    assert segment.sum() > 0, f"nothing was segmented ({status[-1:]})"
    filled = np.flatnonzero(segment.any(axis=(1, 2)))
    assert len(filled) > 1, (
        f"only slice {filled} was segmented: the ball was not filled in 3D ({status[-1:]})"
    )
    say("Finish case learns and saves a site version")
    workflow.finish(learn=True)
    assert drain(), "learning from the case did not end in time"
    assert not errors, errors
    assert list(Path(store_root).rglob("v000001.pt")), f"no site version was written ({status[-1:]})"
    assert not questions, questions  # nothing was asked of the user
    workflow.close()
