"""What a volume must be before a case is made of it (io/volume_checks.py, through `read_volume`): not too
large for this computer (refused from the header, before a voxel is read; a large one gets a note of the
memory a case takes), and not a label map opened as the MRI (mricron's atlases are refused, its 8-bit
MRIs, Colin27's ch2 among them, are not).

The large files are real: a NIfTI or NRRD header that declares the size, followed by gzip-compressed
zeros (for the largest, the same gzip member of 1 GiB of zeros repeated: a few MB on disk)."""

from __future__ import annotations

import gzip
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from InteractiveAdaptLib.errors import ImageReadError, ImageTooLargeError, LabelMapError
from InteractiveAdaptLib.io.volume_checks import (
    CASE_BYTES_PER_VOXEL,
    MemoryLimits,
    case_memory_bytes,
    check_case_memory,
    check_not_label_map,
    fill_non_numbers,
    physical_memory_bytes,
)
from InteractiveAdaptLib.io.volumes import Volume, read_volume, volume_from_sitk, volume_to_sitk

MRICRON = Path("/usr/share/mricron/templates")
MRIS = ("ch2.nii.gz", "ch2bet.nii.gz", "ch2better.nii.gz", "inia19-t1-brain.nii.gz")
LABEL_MAPS = (
    "aal.nii.gz",
    "brodmann.nii.gz",
    "AICHAmc.nii.gz",
    "JHU-WhiteMatter-labels-2mm.nii.gz",
    "HarvardOxford-cort-maxprob-thr0-1mm.nii.gz",
    "natbrainlab.nii.gz",
    "inia19-NeuroMaps.nii.gz",
)
GIB = 1 << 30
HUGE = (4096, 4096, 1024)  # I, J, K of an 8-bit volume: 16 GiB of voxels, a case would need ~550 GB
LARGE = (512, 512, 320)  # 8-bit: a case takes ~2.7 GB


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data file missing: {path}")
    return path


def _zeros_gzip(count: int, level: int = 1) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # one gzip member
    block = bytes(min(count, 1 << 24))
    parts, left = [], count
    while left:
        parts.append(compressor.compress(block[: min(left, len(block))]))
        left -= min(left, len(block))
    return b"".join(parts) + compressor.flush()


def _gzip_of_zeros(count: int) -> bytes:
    """`count` zero bytes gzip-compressed: one gzip member per GiB, all the same (compressed once)."""
    if count <= GIB:
        return _zeros_gzip(count)
    whole = _zeros_gzip(GIB, level=9)
    return whole * (count // GIB) + (_zeros_gzip(count % GIB) if count % GIB else b"")


def write_zeros_nrrd(path: Path, size_ijk: tuple[int, int, int]) -> Path:
    """An attached NRRD of 8-bit zeros, gzip-encoded."""
    header = (
        "NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\n"
        f"sizes: {' '.join(map(str, size_ijk))}\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n"
        "space origin: (0,0,0)\nencoding: gzip\n\n"
    )
    path.write_bytes(header.encode() + _gzip_of_zeros(int(np.prod(size_ijk))))
    return path


def write_zeros_nifti(path: Path, size_ijk: tuple[int, int, int]) -> Path:
    """A .nii.gz of 8-bit zeros: a real NIfTI-1 header (written by ITK, its dim[] set to `size_ijk`)."""
    small = path.with_name("one voxel.nii")
    sitk.WriteImage(sitk.Image(1, 1, 1, sitk.sitkUInt8), str(small))
    header = bytearray(small.read_bytes()[:352])
    small.unlink()
    header[40:56] = np.array([3, *size_ijk, 1, 1, 1, 1], "<i2").tobytes()
    path.write_bytes(gzip.compress(bytes(header)) + _gzip_of_zeros(int(np.prod(size_ijk))))
    return path


# ------------------------------------------------------------------ memory


@pytest.mark.parametrize("write", [write_zeros_nrrd, write_zeros_nifti])
def test_a_volume_too_large_for_this_computer_is_refused_before_its_voxels_are_read(tmp_path, write):
    path = write(tmp_path / f"whole body{'.nrrd' if write is write_zeros_nrrd else '.nii.gz'}", HUGE)
    assert path.stat().st_size < 40e6  # small on disk, 16 GiB of voxels once read
    need = case_memory_bytes(int(np.prod(HUGE)), 1)
    memory = physical_memory_bytes()
    assert memory is not None and need > memory
    start = time.monotonic()
    with pytest.raises(ImageTooLargeError) as refused:
        read_volume(path)
    assert time.monotonic() - start < 2  # from the header: the 16 GiB were never read
    message = str(refused.value)
    assert f"'{path.name}' is too large to segment here (4096 x 4096 x 1024 voxels)" in message
    assert f"about {need / 1e12:.1f} TB of memory" in message or f"about {need / 1e9:.1f} GB" in message
    assert "this computer has" in message and "Crop it" in message


def test_a_large_volume_opens_with_a_note_of_its_memory(tmp_path):
    path = write_zeros_nrrd(tmp_path / "large.nrrd", LARGE)
    volume = read_volume(path, limits=MemoryLimits(warn_bytes=2 * GIB, refuse_bytes=64 * GIB))
    assert volume.array.shape == LARGE[::-1] and volume.array.dtype == np.uint8
    need = int(np.prod(LARGE)) * (CASE_BYTES_PER_VOXEL + 2)
    assert volume.notes == (
        f"'large.nrrd' is large (512 x 512 x 320 voxels): a case on it takes about {need / 1e9:.1f} GB of "
        "memory, and each step is slower. Close other programs if the computer slows down.",
    )
    small = write_zeros_nrrd(tmp_path / "small.nrrd", (64, 64, 40))
    assert read_volume(small).notes == ()


def test_the_limits_follow_this_computers_memory_and_the_image_type():
    limits = MemoryLimits(warn_bytes=2 * 10**9, refuse_bytes=9 * 10**9, total_bytes=10 * 10**9)
    assert check_case_memory((512, 512, 100), 2, "'a'", limits) == ""  # 0.9 GB
    assert "'a' is large (512 x 512 x 300 voxels): a case on it takes about 2.7 GB" in check_case_memory(
        (512, 512, 300), 2, "'a'", limits
    )
    with pytest.raises(ImageTooLargeError, match=r"about 10.0 GB of memory, and this computer has 10.0 GB"):
        check_case_memory((512, 512, 1000), 4, "'a'", limits)  # float32 takes more than 8-bit
    assert check_case_memory((512, 512, 1000), 1, "'a'", limits)  # the same size in 8 bits: a note
    this = MemoryLimits.of_this_computer()
    assert this.total_bytes == physical_memory_bytes()
    assert this.warn_bytes <= 2 * GIB < this.refuse_bytes < this.total_bytes


def test_an_image_already_read_is_checked_before_a_case_is_made_of_it():
    """A DICOM series has no one header with its size: it is checked right after the read."""
    image = volume_to_sitk(Volume(np.zeros((100, 10, 10), np.int16), np.eye(4)))
    limits = MemoryLimits(warn_bytes=1000, refuse_bytes=100_000)
    with pytest.raises(ImageTooLargeError, match="'series 3' is too large to segment here"):
        volume_from_sitk(image, "'series 3'", limits)
    assert "is large" in volume_from_sitk(image, "'series 3'", MemoryLimits(1000, 10**6)).notes[0]


# ------------------------------------------------------------------ label maps


@pytest.mark.parametrize("name", MRIS)
def test_real_mris_are_not_label_maps(name):
    path = _need(MRICRON / name)
    check_not_label_map(read_volume(path).array, f"'{name}'", path)


@pytest.mark.parametrize("name", LABEL_MAPS)
def test_atlases_are_refused_as_the_mri(name):
    path = _need(MRICRON / name)
    with pytest.raises(LabelMapError) as refused:
        check_not_label_map(read_volume(path).array, f"'{name}'", path)
    assert str(refused.value).startswith(f"'{name}' looks like a label map (an atlas or a segmentation)")
    assert "Open the MRI itself" in str(refused.value)
    assert isinstance(refused.value, ImageReadError)


def test_a_mask_saved_as_float_is_a_label_map():
    head = read_volume(_need(MRICRON / "ch2.nii.gz"))
    mask = (head.array > 100).astype(np.float32)  # a binary mask saved as float
    with pytest.raises(LabelMapError, match="'mask.nrrd' looks like a label map"):
        check_not_label_map(mask, "'mask.nrrd'")
    check_not_label_map(head.array.astype(np.float32), "'head.nrrd'")  # the MRI itself, as float


@pytest.mark.parametrize("hint", ["nifti intent", "slicer segmentation"])
def test_the_header_saying_labels_refuses_a_label_map_that_its_voxels_alone_would_let_through(tmp_path, hint):
    """An atlas with 30 % of its labelled voxels changed at random: uniform regions remain, fewer than the
    voxels alone need (share 0.13), enough when the header says labels."""
    aal = read_volume(_need(MRICRON / "aal.nii.gz"))
    rng = np.random.default_rng(0)
    noisy = aal.array.copy()
    changed = (noisy > 0) & (rng.random(noisy.shape) < 0.3)
    noisy[changed] = rng.integers(1, 117, int(changed.sum()))
    image = volume_to_sitk(Volume(noisy, aal.ijk_to_ras))
    plain = tmp_path / "plain.nii.gz"
    sitk.WriteImage(image, str(plain))
    check_not_label_map(read_volume(plain).array, "'plain.nii.gz'", plain)  # no word in the header
    if hint == "nifti intent":  # ITK writes no intent: set the header's intent_code (bytes 68-69) to label
        data = bytearray(gzip.decompress(plain.read_bytes()))
        data[68:70] = np.array([1002], "<i2").tobytes()
        labelled = tmp_path / "labels.nii.gz"
        labelled.write_bytes(gzip.compress(bytes(data)))
    else:
        labelled = tmp_path / "labels.seg.nrrd"
        image.SetMetaData("Segment0_ID", "Segment_1")
        sitk.WriteImage(image, str(labelled))
    with pytest.raises(LabelMapError, match="uniform regions and its header says so"):
        check_not_label_map(read_volume(labelled).array, f"'{labelled.name}'", labelled)


def test_voxels_that_are_not_numbers_are_shown_as_the_darkest_value():
    array = np.array([[[3.0, np.nan], [np.inf, -2.0]]], np.float32)
    filled = fill_non_numbers(array)
    np.testing.assert_array_equal(filled, [[[3.0, -2.0], [-2.0, -2.0]]])
    assert np.isnan(array[0, 0, 1])  # a copy: the image read stays as it was
    usual = np.ones((2, 2, 2), np.float32)
    assert fill_non_numbers(usual) is usual and fill_non_numbers(usual.astype(np.uint8)).dtype == np.uint8
