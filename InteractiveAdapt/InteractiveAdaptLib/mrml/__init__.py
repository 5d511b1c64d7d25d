"""Slicer scene adapter, the layer between the module's GUI and the engine: volume node -> array and
geometry, slice view + markups point -> click, 2D prediction -> one slice of a segment's binary
labelmap (a slice, or a block of slices at once), and the click controller that drives the engine
case (each click fills the structure in 3D through the engine's Case, engine/case.py).

Imports `slicer` (MRML) and VTK only, never qt, ctk or slicer.app, so it runs and is tested in a
plain Python scene (pip package slicer-core) exactly as inside Slicer. The engine never imports it.

Array conventions are the engine's: a volume is a (K, J, I) array; a click fixes one array axis
(0 = K, 1 = J, 2 = I) at a slice index, and (row, col) index `np.take(array, index, axis)`.

Positive clicks live in one markups point list and negative clicks in another; each list's display
colour (green / red) colours its points, so no per-point colouring is needed.
"""

from InteractiveAdaptLib.interaction import ErrorCallback, StatusCallback
from InteractiveAdaptLib.mrml.case_manager import CaseManager, CaseNodes
from InteractiveAdaptLib.mrml.click_controller import ClickController, ClickRecord
from InteractiveAdaptLib.mrml.markups import (
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    ROLE_ATTRIBUTE,
    create_click_nodes,
    style_click_node,
)
from InteractiveAdaptLib.mrml.panel_state import COMMON_STRUCTURES
from InteractiveAdaptLib.mrml.point_placer import CLICK_TOLERANCE_PX, PointPlacer
from InteractiveAdaptLib.mrml.segments import (
    create_segmentation,
    ensure_segment,
    prepare_segmentation,
    read_block,
    read_segment,
    read_slice,
    segment_profile,
    segmentation_of,
    write_block,
    write_slice,
)
from InteractiveAdaptLib.mrml.slice_views import (
    ANGLE_TOLERANCE_DEG,
    PLANE_TOLERANCE_MM,
    align_slice_views,
    cursor_slice_node,
    distance_to_slice_plane,
    find_slice_node,
    ras_to_slice_pixel,
    show_volume,
    slice_axis,
    slice_nodes,
    slice_normal,
)
from InteractiveAdaptLib.mrml.volume import (
    VolumeGeometry,
    check_scalar_volume,
    first_mri_volume,
    volume_array,
    volume_geometry,
)
from InteractiveAdaptLib.mrml.workflow import Workflow

__all__ = [
    "ANGLE_TOLERANCE_DEG",
    "CLICK_TOLERANCE_PX",
    "COMMON_STRUCTURES",
    "NEGATIVE_COLOR",
    "PLANE_TOLERANCE_MM",
    "POSITIVE_COLOR",
    "ROLE_ATTRIBUTE",
    "CaseManager",
    "CaseNodes",
    "ClickController",
    "ClickRecord",
    "ErrorCallback",
    "PointPlacer",
    "StatusCallback",
    "VolumeGeometry",
    "Workflow",
    "align_slice_views",
    "check_scalar_volume",
    "create_click_nodes",
    "create_segmentation",
    "cursor_slice_node",
    "distance_to_slice_plane",
    "ensure_segment",
    "find_slice_node",
    "first_mri_volume",
    "prepare_segmentation",
    "ras_to_slice_pixel",
    "read_block",
    "read_segment",
    "read_slice",
    "segment_profile",
    "segmentation_of",
    "show_volume",
    "slice_axis",
    "slice_nodes",
    "slice_normal",
    "style_click_node",
    "volume_array",
    "volume_geometry",
    "write_block",
    "write_slice",
]
