"""2D slices of a (K, J, I) volume: which axis is fixed, the voxel spacing and the in-plane pixel spacing.

Torch-free and below every folder of the package: the engine, the image readers (io) and the scene
adapter (mrml) all use it, and it imports nothing of them (numpy and the error types only)."""

from __future__ import annotations

import numpy as np

from InteractiveAdaptLib.errors import InvalidClickError

AXIS_NAMES = ("K", "J", "I")


def extract_slice(array: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The 2D slice of `array` with array axis `axis` fixed at `index`, as a copy."""
    if axis not in (0, 1, 2):
        raise InvalidClickError(f"Slice axis must be 0, 1 or 2, not {axis}.")
    if not 0 <= index < array.shape[axis]:
        raise InvalidClickError(
            f"Slice {index} is outside the volume (it has {array.shape[axis]} slices along axis "
            f"{AXIS_NAMES[axis]}). Click inside the image."
        )
    return np.take(array, index, axis=axis)


def spacing_kji(ijk_to_ras: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm in array order (K, J, I) of a volume with this 4x4 IJK -> RAS matrix."""
    i, j, k = np.linalg.norm(np.asarray(ijk_to_ras, dtype=float)[:3, :3], axis=0)
    return (float(k), float(j), float(i))


def in_plane_spacing(spacing_kji: tuple[float, float, float], axis: int) -> tuple[float, float]:
    """Pixel spacing (rows, columns) in mm of a slice with `axis` fixed."""
    rest = [s for a, s in enumerate(spacing_kji) if a != axis]
    return (float(rest[0]), float(rest[1]))
