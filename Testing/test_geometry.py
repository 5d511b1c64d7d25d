"""The torch-free geometry helpers (InteractiveAdaptLib/geometry.py): voxel spacing of an IJK -> RAS matrix,
in-plane pixel spacing, 2D slices; and that the image readers and the scene adapter can import them
without the engine or torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from InteractiveAdaptLib.errors import InvalidClickError
from InteractiveAdaptLib.geometry import AXIS_NAMES, extract_slice, in_plane_spacing, spacing_kji
from InteractiveAdaptLib.io.volumes import volume_from_sitk


def oblique_image(spacing_ijk: tuple[float, float, float]) -> sitk.Image:
    """A small SimpleITK image with this spacing, tilted about all three axes."""
    image = sitk.Image(4, 5, 6, sitk.sitkInt16)
    image.SetSpacing(spacing_ijk)
    transform = sitk.Euler3DTransform()
    transform.SetRotation(*np.radians([10.0, -25.0, 40.0]))
    image.SetDirection(transform.GetMatrix())
    image.SetOrigin((12.0, -7.5, 30.0))
    return image


@pytest.mark.parametrize("spacing_ijk", [(1.0, 1.0, 1.0), (0.5, 0.8, 3.0), (0.9375, 0.9375, 5.5)])
def test_spacing_kji_is_simpleitk_spacing_in_array_order(spacing_ijk):
    image = oblique_image(spacing_ijk)
    volume = volume_from_sitk(image)
    assert spacing_kji(volume.ijk_to_ras) == pytest.approx(image.GetSpacing()[::-1])
    assert volume.spacing_kji == pytest.approx(image.GetSpacing()[::-1])
    assert all(isinstance(s, float) for s in spacing_kji(volume.ijk_to_ras))


def test_spacing_kji_ignores_the_origin_and_flips():
    matrix = np.diag([-0.5, 2.0, -3.0, 1.0])
    matrix[:3, 3] = (100.0, -50.0, 7.0)
    assert spacing_kji(matrix) == (3.0, 2.0, 0.5)
    assert spacing_kji(matrix.tolist()) == (3.0, 2.0, 0.5)  # any 4x4 array-like


def test_in_plane_spacing_drops_the_fixed_axis():
    spacing = (3.0, 0.8, 0.5)  # K, J, I
    assert [in_plane_spacing(spacing, axis) for axis in range(3)] == [(0.8, 0.5), (3.0, 0.5), (3.0, 0.8)]


def test_extract_slice_is_a_copy_of_the_fixed_axis():
    volume = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    for axis in range(3):
        for index in range(volume.shape[axis]):
            np.testing.assert_array_equal(extract_slice(volume, axis, index), np.take(volume, index, axis))
    extract_slice(volume, 1, 2)[:] = -1
    assert volume.min() == 0  # a copy: the volume is unchanged
    assert AXIS_NAMES == ("K", "J", "I")


@pytest.mark.parametrize(
    "axis, index, message",
    [
        (1, 3, "Slice 3 is outside the volume \\(it has 3 slices along axis J\\). Click inside the image."),
        (0, -1, "Slice -1 is outside the volume \\(it has 2 slices along axis K\\)"),
        (3, 0, "Slice axis must be 0, 1 or 2, not 3."),
    ],
)
def test_extract_slice_refuses_what_is_not_in_the_volume(axis, index, message):
    with pytest.raises(InvalidClickError, match=message):
        extract_slice(np.zeros((2, 3, 4)), axis, index)


def test_importing_the_helpers_loads_neither_the_engine_nor_torch():
    """What io and mrml import of it must load while torch is not installed yet (it is installed on first use)."""
    code = (
        "import sys, InteractiveAdaptLib.geometry; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai', 'scipy', 'SimpleITK') "
        "or m.startswith('InteractiveAdaptLib.engine')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
