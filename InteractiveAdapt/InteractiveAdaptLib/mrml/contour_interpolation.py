"""Fill between segmented slices with ITK's morphological contour interpolation, the filter behind
Slicer's "Fill between slices" (through Slicer's vtkITK wrapper; the engine takes it as a function)."""

from __future__ import annotations

import os

import numpy as np
from scipy import ndimage

# ITK's pool threader crashes the process at exit once it has run (seen with Slicer's ITK outside the
# application); the platform threader does the same work without the pool. ITK reads this at first use.
os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Platform")

# ITK labels the slices' pieces in 8 bits and aborts the whole process past 255 of them; a mask that
# fragmented is not worth interpolating, so those slices are left to propagation instead.
MAX_PIECES = 200


class TooFragmented(ValueError):
    """The labelled slices have more separate pieces than the filter can label."""


def contour_interpolation(mask: np.ndarray, axis: int) -> np.ndarray:
    """Fill the slices between the labelled slices of `mask` (along `axis`). Only the box around the
    labelled voxels (one voxel of margin) is handed to ITK: the result is the same.

    Raises:
        TooFragmented: the labelled slices hold more than MAX_PIECES separate pieces.
    """
    filled = np.zeros(mask.shape, bool)
    if not mask.any():
        return filled
    pieces = sum(ndimage.label(s)[1] for s in np.moveaxis(mask, axis, 0) if s.any())
    if pieces > MAX_PIECES:
        raise TooFragmented(f"{pieces} separate pieces on the labelled slices")
    box = tuple(
        slice(max(int(ix.min()) - 1, 0), int(ix.max()) + 2)
        for ix in (np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != d))) for d in range(3))
    )
    filled[box] = _itk_interpolation(mask[box], axis)
    return filled


def _itk_interpolation(mask: np.ndarray, axis: int) -> np.ndarray:
    import slicer
    import vtk
    from vtkmodules.util import numpy_support

    image = vtk.vtkImageData()
    image.SetDimensions(mask.shape[2], mask.shape[1], mask.shape[0])
    values = np.ascontiguousarray(mask.astype(np.uint8)).ravel()
    image.GetPointData().SetScalars(
        numpy_support.numpy_to_vtk(values, deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
    )
    interpolator = slicer.vtkITKMorphologicalContourInterpolator()
    interpolator.SetInputData(image)
    interpolator.SetAxis(2 - axis)  # VTK counts x (I), y (J), z (K)
    interpolator.Update()
    out = numpy_support.vtk_to_numpy(interpolator.GetOutput().GetPointData().GetScalars())
    return out.reshape(mask.shape) > 0
