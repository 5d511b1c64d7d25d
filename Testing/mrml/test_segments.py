"""Segments (mrml/segments.py) on a real MRML scene with real MRI volumes (Colin27) in non-trivial
geometries: writing and reading one slice, or a block of slices, of one segment (separate or shared
labelmap layers), the learning profile a segment names, and preparing a segmentation on the volume's
geometry."""

from __future__ import annotations

import numpy as np
import pytest
import slicer
import vtk

from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.errors import CaseStateError, InvalidClickError
from InteractiveAdaptLib.mrml.segment_writer import SegmentWriter
from InteractiveAdaptLib.mrml.segments import block_extent

# ---------------------------------------------------------------- labelmap slices


@pytest.mark.parametrize("shared_layer", [False, True])
def test_write_slice_changes_that_slice_of_that_segment_only(
    mri_scene, shared_layer, make_segmentation, blob
):
    geometry = mrml.volume_geometry(mri_scene.volume)
    seg, (target, other) = make_segmentation("target", "other")
    shape = geometry.shape_kji
    # content everywhere first: both segments, several slices of each axis
    before_target = np.zeros(shape, np.uint8)
    before_target[2:-2, 3:-3, 4:-4] = 1
    before_other = np.zeros(shape, np.uint8)
    before_other[1:-5, 2:-8, 6:-1] = 1
    for index in range(shape[0]):
        mrml.write_slice(seg, target, geometry, 0, index, before_target[index])
        mrml.write_slice(seg, other, geometry, 0, index, before_other[index])
    if shared_layer:
        seg.GetSegmentation().CollapseBinaryLabelmaps(False)
    np.testing.assert_array_equal(mrml.read_segment(seg, target, geometry), before_target)
    np.testing.assert_array_equal(mrml.read_segment(seg, other, geometry), before_other)

    expected = before_target.copy()
    for axis in range(3):
        index = shape[axis] // 2 + axis
        mask = blob(geometry.slice_shape(axis), axis)
        mrml.write_slice(seg, target, geometry, axis, index, mask)
        key = [slice(None)] * 3
        key[axis] = index
        expected[tuple(key)] = mask
        np.testing.assert_array_equal(mrml.read_slice(seg, target, geometry, axis, index), mask)
        np.testing.assert_array_equal(mrml.read_segment(seg, target, geometry), expected)
        np.testing.assert_array_equal(mrml.read_segment(seg, other, geometry), before_other)


def test_block_reads_and_writes_touch_only_their_slices(mri_scene, make_segmentation):
    geometry = mrml.volume_geometry(mri_scene.volume)
    seg, (target, other) = make_segmentation("target", "other")
    shape = geometry.shape_kji
    rng = np.random.default_rng(0)
    start = (rng.random(shape) > 0.5).astype(np.uint8)
    mrml.write_block(seg, target, geometry, 0, 0, start)
    mrml.write_block(seg, other, geometry, 0, 0, 1 - start)
    seg.GetSegmentation().CollapseBinaryLabelmaps(False)  # a shared layer, as the Segment Editor leaves it
    expected = start.copy()
    for axis in range(3):
        count = 3 + axis
        first = shape[axis] - count - 1
        block = np.moveaxis(
            (rng.random((count, *geometry.slice_shape(axis))) > 0.3).astype(np.uint8), 0, axis
        )
        mrml.write_block(seg, target, geometry, axis, first, block)
        np.moveaxis(expected, axis, 0)[first : first + count] = np.moveaxis(block, axis, 0)
        np.testing.assert_array_equal(mrml.read_block(seg, target, geometry, axis, first, count), block)
        np.testing.assert_array_equal(mrml.read_segment(seg, target, geometry), expected)
        np.testing.assert_array_equal(mrml.read_segment(seg, other, geometry), 1 - start)
    assert block_extent(geometry, 0, 2, 3) == (0, shape[2] - 1, 0, shape[1] - 1, 2, 4)
    with pytest.raises(InvalidClickError, match="outside the image"):
        block_extent(geometry, 0, shape[0] - 1, 2)


def test_write_into_an_empty_segment_and_clear_it_again(mri_scene, make_segmentation, blob):
    geometry = mrml.volume_geometry(mri_scene.volume)
    seg, (target,) = make_segmentation("target")
    assert mrml.read_segment(seg, target, geometry).sum() == 0
    mask = blob(geometry.slice_shape(1), 3)
    mrml.write_slice(seg, target, geometry, 1, 4, mask)
    full = mrml.read_segment(seg, target, geometry)
    assert full.sum() == mask.sum() and np.array_equal(full[:, 4, :], mask)
    mrml.write_slice(seg, target, geometry, 1, 4, np.zeros_like(mask))
    assert mrml.read_segment(seg, target, geometry).sum() == 0


def test_write_slice_refuses_wrong_shapes_and_deleted_segments(mri_scene, make_segmentation):
    geometry = mrml.volume_geometry(mri_scene.volume)
    seg, (target,) = make_segmentation("target")
    with pytest.raises(ValueError, match="does not match"):
        mrml.write_slice(seg, target, geometry, 0, 0, np.zeros((3, 3), np.uint8))
    seg.GetSegmentation().RemoveSegment(target)
    with pytest.raises(CaseStateError, match="was deleted"):
        mrml.read_slice(seg, target, geometry, 0, 0)


# ---------------------------------------------------------------- profiles and preparation


def test_segment_profile_from_terminology_or_name(make_segmentation):
    seg, (brain, lesion) = make_segmentation("Brain tissue", "  Lesion ")
    segment = seg.GetSegmentation().GetSegment(brain)
    segment.SetTerminology(
        "Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure"
        "~SCT^12738006^Brain~^^~Anatomic codes - DICOM master list~^^~^^"
    )
    assert mrml.segment_profile(seg, brain) == "Brain"
    assert mrml.segment_profile(seg, lesion) == "Lesion"
    generic = seg.GetSegmentation().GetSegment(lesion)
    generic.SetTerminology(
        "Segmentation category and type - 3D Slicer General Anatomy list~SCT^85756007^Tissue"
        "~SCT^85756007^Tissue~^^~Anatomic codes - DICOM master list~^^~^^"
    )
    assert mrml.segment_profile(seg, lesion) == "Lesion"


def test_left_and_right_segments_of_a_structure_share_their_profile(make_segmentation):
    seg, ids = make_segmentation("Hippocampus_L", "Right hippocampus", "Left", "Lesion")
    left, right, only_side, lesion = ids
    for segment_id, modifier in ((left, "SCT^7771000^Left"), (right, "SCT^24028007^Right")):
        seg.GetSegmentation().GetSegment(segment_id).SetTerminology(
            "Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure"
            f"~SCT^5976003^Hippocampus~{modifier}~Anatomic codes - DICOM master list~^^~^^"
        )
    assert mrml.segment_profile(seg, left) == mrml.segment_profile(seg, right) == "Hippocampus"
    # Names alone: the side word goes, the rest stays.
    seg.GetSegmentation().GetSegment(left).SetTerminology("")
    seg.GetSegmentation().GetSegment(right).SetTerminology("")
    assert mrml.segment_profile(seg, left) == mrml.segment_profile(seg, right) == "Hippocampus"
    assert mrml.segment_profile(seg, only_side) == "Left"
    assert mrml.segment_profile(seg, lesion) == "Lesion"


def test_prepare_segmentation_sets_geometry_and_refuses_surfaces(mri_scene):
    seg = mri_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "bare")  # as "Create new" makes it
    assert seg.GetDisplayNode() is None
    mrml.prepare_segmentation(seg, mri_scene.volume)
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    assert seg.GetNodeReference(role) is mri_scene.volume
    assert seg.GetDisplayNode() is not None  # else "Segmented" is reported and nothing shows
    surface = mri_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "surface")
    surface.GetSegmentation().SetSourceRepresentationName("Closed surface")
    surface.GetSegmentation().AddEmptySegment("", "s")
    with pytest.raises(CaseStateError, match="Binary labelmap"):
        mrml.prepare_segmentation(surface, mri_scene.volume)
    assert mrml.ensure_segment(seg, None, "Structure") == seg.GetSegmentation().GetSegmentIdBySegmentName(
        "Structure"
    )


def test_a_block_write_converts_the_3d_surface_once(mri_scene, make_segmentation):
    """With "Show 3D" on, every change of a segment's labelmap rebuilds its surface: a block is one change."""
    geometry = mrml.volume_geometry(mri_scene.volume)
    seg, (target, other) = make_segmentation("target", "other")
    shape = geometry.shape_kji
    start = np.zeros(shape, np.uint8)
    start[2:8, 3:9, 4:12] = 1
    mrml.write_block(seg, target, geometry, 0, 0, start)
    mrml.write_block(seg, other, geometry, 0, 0, 1 - start)
    seg.CreateClosedSurfaceRepresentation()
    segmentation, changes = seg.GetSegmentation(), []
    tag = segmentation.AddObserver(
        slicer.vtkSegmentation.SourceRepresentationModified, lambda caller, event: changes.append(event)
    )
    block = np.zeros((3, *geometry.slice_shape(0)), np.uint8)
    block[:, :2, :3] = 1  # outside what the segment held: the labelmap grows
    mrml.write_block(seg, target, geometry, 0, 6, block)
    segmentation.RemoveObserver(tag)
    assert len(changes) == 1
    expected = start.copy()
    expected[6:9] = block
    np.testing.assert_array_equal(mrml.read_segment(seg, target, geometry), expected)
    np.testing.assert_array_equal(mrml.read_segment(seg, other, geometry), 1 - start)
    surface = vtk.vtkPolyData()
    seg.GetClosedSurfaceRepresentation(target, surface)
    assert surface.GetNumberOfPoints() > 0  # the surface follows


def test_a_segmentation_on_another_grid_is_refused_before_any_write(mri_scene, make_segmentation):
    """An oversampled segmentation (Segment Editor > Specify geometry) would be resampled by each click."""
    geometry = mrml.volume_geometry(mri_scene.volume)
    seg, (target,) = make_segmentation("target")
    fine = vtk.vtkMatrix4x4()
    fine.DeepCopy(mrml.volume.array_to_matrix(geometry.ijk_to_ras))
    for r in range(3):
        for c in range(3):
            fine.SetElement(r, c, fine.GetElement(r, c) / 2)
    k, j, i = geometry.shape_kji
    text = slicer.vtkSegmentationConverter.SerializeImageGeometry(
        fine, [0, 2 * i - 1, 0, 2 * j - 1, 0, 2 * k - 1]
    )
    parameter = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    seg.GetSegmentation().SetConversionParameter(parameter, text)
    with pytest.raises(CaseStateError, match="another grid"):
        SegmentWriter(seg, target, geometry)
