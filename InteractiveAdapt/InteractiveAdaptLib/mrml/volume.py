"""Volume nodes: checks (scalar, 3D, not a sequence frame), IJK<->RAS geometry and the (K, J, I) array."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import slicer.util
import vtk
from vtkmodules.util import numpy_support

from InteractiveAdaptLib.errors import CaseStateError, ImageReadError, InteractiveAdaptError
from InteractiveAdaptLib.geometry import spacing_kji


@dataclass(frozen=True)
class VolumeGeometry:
    """Shape and placement of a volume. Matrices are 4x4 IJK -> RAS (columns = steps along I, J, K)."""

    shape_kji: tuple[int, int, int]
    ijk_to_ras: np.ndarray  # the volume's own space (where its segmentation lives)
    ijk_to_world: np.ndarray  # including a linear parent transform (where points and views live)

    @property
    def spacing_kji(self) -> tuple[float, float, float]:
        """Voxel size in mm in array order (K, J, I)."""
        return spacing_kji(self.ijk_to_ras)

    def slice_shape(self, axis: int) -> tuple[int, int]:
        """Shape of `np.take(array, index, axis)`."""
        rows, cols = (n for a, n in enumerate(self.shape_kji) if a != axis)
        return (rows, cols)

    def slice_extent(self, axis: int, index: int) -> tuple[int, int, int, int, int, int]:
        """VTK extent (i0, i1, j0, j1, k0, k1) of one slice."""
        k, j, i = self.shape_kji
        extent = [0, i - 1, 0, j - 1, 0, k - 1]
        vtk_axis = 2 - axis
        extent[2 * vtk_axis] = extent[2 * vtk_axis + 1] = index
        return tuple(extent)  # type: ignore[return-value]

    def world_to_kji(self, ras: Any) -> np.ndarray:
        """Continuous (k, j, i) array coordinates of a world RAS point."""
        ijk = np.linalg.solve(self.ijk_to_world, np.append(np.asarray(ras, float), 1.0))[:3]
        return ijk[::-1]

    def kji_to_world(self, kji: Any) -> np.ndarray:
        """World RAS position of array coordinates (k, j, i)."""
        k, j, i = (float(v) for v in kji)
        return (self.ijk_to_world @ np.array([i, j, k, 1.0]))[:3]

    def plane_normals(self) -> np.ndarray:
        """Unit world normal of the slice plane of each array axis (row 0: K fixed, 1: J, 2: I)."""
        d_i, d_j, d_k = self.ijk_to_world[:3, :3].T
        normals = np.array([np.cross(d_i, d_j), np.cross(d_i, d_k), np.cross(d_j, d_k)])
        return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def matrix_to_array(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def array_to_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def add_volume_node(scene: Any, array: np.ndarray, ijk_to_ras: np.ndarray, name: str) -> Any:
    """A scalar volume node holding a (K, J, I) array at `ijk_to_ras`, shown as Slicer shows a loaded one."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetIJKToRASMatrix(array_to_matrix(ijk_to_ras))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array))
    node.CreateDefaultDisplayNodes()
    return node


def node_name(node: Any) -> str:
    return node.GetName() if node is not None and node.GetName() else "the selected volume"


def _sequence_browser_of(volume_node: Any) -> Any:
    scene = volume_node.GetScene()
    if scene is None:
        return None
    for n in range(scene.GetNumberOfNodesByClass("vtkMRMLSequenceBrowserNode")):
        browser = scene.GetNthNodeByClass(n, "vtkMRMLSequenceBrowserNode")
        if browser.IsProxyNodeID(volume_node.GetID()):
            return browser
    return None


def check_scalar_volume(volume_node: Any) -> None:
    """Raise a clinician-readable error unless the node is one 3D grey-scale volume with voxels."""
    if volume_node is None:
        raise CaseStateError("Select the MRI volume to segment first (Inputs > Volume).")
    name = node_name(volume_node)
    if volume_node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise ImageReadError(f"'{name}' is a label map, not an MRI image. Select the MRI volume itself.")
    image = volume_node.GetImageData()
    if image is None or min(image.GetDimensions()) < 1 or image.GetPointData().GetScalars() is None:
        raise ImageReadError(f"'{name}' has no image data. Load the image again.")
    components = image.GetNumberOfScalarComponents()
    if volume_node.IsA("vtkMRMLDiffusionWeightedVolumeNode") or (
        components > 1 and not (components in (3, 4) and image.GetScalarType() == vtk.VTK_UNSIGNED_CHAR)
    ):
        raise ImageReadError(
            f"'{name}' holds {components} values per voxel (a 4D, diffusion or multi-channel series). "
            "InteractiveAdapt segments one 3D grey-scale MRI volume: load a single 3D series."
        )
    if volume_node.IsA("vtkMRMLVectorVolumeNode") or components != 1:
        raise ImageReadError(
            f"'{name}' is a colour (RGB) image. InteractiveAdapt segments grey-scale MRI volumes: "
            "select the original MRI series."
        )
    if _sequence_browser_of(volume_node) is not None:
        raise ImageReadError(
            f"'{name}' is one time point of a 4D sequence and changes when the sequence is played. "
            "Make a static copy first (Data module: right-click the volume, Clone) and segment the copy."
        )


def first_mri_volume(scene: Any) -> Any:
    """The first volume of the scene that can be segmented (no label map, colour or 4D frame), or None:
    what the volume selector, which lists only such volumes, may be preset to."""
    for n in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
        node = scene.GetNthNodeByClass(n, "vtkMRMLScalarVolumeNode")
        try:
            check_scalar_volume(node)
        except InteractiveAdaptError:
            continue
        return node
    return None


def _transform_to_world(node: Any) -> np.ndarray:
    transform = node.GetParentTransformNode()
    if transform is None:
        return np.eye(4)
    if not transform.IsTransformToWorldLinear():
        raise CaseStateError(
            f"'{node_name(node)}' is under a non-linear transform. Harden the transform "
            "(Data module: right-click the transform, Harden transform) and start the case again."
        )
    matrix = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToWorld(matrix)
    return matrix_to_array(matrix)


def volume_geometry(volume_node: Any) -> VolumeGeometry:
    """Shape (K, J, I) and IJK -> RAS / world matrices of a scalar volume node."""
    check_scalar_volume(volume_node)
    i, j, k = volume_node.GetImageData().GetDimensions()
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = matrix_to_array(matrix)
    return VolumeGeometry((k, j, i), ijk_to_ras, _transform_to_world(volume_node) @ ijk_to_ras)


def volume_array(volume_node: Any) -> np.ndarray:
    """A copy of the voxels as a (K, J, I) array (safe to hand to another thread)."""
    check_scalar_volume(volume_node)
    image = volume_node.GetImageData()
    i, j, k = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(k, j, i).copy()
