"""Slicer scene adapter: volume node -> array and geometry, slice view + markups point -> click,
2D prediction -> one slice of a segment's binary labelmap, and the click controller.

Imports `slicer` (MRML) and VTK only, never qt, ctk or slicer.app, so it runs and is tested in a
plain Python scene (pip package slicer-core) exactly as inside Slicer.

Array conventions are the engine's: a volume is a (K, J, I) array; a click fixes one array axis
(0 = K, 1 = J, 2 = I) at a slice index, and (row, col) index `np.take(array, index, axis)`.

Positive clicks live in one markups point list and negative clicks in another; each list's display
colour (green / red) colours its points, so no per-point colouring is needed.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import slicer
import vtk
from vtkmodules.util import numpy_support
from vtkmodules.util.misc import calldata_type

from .errors import CaseStateError, ImageReadError, InteractiveAdaptError, InvalidClickError

log = logging.getLogger(__name__)

POSITIVE_COLOR = (0.15, 0.8, 0.25)
NEGATIVE_COLOR = (0.9, 0.15, 0.15)
ROLE_ATTRIBUTE = "InteractiveAdapt.Role"
# A slice view counts as "in the image's plane" if its normal is within this angle of the plane's.
ANGLE_TOLERANCE_DEG = 1.0
# A point lies in a view's plane if it is closer than this to it (points placed by a click are exact).
PLANE_TOLERANCE_MM = 0.01
GENERIC_TERMINOLOGY_TYPES = {"", "tissue"}
_BINARY_LABELMAP = "Binary labelmap"
_SegLogic = slicer.vtkSlicerSegmentationsModuleLogic


# ---------------------------------------------------------------- volume


@dataclass(frozen=True)
class VolumeGeometry:
    """Shape and placement of a volume. Matrices are 4x4 IJK -> RAS (columns = steps along I, J, K)."""

    shape_kji: tuple[int, int, int]
    ijk_to_ras: np.ndarray  # the volume's own space (where its segmentation lives)
    ijk_to_world: np.ndarray  # including a linear parent transform (where points and views live)

    @property
    def spacing_kji(self) -> tuple[float, float, float]:
        """Voxel size in mm in array order (K, J, I)."""
        i, j, k = np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)
        return (float(k), float(j), float(i))

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


def _matrix_to_array(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _array_to_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def _node_name(node: Any) -> str:
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
    name = _node_name(volume_node)
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


def _transform_to_world(node: Any) -> np.ndarray:
    transform = node.GetParentTransformNode()
    if transform is None:
        return np.eye(4)
    if not transform.IsTransformToWorldLinear():
        raise CaseStateError(
            f"'{_node_name(node)}' is under a non-linear transform. Harden the transform "
            "(Data module: right-click the transform, Harden transform) and start the case again."
        )
    matrix = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToWorld(matrix)
    return _matrix_to_array(matrix)


def volume_geometry(volume_node: Any) -> VolumeGeometry:
    """Shape (K, J, I) and IJK -> RAS / world matrices of a scalar volume node."""
    check_scalar_volume(volume_node)
    i, j, k = volume_node.GetImageData().GetDimensions()
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = _matrix_to_array(matrix)
    return VolumeGeometry((k, j, i), ijk_to_ras, _transform_to_world(volume_node) @ ijk_to_ras)


def volume_array(volume_node: Any) -> np.ndarray:
    """A copy of the voxels as a (K, J, I) array (safe to hand to another thread)."""
    check_scalar_volume(volume_node)
    image = volume_node.GetImageData()
    i, j, k = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(k, j, i).copy()


# ---------------------------------------------------------------- slice views and points


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


# ---------------------------------------------------------------- segmentation


def create_segmentation(scene: Any, volume_node: Any, name: str = "") -> Any:
    """A new segmentation node on the volume's geometry, shown in the views."""
    node = scene.AddNewNodeByClass(
        "vtkMRMLSegmentationNode", name or f"{_node_name(volume_node)} segmentation"
    )
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    return node


def ensure_segment(segmentation_node: Any, segment_id: str | None, name: str = "Structure") -> str:
    """`segment_id` if the segmentation has it, else the id of a new empty segment called `name`."""
    segmentation = segmentation_node.GetSegmentation()
    if segment_id and segmentation.GetSegment(segment_id) is not None:
        return segment_id
    return segmentation.AddEmptySegment("", name)


def prepare_segmentation(segmentation_node: Any, volume_node: Any) -> None:
    """Check that clicks on the volume can be written into the segmentation; fix what is safe to fix."""
    if segmentation_node is None:
        raise CaseStateError("Select or create a segmentation first (Inputs > Segmentation).")
    if segmentation_node.GetParentTransformNode() is not volume_node.GetParentTransformNode():
        raise CaseStateError(
            f"'{segmentation_node.GetName()}' and '{_node_name(volume_node)}' are under different transforms. "
            "Put both under the same transform (Transforms module) or harden the transforms."
        )
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    if segmentation_node.GetNodeReference(role) is None:
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSourceRepresentationName() != _BINARY_LABELMAP:
        if segmentation.GetNumberOfSegments() == 0:
            segmentation.SetSourceRepresentationName(_BINARY_LABELMAP)
        else:
            raise CaseStateError(
                f"'{segmentation_node.GetName()}' is stored as a surface. Make 'Binary labelmap' its source "
                "representation (Segmentations module > Representations) and start the case again."
            )


def segment_profile(segmentation_node: Any, segment_id: str) -> str:
    """The learning profile of a segment: its terminology type (e.g. 'Brain'), else its name."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise CaseStateError("The selected segment no longer exists. Select or add a segment.")
    if segment.HasTerminology():
        fields = segment.GetTerminology().split("~")
        meaning = lambda field: field.split("^")[2].strip() if field.count("^") >= 2 else ""  # noqa: E731
        kind = meaning(fields[2]) if len(fields) > 2 else ""
        modifier = meaning(fields[3]) if len(fields) > 3 else ""
        if kind.lower() not in GENERIC_TERMINOLOGY_TYPES:
            return f"{kind} {modifier}".strip() if modifier else kind
    return segment.GetName().strip() or segment_id


def _segment_or_error(segmentation_node: Any, segment_id: str) -> Any:
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise CaseStateError(
            "The segment being edited was deleted. Select or add a segment and start the case again."
        )
    return segment


def _oriented_image(geometry: VolumeGeometry, extent: tuple[int, ...], values: np.ndarray | None) -> Any:
    image = slicer.vtkOrientedImageData()
    image.SetExtent(*extent)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    scalars = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    scalars[:] = 0 if values is None else values.ravel()
    image.SetImageToWorldMatrix(_array_to_matrix(geometry.ijk_to_ras))
    return image


def _read_extent(
    segmentation_node: Any, segment_id: str, geometry: VolumeGeometry, extent: tuple
) -> np.ndarray:
    segment = _segment_or_error(segmentation_node, segment_id)
    shape = [extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1]
    labelmap = slicer.vtkOrientedImageData()
    ok = _SegLogic.GetSegmentBinaryLabelmapRepresentation(segmentation_node, segment_id, labelmap, False)
    e = labelmap.GetExtent()
    if not ok or e[1] < e[0] or e[3] < e[2] or e[5] < e[4] or labelmap.GetPointData().GetScalars() is None:
        return np.zeros(shape, np.uint8)  # empty segment
    reference = _oriented_image(geometry, extent, None)
    resampled = slicer.vtkOrientedImageData()
    if not slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference, resampled, False, False
    ):
        raise CaseStateError(
            "The segment could not be read. Check that the segmentation is a binary labelmap."
        )
    if tuple(resampled.GetExtent()) != tuple(extent):
        raise CaseStateError("The segment could not be read in the image's geometry.")
    values = numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars()).reshape(shape)
    # A layer may be shared by several segments, each with its own label value.
    return (values == segment.GetLabelValue()).astype(np.uint8)


def read_slice(
    segmentation_node: Any, segment_id: str, geometry: VolumeGeometry, axis: int, index: int
) -> np.ndarray:
    """One slice of a segment, as uint8 0/1 of shape `geometry.slice_shape(axis)`, in the volume's grid."""
    values = _read_extent(segmentation_node, segment_id, geometry, geometry.slice_extent(axis, index))
    return np.take(values, 0, axis=axis)


def read_segment(segmentation_node: Any, segment_id: str, geometry: VolumeGeometry) -> np.ndarray:
    """The whole segment as a uint8 0/1 (K, J, I) array in the volume's grid."""
    k, j, i = geometry.shape_kji
    return _read_extent(segmentation_node, segment_id, geometry, (0, i - 1, 0, j - 1, 0, k - 1))


def write_slice(
    segmentation_node: Any, segment_id: str, geometry: VolumeGeometry, axis: int, index: int, mask: np.ndarray
) -> None:
    """Make one slice of the segment equal to `mask` (nonzero = inside); other slices and segments keep theirs."""
    _segment_or_error(segmentation_node, segment_id)
    if tuple(mask.shape) != geometry.slice_shape(axis):
        raise ValueError(f"mask shape {mask.shape} does not match slice shape {geometry.slice_shape(axis)}")
    if not 0 <= index < geometry.shape_kji[axis]:
        raise InvalidClickError(f"Slice {index} is outside the image. Click inside the image.")
    segmentation = segmentation_node.GetSegmentation()
    if len(segmentation.GetSegmentIDsForLayer(segmentation.GetLayerIndex(segment_id))) > 1:
        # MIN/MAX below compare raw voxel values, so the segment needs a layer of its own.
        segmentation.SeparateSegmentLabelmap(segment_id)
    label = segmentation.GetSegment(segment_id).GetLabelValue()
    extent = geometry.slice_extent(axis, index)
    values = np.expand_dims((np.asarray(mask) > 0).astype(np.uint8) * np.uint8(label), axis)
    image = _oriented_image(geometry, extent, values)
    # MIN clears what the mask leaves out, MAX adds what it holds; both act only inside `extent`.
    for mode in (_SegLogic.MODE_MERGE_MIN, _SegLogic.MODE_MERGE_MAX):
        if not _SegLogic.SetBinaryLabelmapToSegment(image, segmentation_node, segment_id, mode, extent):
            raise CaseStateError(
                "The segment could not be updated. Check that the segmentation is not locked."
            )


@dataclass
class CaseNodes:
    """The scene nodes a case works on."""

    volume: Any
    segmentation: Any
    segment_id: str
    positive: Any
    negative: Any


def prepare_case_nodes(
    scene: Any,
    volume_node: Any,
    segmentation_node: Any = None,
    segment_id: str | None = None,
    positive_node: Any = None,
    negative_node: Any = None,
) -> CaseNodes:
    """Check the volume, create what is missing (segmentation, segment, click lists), align the views."""
    check_scalar_volume(volume_node)
    segmentation_node = segmentation_node or create_segmentation(scene, volume_node)
    prepare_segmentation(segmentation_node, volume_node)
    segment_id = ensure_segment(segmentation_node, segment_id)
    if positive_node is None or negative_node is None:
        positive_node, negative_node = create_click_nodes(scene)
    align_slice_views(slice_nodes(scene), volume_node)
    return CaseNodes(volume_node, segmentation_node, segment_id, positive_node, negative_node)


# ---------------------------------------------------------------- click nodes and place mode


def style_click_node(node: Any, positive: bool) -> None:
    """Green (positive) or red (negative) points without labels, locked against dragging."""
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    color = POSITIVE_COLOR if positive else NEGATIVE_COLOR
    display.SetSelectedColor(*color)
    display.SetColor(*color)
    display.SetActiveColor(*color)
    display.SetPointLabelsVisibility(False)
    display.SetPropertiesLabelVisibility(False)
    node.SetAttribute(ROLE_ATTRIBUTE, "positive" if positive else "negative")


def create_click_nodes(scene: Any) -> tuple[Any, Any]:
    """Two point lists: positive clicks (green) and negative clicks (red)."""
    nodes = []
    for positive in (True, False):
        node = scene.AddNewNodeByClass(
            "vtkMRMLMarkupsFiducialNode", "Positive clicks" if positive else "Negative clicks"
        )
        style_click_node(node, positive)
        nodes.append(node)
    return nodes[0], nodes[1]


def start_placing(scene: Any, markups_node: Any, persistent: bool = True) -> None:
    """Put the views in place mode so that each left click adds a point to `markups_node`."""
    selection = scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")
    interaction = scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    if selection is None or interaction is None:
        raise CaseStateError("The views are not ready for placing points. Restart Slicer and try again.")
    selection.SetReferenceActivePlaceNodeClassName(markups_node.GetClassName())
    selection.SetActivePlaceNodeID(markups_node.GetID())
    interaction.SetPlaceModePersistence(1 if persistent else 0)
    interaction.SetCurrentInteractionMode(slicer.vtkMRMLInteractionNode.Place)


def stop_placing(scene: Any) -> None:
    """Back to the normal view interaction (no more points placed on click)."""
    interaction = scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    if interaction is not None:
        interaction.SetCurrentInteractionMode(slicer.vtkMRMLInteractionNode.ViewTransform)


def placing_node(scene: Any) -> Any:
    """The markups node that a click in a view would add a point to now, or None."""
    selection = scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")
    interaction = scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    if selection is None or interaction is None:
        return None
    if interaction.GetCurrentInteractionMode() != slicer.vtkMRMLInteractionNode.Place:
        return None
    return scene.GetNodeByID(selection.GetActivePlaceNodeID() or "")


# ---------------------------------------------------------------- controller


def default_click_factory() -> Callable[..., Any]:
    """The engine's Click class (imported on first use)."""
    from .clicks import Click  # the engine's; imported late so the adapter loads without torch

    return Click


@dataclass
class ClickRecord:
    """One click of the current case, as the scene knows it."""

    click: Any
    node: Any
    point_id: str
    snapshot: np.ndarray | None = None  # the slice just before this click's prediction was written
    snapshot_time: int = 0  # the controller's write clock when the snapshot was taken
    applied: bool = False

    @property
    def slice_key(self) -> tuple[int, int]:
        """(axis, index) of the slice the click is on."""
        return (int(self.click.axis), int(self.click.index))


def _session_index(clicks: list[Any], click: Any) -> int | None:
    for n in range(len(clicks) - 1, -1, -1):
        if clicks[n] is click:
            return n
    for n in range(len(clicks) - 1, -1, -1):
        if clicks[n] == click:
            return n
    return None


ErrorCallback = Callable[[BaseException, str], None]
StatusCallback = Callable[[str], None]


class ClickController(slicer.util.VTKObservationMixin):
    """Turns points placed in slice views into session clicks and session results into segment slices.

    Session calls run through `executor` (the worker thread, or InlineExecutor); their results are
    applied to the scene in the callbacks, on the thread that polls the executor (Slicer's main thread).
    Deleting the last point undoes that click (its slice goes back exactly to what it was before the
    click); deleting an earlier point re-predicts that slice without it. Slices of different axes cross
    along a line: a restore leaves that line as the other slice's newer prediction wrote it.
    """

    def __init__(
        self,
        session: Any,
        executor: Any,
        volume_node: Any,
        segmentation_node: Any,
        segment_id: str,
        positive_node: Any,
        negative_node: Any,
        profile: str = "",
        click_factory: Callable[..., Any] | None = None,
        on_error: ErrorCallback | None = None,
        on_status: StatusCallback | None = None,
        resolve_slice_node: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__()
        self.session = session
        self.executor = executor
        self.volume_node = volume_node
        self.segmentation_node = segmentation_node
        self.segment_id = segment_id
        self.positive_node = positive_node
        self.negative_node = negative_node
        self.geometry = volume_geometry(volume_node)
        prepare_segmentation(segmentation_node, volume_node)
        _segment_or_error(segmentation_node, segment_id)
        self.profile = profile or segment_profile(segmentation_node, segment_id)
        self._click_factory = click_factory
        self._on_error = on_error or (lambda error, tb: log.error("%s", error))
        self._on_status = on_status or (lambda text: log.info("%s", text))
        scene = volume_node.GetScene()
        self._resolve = resolve_slice_node or (
            lambda ras: find_slice_node(scene, ras, cursor_slice_node(scene))
        )
        self.records: list[ClickRecord] = []
        self._base: dict[tuple[int, int], tuple[np.ndarray, int]] = {}  # before the first click there
        self._clock = 0  # counts slice writes
        self._last_write: dict[tuple[int, int], tuple[int, np.ndarray]] = {}  # (clock, content)
        self._started = False
        self._muted = 0
        for node, positive in ((positive_node, True), (negative_node, False)):
            style_click_node(node, positive)
            self.addObserver(
                node, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._on_point_defined
            )
            self.addObserver(node, slicer.vtkMRMLMarkupsNode.PointRemovedEvent, self._on_point_removed)

    # ------------------------------------------------------------ case lifecycle (main thread)

    def start_case(self) -> None:
        """Hand the volume to the session; clicks placed before it finishes queue behind it."""
        volume = volume_array(self.volume_node)
        self._started = True
        self.executor.submit(
            self.session.start_case,
            volume,
            self.geometry.spacing_kji,
            self.profile,
            description="Preparing the image",
            on_done=self._on_started,
        )

    def undo_last(self) -> bool:
        """Delete the newest point (which undoes its click); False if there is none."""
        if not self.records:
            return False
        record = self.records[-1]
        record.node.RemoveNthControlPoint(record.node.GetNthControlPointIndexByID(record.point_id))
        return True

    def reset_case(self) -> None:
        """Forget every click of the case and put each touched slice back as it was before the case."""
        self.executor.cancel()
        # newest first, so that where slices cross, the oldest (pre-case) content is written last
        for key, (content, _) in sorted(self._base.items(), key=lambda item: -item[1][1]):
            self._write(*key, content)
        self._clear_points()
        self.executor.submit(self._reset_session, description="Resetting the case", on_done=self._on_simple)

    def _reset_session(self) -> None:
        """Worker thread: reset the session's case, unless its start was cancelled."""
        if getattr(self.session, "case_open", True):
            self.session.reset_case()

    def accepted_masks(self) -> dict[tuple[int, int], np.ndarray]:
        """Each clicked slice as it is in the segment now (Segment Editor corrections included)."""
        keys = sorted({record.slice_key for record in self.records})
        return {key: read_slice(self.segmentation_node, self.segment_id, self.geometry, *key) for key in keys}

    def finish_case(self, learn: bool = True, on_done: Callable[[Any], None] | None = None) -> None:
        """Accept the case: post-interaction learning on the clicked slices as they are in the segment now."""
        try:
            accepted = self.accepted_masks()
        except CaseStateError:
            if learn:
                raise
            accepted = {}  # the segment is gone (e.g. the scene is closing): just end the case
        self._clear_points()
        self._started = False
        self.executor.submit(
            self.session.finish_case,
            accepted or None,
            learn=learn,
            description="Learning from the finished case" if learn else "Finishing the case",
            on_done=on_done or self._on_simple,
        )

    def cleanup(self) -> None:
        """Stop observing the point lists."""
        self.removeObservers()

    @property
    def started(self) -> bool:
        """True from start_case (or the first click) until finish_case."""
        return self._started

    @property
    def edited_slices(self) -> list[tuple[int, int]]:
        """(axis, index) of the slices that carry clicks now."""
        return sorted({record.slice_key for record in self.records})

    # ------------------------------------------------------------ markups events

    @calldata_type(vtk.VTK_INT)
    def _on_point_defined(self, caller: Any, event: Any, index: int) -> None:
        if self._muted:
            return
        positive = caller is self.positive_node
        point_id = caller.GetNthControlPointID(index)
        ras = caller.GetNthControlPointPositionWorld(index)
        try:
            axis = slice_axis(self._resolve(ras), self.geometry)
            slice_index, row, col = ras_to_slice_pixel(ras, self.geometry, axis)
            click = (self._click_factory or default_click_factory())(
                axis=axis, index=slice_index, row=row, col=col, positive=positive
            )
        except InteractiveAdaptError as error:
            self._remove_point(caller, point_id)
            self._on_error(error, "")
            return
        caller.SetNthControlPointLocked(index, True)
        record = ClickRecord(click, caller, point_id)
        self.records.append(record)
        if not self._started:
            self.start_case()
        kind = "positive" if positive else "negative"
        self.executor.submit(
            self.session.add_click,
            click,
            description=f"Segmenting ({kind} click)",
            on_done=functools.partial(self._on_prediction, record),
        )
        # Show first, learn after: the MI step runs before the next click is processed.
        self.executor.submit(
            self.session.learn_pending, description="Learning from the click", on_done=self._on_simple
        )

    @calldata_type(vtk.VTK_INT)
    def _on_point_removed(self, caller: Any, event: Any, index: int | None = None) -> None:
        if self._muted:
            return
        present = {caller.GetNthControlPointID(n) for n in range(caller.GetNumberOfControlPoints())}
        for record in [r for r in reversed(self.records) if r.node is caller and r.point_id not in present]:
            self._drop(record)

    # ------------------------------------------------------------ results (main thread)

    def _on_started(self, result: Any) -> None:
        if not result.ok:
            self._started = False  # the next click starts the case again
        if result.error is not None:
            self._on_error(result.error, result.traceback)

    def _on_prediction(self, record: ClickRecord, result: Any) -> None:
        if record not in self.records:
            return  # the point was deleted before its prediction arrived
        if not result.ok:
            self.records.remove(record)
            self._remove_point(record.node, record.point_id)
            if result.error is not None:
                self._on_error(result.error, result.traceback)
            return
        prediction = result.value
        key = (int(prediction.axis), int(prediction.index))
        try:
            current = read_slice(self.segmentation_node, self.segment_id, self.geometry, *key)
            self._base.setdefault(key, (current, self._clock))
            record.snapshot, record.snapshot_time = current, self._clock
            self._write(*key, prediction.mask)
        except InteractiveAdaptError as error:
            self._on_error(error, "")
            return
        record.applied = True
        self._on_status(f"Segmented in {prediction.latency_ms:.0f} ms ({len(self.records)} clicks).")

    def _on_simple(self, result: Any) -> None:
        if result.error is not None:
            self._on_error(result.error, result.traceback)

    def _drop(self, record: ClickRecord) -> None:
        was_last = record is self.records[-1]
        later_same_slice = [
            r for r in self.records[self.records.index(record) + 1 :] if r.slice_key == record.slice_key
        ]
        self.records.remove(record)
        self.executor.submit(
            self._drop_from_session,
            record.click,
            description="Undoing the click" if was_last else "Removing the click",
            on_done=functools.partial(self._on_dropped, record, later_same_slice),
        )

    def _drop_from_session(self, click: Any) -> tuple[str, Any]:
        """Worker thread: undo the click if it is the session's last, else remove it."""
        clicks = list(self.session.clicks)
        n = _session_index(clicks, click)
        if n is None:
            return ("absent", None)
        if n == len(clicks) - 1:
            return ("undo", self.session.undo())
        return ("remove", self.session.remove_click(n))

    def _on_dropped(self, record: ClickRecord, later_same_slice: list[ClickRecord], result: Any) -> None:
        if result.error is not None:
            self._on_error(result.error, result.traceback)
            return
        kind, prediction = result.value if result.ok else ("absent", None)
        key = record.slice_key
        try:
            if kind == "undo" and record.applied:
                if record.snapshot is not None:
                    self._restore(key, record.snapshot, record.snapshot_time)
                elif prediction is not None:
                    self._write(*key, prediction.mask)
                elif key in self._base:
                    self._restore(key, *self._base[key])
            elif kind == "remove":
                if prediction is not None:
                    self._write(int(prediction.axis), int(prediction.index), prediction.mask)
                elif key in self._base:
                    self._restore(key, *self._base[key])
                for later in later_same_slice:
                    later.snapshot = None  # what it covered was predicted with the removed click
        except InteractiveAdaptError as error:
            self._on_error(error, "")
        if all(r.slice_key != key for r in self.records):
            self._base.pop(key, None)
        self._on_status(f"{'Undone' if kind == 'undo' else 'Removed'} a click ({len(self.records)} left).")

    # ------------------------------------------------------------ helpers

    def _write(self, axis: int, index: int, mask: np.ndarray) -> None:
        write_slice(self.segmentation_node, self.segment_id, self.geometry, axis, index, mask)
        self._clock += 1
        self._last_write[(axis, index)] = (self._clock, (np.asarray(mask) > 0).astype(np.uint8))

    def _restore(self, key: tuple[int, int], content: np.ndarray, taken_at: int) -> None:
        """Write saved slice content back, except on the lines where a crossing slice that still has
        clicks was written after the save: there its newer content stays."""
        axis, index = key
        row_axis, _ = (a for a in range(3) if a != axis)
        content = np.array(content, copy=True)
        for other_axis, other_index in {r.slice_key for r in self.records}:
            written_at, other = self._last_write.get((other_axis, other_index), (0, None))
            if other_axis == axis or written_at <= taken_at:
                continue
            other_rows, _ = (a for a in range(3) if a != other_axis)
            line = other[index, :] if other_rows == axis else other[:, index]
            if other_axis == row_axis:
                content[other_index, :] = line
            else:
                content[:, other_index] = line
        self._write(*key, content)

    def _remove_point(self, node: Any, point_id: str) -> None:
        index = node.GetNthControlPointIndexByID(point_id)
        if index >= 0:
            self._muted += 1
            try:
                node.RemoveNthControlPoint(index)
            finally:
                self._muted -= 1

    def _clear_points(self) -> None:
        self._muted += 1
        try:
            for node in (self.positive_node, self.negative_node):
                node.RemoveAllControlPoints()
        finally:
            self._muted -= 1
        self.records.clear()
        self._base.clear()
        self._last_write.clear()


class CaseManager:
    """The module's current case: one engine session (reopened when the settings change) and one controller."""

    def __init__(self, executor: Any, open_session: Callable[[Any], Any]) -> None:
        self.executor = executor
        self._open_session = open_session
        self.session: Any = None
        self.session_settings: Any = None
        self.controller: ClickController | None = None
        self.profile: str | None = None

    def matches(self, volume_node: Any, segmentation_node: Any, segment_id: str | None) -> bool:
        """True if the open case works on these nodes."""
        c = self.controller
        return c is not None and (c.volume_node, c.segmentation_node, c.segment_id) == (
            volume_node,
            segmentation_node,
            segment_id,
        )

    def prepare(
        self,
        scene: Any,
        settings: Any,
        nodes: CaseNodes,
        on_error: ErrorCallback | None = None,
        on_status: StatusCallback | None = None,
        **controller_options: Any,
    ) -> None:
        """Start a case on `nodes`, (re)opening the session if the settings changed. A case with clicks on
        the same nodes goes on as it is (new settings apply from the next case)."""
        if self.matches(nodes.volume, nodes.segmentation, nodes.segment_id) and (
            self.controller.records or self.session_settings == settings
        ):
            return
        self.close(learn=False)
        self.profile = segment_profile(nodes.segmentation, nodes.segment_id)
        if self.session is None or self.session_settings != settings:
            self.session = self._open_session(settings)
            self.session_settings = copy.copy(settings)
        self.controller = ClickController(
            self.session,
            self.executor,
            nodes.volume,
            nodes.segmentation,
            nodes.segment_id,
            nodes.positive,
            nodes.negative,
            profile=self.profile,
            on_error=on_error,
            on_status=on_status,
            **controller_options,
        )
        self.controller.start_case()

    def restart_profile_from_base(self) -> None:
        """After the user agreed: the case's profile, learned from another base model, starts again from
        the shipped one (its old versions stay listed and exportable), then the case starts again."""
        if self.controller is None:
            raise CaseStateError("There is no case to start again: choose the volume and segment first.")
        self.executor.submit(
            self.session.restart_profile_from_base,
            self.profile,
            description="Starting the profile again from the shipped model",
        )
        self.controller.start_case()

    def close(self, learn: bool = False) -> None:
        """End the current case keeping the segment as it is (learning from it only if asked)."""
        if self.controller is not None:
            if self.controller.started:  # also closes the session's case when it has no clicks yet
                self.controller.finish_case(learn=learn)
            self.controller.cleanup()
            self.controller = None
