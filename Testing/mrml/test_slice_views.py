"""Slice views (mrml/slice_views.py) on a real MRML scene with real MRI volumes (Colin27) in non-trivial
geometries: which view a point is on, which array axis a view fixes, the pixel a point hits, points
off every view or outside the image, and oblique views or volumes aligned to the volume's planes."""

from __future__ import annotations

import numpy as np
import pytest
import vtk
from conftest import GEOMETRIES, add_slice_node, add_volume, make_core, tilt_slice_node, voxel_ras

from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.errors import InvalidClickError


def test_point_in_a_view_hits_the_intended_pixel(mri_scene, view, views, targets):
    geometry = mrml.volume_geometry(mri_scene.volume)
    for n in range(len(targets)):
        kji = targets[n]
        ras = voxel_ras(mri_scene.spec, kji)
        # three views through other points, the clicked one through the target
        others = {v: add_slice_node(mri_scene.scene, v, v, ras + 7.3) for v in views if v != view}
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


def test_the_view_under_the_mouse_wins_where_planes_cross(mri_scene, targets):
    kji = targets[0]
    ras = voxel_ras(mri_scene.spec, kji)
    red = add_slice_node(mri_scene.scene, "Red", "Axial", ras)
    yellow = add_slice_node(mri_scene.scene, "Yellow", "Sagittal", ras)  # both planes hold the point
    assert mrml.find_slice_node(mri_scene.scene, ras, preferred=yellow) is yellow
    assert mrml.find_slice_node(mri_scene.scene, ras, preferred=red) is red


def test_point_off_every_slice_plane_is_refused(mri_scene, targets):
    ras = voxel_ras(mri_scene.spec, targets[0])
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
    tilt_slice_node(red, "X", 20)
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
