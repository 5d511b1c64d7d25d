"""Case nodes and the case manager (mrml/case_manager.py) on a real MRML scene with real MRI volumes
(Colin27) in non-trivial geometries: the nodes a case needs, one session per settings, closing cases
safely, and restarting a profile from the shipped base model when its versions came from another one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import vtk
from conftest import add_slice_node, tilt_slice_node, voxel_ras
from controller_harness import prepare_case_nodes
from threshold_session_double import ThresholdSessionDouble

from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.app.inline_executor import InlineExecutor
from InteractiveAdaptLib.app.worker import Worker
from InteractiveAdaptLib.errors import CaseStateError


def _engine_click(kji, axis):
    from InteractiveAdaptLib.interaction import Click

    row, col = [int(kji[a]) for a in range(3) if a != axis]
    return Click(axis, int(kji[axis]), row, col, True)


def test_prepare_case_nodes_creates_what_is_missing_and_leaves_the_views_as_the_user_has_them(mri_scene):
    red = add_slice_node(mri_scene.scene, "Red", "Axial")
    tilt_slice_node(red, "Y", 15)  # the user's reformat: each P or N press used to undo it
    before = mrml.slice_normal(red)
    nodes = prepare_case_nodes(mri_scene.scene, mri_scene.volume)
    np.testing.assert_allclose(mrml.slice_normal(red), before)
    assert nodes.segmentation.IsA("vtkMRMLSegmentationNode")
    assert nodes.segmentation.GetSegmentation().GetSegment(nodes.segment_id).GetName() == "Structure"
    assert nodes.positive.GetAttribute(mrml.ROLE_ATTRIBUTE) == "positive"
    assert nodes.negative.GetAttribute(mrml.ROLE_ATTRIBUTE) == "negative"
    assert nodes.segmentation.GetDisplayNode() is not None
    again = prepare_case_nodes(
        mri_scene.scene,
        mri_scene.volume,
        nodes.segmentation,
        nodes.segment_id,
        nodes.positive,
        nodes.negative,
    )
    assert again == nodes  # nothing new when everything exists
    with pytest.raises(CaseStateError):
        prepare_case_nodes(mri_scene.scene, None)


def test_case_manager_opens_one_session_per_settings_and_closes_cases_safely(mri_scene, targets):
    opened: list = []

    def open_session(settings):
        opened.append(settings)
        return ThresholdSessionDouble()

    cases = mrml.CaseManager(InlineExecutor(), open_session)
    nodes = prepare_case_nodes(mri_scene.scene, mri_scene.volume)
    settings = {"site": "A"}
    cases.prepare(mri_scene.scene, settings, nodes)
    assert len(opened) == 1 and cases.profile == "Structure"
    assert cases.matches(nodes.volume, nodes.segmentation, nodes.segment_id)
    controller = cases.controller
    cases.prepare(mri_scene.scene, dict(settings), nodes)
    assert cases.controller is controller and len(opened) == 1  # same inputs, same settings: nothing new

    kji = targets[0]
    view = add_slice_node(mri_scene.scene, "Red", "Axial", voxel_ras(mri_scene.spec, kji))
    assert view is not None
    nodes.positive.AddControlPointWorld(vtk.vtkVector3d(*voxel_ras(mri_scene.spec, kji)))
    geometry = mrml.volume_geometry(mri_scene.volume)
    segmented = mrml.read_segment(nodes.segmentation, nodes.segment_id, geometry)
    assert segmented.sum() > 0
    session = cases.session
    settings["site"] = "B"  # changed in place: the manager kept its own copy
    cases.prepare(mri_scene.scene, settings, nodes)
    assert cases.controller is controller and len(opened) == 1  # a case with clicks goes on
    lesion = nodes.segmentation.GetSegmentation().AddEmptySegment("", "Lesion")
    cases.prepare(mri_scene.scene, settings, dataclasses.replace(nodes, segment_id=lesion))
    assert len(opened) == 2 and opened[-1] == {"site": "B"} and cases.session is not session
    assert cases.profile == "Lesion"
    assert [learn for _, learn in session.finished] == [False]  # the old case ended without learning
    np.testing.assert_array_equal(
        mrml.read_segment(nodes.segmentation, nodes.segment_id, geometry), segmented
    )
    assert nodes.positive.GetNumberOfControlPoints() == 0
    # without clicks, new settings take effect at once
    lesion_session = cases.session
    cases.prepare(mri_scene.scene, {"site": "C"}, dataclasses.replace(nodes, segment_id=lesion))
    assert len(opened) == 3
    assert [(accepted, learn) for accepted, learn in lesion_session.finished] == [
        (None, False)
    ]  # closed, empty
    cases.close()
    assert cases.controller is None
    nodes.positive.AddControlPointWorld(
        vtk.vtkVector3d(*voxel_ras(mri_scene.spec, kji))
    )  # no controller: ignored
    assert cases.session.clicks == []


# ---------------------------------------------------------------- with the real engine session


def test_a_profile_from_another_base_model_restarts_from_the_shipped_one_when_asked(
    mri_scene, targets, tiny_model_dir, tmp_path
):
    """The module asks the user, then calls CaseManager.restart_profile_from_base: the case goes on."""
    import torch
    from conftest_engine import TINY_CONFIG

    from InteractiveAdaptLib.app.settings import ModuleSettings, open_session
    from InteractiveAdaptLib.errors import IncompatibleBaseModelError
    from InteractiveAdaptLib.model.base_model import save_base_model
    from InteractiveAdaptLib.model.network import build_network

    settings, store = ModuleSettings(site="Test site"), tmp_path / "store"
    torch.manual_seed(1)
    older_base = save_base_model(build_network(TINY_CONFIG), tmp_path / "older", {"name": "older"}).directory
    old = open_session(settings, store, older_base, cuda_available=False)
    geometry = mrml.volume_geometry(mri_scene.volume)
    old.start_case(mrml.volume_array(mri_scene.volume), geometry.spacing_kji, "Structure")
    kji = targets[0]
    axis = mri_scene.spec.view_axis["Axial"]
    old.add_click(_engine_click(kji, axis))
    assert old.finish_case(accepted=None, learn=True).version == 1

    errors: list = []
    worker = Worker()
    try:
        cases = mrml.CaseManager(
            worker, lambda s: open_session(s, store, tiny_model_dir, cuda_available=False)
        )
        nodes = prepare_case_nodes(mri_scene.scene, mri_scene.volume)
        cases.prepare(mri_scene.scene, settings, nodes, on_error=lambda e, tb: errors.append(e))
        assert worker.drain(60)
        assert len(errors) == 1 and isinstance(errors[0], IncompatibleBaseModelError)
        assert "base model" in str(errors[0])

        cases.restart_profile_from_base()
        assert worker.drain(60) and len(errors) == 1
        view = add_slice_node(mri_scene.scene, "Red", "Axial", voxel_ras(mri_scene.spec, kji))
        assert view is not None
        nodes.positive.AddControlPointWorld(vtk.vtkVector3d(*voxel_ras(mri_scene.spec, kji)))
        assert worker.drain(60) and len(errors) == 1
        np.testing.assert_array_equal(
            mrml.read_slice(nodes.segmentation, nodes.segment_id, geometry, axis, kji[axis]),
            cases.session.prediction(axis, kji[axis]),
        )
        finished: list = []
        cases.controller.finish_case(learn=True, on_done=finished.append)
        assert worker.drain(60) and finished[0].ok, finished[0].traceback
        assert finished[0].value.version == 2  # version 1 (older base) stays listed
        versions = cases.session.store.profile("Test site", "Structure").versions()
        assert [v.base_sha256 == cases.session.base.sha256 for v in versions] == [False, True]
    finally:
        worker.shutdown(timeout=10)
