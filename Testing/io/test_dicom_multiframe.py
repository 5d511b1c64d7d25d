"""Per-frame geometry of enhanced multi-frame DICOM files (io/dicom_multiframe.py), parsed straight from the
file, against what pydicom reads: the functional groups of real files (pydicom-data's enhanced CT and
segmentation, little and big endian; heudiconv's enhanced MR with private groups), pydicom-data's enhanced
MR emri_small and its RLE, JPEG-LS, JPEG 2000 and big-endian variants given an oblique geometry by the test
(real pixels, real compressed pixel data), every encoding of the groups, and the damaged or incomplete
files it must pass over (None, with a warning where the file is damaged) or refuse (a clear error).
Shared fixtures live in conftest.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_samples import HEUDICONV_ENHANCED, PYDICOM_DATA
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    EnhancedMRImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from InteractiveAdaptLib.errors import ImageReadError
from InteractiveAdaptLib.io.dicom_multiframe import frame_geometry
from InteractiveAdaptLib.io.volumes import read_volume

EMRI = "emri_small.dcm"  # enhanced MR, 10 frames of 64 x 64, no functional groups
EMRI_VARIANTS = [
    EMRI,
    "emri_small_RLE.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_big_endian.dcm",
]
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
ATOL = 1e-4


# ---------------------------------------------------------------- what pydicom reads


def pydicom_groups(path: Path) -> dict[str, np.ndarray]:
    """Each frame's position, orientation, pixel spacing and rescale as pydicom reads them (a frame's own
    functional group first, else the shared one; no rescale is slope 1, intercept 0)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else Dataset()

    def value(frame: Dataset, sequence: str, attribute: str, default: float | None = None):
        for source in (frame, shared):
            if sequence in source and attribute in source[sequence].value[0]:
                return source[sequence].value[0][attribute].value
        assert default is not None, f"frame without {attribute}"
        return default

    frames = ds.PerFrameFunctionalGroupsSequence
    return {
        "positions": np.array(
            [value(f, "PlanePositionSequence", "ImagePositionPatient") for f in frames], float
        ),
        "orientations": np.array(
            [value(f, "PlaneOrientationSequence", "ImageOrientationPatient") for f in frames], float
        ),
        "spacings": np.array([value(f, "PixelMeasuresSequence", "PixelSpacing") for f in frames], float),
        "slopes": np.array(
            [value(f, "PixelValueTransformationSequence", "RescaleSlope", 1.0) for f in frames]
        ),
        "intercepts": np.array(
            [value(f, "PixelValueTransformationSequence", "RescaleIntercept", 0.0) for f in frames], float
        ),
    }


def assert_geometry_is_pydicoms(path: Path) -> None:
    expected = pydicom_groups(path)
    geometry = frame_geometry(path, len(expected["positions"]))
    assert geometry is not None
    np.testing.assert_allclose(geometry.positions, expected["positions"], atol=1e-9)
    np.testing.assert_allclose(geometry.orientations, expected["orientations"], atol=1e-9)
    np.testing.assert_allclose(geometry.pixel_spacing, expected["spacings"][0], atol=1e-9)
    np.testing.assert_allclose(geometry.slopes, expected["slopes"], atol=1e-9)
    np.testing.assert_allclose(geometry.intercepts, expected["intercepts"], atol=1e-9)


def expected_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(IJK -> RAS matrix, stacking order of the frames) of an enhanced file from pydicom's reading:
    frames sorted along the slice normal, the first one's position as origin."""
    groups = pydicom_groups(path)
    row, column = groups["orientations"][0, :3], groups["orientations"][0, 3:]
    normal = np.cross(row, column)
    distance = groups["positions"] @ normal
    order = np.argsort(distance)
    step = float(np.mean(np.diff(distance[order])))
    row_spacing, column_spacing = groups["spacings"][0]
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ np.column_stack([row * column_spacing, column * row_spacing, normal * step])
    matrix[:3, 3] = LPS_TO_RAS @ groups["positions"][order[0]]
    return matrix, order


# ---------------------------------------------------------------- files the tests write


def oblique_groups(frames: int, reverse: bool = True) -> tuple[Dataset, list[Dataset]]:
    """Shared and per-frame functional groups of an oblique stack: 0.9 x 0.8 mm pixels, 1.2 mm apart,
    stored from the last slice to the first, each frame with its own rescale."""
    a, b = np.radians(20.0), np.radians(-10.0)
    row = np.array([np.cos(a), np.sin(a), 0.0])
    column = np.array([-np.sin(a) * np.cos(b), np.cos(a) * np.cos(b), np.sin(b)])
    normal = np.cross(row, column)
    measures, orientation, shared = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = [0.9, 0.8], 1.2
    orientation.ImageOrientationPatient = [round(float(v), 8) for v in (*row, *column)]
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = [measures], [orientation]
    per_frame = []
    for k in range(frames):
        frame, position, value = Dataset(), Dataset(), Dataset()
        slot = frames - 1 - k if reverse else k
        origin = np.array([10.0, -20.0, 30.0])
        position.ImagePositionPatient = [round(float(v), 4) for v in origin + slot * 1.2 * normal]
        value.RescaleSlope, value.RescaleIntercept, value.RescaleType = 1.0 + 0.5 * k, -3.0 * k, "US"
        frame.PlanePositionSequence, frame.PixelValueTransformationSequence = [position], [value]
        per_frame.append(frame)
    return shared, per_frame


def emri_with_groups(name: str, folder: Path) -> Path:
    """A pydicom-data emri_small file (real header and pixel data, compressed as it is) with the oblique
    functional groups added."""
    ds = pydicom.dcmread(PYDICOM_DATA / name)
    shared, per_frame = oblique_groups(int(ds.NumberOfFrames))
    ds.SharedFunctionalGroupsSequence, ds.PerFrameFunctionalGroupsSequence = [shared], per_frame
    path = folder / name
    ds.save_as(path)
    return path


def small_enhanced(
    syntax: str = ExplicitVRLittleEndian,
    undefined_length: bool = False,
    frames: int = 3,
    shared: Dataset | None = None,
    per_frame: list[Dataset] | None = None,
) -> Dataset:
    """A small enhanced MR data set (4 x 5 pixels per frame) with the oblique functional groups, or the
    given ones; `undefined_length` writes every sequence and item with undefined length."""
    if shared is None or per_frame is None:
        shared, per_frame = oblique_groups(frames)
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = EnhancedMRImageStorage, generate_uid(), "MR"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4, 5, len(per_frame)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SharedFunctionalGroupsSequence, ds.PerFrameFunctionalGroupsSequence = [shared], per_frame
    if undefined_length:
        for element in ds.iterall():
            if element.VR == "SQ":
                element.is_undefined_length = True
                for item in element.value:
                    item.is_undefined_length_sequence_item = True
    pixels = np.arange(len(per_frame) * 20, dtype=np.uint16).reshape(len(per_frame), 4, 5)
    ds.PixelData = pixels.astype(">u2" if syntax == ExplicitVRBigEndian else "<u2").tobytes()
    ds["PixelData"].VR = "OW"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


# ---------------------------------------------------------------- real files


REAL_FILES_WITH_GROUPS = [
    PYDICOM_DATA / "eCT_Supplemental.dcm",  # enhanced CT: undefined lengths, a shared rescale (-1024)
    PYDICOM_DATA / "liver.dcm",  # segmentation: shared orientation and pixel size, positions per frame
    PYDICOM_DATA / "liver_expb.dcm",  # the same in explicit VR big endian, defined lengths
    HEUDICONV_ENHANCED,  # Philips enhanced MR: private groups, orientation and pixel size per frame
]


@pytest.mark.parametrize("path", REAL_FILES_WITH_GROUPS, ids=lambda p: p.name[:20])
def test_functional_groups_of_real_files_are_what_pydicom_reads(
    path: Path, need: Callable[[Path], Path]
) -> None:
    assert_geometry_is_pydicoms(need(path))


def test_real_enhanced_ct_reads_with_the_geometry_and_pixels_pydicom_gives(
    need: Callable[[Path], Path],
) -> None:
    """Its two frames are stored head first along the slice normal: the volume stacks them the other way."""
    path = need(PYDICOM_DATA / "eCT_Supplemental.dcm")
    matrix, order = expected_volume(path)
    assert list(order) == [1, 0]
    volume = read_volume(path)
    np.testing.assert_allclose(volume.ijk_to_ras, matrix, atol=ATOL)
    assert volume.spacing_kji == pytest.approx((10.0, 0.388672, 0.388672))
    groups = pydicom_groups(path)
    stored = pydicom.dcmread(path).pixel_array.astype(np.float64)
    expected = stored * groups["slopes"][:, None, None] + groups["intercepts"][:, None, None]
    np.testing.assert_array_equal(volume.array, expected[order])


@pytest.mark.parametrize("name", ["liver.dcm", "liver_expb.dcm"])
def test_real_segmentation_frames_are_placed_where_pydicom_says(
    name: str, need: Callable[[Path], Path]
) -> None:
    path = need(PYDICOM_DATA / name)
    matrix, order = expected_volume(path)
    volume = read_volume(path)
    np.testing.assert_allclose(volume.ijk_to_ras, matrix, atol=ATOL)
    np.testing.assert_array_equal(volume.array > 0, pydicom.dcmread(path).pixel_array[order] > 0)


@pytest.mark.parametrize("name", EMRI_VARIANTS)
def test_emri_small_and_its_codecs_have_no_functional_groups(name: str, need: Callable[[Path], Path]) -> None:
    """The parser stops at the pixel data, compressed or not, and finds no per-frame groups."""
    path = need(PYDICOM_DATA / name)
    assert "PerFrameFunctionalGroupsSequence" not in pydicom.dcmread(path, stop_before_pixels=True)
    assert frame_geometry(path, 10) is None


@pytest.mark.parametrize("name", EMRI_VARIANTS)
def test_emri_small_with_an_oblique_geometry_reads_as_pydicom_places_it(
    name: str, tmp_path: Path, need: Callable[[Path], Path]
) -> None:
    """Real pixels (RLE, JPEG-LS, JPEG 2000, big endian as shipped), frames stored in reverse with a
    rescale each: spacing, direction, origin and voxels as pydicom's reading of the same file gives them."""
    need(PYDICOM_DATA / name)
    path = emri_with_groups(name, tmp_path)
    assert_geometry_is_pydicoms(path)
    matrix, order = expected_volume(path)
    assert list(order) == list(range(10))[::-1]
    volume = read_volume(path)
    np.testing.assert_allclose(volume.ijk_to_ras, matrix, atol=ATOL)
    assert volume.spacing_kji == pytest.approx((1.2, 0.9, 0.8), abs=1e-3)
    direction = volume.ijk_to_ras[:3, :3] / np.array(volume.spacing_kji[::-1])
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-6)  # orthonormal, oblique
    assert abs(direction[2, 2]) < 0.99
    groups = pydicom_groups(path)
    stored = pydicom.dcmread(PYDICOM_DATA / EMRI).pixel_array.astype(np.float64)  # uncompressed reference
    expected = stored * groups["slopes"][:, None, None] + groups["intercepts"][:, None, None]
    np.testing.assert_allclose(volume.array, expected[order], atol=1e-3)


# ---------------------------------------------------------------- every encoding of the groups


@pytest.mark.parametrize("undefined_length", [False, True], ids=["defined", "undefined_length"])
@pytest.mark.parametrize(
    "syntax",
    [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian],
    ids=lambda s: s.name,
)
def test_every_encoding_gives_the_geometry_pydicom_reads(
    syntax: str, undefined_length: bool, tmp_path: Path
) -> None:
    path = save(small_enhanced(syntax, undefined_length), tmp_path / "enhanced.dcm")
    assert_geometry_is_pydicoms(path)
    assert frame_geometry(path, 3).slopes.tolist() == [1.0, 1.5, 2.0]


def test_groups_written_as_undefined_length_un_are_read_as_implicit_vr(tmp_path: Path) -> None:
    """A converter that does not know a sequence writes it as UN of undefined length; its content is then
    implicit VR little endian (PS3.5 6.2.2), whatever the file's own syntax."""
    ds = small_enhanced(undefined_length=True)
    reference = save(ds, tmp_path / "sq.dcm")
    implicit = DicomBytesIO()
    implicit.is_little_endian, implicit.is_implicit_VR = True, True
    write_data_element(implicit, ds["SharedFunctionalGroupsSequence"])
    content = implicit.getvalue()[8:]  # after the implicit element's tag and (undefined) length
    assert implicit.getvalue()[4:8] == b"\xff\xff\xff\xff"
    un_element = b"\x00\x52\x29\x92" + b"UN\x00\x00" + b"\xff\xff\xff\xff" + content
    del ds.SharedFunctionalGroupsSequence
    without_shared = save(ds, tmp_path / "without_shared.dcm").read_bytes()
    per_frame_tag = b"\x00\x52\x30\x92"  # (5200,9230) little endian
    assert without_shared.count(per_frame_tag) == 1
    at = without_shared.index(per_frame_tag)
    path = tmp_path / "un.dcm"
    path.write_bytes(without_shared[:at] + un_element + without_shared[at:])
    got, expected = frame_geometry(path, 3), frame_geometry(reference, 3)
    assert got is not None
    for field in ("positions", "orientations", "pixel_spacing", "slopes", "intercepts"):
        np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))


def test_a_frame_s_own_values_win_over_the_shared_ones_and_no_rescale_is_one_and_zero(tmp_path: Path) -> None:
    shared, per_frame = oblique_groups(3)
    transformation = Dataset()
    transformation.RescaleSlope, transformation.RescaleIntercept, transformation.RescaleType = 2.0, 7.0, "US"
    shared.PixelValueTransformationSequence = [transformation]
    del per_frame[0].PixelValueTransformationSequence  # frame 1: the shared rescale
    moved = Dataset()
    moved.ImageOrientationPatient = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    per_frame[2].PlaneOrientationSequence = [moved]  # frame 3: its own (equal) orientation
    path = save(small_enhanced(shared=shared, per_frame=per_frame), tmp_path / "shared.dcm")
    assert_geometry_is_pydicoms(path)
    geometry = frame_geometry(path, 3)
    assert geometry.slopes.tolist() == [2.0, 1.5, 2.0] and geometry.intercepts.tolist() == [7.0, -3.0, -6.0]
    for frame in per_frame[1:]:
        del frame.PixelValueTransformationSequence
    del shared.PixelValueTransformationSequence
    path = save(small_enhanced(shared=shared, per_frame=per_frame), tmp_path / "no_rescale.dcm")
    geometry = frame_geometry(path, 3)
    assert geometry.slopes.tolist() == [1.0] * 3 and geometry.intercepts.tolist() == [0.0] * 3


# ---------------------------------------------------------------- incomplete and damaged files


def test_a_frame_count_other_than_the_groups_gives_no_geometry(tmp_path: Path) -> None:
    path = save(small_enhanced(), tmp_path / "enhanced.dcm")
    assert frame_geometry(path, 3) is not None
    assert frame_geometry(path, 2) is None and frame_geometry(path, 4) is None


@pytest.mark.parametrize(
    "damage",
    ["no_position", "five_orientation_values", "one_pixel_spacing_value", "no_pixel_spacing"],
)
def test_a_frame_without_a_usable_value_gives_no_geometry_and_the_reader_warns(
    damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared, per_frame = oblique_groups(3)
    if damage == "no_position":
        del per_frame[1].PlanePositionSequence
    elif damage == "five_orientation_values":
        orientation = shared.PlaneOrientationSequence[0]
        orientation.ImageOrientationPatient = list(orientation.ImageOrientationPatient)[:5]
    elif damage == "one_pixel_spacing_value":
        shared.PixelMeasuresSequence[0].PixelSpacing = [0.9]
    else:
        del shared.PixelMeasuresSequence
    path = save(small_enhanced(shared=shared, per_frame=per_frame), tmp_path / "enhanced.dcm")
    assert frame_geometry(path, 3) is None
    if damage == "one_pixel_spacing_value":  # GDCM refuses the file itself
        with pytest.raises(ImageReadError, match="'enhanced.dcm' could not be decoded"):
            read_volume(path)
        return
    with caplog.at_level(logging.WARNING):
        read_volume(path)  # GDCM's own geometry then, said in the log
    assert "'enhanced.dcm' holds 3 frames without per-frame geometry" in caplog.text


def test_a_value_that_is_not_a_number_gives_no_geometry(tmp_path: Path) -> None:
    path = save(small_enhanced(), tmp_path / "enhanced.dcm")
    data = path.read_bytes()
    spacing = b"0.9\\0.8 "  # PixelSpacing as written (even length)
    assert data.count(spacing) == 1
    path.write_bytes(data.replace(spacing, b"0.9\\abc "))
    assert frame_geometry(path, 3) is None


def test_frames_with_different_pixel_sizes_are_refused(tmp_path: Path) -> None:
    shared, per_frame = oblique_groups(3)
    other = Dataset()
    other.PixelSpacing, other.SliceThickness = [0.9, 0.7], 1.2
    per_frame[2].PixelMeasuresSequence = [other]
    path = save(small_enhanced(shared=shared, per_frame=per_frame), tmp_path / "mixed.dcm")
    message = "'mixed.dcm' has frames with different pixel sizes; it is not one 3D volume."
    with pytest.raises(ImageReadError, match=message):
        frame_geometry(path, 3)
    with pytest.raises(ImageReadError, match=message):
        read_volume(path)


def test_a_damaged_sequence_gives_no_geometry_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = save(small_enhanced(), tmp_path / "damaged.dcm")
    data = bytearray(path.read_bytes())
    at = bytes(data).index(b"\x00\x52\x30\x92")  # the per-frame groups: tag, "SQ", 2 spare bytes, length
    item = at + 12
    assert data[item : item + 4] == b"\xfe\xff\x00\xe0"  # its first item
    data[item : item + 4] = b"\x08\x00\x08\x00"  # now a data element where an item must be
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert frame_geometry(path, 3) is None
    assert "Could not parse the functional groups of 'damaged.dcm'" in caplog.text
    assert "unexpected tag 00080008 in a sequence" in caplog.text


def test_a_damaged_deflated_stream_gives_no_geometry_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = save(small_enhanced(DeflatedExplicitVRLittleEndian), tmp_path / "deflated.dcm")
    assert frame_geometry(path, 3) is not None
    data = path.read_bytes()
    meta_end = 132 + 12 + int.from_bytes(data[140:144], "little")  # preamble, DICM, group length element
    path.write_bytes(data[:meta_end] + b"\xff" * 64)
    with caplog.at_level(logging.WARNING):
        assert frame_geometry(path, 3) is None
    assert "Could not parse the functional groups of 'deflated.dcm'" in caplog.text


def test_files_that_are_not_enhanced_dicom_give_no_geometry(
    tmp_path: Path, need: Callable[[Path], Path], colin_series: tuple[Path, list[Path]]
) -> None:
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    text = tmp_path / "notes.dcm"
    text.write_text("Exported by the PACS.\n" * 20)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(emri_with_groups(EMRI, tmp_path).read_bytes()[:3000])
    single_frame = colin_series[1][0]  # a classic single-frame MR image
    for path in (empty, text, truncated, single_frame):
        assert frame_geometry(path, 10) is None, path.name
