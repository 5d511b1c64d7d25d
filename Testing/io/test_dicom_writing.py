"""Writing DICOM series (dicom_writing): Colin27 (NIfTI -> DICOM series -> back), any geometry, refusals.

Shared fixtures (colin, colin_series and the geometry helpers) live in conftest.py.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import MRImageStorage

from InteractiveAdaptLib.io import dicom_writing
from InteractiveAdaptLib.io.volumes import (
    Volume,
    read_volume,
    volume_from_sitk,
    volume_to_sitk,
    write_dicom_series,
)

# --- Colin27 as a DICOM series --------------------------------------------------------------------


def test_colin27_dicom_round_trip_is_exact(
    colin: Volume, colin_series: tuple[Path, list[Path]], assert_same: Callable[[Volume, Volume], None]
) -> None:
    folder, paths = colin_series
    assert len(paths) == colin.array.shape[0] == 181
    back = read_volume(folder)
    assert back.array.dtype == np.uint16  # uint8 voxels stored as 16-bit, values unchanged
    assert_same(back, colin)
    assert back.spacing_kji == pytest.approx((1.0, 1.0, 1.0))


def test_written_series_is_a_valid_mr_image_storage_series(
    colin: Volume, colin_series: tuple[Path, list[Path]]
) -> None:
    folder, paths = colin_series
    lps = np.diag([-1.0, -1.0, 1.0])
    row, col = lps @ colin.ijk_to_ras[:3, 0], lps @ colin.ijk_to_ras[:3, 1]
    datasets = [pydicom.dcmread(p) for p in paths[::30]]
    for k, ds in zip(range(0, 181, 30), datasets, strict=True):
        assert ds.SOPClassUID == MRImageStorage == ds.file_meta.MediaStorageSOPClassUID
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.Modality == "MR" and ds.SeriesDescription == "Colin27 T1" and ds.PatientName == "Colin27"
        assert (ds.Rows, ds.Columns) == colin.array.shape[1:]
        assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 0
        assert float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) == 0.0
        assert [float(v) for v in ds.PixelSpacing] == [1.0, 1.0]
        assert float(ds.SliceThickness) == 1.0 == float(ds.SpacingBetweenSlices)
        np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient], [*row, *col], atol=1e-9)
        expected = lps @ (colin.ijk_to_ras @ [0, 0, k, 1])[:3]
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], expected, atol=1e-9)
        assert int(ds.InstanceNumber) == k + 1
        assert ds.ScanningSequence and ds.SequenceVariant and "DERIVED" in ds.ImageType
        np.testing.assert_array_equal(ds.pixel_array, colin.array[k])  # an independent reader agrees
    for tag in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({ds[tag].value for ds in datasets}) == 1
    uids = [ds.SOPInstanceUID for ds in datasets]
    assert len(set(uids)) == len(uids) and all(len(u) <= 64 and u.startswith("2.25.") for u in uids)


@pytest.mark.parametrize(
    ("axes", "flips", "k_step"),
    [
        ((2, 0, 1), (True, False, True), 2),  # sagittal slices, LPS-like storage, 2 mm between slices
        ((0, 2, 1), (True, True, True), 3),  # coronal slices, all axes reversed, 3 mm between slices
        ((0, 1, 2), (True, True, False), 1),  # axial, LPS-stored (I to the left, J to the back)
        ((0, 1, 2), (True, False, False), 2),  # left-handed: comes back with K reversed
    ],
)
def test_reoriented_anisotropic_colin27_round_trips(
    colin: Volume,
    tmp_path: Path,
    axes: tuple[int, int, int],
    flips: tuple[bool, bool, bool],
    k_step: int,
    reorient: Callable[..., Volume],
    right_handed: Callable[[Volume], Volume],
    assert_same: Callable[[Volume, Volume], None],
) -> None:
    volume = reorient(colin, axes, flips)
    volume = Volume(np.ascontiguousarray(volume.array[::k_step, ::2, ::2]), volume.ijk_to_ras.copy())
    volume.ijk_to_ras[:3, :3] = volume.ijk_to_ras[:3, :3] @ np.diag([2, 2, k_step])
    write_dicom_series(volume, tmp_path / "dcm")
    assert_same(read_volume(tmp_path / "dcm"), right_handed(volume))


def test_oblique_resampled_colin27_round_trips(
    colin: Volume,
    tmp_path: Path,
    rotation: Callable[[tuple[float, float, float]], np.ndarray],
    assert_same: Callable[[Volume, Volume], None],
) -> None:
    """Oblique, anisotropic grid made by resampling the real image (rounded to integers)."""
    direction = rotation((17.0, -11.0, 25.0))
    reference = sitk.Image(70, 80, 24, sitk.sitkFloat32)
    reference.SetSpacing((1.3, 0.9, 2.5))
    reference.SetDirection([float(v) for v in direction.ravel()])
    reference.SetOrigin([float(v) for v in -direction @ (np.array([70 * 1.3, 80 * 0.9, 24 * 2.5]) / 2)])
    resampled = sitk.Resample(sitk.Cast(volume_to_sitk(colin), sitk.sitkFloat32), reference, sitk.Transform())
    volume = volume_from_sitk(resampled)
    volume = Volume(np.rint(volume.array), volume.ijk_to_ras)
    assert volume.array.max() > 50  # the brain, not empty space
    write_dicom_series(volume, tmp_path / "dcm")
    assert_same(read_volume(tmp_path / "dcm"), volume)


@settings(max_examples=15, deadline=None)
@given(
    angles=st.tuples(*[st.floats(-180, 180)] * 3),
    spacing=st.tuples(*[st.floats(0.2, 5.0)] * 3),
    origin=st.tuples(*[st.floats(-300, 300)] * 3),
    shape=st.tuples(st.integers(2, 5), st.integers(2, 6), st.integers(2, 6)),
    signed=st.booleans(),
    mirrored=st.booleans(),
)
def test_any_geometry_survives_a_dicom_round_trip(
    rotation, right_handed, assert_same, angles, spacing, origin, shape, signed, mirrored
) -> None:
    m = np.eye(4)
    m[:3, :3] = rotation(angles) @ np.diag(spacing) @ np.diag([-1.0 if mirrored else 1.0, 1.0, 1.0])
    m[:3, 3] = origin
    rng = np.random.default_rng(0)
    volume = Volume(rng.integers(-2000 if signed else 0, 4000, size=shape).astype(np.int16), m)
    with tempfile.TemporaryDirectory() as folder:
        write_dicom_series(volume, folder)
        assert_same(read_volume(folder), right_handed(volume))


def test_writer_refuses_non_integer_intensities_and_non_empty_folders(colin: Volume, tmp_path: Path) -> None:
    blurred = Volume(colin.array[:3].astype(np.float32) * 0.5, colin.ijk_to_ras)
    with pytest.raises(ValueError, match="round the volume"):
        write_dicom_series(blurred, tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "old.dcm").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        write_dicom_series(Volume(colin.array[:3], colin.ijk_to_ras), tmp_path / "b")


def test_decimal_strings_fit_dicom() -> None:
    for value in (0.0, 1e-17, -0.1234567890123456789, 123456.78901234, -1e-7, 1 / 3, 9.87654321e20):
        text = dicom_writing._ds(value)
        assert len(text) <= 16 and float(text) == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_writing_and_reading_dicom_leave_the_process_locale_alone(tmp_path):
    """GDCM switches the C locale to "C" and leaves it so: Python's text files would then be ASCII-only."""
    import locale

    before = locale.setlocale(locale.LC_ALL)
    from InteractiveAdaptLib.io.volumes import Volume, read_volume, write_dicom_series

    write_dicom_series(Volume(np.zeros((3, 8, 8), np.int16), np.eye(4)), tmp_path / "series")
    assert locale.setlocale(locale.LC_ALL) == before
    read_volume(tmp_path / "series")
    assert locale.setlocale(locale.LC_ALL) == before
    (tmp_path / "note.txt").write_text("Hôpital")  # as the web server writes its files
    assert (tmp_path / "note.txt").read_text() == "Hôpital"
