"""The MRML adapter on a real MRML scene with real MRI volumes (Colin27) in non-trivial geometries."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import slicer
import vtk
from conftest import GEOMETRIES, add_slice_node, add_volume, make_core, voxel_ras
from threshold_session_double import ThresholdSessionDouble

from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.app.worker import InlineExecutor, Worker
from InteractiveAdaptLib.errors import CaseStateError, ImageReadError, InvalidClickError
from InteractiveAdaptLib.interaction import Click

VIEWS = ("Axial", "Coronal", "Sagittal")
TARGETS_KJI = [(7, 11, 29), (12, 25, 9), (3, 30, 40)]  # for the (20, 36, 44) block; transposed per geometry


def _target(mri, n: int) -> tuple[int, int, int]:
    """Target voxel n of the block, transposed like the array of this geometry."""
    return tuple(int(v) for v in np.array(TARGETS_KJI[n])[list(mri.spec.transpose)])


def _segmentation(mri, *names: str):
    seg = mrml.create_segmentation(mri.scene, mri.volume)
    ids = [seg.GetSegmentation().AddEmptySegment("", name) for name in names]
    return seg, ids


# ---------------------------------------------------------------- volume


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


def test_linear_parent_transform_moves_clicks_but_not_the_labelmap_grid(mri_scene):
    transform = mri_scene.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = vtk.vtkMatrix4x4()
    shift.SetElement(0, 3, 12.5)
    transform.SetMatrixTransformToParent(shift)
    mri_scene.volume.SetAndObserveTransformNodeID(transform.GetID())
    geometry = mrml.volume_geometry(mri_scene.volume)
    kji = _target(mri_scene, 0)
    world = voxel_ras(mri_scene.spec, kji) + [12.5, 0, 0]
    np.testing.assert_allclose(geometry.world_to_kji(world), kji, atol=1e-9)
    seg = mrml.create_segmentation(mri_scene.scene, mri_scene.volume)
    with pytest.raises(CaseStateError, match="different transforms"):
        mrml.prepare_segmentation(seg, mri_scene.volume)
    seg.SetAndObserveTransformNodeID(transform.GetID())
    mrml.prepare_segmentation(seg, mri_scene.volume)


# ---------------------------------------------------------------- clicks in each view


@pytest.mark.parametrize("view", VIEWS)
def test_point_in_a_view_hits_the_intended_pixel(mri_scene, view):
    geometry = mrml.volume_geometry(mri_scene.volume)
    for n in range(len(TARGETS_KJI)):
        kji = _target(mri_scene, n)
        ras = voxel_ras(mri_scene.spec, kji)
        # three views through other points, the clicked one through the target
        others = {v: add_slice_node(mri_scene.scene, v, v, ras + 7.3) for v in VIEWS if v != view}
        clicked = add_slice_node(mri_scene.scene, view, view, ras)
        assert mrml.find_slice_node(mri_scene.scene, ras) is clicked
        axis = mrml.slice_axis(clicked, geometry)
        assert axis == mri_scene.spec.view_axis[view]
        index, row, col = mrml.ras_to_slice_pixel(ras, geometry, axis)
        assert index == kji[axis] and (row, col) == tuple(v for a, v in enumerate(kji) if a != axis)
        assert np.take(mri_scene.array, index, axis)[row, col] == mri_scene.array[kji]
        # anywhere inside the voxel rounds to it
        step = geometry.ijk_to_world[:3, :3] @ np.array([0.45, -0.45, 0.45])
        assert mrml.ras_to_slice_pixel(ras + step, geometry, axis) == (index, row, col)
        for node in [*others.values(), clicked]:
            mri_scene.scene.RemoveNode(node)


def test_the_view_under_the_mouse_wins_where_planes_cross(mri_scene):
    kji = _target(mri_scene, 0)
    ras = voxel_ras(mri_scene.spec, kji)
    red = add_slice_node(mri_scene.scene, "Red", "Axial", ras)
    yellow = add_slice_node(mri_scene.scene, "Yellow", "Sagittal", ras)  # both planes hold the point
    assert mrml.find_slice_node(mri_scene.scene, ras, preferred=yellow) is yellow
    assert mrml.find_slice_node(mri_scene.scene, ras, preferred=red) is red


def test_point_off_every_slice_plane_is_refused(mri_scene):
    ras = voxel_ras(mri_scene.spec, _target(mri_scene, 0))
    add_slice_node(mri_scene.scene, "Red", "Axial", ras + 5)
    with pytest.raises(InvalidClickError, match="not on a slice view"):
        mrml.find_slice_node(mri_scene.scene, ras)


@pytest.mark.parametrize("offset_voxels", [(-1, 0, 0), (0, 0, 1), (0, -2, 0)])
def test_point_outside_the_volume_is_refused(mri_scene, offset_voxels):
    geometry = mrml.volume_geometry(mri_scene.volume)
    corner = np.where(np.array(offset_voxels) > 0, np.array(geometry.shape_kji) - 1, 0)
    outside = geometry.kji_to_world(corner + np.array(offset_voxels) * 0.6)  # > half a voxel out
    for axis in range(3):
        with pytest.raises(InvalidClickError, match="outside the image"):
            mrml.ras_to_slice_pixel(outside, geometry, axis)


def test_oblique_view_is_refused_until_rotated_to_the_volume_plane(mri_scene):
    geometry = mrml.volume_geometry(mri_scene.volume)
    red = add_slice_node(mri_scene.scene, "Red", "Axial")
    tilt = vtk.vtkTransform()
    tilt.RotateX(20)
    tilt.Concatenate(red.GetSliceToRAS())
    red.GetSliceToRAS().DeepCopy(tilt.GetMatrix())
    red.UpdateMatrices()
    with pytest.raises(InvalidClickError, match="Rotate to volume plane"):
        mrml.slice_axis(red, geometry)
    mrml.align_slice_views([red], mri_scene.volume)
    assert mrml.slice_axis(red, geometry) == mri_scene.spec.view_axis["Axial"]


def test_obliquely_acquired_volume_needs_aligned_views(colin_block):
    core = make_core()
    spec = GEOMETRIES["lps"]
    volume = add_volume(core.scene, colin_block, spec)
    rotation = vtk.vtkTransform()
    rotation.RotateX(12)  # a tilted acquisition
    directions = np.array([[rotation.GetMatrix().GetElement(r, c) for c in range(3)] for r in range(3)])
    volume.SetIJKToRASDirections((directions @ np.asarray(spec.directions, float)).tolist())
    geometry = mrml.volume_geometry(volume)
    red = add_slice_node(core.scene, "Red", "Axial")
    with pytest.raises(InvalidClickError):
        mrml.slice_axis(red, geometry)
    mrml.align_slice_views([red], volume)
    assert mrml.slice_axis(red, geometry) == 0
    # a click on the aligned view still lands on the voxel it was placed on
    ras = geometry.kji_to_world((6, 10, 20))
    red.JumpSliceByOffsetting(*ras)
    assert mrml.find_slice_node(core.scene, ras) is red
    assert mrml.ras_to_slice_pixel(ras, geometry, 0) == (6, 10, 20)


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


# ---------------------------------------------------------------- labelmap slices


def _blob(shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(shape) > 0.6).astype(np.uint8)


@pytest.mark.parametrize("shared_layer", [False, True])
def test_write_slice_changes_that_slice_of_that_segment_only(mri_scene, shared_layer):
    geometry = mrml.volume_geometry(mri_scene.volume)
    seg, (target, other) = _segmentation(mri_scene, "target", "other")
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
        mask = _blob(geometry.slice_shape(axis), axis)
        mrml.write_slice(seg, target, geometry, axis, index, mask)
        key = [slice(None)] * 3
        key[axis] = index
        expected[tuple(key)] = mask
        np.testing.assert_array_equal(mrml.read_slice(seg, target, geometry, axis, index), mask)
        np.testing.assert_array_equal(mrml.read_segment(seg, target, geometry), expected)
        np.testing.assert_array_equal(mrml.read_segment(seg, other, geometry), before_other)


def test_write_into_an_empty_segment_and_clear_it_again(mri_scene):
    geometry = mrml.volume_geometry(mri_scene.volume)
    seg, (target,) = _segmentation(mri_scene, "target")
    assert mrml.read_segment(seg, target, geometry).sum() == 0
    mask = _blob(geometry.slice_shape(1), 3)
    mrml.write_slice(seg, target, geometry, 1, 4, mask)
    full = mrml.read_segment(seg, target, geometry)
    assert full.sum() == mask.sum() and np.array_equal(full[:, 4, :], mask)
    mrml.write_slice(seg, target, geometry, 1, 4, np.zeros_like(mask))
    assert mrml.read_segment(seg, target, geometry).sum() == 0


def test_write_slice_refuses_wrong_shapes_and_deleted_segments(mri_scene):
    geometry = mrml.volume_geometry(mri_scene.volume)
    seg, (target,) = _segmentation(mri_scene, "target")
    with pytest.raises(ValueError, match="does not match"):
        mrml.write_slice(seg, target, geometry, 0, 0, np.zeros((3, 3), np.uint8))
    seg.GetSegmentation().RemoveSegment(target)
    with pytest.raises(CaseStateError, match="was deleted"):
        mrml.read_slice(seg, target, geometry, 0, 0)


def test_segment_profile_from_terminology_or_name(mri_scene):
    seg, (brain, lesion) = _segmentation(mri_scene, "Brain tissue", "  Lesion ")
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


def test_left_and_right_segments_of_a_structure_share_their_profile(mri_scene):
    seg, ids = _segmentation(mri_scene, "Hippocampus_L", "Right hippocampus", "Left", "Lesion")
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
    seg = mri_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "bare")
    mrml.prepare_segmentation(seg, mri_scene.volume)
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    assert seg.GetNodeReference(role) is mri_scene.volume
    surface = mri_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "surface")
    surface.GetSegmentation().SetSourceRepresentationName("Closed surface")
    surface.GetSegmentation().AddEmptySegment("", "s")
    with pytest.raises(CaseStateError, match="Binary labelmap"):
        mrml.prepare_segmentation(surface, mri_scene.volume)
    assert mrml.ensure_segment(seg, None, "Structure") == seg.GetSegmentation().GetSegmentIdBySegmentName(
        "Structure"
    )


# ---------------------------------------------------------------- the controller


class Harness:
    """A controller on a real scene with the threshold test double and one slice view per orientation."""

    def __init__(self, mri, executor=None, **kwargs):
        self.mri = mri
        self.geometry = mrml.volume_geometry(mri.volume)
        self.seg, (self.segment_id, self.other_id) = _segmentation(mri, "target", "other")
        self.positive, self.negative = mrml.create_click_nodes(mri.scene)
        self.session = ThresholdSessionDouble()
        self.errors: list[BaseException] = []
        self.views = {v: add_slice_node(mri.scene, v, v) for v in VIEWS}
        self.executor = executor or InlineExecutor()
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

    def click(self, view: str, kji, positive: bool = True) -> None:
        """Place a point on the voxel through the given view, as a click in that view would."""
        ras = voxel_ras(self.mri.spec, kji)
        self.views[view].JumpSliceByOffsetting(*ras)
        (self.positive if positive else self.negative).AddControlPointWorld(vtk.vtkVector3d(*ras))

    def slice_of(self, view: str, kji) -> tuple[int, int]:
        axis = self.mri.spec.view_axis[view]
        return axis, kji[axis]

    def read(self, key) -> np.ndarray:
        return mrml.read_slice(self.seg, self.segment_id, self.geometry, *key)

    def full(self) -> np.ndarray:
        return mrml.read_segment(self.seg, self.segment_id, self.geometry)


def _composed(shape, writes) -> np.ndarray:
    """The segment after writing (key, mask) pairs in order (later slices win where slices cross)."""
    out = np.zeros(shape, np.uint8)
    for (axis, index), mask in writes:
        sel = [slice(None)] * 3
        sel[axis] = index
        out[tuple(sel)] = mask
    return out


def _shift_in_plane(kji, axis: int, d_row: int, d_col: int) -> tuple[int, int, int]:
    """The voxel d_row / d_col pixels away from `kji` on the same slice."""
    out = list(kji)
    row_axis, col_axis = (a for a in range(3) if a != axis)
    out[row_axis] += d_row
    out[col_axis] += d_col
    return tuple(out)


def test_clicks_in_each_view_segment_that_slice_only(mri_scene):
    h = Harness(mri_scene)
    h.controller.start_case()
    assert h.session.profile == "target"
    assert h.session.spacing_kji == pytest.approx(h.geometry.spacing_kji)
    for n, view in enumerate(VIEWS):
        kji = _target(mri_scene, n)
        h.click(view, kji)
        key = h.slice_of(view, kji)
        click = h.session.clicks[-1]
        assert (click.axis, click.index) == key and click.positive
        assert (click.row, click.col) == tuple(v for a, v in enumerate(kji) if a != key[0])
        np.testing.assert_array_equal(h.read(key), h.session.predict(*key))
        assert h.read(key)[click.row, click.col] == 1
    assert not h.errors
    assert sorted({r.slice_key for r in h.controller.records}) == sorted(
        h.slice_of(v, _target(mri_scene, n)) for n, v in enumerate(VIEWS)
    )
    assert [name for name, _ in h.session.calls] == ["start_case"] + ["add_click", "learn_pending"] * 3
    # points are locked and coloured by their list
    assert all(h.positive.GetNthControlPointLocked(n) for n in range(3))
    assert h.positive.GetDisplayNode().GetSelectedColor() == pytest.approx(mrml.POSITIVE_COLOR)
    assert h.negative.GetDisplayNode().GetSelectedColor() == pytest.approx(mrml.NEGATIVE_COLOR)
    assert mrml.read_segment(h.seg, h.other_id, h.geometry).sum() == 0


def test_undo_restores_the_slice_exactly_including_earlier_painting(mri_scene):
    h = Harness(mri_scene)
    kji = _target(mri_scene, 0)
    key = h.slice_of("Axial", kji)
    painted = _blob(h.geometry.slice_shape(key[0]), 7)
    mrml.write_slice(h.seg, h.segment_id, h.geometry, *key, painted)  # painted with the Segment Editor
    mrml.write_slice(h.seg, h.segment_id, h.geometry, key[0], key[1] - 1, painted)  # and on the next slice
    before_case = h.full()

    h.click("Axial", kji)
    after_first = h.full()
    changed = np.argwhere(after_first != before_case)
    assert len(changed) and set(changed[:, key[0]]) == {key[1]}  # only the clicked slice changed
    h.click("Axial", _shift_in_plane(kji, key[0], 2, -3), positive=False)
    assert len(h.session.clicks) == 2 and not np.array_equal(h.full(), after_first)

    assert h.controller.undo_last()
    np.testing.assert_array_equal(h.full(), after_first)
    assert h.positive.GetNumberOfControlPoints() + h.negative.GetNumberOfControlPoints() == 1
    assert h.controller.undo_last()
    np.testing.assert_array_equal(h.full(), before_case)
    assert not h.controller.undo_last()
    assert h.session.clicks == [] and not h.errors


def test_deleting_an_earlier_point_repredicts_without_it(mri_scene):
    h = Harness(mri_scene)
    kji = _target(mri_scene, 1)
    axis = mri_scene.spec.view_axis["Coronal"]
    key = h.slice_of("Coronal", kji)
    second = _shift_in_plane(kji, axis, 1, -3)
    h.click("Coronal", kji)
    h.click("Coronal", tuple(second))
    h.click("Sagittal", _target(mri_scene, 2))
    assert len(h.session.clicks) == 3 and not h.errors
    # delete the first point (not the last): the coronal slice is re-predicted from the second alone
    h.positive.RemoveNthControlPoint(0)
    assert h.session.clicks[0] == Click(*key, *[v for a, v in enumerate(second) if a != axis], True)
    assert len(h.session.clicks) == 2
    np.testing.assert_array_equal(h.read(key), h.session.predict(*key))
    # delete the second too: no click left on that slice, so it goes back to before the case (empty)
    # (the two slices cross along a line: the sagittal prediction, written later, keeps it)
    h.positive.RemoveNthControlPoint(h.positive.GetNthControlPointIndexByID(h.controller.records[0].point_id))
    sagittal = h.slice_of("Sagittal", _target(mri_scene, 2))
    expected = _composed(h.geometry.shape_kji, [(sagittal, h.session.predict(*sagittal))])
    np.testing.assert_array_equal(h.full(), expected)
    assert [name for name, _ in h.session.calls].count("remove_click") == 2 and not h.errors


def test_bad_clicks_are_removed_and_reported_without_reaching_the_session(mri_scene):
    h = Harness(mri_scene)
    geometry = h.geometry
    outside = geometry.kji_to_world(np.array(geometry.shape_kji) + 2)
    h.views["Axial"].JumpSliceByOffsetting(*outside)
    h.positive.AddControlPointWorld(vtk.vtkVector3d(*outside))
    assert isinstance(h.errors[-1], InvalidClickError) and "outside the image" in str(h.errors[-1])
    # a point that no slice view holds (e.g. placed in 3D)
    ras = voxel_ras(mri_scene.spec, _target(mri_scene, 0))
    for view in h.views.values():
        view.JumpSliceByOffsetting(*(ras + 9))
    h.negative.AddControlPointWorld(vtk.vtkVector3d(*ras))
    assert "not on a slice view" in str(h.errors[-1])
    assert h.positive.GetNumberOfControlPoints() == h.negative.GetNumberOfControlPoints() == 0
    assert "add_click" not in [name for name, _ in h.session.calls]


def test_session_errors_remove_the_point_and_reach_the_gui(mri_scene):
    h = Harness(mri_scene)
    h.session.add_click = lambda click: (_ for _ in ()).throw(CaseStateError("No case is open. Start one."))
    h.click("Axial", _target(mri_scene, 0))
    assert str(h.errors[-1]) == "No case is open. Start one."
    assert h.positive.GetNumberOfControlPoints() == 0 and h.controller.records == []


def test_reset_restores_every_touched_slice_and_finish_reads_back_corrections(mri_scene):
    h = Harness(mri_scene)
    before = h.full()
    h.click("Axial", _target(mri_scene, 0))
    h.click("Sagittal", _target(mri_scene, 2), positive=False)
    h.click("Sagittal", _target(mri_scene, 2))
    h.controller.reset_case()
    np.testing.assert_array_equal(h.full(), before)
    assert h.positive.GetNumberOfControlPoints() + h.negative.GetNumberOfControlPoints() == 0
    assert h.session.calls[-1][0] == "reset_case"

    kji = _target(mri_scene, 1)
    h.click("Coronal", kji)
    key = h.slice_of("Coronal", kji)
    corrected = h.read(key)
    corrected[:2, :] = 1  # a Segment Editor correction after the prediction
    mrml.write_slice(h.seg, h.segment_id, h.geometry, *key, corrected)
    done = []
    h.controller.finish_case(learn=False, on_done=done.append)
    ((accepted, learn),) = h.session.finished
    assert learn is False and list(accepted) == [key]
    np.testing.assert_array_equal(accepted[key], corrected)
    assert done and done[0].ok and done[0].value.clicks == 1
    assert h.controller.records == [] and h.positive.GetNumberOfControlPoints() == 0
    np.testing.assert_array_equal(h.read(key), corrected)  # the accepted segment stays
    # the next click starts a new case by itself
    h.click("Coronal", kji)
    assert [name for name, _ in h.session.calls][-3:] == ["start_case", "add_click", "learn_pending"]


def test_worker_thread_runs_the_session_and_the_scene_changes_on_poll(mri_scene):
    worker = Worker()
    try:
        h = Harness(mri_scene, executor=worker)
        h.session.delay_s = 0.01
        h.controller.start_case()
        keys = []
        for n, view in enumerate(VIEWS):
            kji = _target(mri_scene, n)
            h.click(view, kji)
            keys.append(h.slice_of(view, kji))
        assert h.full().sum() == 0  # nothing applied before the GUI polls
        assert worker.wait_idle(10)
        worker.poll()
        writes = [(key, h.session.predict(*key)) for key in keys]
        np.testing.assert_array_equal(h.full(), _composed(h.geometry.shape_kji, writes))
        threads = {thread for _, thread in h.session.calls}
        assert threads == {"InteractiveAdapt worker"} and threading.current_thread().name not in threads
        # undo through the worker too, in order
        h.controller.undo_last()
        h.controller.undo_last()
        assert worker.wait_idle(10)
        worker.poll()
        np.testing.assert_array_equal(h.full(), _composed(h.geometry.shape_kji, writes[:1]))
        assert not h.errors
    finally:
        assert worker.shutdown(timeout=5)


def test_a_point_deleted_before_its_prediction_arrives_changes_nothing(mri_scene):
    worker = Worker()
    try:
        h = Harness(mri_scene, executor=worker)
        h.session.delay_s = 0.05
        h.click("Axial", _target(mri_scene, 0))
        h.controller.undo_last()  # before any poll
        assert worker.wait_idle(10)
        worker.poll()
        assert h.full().sum() == 0 and h.session.clicks == [] and not h.errors
    finally:
        worker.shutdown(timeout=5)


def test_place_mode_helpers_drive_the_interaction_node(mri_scene):
    positive, negative = mrml.create_click_nodes(mri_scene.scene)
    assert mrml.placing_node(mri_scene.scene) is None
    mrml.start_placing(mri_scene.scene, negative, persistent=True)
    assert mrml.placing_node(mri_scene.scene) is negative
    interaction = mri_scene.scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    assert interaction.GetPlaceModePersistence() == 1
    mrml.stop_placing(mri_scene.scene)
    assert mrml.placing_node(mri_scene.scene) is None


# ---------------------------------------------------------------- real mouse clicks in slice views


def _mouse_click(view, ras) -> None:
    """A left click through the view's interactor at the screen position of a world point."""
    xy_to_ras = view.get_view_node().GetXYToRAS()
    ras_to_xy = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Invert(xy_to_ras, ras_to_xy)
    x, y, _, _ = ras_to_xy.MultiplyPoint([*ras, 1.0])
    size = view.render_window().GetSize()
    assert 0 <= x < size[0] and 0 <= y < size[1]
    interactor = view.interactor()
    interactor.SetEventInformation(round(x), round(y), 0, 0, "\0", 0)
    interactor.MouseMoveEvent()
    interactor.LeftButtonPressEvent()
    interactor.LeftButtonReleaseEvent()


def test_real_mouse_clicks_in_red_and_yellow_views_go_through_the_controller(colin_block):
    from trame_slicer.core import SlicerApp
    from trame_slicer.views import DirectViewFactory, ViewLayoutDefinition

    app = SlicerApp()
    app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
    red = app.view_manager.create_view(ViewLayoutDefinition.axial_view())
    yellow = app.view_manager.create_view(ViewLayoutDefinition.sagittal_view())
    spec = GEOMETRIES["lps"]
    volume = add_volume(app.scene, colin_block, spec)
    for view in (red, yellow):
        view.render_window().SetSize(320, 320)
        view.set_background_volume_id(volume.GetID())
        view.fit_view_to_content()
    seg = mrml.create_segmentation(app.scene, volume)
    segment_id = mrml.ensure_segment(seg, None, "Brain")
    positive, negative = mrml.create_click_nodes(app.scene)
    session, errors = ThresholdSessionDouble(), []
    controller = mrml.ClickController(
        session, InlineExecutor(), volume, seg, segment_id, positive, negative, on_error=lambda error, tb: errors.append(error),
    )  # fmt: skip
    geometry = controller.geometry

    # positive click in the Red (axial) view: axial fixes K for this LPS-stored volume
    kji = (9, 14, 21)
    ras = voxel_ras(spec, kji)
    red.get_view_node().JumpSliceByOffsetting(*ras)
    red.render()
    mrml.start_placing(app.scene, positive, persistent=True)
    _mouse_click(red, ras)
    assert positive.GetNumberOfControlPoints() == 1 and not errors
    assert session.clicks == [Click(0, 9, 14, 21, True)]
    red_slice = mrml.read_slice(seg, segment_id, geometry, 0, 9)
    np.testing.assert_array_equal(red_slice, session.predict(0, 9))
    assert red_slice[14, 21] == 1
    full = mrml.read_segment(seg, segment_id, geometry)
    assert full.sum() == red_slice.sum()  # nothing outside that slice
    # persistent place mode: the next click also places a point (no re-arming needed)
    assert mrml.placing_node(app.scene) is positive

    # negative click in the Yellow (sagittal) view: sagittal fixes I here
    kji2 = (12, 16, 24)  # off the Red plane, so the click does not land on its intersection line
    ras2 = voxel_ras(spec, kji2)
    yellow.get_view_node().JumpSliceByOffsetting(*ras2)
    yellow.render()
    mrml.start_placing(app.scene, negative, persistent=True)
    _mouse_click(yellow, ras2)
    assert negative.GetNumberOfControlPoints() == 1 and not errors
    assert session.clicks[-1] == Click(2, 24, 12, 16, False)
    assert sorted({r.slice_key for r in controller.records}) == [(0, 9), (2, 24)]

    # Ctrl+Z in the module == undo_last: the sagittal slice goes back exactly
    assert controller.undo_last()
    assert negative.GetNumberOfControlPoints() == 0
    np.testing.assert_array_equal(mrml.read_segment(seg, segment_id, geometry), full)
    mrml.stop_placing(app.scene)
    controller.cleanup()


# ---------------------------------------------------------------- case nodes and the case manager


def test_prepare_case_nodes_creates_what_is_missing_and_aligns_the_views(mri_scene):
    red = add_slice_node(mri_scene.scene, "Red", "Axial")
    tilt = vtk.vtkTransform()
    tilt.RotateY(15)
    tilt.Concatenate(red.GetSliceToRAS())
    red.GetSliceToRAS().DeepCopy(tilt.GetMatrix())
    red.UpdateMatrices()
    nodes = mrml.prepare_case_nodes(mri_scene.scene, mri_scene.volume)
    assert nodes.segmentation.IsA("vtkMRMLSegmentationNode")
    assert nodes.segmentation.GetSegmentation().GetSegment(nodes.segment_id).GetName() == "Structure"
    assert nodes.positive.GetAttribute(mrml.ROLE_ATTRIBUTE) == "positive"
    assert nodes.negative.GetAttribute(mrml.ROLE_ATTRIBUTE) == "negative"
    assert mrml.slice_axis(red, mrml.volume_geometry(mri_scene.volume)) == mri_scene.spec.view_axis["Axial"]
    again = mrml.prepare_case_nodes(
        mri_scene.scene,
        mri_scene.volume,
        nodes.segmentation,
        nodes.segment_id,
        nodes.positive,
        nodes.negative,
    )
    assert again == nodes  # nothing new when everything exists
    with pytest.raises(CaseStateError):
        mrml.prepare_case_nodes(mri_scene.scene, None)


def test_case_manager_opens_one_session_per_settings_and_closes_cases_safely(mri_scene):
    opened: list = []

    def open_session(settings):
        opened.append(settings)
        return ThresholdSessionDouble()

    cases = mrml.CaseManager(InlineExecutor(), open_session)
    nodes = mrml.prepare_case_nodes(mri_scene.scene, mri_scene.volume)
    settings = {"site": "A"}
    cases.prepare(mri_scene.scene, settings, nodes)
    assert len(opened) == 1 and cases.profile == "Structure"
    assert cases.matches(nodes.volume, nodes.segmentation, nodes.segment_id)
    controller = cases.controller
    cases.prepare(mri_scene.scene, dict(settings), nodes)
    assert cases.controller is controller and len(opened) == 1  # same inputs, same settings: nothing new

    kji = _target(mri_scene, 0)
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


# ---------------------------------------------------------------- the real engine session


def test_the_controller_drives_the_real_engine_session(mri_scene, tiny_model_dir, tmp_path):
    """Contract check with InteractiveSession (tiny untrained network): clicks, undo, removal, finish."""
    from InteractiveAdaptLib.app.settings import ModuleSettings, open_session
    from InteractiveAdaptLib.interaction import Click

    session = open_session(
        ModuleSettings(site="Test site"), tmp_path / "store", tiny_model_dir, cuda_available=False
    )
    nodes = mrml.prepare_case_nodes(mri_scene.scene, mri_scene.volume)
    errors: list = []
    worker = Worker()
    try:
        controller = mrml.ClickController(
            session, worker, nodes.volume, nodes.segmentation, nodes.segment_id, nodes.positive, nodes.negative,
            on_error=lambda error, tb: errors.append((error, tb)),
        )  # fmt: skip
        geometry = controller.geometry
        kji = _target(mri_scene, 0)
        axis = mri_scene.spec.view_axis["Axial"]
        view = add_slice_node(mri_scene.scene, "Red", "Axial", voxel_ras(mri_scene.spec, kji))
        assert view is not None
        for d_col, node in [(0, nodes.positive), (3, nodes.negative), (-3, nodes.positive)]:
            voxel = _shift_in_plane(kji, axis, 0, d_col)
            node.AddControlPointWorld(vtk.vtkVector3d(*voxel_ras(mri_scene.spec, voxel)))
        assert worker.drain(60)
        assert not errors, errors
        assert all(isinstance(c, Click) for c in session.clicks) and len(session.clicks) == 3
        key = (axis, kji[axis])
        np.testing.assert_array_equal(
            mrml.read_slice(nodes.segmentation, nodes.segment_id, geometry, *key), session.prediction(*key)
        )
        after_two = session.clicks[:2]
        controller.undo_last()
        assert worker.drain(60) and session.clicks == after_two and not errors
        np.testing.assert_array_equal(
            mrml.read_slice(nodes.segmentation, nodes.segment_id, geometry, *key), session.prediction(*key)
        )
        nodes.positive.RemoveNthControlPoint(0)  # the first click: re-predicted from the negative one alone
        assert worker.drain(60) and not errors
        assert [c.positive for c in session.clicks] == [False]
        finished: list = []
        controller.finish_case(learn=True, on_done=finished.append)
        assert worker.drain(60)
        assert finished[0].ok, finished[0].traceback
        assert finished[0].value.version == 1 and list((tmp_path / "store").rglob("v000001.pt"))
    finally:
        worker.shutdown(timeout=10)


def test_a_profile_from_another_base_model_restarts_from_the_shipped_one_when_asked(
    mri_scene, tiny_model_dir, tmp_path
):
    """The module asks the user, then calls CaseManager.restart_profile_from_base: the case goes on."""
    import torch
    from conftest_engine import TINY_CONFIG

    from InteractiveAdaptLib.app.settings import ModuleSettings, open_session
    from InteractiveAdaptLib.engine.network import build_network
    from InteractiveAdaptLib.errors import IncompatibleBaseModelError
    from InteractiveAdaptLib.model.base_model import save_base_model

    settings, store = ModuleSettings(site="Test site"), tmp_path / "store"
    torch.manual_seed(1)
    older_base = save_base_model(build_network(TINY_CONFIG), tmp_path / "older", {"name": "older"}).directory
    old = open_session(settings, store, older_base, cuda_available=False)
    geometry = mrml.volume_geometry(mri_scene.volume)
    old.start_case(mrml.volume_array(mri_scene.volume), geometry.spacing_kji, "Structure")
    kji = _target(mri_scene, 0)
    axis = mri_scene.spec.view_axis["Axial"]
    old.add_click(_engine_click(kji, axis))
    assert old.finish_case(accepted=None, learn=True).version == 1

    errors: list = []
    worker = Worker()
    try:
        cases = mrml.CaseManager(
            worker, lambda s: open_session(s, store, tiny_model_dir, cuda_available=False)
        )
        nodes = mrml.prepare_case_nodes(mri_scene.scene, mri_scene.volume)
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


def _engine_click(kji, axis):
    from InteractiveAdaptLib.interaction import Click

    row, col = [int(kji[a]) for a in range(3) if a != axis]
    return Click(axis, int(kji[axis]), row, col, True)
