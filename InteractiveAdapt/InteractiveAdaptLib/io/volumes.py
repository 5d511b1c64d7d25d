"""Read and write 3D MRI volumes (NIfTI, NRRD, DICOM) with their geometry, through SimpleITK."""

from __future__ import annotations

import gzip
import logging
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from InteractiveAdaptLib.errors import ImageReadError
from InteractiveAdaptLib.geometry import spacing_kji
from InteractiveAdaptLib.io import dicom_reading, dicom_writing
from InteractiveAdaptLib.io.dicom_reading import MultipleSeriesError, SeriesInfo, list_dicom_series
from InteractiveAdaptLib.io.dicom_writing import DicomSeriesHeader
from InteractiveAdaptLib.io.volume_checks import (
    MemoryLimits,
    check_case_memory,
    check_finite,
    header_bytes_per_voxel,
)

__all__ = [
    "DicomSeriesHeader",
    "MultipleSeriesError",
    "SeriesInfo",
    "Volume",
    "list_dicom_series",
    "read_volume",
    "volume_from_sitk",
    "volume_to_sitk",
    "write_dicom_series",
    "write_volume",
]

log = logging.getLogger(__name__)

# ITK geometry is LPS, Slicer's is RAS: flip the sign of the first two world axes.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class Volume:
    """A scalar 3D volume. `array` is indexed (K, J, I) like Slicer's and SimpleITK's numpy views."""

    array: np.ndarray
    ijk_to_ras: np.ndarray  # 4x4; columns 0..2 are the RAS steps of one voxel along I, J, K
    # What the user should be told about this image when it opens (its memory, voxels that are not
    # numbers), one sentence each (io/volume_checks.py).
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def spacing_kji(self) -> tuple[float, float, float]:
        """Voxel size in mm, in array axis order (K, J, I)."""
        return spacing_kji(self.ijk_to_ras)


def volume_from_sitk(
    image: sitk.Image, name: str = "The image", limits: MemoryLimits | None = None
) -> Volume:
    """Convert a 3D scalar SimpleITK image to a Volume (RAS geometry); `name` says which image the
    error messages and notes are about.

    Raises:
        ImageReadError: not one 3D grey-scale volume, or no voxel is a number.
        ImageTooLargeError: a case on it would need more memory than this computer has.
    """
    _check_scalar_3d(image.GetDimension(), image.GetNumberOfComponentsPerPixel(), name)
    memory = check_case_memory(image.GetSize(), image.GetSizeOfPixelComponent(), name, limits)
    direction = np.array(image.GetDirection(), float).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    m[:3, 3] = _LPS_TO_RAS @ np.array(image.GetOrigin(), float)
    array = sitk.GetArrayFromImage(image)
    not_numbers = check_finite(array, name)
    if not_numbers:  # the engine says it when a case starts on it (engine/normalization.py)
        log.info(not_numbers)
    if memory:
        log.warning(memory)
    return Volume(array=array, ijk_to_ras=m, notes=tuple(n for n in (not_numbers, memory) if n))


def _check_scalar_3d(dimension: int, components: int, name: str) -> None:
    if dimension != 3:
        raise ImageReadError(
            f"{name} has {dimension} dimensions; InteractiveAdapt needs one 3D volume. "
            "Choose a single 3D series (not a 2D image or a 4D/time series)."
        )
    if components != 1:
        raise ImageReadError(
            f"{name} is in colour (RGB) or has several components per voxel; "
            "InteractiveAdapt needs a grey-scale MRI volume."
        )


def _check_header(path: Path, limits: MemoryLimits | None) -> None:
    """Refuse, from the file's header and before any voxel is read, an image that is not one 3D
    grey-scale volume or too large for this computer (a file with no readable header is left to the read)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return
    name = f"'{path.name}'"
    _check_scalar_3d(reader.GetDimension(), reader.GetNumberOfComponents(), name)
    check_case_memory(reader.GetSize(), header_bytes_per_voxel(reader), name, limits)


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """Convert a Volume back to a SimpleITK image (LPS geometry)."""
    image = sitk.GetImageFromArray(volume.array)
    steps = volume.ijk_to_ras[:3, :3]
    spacing = np.linalg.norm(steps, axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (_LPS_TO_RAS @ steps / spacing).ravel()])
    image.SetOrigin([float(v) for v in _LPS_TO_RAS @ volume.ijk_to_ras[:3, 3]])
    return image


def read_volume(
    path: str | Path, series_uid: str | None = None, limits: MemoryLimits | None = None
) -> Volume:
    """Read a NIfTI/NRRD file, a DICOM folder (one series, chosen by `series_uid` if several) or DICOM file.

    `limits`: the case memory above which the volume gets a note or is refused (default: this computer's).
    The volume's `notes` say what the user should be told (its memory, voxels that are not numbers).

    Raises:
        ImageReadError: as `volume_from_sitk`, or the file cannot be read.
        ImageTooLargeError: too large for this computer; a NIfTI or NRRD file is refused from its header.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"The image '{path}' does not exist. Check the path and try again.")
    if path.is_file() and path.name.upper() == "DICOMDIR":
        path = path.parent  # a DICOMDIR indexes the files of its folder; read them directly
    if path.is_dir():
        return volume_from_sitk(dicom_reading.read_dicom_folder(path, series_uid), limits=limits)
    if dicom_reading.is_dicom_file(path):
        if series_uid is not None:
            found = dicom_reading.choose_series(path.parent, series_uid)
            if path.resolve() not in {f.resolve() for f in found.files}:
                raise ImageReadError(f"'{path.name}' is not part of the DICOM series {series_uid}.")
        return volume_from_sitk(dicom_reading.read_dicom_file(path), limits=limits)
    if series_uid is not None:
        log.warning("Series UID %s ignored: '%s' is not DICOM.", series_uid, path.name)
    _check_header(path, limits)
    not_numbers = _check_nifti_complete(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        log.info("Reading %s failed: %s", path, str(exc).strip().splitlines()[-1])  # ITK's words, for the log
        raise ImageReadError(
            f"'{path.name}' could not be read as an image: it is not in a format InteractiveAdapt reads. "
            "Use a NIfTI (.nii/.nii.gz), NRRD (.nrrd) file or a DICOM folder."
        ) from exc
    if not_numbers is not None:
        image = _restore_not_numbers(image, not_numbers)
    return volume_from_sitk(image, f"'{path.name}'", limits)


def _restore_not_numbers(image: sitk.Image, where: np.ndarray) -> sitk.Image:
    """`image` with NaN again in the voxels `where` (flat, in the file's order, which is ITK's) that
    ITK's NIfTI reading set to 0 without a word, so that they are told and treated as in other formats."""
    array = sitk.GetArrayFromImage(image)
    if not np.issubdtype(array.dtype, np.floating) or array.size != where.size:
        return image
    array.reshape(-1)[where] = np.nan
    restored = sitk.GetImageFromArray(array)
    restored.CopyInformation(image)
    return restored


def _scan_content(
    path: Path, vox_offset: int, dtype: np.dtype | None, voxels: int
) -> tuple[int, np.ndarray | None]:
    """Bytes of the file's content, uncompressed if gzipped (counting stops where a damaged stream ends),
    and, for float voxels of type `dtype` (byte order found from the header's first field, 348 or 540),
    where the voxels that are not numbers are (a flat mask; None when there are none)."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    if not gzipped and dtype is None:
        return path.stat().st_size, None
    size, where = 0, None
    try:
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as f:  # noqa: SIM115 (closed by with)
            head = f.read(vox_offset)
            size = len(head)
            if dtype is not None and len(head) >= 4:
                dtype = dtype.newbyteorder("<" if int.from_bytes(head[:4], "little") in (348, 540) else ">")
            first = 0  # the voxel the next chunk starts at
            while chunk := f.read(1 << 22):  # a multiple of every voxel size: chunks start on a voxel
                size += len(chunk)
                if dtype is None or first >= voxels:
                    continue
                values = np.frombuffer(chunk[: len(chunk) - len(chunk) % dtype.itemsize], dtype)[
                    : voxels - first
                ]
                bad = ~np.isfinite(values)
                if bad.any():
                    where = np.zeros(voxels, bool) if where is None else where
                    where[first : first + bad.size] = bad
                first += values.size
    except (EOFError, OSError, zlib.error):
        pass
    return size, where


_NIFTI_FLOATS = {"16": np.dtype(np.float32), "64": np.dtype(np.float64)}  # NIfTI datatype codes


def _check_nifti_complete(path: Path) -> np.ndarray | None:
    """Refuse a truncated NIfTI file, which ITK would read with the missing voxels set to 0; return where
    its voxels that are not numbers are (None when there are none), which ITK would also read as 0."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        dims = int(reader.GetMetaData("dim[0]"))
        voxels = math.prod(int(reader.GetMetaData(f"dim[{i}]")) for i in range(1, dims + 1))
        vox_offset = int(float(reader.GetMetaData("vox_offset")))
        expected = vox_offset + voxels * int(reader.GetMetaData("bitpix")) // 8
        dtype = _NIFTI_FLOATS.get(reader.GetMetaData("datatype").strip())
    except (RuntimeError, ValueError):
        return None  # no usable header: the full read below reports the problem
    actual, not_numbers = _scan_content(path, vox_offset, dtype, voxels)
    if actual < expected:
        raise ImageReadError(
            f"'{path.name}' is incomplete: it holds {actual} of the {expected} bytes its header announces "
            "(the copy or download was cut short). Copy the file again."
        )
    return not_numbers


def write_volume(volume: Volume, path: str | Path) -> None:
    """Write a Volume to a NIfTI or NRRD file (format from the extension)."""
    sitk.WriteImage(volume_to_sitk(volume), str(path), useCompression=True)


def write_dicom_series(
    volume: Volume,
    folder: str | Path,
    *,
    patient_name: str = "Anonymous",
    patient_id: str = "ANONYMOUS",
    study_description: str = "",
    series_description: str = "InteractiveAdapt",
    series_number: int = 1,
    modality: str = "MR",
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> list[Path]:
    """Write a Volume as a single-frame DICOM series (MR Image Storage), one file per K slice.

    Intensities must be integers that fit 16 bits (they are stored exactly, rescale 1/0). DICOM readers
    stack slices along the normal of the slice plane, so a left-handed volume reads back with K reversed
    (same voxels at the same RAS positions).
    """
    header = DicomSeriesHeader(
        patient_name=patient_name,
        patient_id=patient_id,
        study_description=study_description,
        series_description=series_description,
        series_number=series_number,
        modality=modality,
        study_uid=study_uid,
        series_uid=series_uid,
    )
    return dicom_writing.write_dicom_series(volume_to_sitk(volume), folder, header)
