"""Stacking 2D DICOM images (files of a series, frames of an enhanced file) into one 3D geometry:
parallel planes, ordered positions, even spacing, or a clear error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from InteractiveAdaptLib.errors import ImageReadError

_SAME_POSITION_MM = 0.01  # two slices closer than this along the normal are at the same position
_ORIENTATION_TOLERANCE = 1e-3  # direction cosines that differ by more are different planes (~0.06 degree)


def check_parallel(orientations: np.ndarray, what: str, unit: str) -> np.ndarray:
    """The unit slice normal shared by all orientations (rows of 6 direction cosines)."""
    if np.max(np.abs(orientations - orientations[0])) > _ORIENTATION_TOLERANCE:
        raise ImageReadError(
            f"{what} has {unit} in different orientations (e.g. a localizer with axial, sagittal and "
            "coronal planes), so they are not one 3D volume. Choose a series of parallel slices."
        )
    normal = np.cross(orientations[0, :3], orientations[0, 3:])
    return normal / np.linalg.norm(normal)


def stack_order(
    positions: np.ndarray, normal: np.ndarray, labels: Sequence[str], what: str, unit: str
) -> tuple[np.ndarray, float]:
    """Slice order along the normal and the slice spacing; raise on duplicated, missing or sheared slices."""
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    d = distance[order]
    steps = np.diff(d)
    if steps.size == 0:
        return order, 1.0
    same = np.flatnonzero(steps < _SAME_POSITION_MM)
    if same.size:
        a, b = labels[order[same[0]]], labels[order[same[0] + 1]]
        raise ImageReadError(
            f"{what} has a duplicated slice: {unit}s {a} and {b} are at the same position "
            f"({d[same[0]]:.2f} mm along the slice normal; {same.size} such pair(s)). The folder holds a "
            "copy of a file, or several images per position (a time series, several echoes or "
            "b-values: 4D data). Remove the duplicates, or export one 3D volume."
        )
    spacing = float(np.median(steps))
    gaps = np.flatnonzero(steps > 1.5 * spacing)
    if gaps.size:
        i = gaps[0]
        missing = max(1, round(steps[i] / spacing) - 1)
        raise ImageReadError(
            f"{what} has a missing slice: about {missing} slice(s) are absent between {unit}s "
            f"{labels[order[i]]} ({d[i]:.2f} mm) and {labels[order[i + 1]]} ({d[i + 1]:.2f} mm), where "
            f"the other slices are {spacing:.3g} mm apart. The series is incomplete: copy or export it "
            "again with all its files."
        )
    if np.max(np.abs(steps - spacing)) > 0.05 * spacing:
        raise ImageReadError(
            f"{what} has irregular slice spacing (from {steps.min():.3g} to {steps.max():.3g} mm), so it "
            "is not one regular 3D volume. Choose a series with evenly spaced slices."
        )
    offsets = positions[order] - positions[order[0]]
    sideways = offsets - np.outer(offsets @ normal, normal)
    if np.max(np.linalg.norm(sideways, axis=1)) > max(0.05, 0.1 * spacing):
        raise ImageReadError(
            f"{what} has slices shifted sideways (a tilted or sheared stack); this reader needs slices "
            "stacked straight along their normal. Reformat the series on the scanner or PACS."
        )
    return order, spacing


@dataclass
class FrameGeometry:
    positions: np.ndarray  # (frames, 3) LPS
    orientations: np.ndarray  # (frames, 6)
    pixel_spacing: np.ndarray  # (row spacing, column spacing)
    slopes: np.ndarray
    intercepts: np.ndarray


def apply_frame_geometry(image: sitk.Image, geometry: FrameGeometry, what: str) -> sitk.Image:
    """Sort the frames along their normal and give the image the geometry of its functional groups."""
    normal = check_parallel(geometry.orientations, what, "frames")
    labels = [f"frame {i + 1}" for i in range(len(geometry.positions))]
    order, spacing = stack_order(geometry.positions, normal, labels, what, "")
    array = sitk.GetArrayFromImage(image)
    slopes, intercepts = geometry.slopes, geometry.intercepts
    if np.ptp(slopes) > 0 or np.ptp(intercepts) > 0:
        # GDCM applied the first frame's rescale to every frame; redo it frame by frame.
        stored = (array.astype(np.float64) - intercepts[0]) / slopes[0]
        array = (stored * slopes[:, None, None] + intercepts[:, None, None]).astype(np.float32)
    out = sitk.GetImageFromArray(np.ascontiguousarray(array[order]))
    row, column = geometry.orientations[0, :3], geometry.orientations[0, 3:]
    out.SetSpacing((float(geometry.pixel_spacing[1]), float(geometry.pixel_spacing[0]), spacing))
    out.SetOrigin([float(v) for v in geometry.positions[order[0]]])
    out.SetDirection([float(v) for v in np.column_stack([row, column, normal]).ravel()])
    return out
