"""Fixtures shared by the io tests: the real Colin27 volume (and its DICOM series) and geometry helpers.

With --import-mode=importlib a module beside the tests cannot be imported by name, so the helpers
that several test files use are handed out as session fixtures (session scope: hypothesis accepts them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from InteractiveAdaptLib.io.volumes import Volume, read_volume, write_dicom_series

COLIN = Path("/usr/share/mricron/templates/ch2.nii.gz")
ATOL = 1e-4


def _need(path: Path) -> Path:
    """The path, or skip the test naming the missing data file."""
    if not path.exists():
        pytest.skip(f"real data file missing: {path}")
    return path


def _flip_k(volume: Volume) -> Volume:
    """The same image with the K axis reversed (same voxels at the same RAS positions)."""
    m = volume.ijk_to_ras.copy()
    m[:3, 3] += (volume.array.shape[0] - 1) * m[:3, 2]
    m[:3, 2] *= -1
    return Volume(np.ascontiguousarray(volume.array[::-1]), m)


def _right_handed(volume: Volume) -> Volume:
    """DICOM readers stack slices along the slice normal: the form a volume takes after a DICOM round trip."""
    return _flip_k(volume) if np.linalg.det(volume.ijk_to_ras[:3, :3]) < 0 else volume


def _reorient(volume: Volume, axes: tuple[int, int, int], flips: tuple[bool, bool, bool]) -> Volume:
    """Store the same voxels at the same RAS positions with other axes: new axis a = old axis axes[a]."""
    ijk = np.transpose(volume.array.transpose(2, 1, 0), axes)
    old_shape = volume.array.shape[::-1]
    m = np.eye(4)
    m[:3, :3] = 0
    for a in range(3):
        m[axes[a], a] = -1.0 if flips[a] else 1.0
        if flips[a]:
            ijk = np.flip(ijk, a)
            m[axes[a], 3] = old_shape[axes[a]] - 1
    return Volume(np.ascontiguousarray(ijk.transpose(2, 1, 0)), volume.ijk_to_ras @ m)


def _assert_same(a: Volume, b: Volume) -> None:
    assert a.array.shape == b.array.shape
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.ijk_to_ras, b.ijk_to_ras, atol=ATOL)


def _rotation(angles: tuple[float, float, float]) -> np.ndarray:
    """A rotation matrix from three Euler angles in degrees."""
    x, y, z = np.radians(angles)
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.fixture(scope="session")
def need() -> Callable[[Path], Path]:
    """need(path): the path, or skip the test naming the missing data file."""
    return _need


@pytest.fixture(scope="session")
def right_handed() -> Callable[[Volume], Volume]:
    """right_handed(volume): the volume as a DICOM round trip gives it back (K reversed if left-handed)."""
    return _right_handed


@pytest.fixture(scope="session")
def reorient() -> Callable[[Volume, tuple[int, int, int], tuple[bool, bool, bool]], Volume]:
    """reorient(volume, axes, flips): the same voxels at the same RAS positions, stored with other axes."""
    return _reorient


@pytest.fixture(scope="session")
def assert_same() -> Callable[[Volume, Volume], None]:
    """assert_same(a, b): same voxels and same geometry (within ATOL mm)."""
    return _assert_same


@pytest.fixture(scope="session")
def rotation() -> Callable[[tuple[float, float, float]], np.ndarray]:
    """rotation(angles): a rotation matrix from three Euler angles in degrees."""
    return _rotation


@pytest.fixture(scope="session")
def colin() -> Volume:
    return read_volume(_need(COLIN))


@pytest.fixture(scope="session")
def colin_series(colin: Volume, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Colin27 written once as a single-frame MR DICOM series."""
    folder = tmp_path_factory.mktemp("colin27_dicom")
    paths = write_dicom_series(colin, folder, patient_name="Colin27", series_description="Colin27 T1")
    return folder, paths
