"""A click controller (mrml/click_controller.py) on a real MRML scene with the threshold test double and
one slice view per orientation named: what the 2D and 3D controller tests share."""

from __future__ import annotations

from typing import Any

import numpy as np
import vtk
from conftest import add_slice_node, voxel_ras

from InteractiveAdaptLib import mrml


class ControllerHarness:
    """The controller of segment `segments[0]` of a new segmentation, its point lists and its views."""

    def __init__(self, mri, make_segmentation, session, segments, views, executor, **kwargs):
        self.mri = mri
        self.geometry = mrml.volume_geometry(mri.volume)
        self.seg, self.segment_ids = make_segmentation(*segments)
        self.segment_id = self.segment_ids[0]
        self.positive, self.negative = mrml.create_click_nodes(mri.scene)
        self.session = session
        self.errors: list[BaseException] = []
        self.views = {v: add_slice_node(mri.scene, v, v) for v in views}
        self.executor = executor
        self.controller = mrml.ClickController(
            self.session,
            self.executor,
            mri.volume,
            self.seg,
            self.segment_id,
            self.positive,
            self.negative,
            on_error=lambda error, tb: self.errors.append(error),
            **kwargs,
        )

    def place(self, view: str, kji, positive: bool = True) -> None:
        """Place a point on the voxel (k, j, i) through the given view, as a click in that view would."""
        ras = voxel_ras(self.mri.spec, kji)
        self.views[view].JumpSliceByOffsetting(*ras)
        (self.positive if positive else self.negative).AddControlPointWorld(vtk.vtkVector3d(*ras))

    def full(self) -> np.ndarray:
        return mrml.read_segment(self.seg, self.segment_id, self.geometry)


def prepare_case_nodes(
    scene: Any,
    volume_node: Any,
    segmentation_node: Any = None,
    segment_id: str | None = None,
    positive_node: Any = None,
    negative_node: Any = None,
) -> mrml.CaseNodes:
    """Check the volume and create what is missing (segmentation, segment, click lists). The views are
    left as the user has them (the workflow turns them to the image planes once, when a patient opens)."""
    mrml.check_scalar_volume(volume_node)
    segmentation_node = segmentation_node or mrml.create_segmentation(scene, volume_node)
    mrml.prepare_segmentation(segmentation_node, volume_node)
    segment_id = mrml.ensure_segment(segmentation_node, segment_id)
    if positive_node is None or negative_node is None:
        positive_node, negative_node = mrml.create_click_nodes(scene)
    return mrml.CaseNodes(volume_node, segmentation_node, segment_id, positive_node, negative_node)
