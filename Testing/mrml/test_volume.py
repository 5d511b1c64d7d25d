"""Volume geometry and voxels (mrml/volume.py) on a real MRML scene with real MRI volumes (Colin27) in
non-trivial geometries: the node's IJK -> world matrix and array, parent transforms, and the clear
messages for volumes the adapter cannot use (RGB, multi-component, sequence frames, label maps, none)."""

from __future__ import annotations

import numpy as np
import pytest
import slicer
import vtk
from conftest import GEOMETRIES, add_volume, make_core, voxel_ras

from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.errors import CaseStateError, ImageReadError


def test_volume_geometry_and_array_follow_the_node(mri_scene):
    geometry = mrml.volume_geometry(mri_scene.volume)
    assert geometry.shape_kji == mri_scene.array.shape
    np.testing.assert_allclose(geometry.ijk_to_ras, mri_scene.spec.ijk_to_ras(), atol=1e-9)
    np.testing.assert_allclose(geometry.ijk_to_world, geometry.ijk_to_ras)
    i, j, k = mri_scene.spec.spacing_ijk
    assert geometry.spacing_kji == pytest.approx((k, j, i))
    array = mrml.volume_array(mri_scene.volume)
    np.testing.assert_array_equal(array, mri_scene.array)
    array[0, 0, 0] += 1  # a copy: the scene's voxels do not change
    np.testing.assert_array_equal(mrml.volume_array(mri_scene.volume), mri_scene.array)


def test_linear_parent_transform_moves_clicks_but_not_the_labelmap_grid(mri_scene, targets):
    transform = mri_scene.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = vtk.vtkMatrix4x4()
    shift.SetElement(0, 3, 12.5)
    transform.SetMatrixTransformToParent(shift)
    mri_scene.volume.SetAndObserveTransformNodeID(transform.GetID())
    geometry = mrml.volume_geometry(mri_scene.volume)
    kji = targets[0]
    world = voxel_ras(mri_scene.spec, kji) + [12.5, 0, 0]
    np.testing.assert_allclose(geometry.world_to_kji(world), kji, atol=1e-9)
    seg = mrml.create_segmentation(mri_scene.scene, mri_scene.volume)
    with pytest.raises(CaseStateError, match="different transforms"):
        mrml.prepare_segmentation(seg, mri_scene.volume)
    seg.SetAndObserveTransformNodeID(transform.GetID())
    mrml.prepare_segmentation(seg, mri_scene.volume)


# ---------------------------------------------------------------- bad volumes


def _vector_volume(scene, components: int, scalar_type: int):
    node = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "colour")
    image = vtk.vtkImageData()
    image.SetDimensions(8, 6, 4)
    image.AllocateScalars(scalar_type, components)
    node.SetAndObserveImageData(image)
    return node


def test_rgb_volume_gets_a_clear_message():
    core = make_core()
    with pytest.raises(ImageReadError, match="colour \\(RGB\\)"):
        mrml.volume_geometry(_vector_volume(core.scene, 3, vtk.VTK_UNSIGNED_CHAR))


def test_multi_component_volume_gets_a_clear_message():
    core = make_core()
    with pytest.raises(ImageReadError, match="4D"):
        mrml.volume_array(_vector_volume(core.scene, 6, vtk.VTK_FLOAT))


def test_sequence_frame_label_map_and_missing_volume_get_clear_messages(colin_block):
    core = make_core()
    volume = add_volume(core.scene, colin_block, GEOMETRIES["lps"])
    for cls in (slicer.vtkMRMLSequenceBrowserNode, slicer.vtkMRMLSequenceNode):
        core.scene.RegisterNodeClass(cls())  # what Slicer's Sequences module does at start-up
    browser = core.scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode")
    sequence = core.scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    browser.AddProxyNode(volume, sequence, False)
    with pytest.raises(ImageReadError, match="4D sequence"):
        mrml.check_scalar_volume(volume)
    labels = core.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    labels.SetAndObserveImageData(volume.GetImageData())
    with pytest.raises(ImageReadError, match="label map"):
        mrml.check_scalar_volume(labels)
    with pytest.raises(CaseStateError, match="Select the MRI volume"):
        mrml.check_scalar_volume(None)
    empty = core.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(ImageReadError, match="no image data"):
        mrml.check_scalar_volume(empty)


def test_the_volume_preselected_is_the_first_one_that_can_be_segmented(mri_scene):
    scene = mri_scene.scene
    scene.RemoveNode(mri_scene.volume)
    labels = scene.AddNewNodeByClass(
        "vtkMRMLLabelMapVolumeNode", "Labels"
    )  # a label map is a scalar volume too
    labels.SetAndObserveImageData(vtk.vtkImageData())
    assert mrml.first_mri_volume(scene) is None  # the selector, which hides label maps, shows none
    mri = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "T1")
    slicer.util.updateVolumeFromArray(mri, mri_scene.array)
    assert mrml.first_mri_volume(scene) is mri
