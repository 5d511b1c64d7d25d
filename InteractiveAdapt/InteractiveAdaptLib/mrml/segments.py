"""Segments: create what is missing, the learning profile from name or terminology, and slices of a
segment's binary labelmap (one, or a block of neighbours at once) read and written in the volume's
geometry."""

from __future__ import annotations

from typing import Any

import numpy as np
import slicer
import vtk
from vtkmodules.util import numpy_support

from InteractiveAdaptLib.errors import CaseStateError, InvalidClickError
from InteractiveAdaptLib.mrml.volume import VolumeGeometry, array_to_matrix, node_name
from InteractiveAdaptLib.store.names import profile_name

GENERIC_TERMINOLOGY_TYPES = {"", "tissue"}
_BINARY_LABELMAP = "Binary labelmap"
_SegLogic = slicer.vtkSlicerSegmentationsModuleLogic


def create_segmentation(scene: Any, volume_node: Any, name: str = "") -> Any:
    """A new segmentation node on the volume's geometry, shown in the views."""
    node = scene.AddNewNodeByClass(
        "vtkMRMLSegmentationNode", name or f"{node_name(volume_node)} segmentation"
    )
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    return node


def segmentation_of(scene: Any, volume_node: Any) -> Any:
    """The segmentation made on this volume (its reference geometry), or None."""
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    for n in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")):
        node = scene.GetNthNodeByClass(n, "vtkMRMLSegmentationNode")
        if node.GetNodeReference(role) is volume_node:
            return node
    return None


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
            f"'{segmentation_node.GetName()}' and '{node_name(volume_node)}' are under different transforms. "
            "Put both under the same transform (Transforms module) or harden the transforms."
        )
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    reference = segmentation_node.GetNodeReference(role)
    if reference is None:
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    elif reference is not volume_node:  # another patient's (or series') segmentation: never write into it
        raise CaseStateError(
            f"'{segmentation_node.GetName()}' belongs to '{node_name(reference)}', not to "
            f"'{node_name(volume_node)}'. Choose '{node_name(volume_node)}' again to work on its own segmentation."
        )
    if segmentation_node.GetDisplayNode() is None:  # e.g. made by a node selector's "Create new"
        segmentation_node.CreateDefaultDisplayNodes()
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
    """The learning profile of a segment: its terminology type (e.g. 'Brain'), else its name, mapped by
    the engine's one profile rule (store/names.py: the side dropped, a safe name)."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise CaseStateError("The selected segment no longer exists. Select or add a segment.")
    if segment.HasTerminology():
        fields = segment.GetTerminology().split("~")
        meaning = lambda field: field.split("^")[2].strip() if field.count("^") >= 2 else ""  # noqa: E731
        kind = meaning(fields[2]) if len(fields) > 2 else ""
        modifier = meaning(fields[3]) if len(fields) > 3 else ""
        if kind.lower() not in GENERIC_TERMINOLOGY_TYPES:
            return profile_name(f"{kind} {modifier}")
    return profile_name(segment.GetName() or segment_id)


def segment_or_error(segmentation_node: Any, segment_id: str) -> Any:
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
    image.SetImageToWorldMatrix(array_to_matrix(geometry.ijk_to_ras))
    return image


def _read_extent(
    segmentation_node: Any, segment_id: str, geometry: VolumeGeometry, extent: tuple
) -> np.ndarray:
    segment = segment_or_error(segmentation_node, segment_id)
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


def block_extent(geometry: VolumeGeometry, axis: int, first: int, count: int) -> tuple[int, ...]:
    """VTK extent (i0, i1, j0, j1, k0, k1) of `count` slices of an array axis from slice `first` on."""
    if count < 1 or not (0 <= first and first + count <= geometry.shape_kji[axis]):
        raise InvalidClickError(
            f"Slices {first}-{first + count - 1} are outside the image. Click inside the image."
        )
    extent = list(geometry.slice_extent(axis, first))
    extent[2 * (2 - axis) + 1] = first + count - 1
    return tuple(extent)


def read_block(
    segmentation_node: Any, segment_id: str, geometry: VolumeGeometry, axis: int, first: int, count: int
) -> np.ndarray:
    """Slices [first, first + count) of an array axis of a segment, as uint8 0/1 in (K, J, I) order."""
    return _read_extent(segmentation_node, segment_id, geometry, block_extent(geometry, axis, first, count))


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
    segment_or_error(segmentation_node, segment_id)
    if tuple(mask.shape) != geometry.slice_shape(axis):
        raise ValueError(f"mask shape {mask.shape} does not match slice shape {geometry.slice_shape(axis)}")
    if not 0 <= index < geometry.shape_kji[axis]:
        raise InvalidClickError(f"Slice {index} is outside the image. Click inside the image.")
    write_block(segmentation_node, segment_id, geometry, axis, index, np.expand_dims(np.asarray(mask), axis))


def write_block(
    segmentation_node: Any,
    segment_id: str,
    geometry: VolumeGeometry,
    axis: int,
    first: int,
    block: np.ndarray,
) -> None:
    """Make slices [first, first + n) of an array axis of the segment equal to `block` ((K, J, I) order, n
    along `axis`; nonzero = inside) in one write (the views update once, not once per slice); other
    slices and segments keep theirs."""
    segment_or_error(segmentation_node, segment_id)
    block = np.asarray(block)
    expected = list(geometry.shape_kji)
    expected[axis] = block.shape[axis] if block.ndim == 3 else -1
    if block.ndim != 3 or tuple(block.shape) != tuple(expected):
        raise ValueError(
            f"block shape {block.shape} does not match the volume {geometry.shape_kji} along {axis}"
        )
    extent = block_extent(geometry, axis, first, block.shape[axis])
    segmentation = segmentation_node.GetSegmentation()
    if len(segmentation.GetSegmentIDsForLayer(segmentation.GetLayerIndex(segment_id))) > 1:
        segmentation.SeparateSegmentLabelmap(segment_id)  # the write below replaces the whole layer
    label = segmentation.GetSegment(segment_id).GetLabelValue()
    # One write, not one per operation: each write makes Slicer convert every other representation
    # (the 3D surface) again. The image holds what the segment has around the block, and the block.
    current = _own_labelmap(segmentation, segment_id, geometry)
    union = extent
    if current is not None:
        own = current.GetExtent()
        union = tuple(
            min(a, b) if n % 2 == 0 else max(a, b) for n, (a, b) in enumerate(zip(own, extent, strict=True))
        )
    shape = [union[5] - union[4] + 1, union[3] - union[2] + 1, union[1] - union[0] + 1]
    values = np.zeros(shape, np.uint8)
    if current is not None:
        e = current.GetExtent()
        held = numpy_support.vtk_to_numpy(current.GetPointData().GetScalars()).reshape(
            e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1
        )
        values[_region(e, union)] = (held == label).astype(np.uint8)
    values[_region(extent, union)] = block > 0
    image = _oriented_image(geometry, union, values * np.uint8(label))
    if not _SegLogic.SetBinaryLabelmapToSegment(
        image, segmentation_node, segment_id, _SegLogic.MODE_REPLACE, union
    ):
        raise CaseStateError("The segment could not be updated. Check that the segmentation is not locked.")


OTHER_GRID = (
    "This segmentation is stored on another grid than the image (e.g. oversampled in the Segment Editor); "
    "clicks would resample it. Use a segmentation on the image's own geometry (Segment Editor > Specify "
    "geometry > the image, oversampling 1)."
)


def check_segment_grid(segmentation_node: Any, segment_id: str, geometry: VolumeGeometry) -> None:
    """Refuse a segmentation whose grid is not the volume's: writing clicks would resample it.

    Raises:
        CaseStateError: the reference geometry or the segment's labelmap lies on another grid.
    """
    segmentation = segmentation_node.GetSegmentation()
    text = segmentation.GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    )
    if text:
        matrix, extent = vtk.vtkMatrix4x4(), [0] * 6
        slicer.vtkSegmentationConverter.DeserializeImageGeometry(text, matrix, extent)
        if not _same_grid(matrix, geometry):
            raise CaseStateError(OTHER_GRID)
    _own_labelmap(segmentation, segment_id, geometry)


def _same_grid(matrix: Any, geometry: VolumeGeometry) -> bool:
    found = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    return bool(np.allclose(found, geometry.ijk_to_ras, atol=1e-4))


def _own_labelmap(segmentation: Any, segment_id: str, geometry: VolumeGeometry) -> Any:
    """The segment's labelmap when it holds something, else None.

    Raises:
        CaseStateError: it lies on another grid than the volume's.
    """
    image = segmentation.GetSegment(segment_id).GetRepresentation(_BINARY_LABELMAP)
    if image is None or image.GetPointData().GetScalars() is None:
        return None
    e = image.GetExtent()
    if e[1] < e[0] or e[3] < e[2] or e[5] < e[4]:
        return None
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    if not _same_grid(matrix, geometry):
        raise CaseStateError(OTHER_GRID)
    return image


def _region(inner: tuple, outer: tuple) -> tuple[slice, slice, slice]:
    """The (K, J, I) index of extent `inner` within an array holding extent `outer`."""
    return tuple(slice(inner[2 * a] - outer[2 * a], inner[2 * a + 1] - outer[2 * a] + 1) for a in (2, 1, 0))
