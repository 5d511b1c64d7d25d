"""Slice views and points: which view plane a point was placed in, RAS -> slice pixel, view alignment."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from InteractiveAdaptLib.errors import InvalidClickError
from InteractiveAdaptLib.mrml.volume import VolumeGeometry

# A slice view counts as "in the image's plane" if its normal is within this angle of the plane's.
ANGLE_TOLERANCE_DEG = 1.0
# A point lies in a view's plane if it is closer than this to it (points placed by a click are exact).
PLANE_TOLERANCE_MM = 0.01


def slice_normal(slice_node: Any) -> np.ndarray:
    """Unit world normal of a slice view's plane."""
    matrix = slice_node.GetSliceToRAS()
    normal = np.array([matrix.GetElement(r, 2) for r in range(3)])
    return normal / np.linalg.norm(normal)


def distance_to_slice_plane(slice_node: Any, ras: Any) -> float:
    """Signed distance (mm) of a world point from a slice view's plane."""
    matrix = slice_node.GetSliceToRAS()
    origin = np.array([matrix.GetElement(r, 3) for r in range(3)])
    return float(slice_normal(slice_node) @ (np.asarray(ras, float) - origin))


def slice_axis(slice_node: Any, geometry: VolumeGeometry, tolerance_deg: float = ANGLE_TOLERANCE_DEG) -> int:
    """The array axis a slice view holds fixed; InvalidClickError if the view is oblique to the image."""
    cosines = np.abs(geometry.plane_normals() @ slice_normal(slice_node))
    axis = int(np.argmax(cosines))
    if cosines[axis] < math.cos(math.radians(tolerance_deg)):
        view = slice_node.GetName() or "slice"
        raise InvalidClickError(
            f"The {view} view is tilted relative to the image slices, so the click cannot be placed on one "
            "image slice. Rotate the view back to axial/coronal/sagittal: open the view's menu (pin icon) and "
            "choose 'Rotate to volume plane', then click again."
        )
    return axis


def cursor_slice_node(scene: Any) -> Any:
    """The slice view the mouse is in (from the crosshair node), or None."""
    crosshair = scene.GetFirstNodeByClass("vtkMRMLCrosshairNode")
    if crosshair is None:
        return None
    xyz = [0.0, 0.0, 0.0]
    return crosshair.GetCursorPositionXYZ(xyz)


def slice_nodes(scene: Any) -> list[Any]:
    """All slice view nodes, those shown in the layout first."""
    nodes = [
        scene.GetNthNodeByClass(n, "vtkMRMLSliceNode")
        for n in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode"))
    ]
    return sorted(nodes, key=lambda node: not node.IsMappedInLayout())


def find_slice_node(
    scene: Any, ras: Any, preferred: Any = None, tolerance_mm: float = PLANE_TOLERANCE_MM
) -> Any:
    """The slice view whose plane holds the point (the view under the mouse first)."""
    candidates = ([preferred] if preferred is not None else []) + slice_nodes(scene)
    for node in candidates:
        if abs(distance_to_slice_plane(node, ras)) <= tolerance_mm:
            return node
    raise InvalidClickError(
        "The point is not on a slice view. Place points in the axial, coronal or sagittal slice view, "
        "not in the 3D view."
    )


def ras_to_slice_pixel(ras: Any, geometry: VolumeGeometry, axis: int) -> tuple[int, int, int]:
    """(slice index, row, col) of the voxel nearest a world point, on a slice with `axis` fixed."""
    kji = np.floor(geometry.world_to_kji(ras) + 0.5).astype(int)
    if np.any(kji < 0) or np.any(kji >= np.array(geometry.shape_kji)):
        raise InvalidClickError("The point is outside the image. Click inside the image to segment.")
    index = int(kji[axis])
    row, col = (int(v) for a, v in enumerate(kji) if a != axis)
    return index, row, col


def align_slice_views(slice_node_list: list[Any], volume_node: Any) -> None:
    """Rotate each slice view to the volume's nearest image plane (needed for obliquely acquired MRI)."""
    for node in slice_node_list:
        node.RotateToVolumePlane(volume_node)


def show_volume(scene: Any, volume: Any) -> None:
    """Show the volume in every slice view, turned to its own image planes (once per patient, so a view
    the user reformats later stays as the user left it)."""
    for n in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        scene.GetNthNodeByClass(n, "vtkMRMLSliceCompositeNode").SetBackgroundVolumeID(volume.GetID())
    align_slice_views(slice_nodes(scene), volume)
