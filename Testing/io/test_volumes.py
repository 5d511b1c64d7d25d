"""Image io on real files: Colin27 (NIfTI -> DICOM series -> back), pydicom-data, heudiconv, pydicom test files."""

from __future__ import annotations

import shutil
import sysconfig
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    EnhancedMRImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from InteractiveAdaptLib.errors import ImageReadError
from InteractiveAdaptLib.io import dicom_writing
from InteractiveAdaptLib.io.volumes import (
    MultipleSeriesError,
    Volume,
    list_dicom_series,
    read_volume,
    volume_from_sitk,
    volume_to_sitk,
    write_dicom_series,
    write_volume,
)

COLIN = Path("/usr/share/mricron/templates/ch2.nii.gz")
SITE = Path(sysconfig.get_paths()["purelib"])
PYDICOM_DATA = SITE / "data_store" / "data"  # PyPI pydicom-data
PYDICOM_TEST = SITE / "pydicom" / "data" / "test_files"
HEUDICONV = SITE / "heudiconv" / "tests" / "data"
HEUDICONV_ENHANCED = HEUDICONV / "MRI_102TD_PHA_S.MR.Chen_Matthews_1.3.1.2022.11.16.15.50.20.357.31204541.dcm"
DICOMDIR_TESTS = PYDICOM_TEST / "dicomdirtests"
CT5N_UID = "1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.6"  # 5 parallel CT slices, 2.5 mm apart
CT2_UID = "1.3.6.1.4.1.5962.1.1.0.0.0.1196530851.28319.0.2"  # 4 CT slices with a 200 mm gap
PILOT_UID = "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.136"  # tri-planar MR pilot
ATOL = 1e-4


def need(path: Path) -> Path:
    """The path, or skip the test naming the missing data file."""
    if not path.exists():
        pytest.skip(f"real data file missing: {path}")
    return path


def flip_k(volume: Volume) -> Volume:
    """The same image with the K axis reversed (same voxels at the same RAS positions)."""
    m = volume.ijk_to_ras.copy()
    m[:3, 3] += (volume.array.shape[0] - 1) * m[:3, 2]
    m[:3, 2] *= -1
    return Volume(np.ascontiguousarray(volume.array[::-1]), m)


def right_handed(volume: Volume) -> Volume:
    """DICOM readers stack slices along the slice normal: the form a volume takes after a DICOM round trip."""
    return flip_k(volume) if np.linalg.det(volume.ijk_to_ras[:3, :3]) < 0 else volume


def reorient(volume: Volume, axes: tuple[int, int, int], flips: tuple[bool, bool, bool]) -> Volume:
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


def assert_same(a: Volume, b: Volume) -> None:
    assert a.array.shape == b.array.shape
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.ijk_to_ras, b.ijk_to_ras, atol=ATOL)


def rotation(angles: tuple[float, float, float]) -> np.ndarray:
    """A rotation matrix from three Euler angles in degrees."""
    x, y, z = np.radians(angles)
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.fixture(scope="session")
def colin() -> Volume:
    return read_volume(need(COLIN))


@pytest.fixture(scope="session")
def colin_series(colin: Volume, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Colin27 written once as a single-frame MR DICOM series."""
    folder = tmp_path_factory.mktemp("colin27_dicom")
    paths = write_dicom_series(colin, folder, patient_name="Colin27", series_description="Colin27 T1")
    return folder, paths


@pytest.fixture(scope="session")
def small_series(colin: Volume, tmp_path_factory: pytest.TempPathFactory) -> tuple[Volume, Path]:
    """A 12-slice crop of Colin27 as a DICOM series, to copy and damage."""
    crop = Volume(np.ascontiguousarray(colin.array[70:82, 80:144, 60:124]), colin.ijk_to_ras.copy())
    crop.ijk_to_ras[:3, 3] = colin.ijk_to_ras[:3, :3] @ [60, 80, 70] + colin.ijk_to_ras[:3, 3]
    folder = tmp_path_factory.mktemp("small_dicom")
    write_dicom_series(crop, folder, series_description="Colin27 crop")
    return crop, folder


@pytest.fixture
def small_copy(small_series: tuple[Volume, Path], tmp_path: Path) -> Path:
    folder = tmp_path / "series"
    shutil.copytree(small_series[1], folder)
    return folder


# --- Colin27 as a DICOM series --------------------------------------------------------------------


def test_colin27_dicom_round_trip_is_exact(colin: Volume, colin_series: tuple[Path, list[Path]]) -> None:
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


def test_list_dicom_series_describes_the_series(colin_series: tuple[Path, list[Path]]) -> None:
    folder, paths = colin_series
    (info,) = list_dicom_series(folder)
    assert (info.description, info.modality, info.number_of_files) == ("Colin27 T1", "MR", 181)
    assert info.uid == pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID
    assert info.first_file.parent == folder and info.series_number == "1"
    assert read_volume(folder, series_uid=info.uid).array.shape == (181, 217, 181)


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
    colin: Volume, tmp_path: Path, axes: tuple[int, int, int], flips: tuple[bool, bool, bool], k_step: int
) -> None:
    volume = reorient(colin, axes, flips)
    volume = Volume(np.ascontiguousarray(volume.array[::k_step, ::2, ::2]), volume.ijk_to_ras.copy())
    volume.ijk_to_ras[:3, :3] = volume.ijk_to_ras[:3, :3] @ np.diag([2, 2, k_step])
    write_dicom_series(volume, tmp_path / "dcm")
    assert_same(read_volume(tmp_path / "dcm"), right_handed(volume))


def test_oblique_resampled_colin27_round_trips(colin: Volume, tmp_path: Path) -> None:
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
def test_any_geometry_survives_a_dicom_round_trip(angles, spacing, origin, shape, signed, mirrored) -> None:
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


# --- NIfTI and NRRD -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_nifti_and_nrrd_round_trips_keep_geometry(colin: Volume, tmp_path: Path, suffix: str) -> None:
    for volume in (colin, reorient(colin, (2, 0, 1), (True, False, True))):
        oblique = Volume(volume.array, volume.ijk_to_ras.copy())
        oblique.ijk_to_ras[:3, :3] = (
            rotation((10.0, 20.0, -5.0)) @ volume.ijk_to_ras[:3, :3] @ np.diag([0.7, 1, 3])
        )
        write_volume(oblique, tmp_path / f"v{suffix}")
        assert_same(read_volume(tmp_path / f"v{suffix}"), oblique)


# --- Real DICOM files -----------------------------------------------------------------------------

EMRI_VARIANTS = [
    "emri_small_RLE.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_big_endian.dcm",
]


def test_enhanced_mr_emri_small_reads_as_a_volume() -> None:
    path = need(PYDICOM_DATA / "emri_small.dcm")
    volume = read_volume(path)  # no functional groups in this file: default geometry, with a warning
    assert volume.array.shape == (10, 64, 64)
    np.testing.assert_array_equal(volume.array, pydicom.dcmread(path).pixel_array)


@pytest.mark.parametrize("name", EMRI_VARIANTS)
def test_emri_small_codecs_decode_losslessly(name: str) -> None:
    reference = read_volume(need(PYDICOM_DATA / "emri_small.dcm"))
    assert_same(read_volume(need(PYDICOM_DATA / name)), reference)


def test_truncated_real_file_gives_a_clear_error() -> None:
    path = need(PYDICOM_DATA / "emri_small_jpeg_2k_lossless_too_short.dcm")
    with pytest.raises(ImageReadError, match="could not be decoded"):
        read_volume(path)


@pytest.mark.parametrize(
    "path",
    [PYDICOM_TEST / "MR_small.dcm", PYDICOM_DATA / "MR-SIEMENS-DICOM-WithOverlays.dcm"],
    ids=lambda p: p.name,
)
def test_single_2d_image_asks_for_the_whole_series(path: Path, tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="single 2D DICOM image.*folder"):
        read_volume(need(path))
    shutil.copy(path, tmp_path / path.name)
    with pytest.raises(ImageReadError, match="single 2D DICOM image"):
        read_volume(tmp_path)


def test_heudiconv_enhanced_mr_with_non_parallel_frames_is_refused() -> None:
    """Its 3 frames are an MPR scout in 2 orientations; GDCM would silently give them 1 mm spacing."""
    path = need(HEUDICONV_ENHANCED)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ds.SOPClassUID == EnhancedMRImageStorage and int(ds.NumberOfFrames) == 3
    orientations = [
        f.PlaneOrientationSequence[0].ImageOrientationPatient for f in ds.PerFrameFunctionalGroupsSequence
    ]
    assert np.ptp(np.array(orientations, float), axis=0).max() > 0.05
    assert sitk.ReadImage(str(path)).GetSpacing() == (1.0, 1.0, 1.0)  # what a plain GDCM read reports
    with pytest.raises(ImageReadError, match="different orientations"):
        read_volume(path)


def enhanced_mr(
    path: Path, volume: Volume, syntax: str, slopes: np.ndarray, intercepts: np.ndarray, reverse: bool
) -> None:
    """Write `volume` (integer voxels) as an Enhanced MR file with per-frame positions and rescale."""
    lps = np.diag([-1.0, -1.0, 1.0])
    steps = lps @ volume.ijk_to_ras[:3, :3]
    spacing = np.linalg.norm(steps, axis=0)
    frames = list(range(volume.array.shape[0]))[:: -1 if reverse else 1]
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = EnhancedMRImageStorage, generate_uid(), "MR"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns, ds.NumberOfFrames = volume.array.shape[1], volume.array.shape[2], len(frames)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    measures, orientation, shared = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = [float(spacing[1]), float(spacing[0])], float(spacing[2])
    orientation.ImageOrientationPatient = [
        float(v) for v in (*steps[:, 0] / spacing[0], *steps[:, 1] / spacing[1])
    ]
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = [measures], [orientation]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for k in frames:
        frame, position, value = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [float(v) for v in lps @ (volume.ijk_to_ras @ [0, 0, k, 1])[:3]]
        value.RescaleSlope, value.RescaleIntercept, value.RescaleType = (
            float(slopes[k]),
            float(intercepts[k]),
            "US",
        )
        frame.PlanePositionSequence, frame.PixelValueTransformationSequence = [position], [value]
        per_frame.append(frame)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = volume.array[frames].astype(">u2" if syntax == ExplicitVRBigEndian else "<u2").tobytes()
    ds["PixelData"].VR = "OW"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        ds.SOPClassUID,
        ds.SOPInstanceUID,
    )
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize(
    "syntax",
    [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian],
)
def test_enhanced_mr_geometry_comes_from_the_functional_groups(
    colin: Volume, tmp_path: Path, syntax: str
) -> None:
    volume = reorient(colin, (2, 0, 1), (True, False, True))  # sagittal frames
    volume = Volume(np.ascontiguousarray(volume.array[60:72:2, 40:100, 30:90]), volume.ijk_to_ras.copy())
    volume.ijk_to_ras[:3, 3] = volume.ijk_to_ras @ [30, 40, 60, 1] @ np.eye(4)[:, :3]
    volume.ijk_to_ras[:3, 2] *= 2
    volume.ijk_to_ras[:3, :3] = rotation((0, 8, 3)) @ volume.ijk_to_ras[:3, :3]  # slightly oblique
    slopes = 1.0 + 0.25 * np.arange(volume.array.shape[0])
    path = tmp_path / "enhanced.dcm"
    enhanced_mr(path, volume, syntax, np.ones_like(slopes), np.zeros_like(slopes), reverse=False)
    assert_same(read_volume(path), right_handed(volume))
    plain = volume_from_sitk(sitk.ReadImage(str(path)))
    np.testing.assert_allclose(plain.ijk_to_ras, right_handed(volume).ijk_to_ras, atol=ATOL)  # GDCM agrees
    # Frames stored in reverse order with a rescale per frame: GDCM alone gets both wrong.
    intercepts = -5.0 * np.arange(len(slopes))
    enhanced_mr(path, volume, syntax, slopes, intercepts, reverse=True)
    back = read_volume(path)
    expected = volume.array * slopes[:, None, None] + intercepts[:, None, None]
    np.testing.assert_allclose(back.array, right_handed(Volume(expected, volume.ijk_to_ras)).array, atol=1e-3)
    np.testing.assert_allclose(back.ijk_to_ras, right_handed(volume).ijk_to_ras, atol=ATOL)


def test_color_dicom_is_refused() -> None:
    with pytest.raises(ImageReadError, match="colour"):
        read_volume(need(PYDICOM_DATA / "color3d_jpeg_baseline.dcm"))


# --- Folders with several series, missing and duplicated slices --------------------------------------


def test_dicomdir_folder_lists_its_series_and_reads_the_chosen_one() -> None:
    folder = need(DICOMDIR_TESTS)
    series = list_dicom_series(folder)
    uids = {s.uid for s in series}
    assert {CT5N_UID, CT2_UID, PILOT_UID} <= uids and len(series) >= 10
    with pytest.raises(MultipleSeriesError) as error:
        read_volume(folder)
    assert {s.uid for s in error.value.series} == uids
    assert all(s.uid in str(error.value) for s in series) and "choose" in str(error.value)
    assert "SmartScore - Gated 0.5 sec" in str(error.value)
    volume = read_volume(folder, series_uid=CT5N_UID)
    assert volume.array.shape == (5, 16, 16)
    files = next(s for s in series if s.uid == CT5N_UID).files
    datasets = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
    first = datasets[0]
    lps_origin = [float(v) for v in first.ImagePositionPatient]
    np.testing.assert_allclose(
        volume.ijk_to_ras[:3, 3], [-lps_origin[0], -lps_origin[1], lps_origin[2]], atol=ATOL
    )
    assert volume.spacing_kji == pytest.approx((2.5, *[float(v) for v in first.PixelSpacing]))
    np.testing.assert_array_equal(
        volume.array, np.stack([d.pixel_array * 1.0 + float(d.RescaleIntercept) for d in datasets])
    )
    assert read_volume(folder / "DICOMDIR", series_uid=CT5N_UID).array.shape == (5, 16, 16)
    with pytest.raises(ImageReadError, match="no DICOM series with UID 1.2.3"):
        read_volume(folder, series_uid="1.2.3")


def test_real_series_with_a_gap_and_a_real_triplanar_pilot_are_refused() -> None:
    folder = need(DICOMDIR_TESTS)
    with pytest.raises(ImageReadError, match="missing slice.*17106.*17136"):
        read_volume(folder, series_uid=CT2_UID)
    with pytest.raises(ImageReadError, match="different orientations"):
        read_volume(folder, series_uid=PILOT_UID)


def test_real_diffusion_series_with_several_images_per_position_is_refused() -> None:
    with pytest.raises(ImageReadError, match="duplicated slice.*4D"):
        read_volume(need(HEUDICONV / "b0dwiForFmap"))


def test_removed_middle_slice_is_reported(small_copy: Path) -> None:
    (small_copy / "IM00006.dcm").unlink()
    with pytest.raises(ImageReadError, match=r"missing slice: about 1 slice.*IM00005\.dcm.*IM00007\.dcm"):
        read_volume(small_copy)


def test_duplicated_file_is_reported(small_copy: Path) -> None:
    shutil.copy(small_copy / "IM00004.dcm", small_copy / "copy_of_4.dcm")
    with pytest.raises(
        ImageReadError, match=r"duplicated slice.*(IM00004\.dcm.*copy_of_4|copy_of_4.*IM00004)"
    ):
        read_volume(small_copy)


def test_non_image_files_beside_the_series_are_ignored(
    small_series: tuple[Volume, Path], small_copy: Path
) -> None:
    (small_copy / "README.txt").write_text("Exported by the PACS.\n")
    shutil.copy(need(DICOMDIR_TESTS / "DICOMDIR"), small_copy / "DICOMDIR")
    (small_copy / "sub").mkdir()
    (small_copy / "sub" / "notes.json").write_text("{}")
    assert_same(read_volume(small_copy), small_series[0])


def test_folder_without_dicom_gives_a_clear_error(colin: Volume, tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("nothing here")
    write_volume(Volume(colin.array[:4], colin.ijk_to_ras), tmp_path / "volume.nii.gz")
    with pytest.raises(ImageReadError, match="No DICOM images were found"):
        read_volume(tmp_path)


def test_per_slice_rescale_is_applied_slice_by_slice(
    small_series: tuple[Volume, Path], small_copy: Path
) -> None:
    """Some scanners give every file its own rescale slope; each slice must keep its own scaling."""
    crop = small_series[0]
    slopes = np.zeros(crop.array.shape[0])
    for path in sorted(small_copy.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        k = int(ds.InstanceNumber) - 1
        slopes[k] = 1.0 if k == 0 else 0.5 + 0.25 * k
        ds.RescaleSlope, ds.RescaleIntercept = slopes[k], 3
        ds.save_as(path)
    back = read_volume(small_copy)
    assert back.array.dtype == np.float32
    np.testing.assert_allclose(back.array, crop.array * slopes[:, None, None] + 3, rtol=1e-6)
    np.testing.assert_allclose(back.ijk_to_ras, crop.ijk_to_ras, atol=ATOL)


def test_truncated_file_inside_a_series_gives_image_read_error(small_copy: Path) -> None:
    path = small_copy / "IM00003.dcm"
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ImageReadError):
        read_volume(small_copy)


# --- RGB, 4D, missing and corrupt files -----------------------------------------------------------


def test_rgb_image_is_refused(colin: Volume, tmp_path: Path) -> None:
    grey = volume_to_sitk(Volume(colin.array[80:84], colin.ijk_to_ras))
    sitk.WriteImage(sitk.Compose(grey, grey, grey), str(tmp_path / "rgb.nrrd"))
    with pytest.raises(ImageReadError, match="colour"):
        read_volume(tmp_path / "rgb.nrrd")


def test_4d_image_is_refused(colin: Volume, tmp_path: Path) -> None:
    frame = volume_to_sitk(Volume(colin.array[80:84], colin.ijk_to_ras))
    sitk.WriteImage(sitk.JoinSeries([frame, frame]), str(tmp_path / "fmri.nii.gz"))
    with pytest.raises(ImageReadError, match="4 dimensions"):
        read_volume(tmp_path / "fmri.nii.gz")


def test_missing_path_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="does not exist"):
        read_volume(tmp_path / "no_such_study")
    with pytest.raises(ImageReadError, match="does not exist"):
        list_dicom_series(tmp_path / "no_such_study")


@pytest.mark.parametrize(
    "kind", ["dicom_header_garbage", "truncated_dicom", "truncated_nifti_gz", "truncated_nifti", "text"]
)
def test_corrupt_files_give_image_read_error(colin: Volume, tmp_path: Path, kind: str) -> None:
    if kind == "dicom_header_garbage":
        path = tmp_path / "broken.dcm"
        path.write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 8)
    elif kind == "truncated_dicom":
        path = tmp_path / "cut.dcm"
        path.write_bytes(need(PYDICOM_DATA / "emri_small.dcm").read_bytes()[:30000])
    elif kind.startswith("truncated_nifti"):
        suffix = ".nii.gz" if kind.endswith("gz") else ".nii"
        write_volume(colin, tmp_path / f"full{suffix}")
        path = tmp_path / f"cut{suffix}"
        path.write_bytes((tmp_path / f"full{suffix}").read_bytes()[:50000])  # ITK alone reads it, zero-filled
    else:
        path = tmp_path / "notes.txt"
        path.write_text("not an image")
    with pytest.raises(ImageReadError):
        read_volume(path)


def test_decimal_strings_fit_dicom() -> None:
    for value in (0.0, 1e-17, -0.1234567890123456789, 123456.78901234, -1e-7, 1 / 3, 9.87654321e20):
        text = dicom_writing._ds(value)
        assert len(text) <= 16 and float(text) == pytest.approx(value, rel=1e-9, abs=1e-12)
