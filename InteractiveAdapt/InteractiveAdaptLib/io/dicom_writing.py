"""Writing an image as an MR DICOM series (one file per slice, real geometry in every header)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from InteractiveAdaptLib.io.process_locale import kept_locale

log = logging.getLogger(__name__)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


@dataclass
class DicomSeriesHeader:
    """Header values of a written series besides its geometry; missing UIDs are generated."""

    patient_name: str = "Anonymous"
    patient_id: str = "ANONYMOUS"
    study_description: str = ""
    series_description: str = "InteractiveAdapt"
    series_number: int = 1
    modality: str = "MR"
    study_uid: str | None = None
    series_uid: str | None = None


def _ds(value: float) -> str:
    """A number as a DICOM decimal string: at most 16 characters, as precise as fits."""
    if abs(value) < 1e-12:
        return "0"
    for digits in range(15, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"{value} does not fit a DICOM decimal string")


def _ds_list(values: Sequence[float]) -> str:
    return "\\".join(_ds(float(v)) for v in values)


def new_uid() -> str:
    """A globally unique DICOM UID derived from a random UUID (ISO/IEC 9834-8, root 2.25)."""
    return f"2.25.{uuid.uuid4().int}"


def _stored_pixel_type(array: np.ndarray) -> int:
    """uint16 or int16, whichever holds the values exactly; ValueError otherwise."""
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        raise ValueError(
            "DICOM MR images store integers, and GDCM turns an MR series with a rescale slope into "
            "Enhanced MR; round the volume (np.rint) or scale it to integers before writing it."
        )
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if low >= 0 and high <= 65535:
        return sitk.sitkUInt16
    if low >= -32768 and high <= 32767:
        return sitk.sitkInt16
    raise ValueError(f"Intensities from {low} to {high} do not fit 16-bit DICOM pixels; scale them first.")


def write_dicom_series(image: sitk.Image, folder: str | Path, header: DicomSeriesHeader) -> list[Path]:
    """Write a 3D scalar image as a single-frame DICOM series, one file per slice along its third axis."""
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError("Only a 3D scalar image can be written as a DICOM series.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise FileExistsError(f"'{folder}' is not empty; write a DICOM series into an empty folder.")
    array = sitk.GetArrayViewFromImage(image)
    pixels = sitk.Cast(image, _stored_pixel_type(array))
    direction = np.array(image.GetDirection()).reshape(3, 3)
    if np.linalg.det(direction) < 0:
        log.info(
            "Left-handed volume: DICOM readers stack its slices along the normal, so K comes back reversed."
        )
    normal = np.cross(direction[:, 0], direction[:, 1])
    now = datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 1.0)
    common = {
        "0008|0008": "DERIVED\\SECONDARY",
        "0008|0012": date,
        "0008|0013": time,
        "0008|0020": date,
        "0008|0021": date,
        "0008|0023": date,
        "0008|0030": time,
        "0008|0031": time,
        "0008|0033": time,
        "0008|0060": header.modality,
        "0008|1030": header.study_description,
        "0008|103e": header.series_description,
        "0010|0010": header.patient_name,
        "0010|0020": header.patient_id,
        "0018|0050": _ds(image.GetSpacing()[2]),
        "0018|0088": _ds(image.GetSpacing()[2]),
        "0018|5100": "",
        "0020|000d": header.study_uid or new_uid(),
        "0020|000e": header.series_uid or new_uid(),
        "0020|0010": "1",
        "0020|0011": str(header.series_number),
        "0020|0052": new_uid(),
        "0020|0037": _ds_list([*direction[:, 0], *direction[:, 1]]),
        "0028|1050": _ds((low + high) / 2),
        "0028|1051": _ds(max(high - low, 1.0)),
        "0028|1052": "0",
        "0028|1053": "1",
    }
    if header.modality == "MR":
        # MR Image module: type 1 values for a derived image, type 2 ones present and empty.
        common |= {"0008|0016": MR_IMAGE_STORAGE, "0018|0020": "RM", "0018|0021": "NONE"}
        common |= {tag: "" for tag in ("0018|0022", "0018|0023", "0018|0080", "0018|0081", "0018|0091")}
    writer = sitk.ImageFileWriter()
    writer.SetImageIO("GDCMImageIO")
    writer.KeepOriginalImageUIDOn()  # use the UIDs set above, not new ones per file
    paths = []
    for k in range(image.GetDepth()):
        position = np.array(image.TransformIndexToPhysicalPoint((0, 0, k)))
        tags = common | {
            "0008|0018": new_uid(),
            "0020|0013": str(k + 1),
            "0020|0032": _ds_list(position),
            "0020|1041": _ds(float(position @ normal)),
        }
        slice_image = pixels[:, :, k]
        for tag, value in tags.items():
            slice_image.SetMetaData(tag, value)
        path = folder / f"IM{k + 1:05d}.dcm"
        writer.SetFileName(str(path))
        with kept_locale():  # GDCM leaves the process in the "C" locale
            writer.Execute(slice_image)
        paths.append(path)
    log.info("Wrote %d DICOM files to %s", len(paths), folder)
    return paths
