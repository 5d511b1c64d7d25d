"""Reading DICOM (dicom_reading) on real files: series listing and choice, series and multi-frame files,
refused series (gaps, duplicates, pilots, colour, Siemens mosaics). Data: Colin27 written as DICOM,
pydicom-data, pydicom's test files, heudiconv's test data. Shared fixtures live in conftest.py.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_samples import HEUDICONV, HEUDICONV_ENHANCED, PYDICOM_DATA, PYDICOM_TEST
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    EnhancedMRImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from InteractiveAdaptLib.errors import ImageReadError
from InteractiveAdaptLib.io.volumes import (
    MultipleSeriesError,
    Volume,
    list_dicom_series,
    read_volume,
    volume_from_sitk,
    write_dicom_series,
    write_volume,
)

HEUDICONV_MOSAIC = HEUDICONV / "axasc35.dcm"  # Siemens EPI, ImageType ORIGINAL\PRIMARY\M\ND\MOSAIC
HEUDICONV_MOSAIC_DWI = HEUDICONV / "b0dwiForFmap"  # 3 Siemens diffusion mosaic files, 81 slices each
HEUDICONV_FIELD_MAP = HEUDICONV / "01-fmap_acq-3mm"  # one Siemens image, not a mosaic
DICOMDIR_TESTS = PYDICOM_TEST / "dicomdirtests"
CT5N_UID = "1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.6"  # 5 parallel CT slices, 2.5 mm apart
CT2_UID = "1.3.6.1.4.1.5962.1.1.0.0.0.1196530851.28319.0.2"  # 4 CT slices with a 200 mm gap
PILOT_UID = "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.136"  # tri-planar MR pilot
ATOL = 1e-4


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


@pytest.fixture
def heudiconv_data(need: Callable[[Path], Path]) -> Path:
    """heudiconv's test data folder (real Siemens files), or skip when heudiconv is not installed."""
    if importlib.util.find_spec("heudiconv") is None:
        pytest.skip(
            "heudiconv is not installed (scripts/setup.sh installs it): its test data holds the real mosaics"
        )
    return need(HEUDICONV)


# --- Series listing -------------------------------------------------------------------------------


def test_list_dicom_series_describes_the_series(colin_series: tuple[Path, list[Path]]) -> None:
    folder, paths = colin_series
    (info,) = list_dicom_series(folder)
    assert (info.description, info.modality, info.number_of_files) == ("Colin27 T1", "MR", 181)
    assert info.uid == pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID
    assert info.first_file.parent == folder and info.series_number == "1"
    assert read_volume(folder, series_uid=info.uid).array.shape == (181, 217, 181)


# --- Real DICOM files -----------------------------------------------------------------------------

EMRI_VARIANTS = [
    "emri_small_RLE.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_big_endian.dcm",
]


def test_enhanced_mr_emri_small_reads_as_a_volume(need: Callable[[Path], Path]) -> None:
    path = need(PYDICOM_DATA / "emri_small.dcm")
    volume = read_volume(path)  # no functional groups in this file: default geometry, with a warning
    assert volume.array.shape == (10, 64, 64)
    np.testing.assert_array_equal(volume.array, pydicom.dcmread(path).pixel_array)


@pytest.mark.parametrize("name", EMRI_VARIANTS)
def test_emri_small_codecs_decode_losslessly(
    name: str, need: Callable[[Path], Path], assert_same: Callable[[Volume, Volume], None]
) -> None:
    reference = read_volume(need(PYDICOM_DATA / "emri_small.dcm"))
    assert_same(read_volume(need(PYDICOM_DATA / name)), reference)


def test_truncated_real_file_gives_a_clear_error(need: Callable[[Path], Path]) -> None:
    path = need(PYDICOM_DATA / "emri_small_jpeg_2k_lossless_too_short.dcm")
    with pytest.raises(ImageReadError, match="could not be decoded"):
        read_volume(path)


@pytest.mark.parametrize(
    "path",
    [PYDICOM_TEST / "MR_small.dcm", PYDICOM_DATA / "MR-SIEMENS-DICOM-WithOverlays.dcm"],
    ids=lambda p: p.name,
)
def test_single_2d_image_asks_for_the_whole_series(
    path: Path, tmp_path: Path, need: Callable[[Path], Path]
) -> None:
    with pytest.raises(ImageReadError, match="single 2D DICOM image.*folder"):
        read_volume(need(path))
    shutil.copy(path, tmp_path / path.name)
    with pytest.raises(ImageReadError, match="single 2D DICOM image"):
        read_volume(tmp_path)


def test_heudiconv_enhanced_mr_with_non_parallel_frames_is_refused(need: Callable[[Path], Path]) -> None:
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
    colin: Volume,
    tmp_path: Path,
    syntax: str,
    reorient: Callable[..., Volume],
    rotation: Callable[[tuple[float, float, float]], np.ndarray],
    right_handed: Callable[[Volume], Volume],
    assert_same: Callable[[Volume, Volume], None],
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


def test_color_dicom_is_refused(need: Callable[[Path], Path]) -> None:
    with pytest.raises(ImageReadError, match="colour"):
        read_volume(need(PYDICOM_DATA / "color3d_jpeg_baseline.dcm"))


# --- Siemens mosaics (EPI, diffusion, perfusion): several slices tiled in one image per file ----------

MOSAIC_ADVICE = (
    r"Siemens mosaic series \(EPI, diffusion or perfusion\).*cannot read it as a 3D volume.*dcm2niix"
)


@pytest.mark.parametrize("as_folder", [False, True], ids=["file", "folder_of_the_file"])
def test_siemens_mosaic_file_is_refused_with_a_conversion_hint(
    heudiconv_data: Path, need: Callable[[Path], Path], tmp_path: Path, as_folder: bool
) -> None:
    """axasc35.dcm tiles 35 EPI slices in one 384x384 image; read plainly it would be one huge slice."""
    path = need(HEUDICONV_MOSAIC)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert "MOSAIC" in ds.ImageType and ds[0x0019, 0x100A].value == 35  # NumberOfImagesInMosaic
    if as_folder:
        shutil.copy(path, tmp_path / path.name)
        path = tmp_path
    with pytest.raises(ImageReadError, match=MOSAIC_ADVICE) as error:
        read_volume(path)
    message = str(error.value)
    assert "'axasc35.dcm'" in message and "each file holds 35 slices tiled in one image" in message
    assert "NIfTI" in message and "DICOM Diffusion Volume Plugin" in message


def test_siemens_mosaic_series_folder_is_refused_with_a_conversion_hint(
    heudiconv_data: Path, need: Callable[[Path], Path], tmp_path: Path
) -> None:
    """b0dwiForFmap: 3 diffusion mosaic files of 81 slices each, read through choose_series."""
    for path in sorted(need(HEUDICONV_MOSAIC_DWI).glob("*.dcm")):
        shutil.copy(path, tmp_path / path.name)
    (info,) = list_dicom_series(tmp_path)  # listing still works: the series can be named in messages
    assert info.number_of_files == 3 and info.description == "dMRI_mb3_AP_1.5"
    with pytest.raises(ImageReadError, match=MOSAIC_ADVICE) as error:
        read_volume(tmp_path)
    message = str(error.value)
    assert "'dMRI_mb3_AP_1.5'" in message and "each file holds 81 slices tiled in one image" in message
    assert "3 files are 3 volumes" in message and "4D" in message
    with pytest.raises(ImageReadError, match=MOSAIC_ADVICE):  # one file of it, chosen with its series
        read_volume(tmp_path / "b0dwi_for_fmap+00002.dcm", series_uid=info.uid)


def test_non_mosaic_files_still_read(
    heudiconv_data: Path, need: Callable[[Path], Path], small_series: tuple[Volume, Path]
) -> None:
    """Control: the mosaic check leaves ordinary files alone, Siemens ones included."""
    assert read_volume(need(PYDICOM_DATA / "emri_small.dcm")).array.shape == (10, 64, 64)
    assert read_volume(small_series[1]).array.shape == small_series[0].array.shape
    (field_map,) = need(HEUDICONV_FIELD_MAP).glob("*.dcm")  # a Siemens file with the same private header
    assert "MOSAIC" not in pydicom.dcmread(field_map, stop_before_pixels=True).ImageType
    with pytest.raises(ImageReadError, match="single 2D DICOM image") as error:
        read_volume(field_map)
    assert "mosaic" not in str(error.value)


# --- Folders with several series, missing and duplicated slices --------------------------------------


def test_dicomdir_folder_lists_its_series_and_reads_the_chosen_one(need: Callable[[Path], Path]) -> None:
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


def test_real_series_with_a_gap_and_a_real_triplanar_pilot_are_refused(need: Callable[[Path], Path]) -> None:
    folder = need(DICOMDIR_TESTS)
    with pytest.raises(ImageReadError, match="missing slice.*17106.*17136"):
        read_volume(folder, series_uid=CT2_UID)
    with pytest.raises(ImageReadError, match="different orientations"):
        read_volume(folder, series_uid=PILOT_UID)


def test_real_diffusion_series_with_several_images_per_position_is_refused(
    need: Callable[[Path], Path], tmp_path: Path
) -> None:
    """b0dwiForFmap holds 3 diffusion volumes at one position. Its files are mosaics, refused as such
    first (see the mosaic tests); without the MOSAIC mark they are 3 images at one position: 4D data."""
    for path in sorted(need(HEUDICONV_MOSAIC_DWI).glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.ImageType = [v for v in ds.ImageType if v != "MOSAIC"]
        ds.save_as(tmp_path / path.name)
    with pytest.raises(ImageReadError, match="duplicated slice.*4D"):
        read_volume(tmp_path)


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
    small_series: tuple[Volume, Path],
    small_copy: Path,
    need: Callable[[Path], Path],
    assert_same: Callable[[Volume, Volume], None],
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
