"""DICOM input and output through SimpleITK (GDCM): series listing, checked 3D reading, series writing.

Works on SimpleITK images (LPS geometry); `image_io` turns them into `Volume`s. pydicom is not needed.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import struct
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import ImageReadError

log = logging.getLogger(__name__)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
_SAME_POSITION_MM = 0.01  # two slices closer than this along the normal are at the same position
_ORIENTATION_TOLERANCE = 1e-3  # direction cosines that differ by more are different planes (~0.06 degree)


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series found in a folder."""

    uid: str
    description: str
    modality: str
    number_of_files: int
    first_file: Path
    series_number: str = ""
    files: tuple[Path, ...] = field(default=(), repr=False)

    @property
    def label(self) -> str:
        """A one-line description for messages and lists."""
        name = f"'{self.description}'" if self.description else "(no description)"
        plural = "s" if self.number_of_files != 1 else ""
        return f"{name}, {self.modality or '?'}, {self.number_of_files} file{plural}, UID {self.uid}"


class MultipleSeriesError(ImageReadError):
    """A folder holds several series and none was chosen; `series` lists them."""

    def __init__(self, message: str, series: Sequence[SeriesInfo]) -> None:
        super().__init__(message)
        self.series = list(series)


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


@dataclass
class _Header:
    """What one file's header says about its image (read without the pixels)."""

    path: Path
    size: tuple[int, ...]
    components: int
    tags: dict[str, str]

    @property
    def frames(self) -> int:
        return self.size[2] if len(self.size) > 2 else 1

    def numbers(self, tag: str) -> np.ndarray | None:
        text = self.tags.get(tag, "").strip()
        try:
            return np.array([float(v) for v in text.split("\\")]) if text else None
        except ValueError:
            return None


@contextlib.contextmanager
def _quiet_itk() -> Iterator[None]:
    """Silence ITK's console warnings (e.g. 'No Series were found'); we report problems ourselves."""
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _last_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def is_dicom_file(path: str | Path) -> bool:
    """True if GDCM recognises the file as a DICOM image."""
    return sitk.ImageFileReader().GetImageIOFromFileName(str(path)) == "GDCMImageIO"


def _read_header(path: Path, keys: Sequence[str] = ()) -> _Header:
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    try:
        with _quiet_itk():
            reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ImageReadError(
            f"'{path.name}' could not be read as DICOM ({_last_line(exc)}). The file is damaged or "
            "incomplete: copy or export it again."
        ) from exc
    tags = {k: reader.GetMetaData(k) for k in keys if reader.HasMetaDataKey(k)}
    return _Header(path, tuple(reader.GetSize()), reader.GetNumberOfComponents(), tags)


def list_dicom_series(folder: str | Path) -> list[SeriesInfo]:
    """Every DICOM image series under `folder` (searched recursively); non-DICOM files are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"The folder '{folder}' does not exist. Check the path and try again.")
    files: dict[str, list[Path]] = {}
    with _quiet_itk():
        for dirpath, dirnames, _ in os.walk(folder):
            dirnames.sort()
            try:
                uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(dirpath)
            except RuntimeError:
                continue
            for uid in uids:
                names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(dirpath, uid)
                files.setdefault(uid, []).extend(Path(n) for n in names)
    series = []
    for uid, paths in files.items():
        header = _read_header(paths[0], ("0008|103e", "0008|0060", "0020|0011"))
        series.append(
            SeriesInfo(
                uid=uid,
                description=header.tags.get("0008|103e", "").strip(),
                modality=header.tags.get("0008|0060", "").strip(),
                number_of_files=len(paths),
                first_file=paths[0],
                series_number=header.tags.get("0020|0011", "").strip(),
                files=tuple(paths),
            )
        )

    def order(s: SeriesInfo) -> tuple[int, str, str]:
        return (int(s.series_number) if s.series_number.isdigit() else 1 << 30, s.description, s.uid)

    return sorted(series, key=order)


def choose_series(folder: str | Path, series_uid: str | None = None) -> SeriesInfo:
    """The series of `folder` with `series_uid`, or its only series; a clear error otherwise."""
    series = list_dicom_series(folder)
    if not series:
        raise ImageReadError(
            f"No DICOM images were found in '{folder}' (other files, such as a DICOMDIR or text, are "
            "ignored). Choose the folder that holds the image files of the MRI series, or give a "
            "NIfTI/NRRD file."
        )
    listing = "\n".join(f"  - {s.label}" for s in series)
    if series_uid is not None:
        for s in series:
            if s.uid == series_uid.strip():
                return s
        raise ImageReadError(
            f"The folder '{folder}' has no DICOM series with UID {series_uid}. Its series are:\n{listing}"
        )
    if len(series) > 1:
        raise MultipleSeriesError(
            f"The folder '{folder}' holds {len(series)} DICOM series; choose the one to segment by its "
            f"series UID:\n{listing}",
            series,
        )
    return series[0]


def read_dicom_folder(folder: str | Path, series_uid: str | None = None) -> sitk.Image:
    """Read one series of a DICOM folder as a checked 3D image."""
    return read_dicom_series(choose_series(folder, series_uid))


def read_dicom_series(series: SeriesInfo) -> sitk.Image:
    """Read a series, refusing duplicated, missing or mixed slices instead of guessing a geometry."""
    if series.number_of_files == 1:
        return read_dicom_file(series.first_file)
    what = f"The DICOM series {series.label}"
    keys = ("0020|0032", "0020|0037", "0028|1052", "0028|1053")
    headers = [_read_header(path, keys) for path in series.files]
    _check_same(headers, what)
    positions = [h.numbers("0020|0032") for h in headers]
    orientations = [h.numbers("0020|0037") for h in headers]
    complete = [
        p is not None and p.size == 3 and o is not None and o.size == 6
        for p, o in zip(positions, orientations, strict=True)
    ]
    if not all(complete):
        raise ImageReadError(
            f"{what} has images without a slice position or orientation (e.g. X-ray or screenshots), so "
            "they do not form a 3D volume. Choose an MRI series of parallel slices."
        )
    normal = _check_parallel(np.array(orientations), what, "images")
    order, _ = _stack_order(np.array(positions), normal, [h.path.name for h in headers], what, "file")
    reader = sitk.ImageSeriesReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileNames([str(headers[i].path) for i in order])
    rescales = {(h.tags.get("0028|1052", "0").strip(), h.tags.get("0028|1053", "1").strip()) for h in headers}
    if len(rescales) > 1:
        reader.SetOutputPixelType(sitk.sitkFloat32)  # per-slice rescale: keep every slice's own scaling
    try:
        with _quiet_itk():
            image = reader.Execute()
    except RuntimeError as exc:
        raise ImageReadError(
            f"{what} could not be read ({_last_line(exc)}). A file is damaged or uses a compression "
            "this reader cannot decode: export the series again, uncompressed."
        ) from exc
    if image.GetSize() != (*headers[0].size[:2], len(headers)):
        raise ImageReadError(
            f"{what} has images of {headers[0].size[0]}x{headers[0].size[1]} pixels, too small for a volume."
        )
    return image


def _check_same(headers: Sequence[_Header], what: str) -> None:
    if any(h.components != 1 for h in headers):
        raise ImageReadError(f"{what} is in colour (RGB); InteractiveAdapt needs a grey-scale MRI series.")
    if any(h.frames > 1 for h in headers):
        raise ImageReadError(
            f"{what} is made of several multi-frame files; open one of its files instead of the folder."
        )
    sizes = sorted({h.size[:2] for h in headers})
    if len(sizes) > 1:
        raise ImageReadError(
            f"{what} mixes images of different sizes ({', '.join(f'{a}x{b}' for a, b in sizes)}), e.g. a "
            "localizer with the volume. Choose a series of one 3D acquisition."
        )


def _check_parallel(orientations: np.ndarray, what: str, unit: str) -> np.ndarray:
    """The unit slice normal shared by all orientations (rows of 6 direction cosines)."""
    if np.max(np.abs(orientations - orientations[0])) > _ORIENTATION_TOLERANCE:
        raise ImageReadError(
            f"{what} has {unit} in different orientations (e.g. a localizer with axial, sagittal and "
            "coronal planes), so they are not one 3D volume. Choose a series of parallel slices."
        )
    normal = np.cross(orientations[0, :3], orientations[0, 3:])
    return normal / np.linalg.norm(normal)


def _stack_order(
    positions: np.ndarray, normal: np.ndarray, labels: Sequence[str], what: str, unit: str
) -> tuple[np.ndarray, float]:
    """Slice order along the normal and the slice spacing; raise on duplicated, missing or sheared slices."""
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    d = distance[order]
    steps = np.diff(d)
    if steps.size == 0:
        return order, 1.0
    same = np.flatnonzero(steps < _SAME_POSITION_MM)
    if same.size:
        a, b = labels[order[same[0]]], labels[order[same[0] + 1]]
        raise ImageReadError(
            f"{what} has a duplicated slice: {unit}s {a} and {b} are at the same position "
            f"({d[same[0]]:.2f} mm along the slice normal; {same.size} such pair(s)). The folder holds a "
            "copy of a file, or several images per position (a time series, several echoes or "
            "b-values: 4D data). Remove the duplicates, or export one 3D volume."
        )
    spacing = float(np.median(steps))
    gaps = np.flatnonzero(steps > 1.5 * spacing)
    if gaps.size:
        i = gaps[0]
        missing = max(1, round(steps[i] / spacing) - 1)
        raise ImageReadError(
            f"{what} has a missing slice: about {missing} slice(s) are absent between {unit}s "
            f"{labels[order[i]]} ({d[i]:.2f} mm) and {labels[order[i + 1]]} ({d[i + 1]:.2f} mm), where "
            f"the other slices are {spacing:.3g} mm apart. The series is incomplete: copy or export it "
            "again with all its files."
        )
    if np.max(np.abs(steps - spacing)) > 0.05 * spacing:
        raise ImageReadError(
            f"{what} has irregular slice spacing (from {steps.min():.3g} to {steps.max():.3g} mm), so it "
            "is not one regular 3D volume. Choose a series with evenly spaced slices."
        )
    offsets = positions[order] - positions[order[0]]
    sideways = offsets - np.outer(offsets @ normal, normal)
    if np.max(np.linalg.norm(sideways, axis=1)) > max(0.05, 0.1 * spacing):
        raise ImageReadError(
            f"{what} has slices shifted sideways (a tilted or sheared stack); this reader needs slices "
            "stacked straight along their normal. Reformat the series on the scanner or PACS."
        )
    return order, spacing


def read_dicom_file(path: str | Path) -> sitk.Image:
    """Read one DICOM file that holds a 3D volume (enhanced multi-frame MR); 2D images are refused."""
    path = Path(path)
    header = _read_header(path, ("0008|0016",))
    if header.components != 1:
        raise ImageReadError(
            f"'{path.name}' is a colour (RGB) DICOM image; InteractiveAdapt needs a grey-scale MRI volume."
        )
    if header.frames == 1:
        raise ImageReadError(
            f"'{path.name}' is a single 2D DICOM image (one slice). InteractiveAdapt needs a 3D volume: "
            "open the folder that holds all the slices of the series, or a multi-frame (enhanced) file."
        )
    geometry = _frame_geometry(path, header.frames)
    try:
        with _quiet_itk():
            image = sitk.ReadImage(str(path), imageIO="GDCMImageIO")
    except RuntimeError as exc:
        raise ImageReadError(
            f"The pixels of '{path.name}' could not be decoded ({_last_line(exc)}). The file is damaged, "
            "truncated or uses an unsupported compression: export it again, uncompressed."
        ) from exc
    if geometry is None:
        log.warning(
            "'%s' holds %d frames without per-frame geometry; using the reader's default geometry "
            "(voxel size and position may be wrong).",
            path.name,
            header.frames,
        )
        return image
    return _apply_frame_geometry(image, geometry, f"The DICOM file '{path.name}'")


# --- Enhanced multi-frame geometry ------------------------------------------------------------------
# GDCM gives up silently (1 mm, identity) on enhanced files whose frames are not one regular stack, so
# the functional groups are read here with a minimal parser: no pixel data, only the tags below.

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_SHARED_GROUPS, _PER_FRAME_GROUPS = 0x52009229, 0x52009230
_PLANE_POSITION, _PLANE_ORIENTATION, _PIXEL_MEASURES, _PIXEL_VALUE = (
    0x00209113,
    0x00209116,
    0x00289110,
    0x00289145,
)
_SEQUENCES = {
    _SHARED_GROUPS,
    _PER_FRAME_GROUPS,
    _PLANE_POSITION,
    _PLANE_ORIENTATION,
    _PIXEL_MEASURES,
    _PIXEL_VALUE,
}
_POSITION, _ORIENTATION, _PIXEL_SPACING, _INTERCEPT, _SLOPE = (
    0x00200032,
    0x00200037,
    0x00280030,
    0x00281052,
    0x00281053,
)
_VALUES = {_POSITION, _ORIENTATION, _PIXEL_SPACING, _INTERCEPT, _SLOPE}


class _GroupParser:
    """Walks DICOM data elements far enough to collect the functional-group values listed above."""

    def __init__(self, data: Any, little_endian: bool) -> None:
        self.data = data
        self.e = "<" if little_endian else ">"

    def tag(self, pos: int) -> int:
        group, element = struct.unpack_from(self.e + "HH", self.data, pos)
        return (group << 16) | element

    def header(self, pos: int, explicit: bool) -> tuple[int, bytes | None, int, int]:
        tag = self.tag(pos)
        if tag >> 16 == 0xFFFE or not explicit:
            (length,) = struct.unpack_from(self.e + "I", self.data, pos + 4)
            return tag, (b"SQ" if tag in _SEQUENCES else None), length, pos + 8
        vr = bytes(self.data[pos + 4 : pos + 6])
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from(self.e + "I", self.data, pos + 8)
            return tag, vr, length, pos + 12
        (length,) = struct.unpack_from(self.e + "H", self.data, pos + 6)
        return tag, vr, length, pos + 8

    def dataset(self, pos: int, end: int, explicit: bool, top: bool = False) -> tuple[dict[int, Any], int]:
        out: dict[int, Any] = {}
        while pos + 8 <= end:
            tag = self.tag(pos)
            if tag == _ITEM_END:
                return out, pos + 8
            if top and tag >= _PIXEL_DATA:
                break
            tag, vr, length, pos = self.header(pos, explicit)
            if length == _UNDEFINED or (vr == b"SQ" and tag in _SEQUENCES):
                # Undefined-length UN holds implicit VR little endian content (PS3.5 6.2.2).
                items, pos = self.sequence(pos, length, explicit and vr != b"UN")
                if tag in _SEQUENCES:
                    out[tag] = items
                continue
            if tag in _VALUES:
                out[tag] = bytes(self.data[pos : pos + length])
            pos += length
        return out, pos

    def sequence(self, pos: int, length: int, explicit: bool) -> tuple[list[dict[int, Any]], int]:
        end = len(self.data) if length == _UNDEFINED else pos + length
        items = []
        while pos + 8 <= end:
            tag, _, item_length, pos = self.header(pos, explicit)
            if tag == _SEQUENCE_END:
                return items, pos
            if tag != _ITEM:
                raise ValueError(f"unexpected tag {tag:08x} in a sequence")
            item_end = end if item_length == _UNDEFINED else pos + item_length
            item, after = self.dataset(pos, item_end, explicit)
            items.append(item)
            pos = after if item_length == _UNDEFINED else item_end
        return items, end


def _functional_groups(path: Path) -> tuple[dict[int, Any], list[dict[int, Any]]] | None:
    """The shared and per-frame functional groups of a file, or None when it has none."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos, syntax = 0, "1.2.840.10008.1.2"
        if data[128:132] == b"DICM":
            pos = 132
        meta = _GroupParser(data, True)
        while pos + 8 <= len(data) and meta.tag(pos) >> 16 == 0x0002:
            tag, _, length, start = meta.header(pos, explicit=True)
            if tag == 0x00020010:
                syntax = bytes(data[start : start + length]).rstrip(b"\0 ").decode("ascii")
            pos = start + length
        body: Any = data
        if syntax == "1.2.840.10008.1.2.1.99":  # deflated explicit VR little endian
            body, pos = zlib.decompress(bytes(data[pos:]), -15), 0
        parser = _GroupParser(body, little_endian=syntax != "1.2.840.10008.1.2.2")
        top, _ = parser.dataset(pos, len(body), explicit=syntax != "1.2.840.10008.1.2", top=True)
    if _PER_FRAME_GROUPS not in top:
        return None
    shared = (top.get(_SHARED_GROUPS) or [{}])[0]
    return shared, top[_PER_FRAME_GROUPS]


@dataclass
class _FrameGeometry:
    positions: np.ndarray  # (frames, 3) LPS
    orientations: np.ndarray  # (frames, 6)
    pixel_spacing: np.ndarray  # (row spacing, column spacing)
    slopes: np.ndarray
    intercepts: np.ndarray


def _frame_geometry(path: Path, frames: int) -> _FrameGeometry | None:
    """Per-frame position, orientation, spacing and rescale of an enhanced file; None if it lacks them."""
    try:
        groups = _functional_groups(path)
    except (ValueError, struct.error, UnicodeDecodeError, zlib.error, OSError) as exc:
        log.warning("Could not parse the functional groups of '%s': %s", path.name, exc)
        return None
    if groups is None or len(groups[1]) != frames:
        return None
    shared, per_frame = groups

    def value(frame: dict[int, Any], sequence: int, tag: int) -> np.ndarray | None:
        for source in (frame, shared):
            items = source.get(sequence) or [{}]
            if tag in items[0]:
                text = items[0][tag].rstrip(b"\0 ").decode("ascii", "replace")
                try:
                    return np.array([float(v) for v in text.split("\\")])
                except ValueError:
                    return None
        return None

    rows = []
    for frame in per_frame:
        row = (
            value(frame, _PLANE_POSITION, _POSITION),
            value(frame, _PLANE_ORIENTATION, _ORIENTATION),
            value(frame, _PIXEL_MEASURES, _PIXEL_SPACING),
        )
        if any(v is None for v in row) or [v.size for v in row] != [3, 6, 2]:
            return None
        slope = value(frame, _PIXEL_VALUE, _SLOPE)
        intercept = value(frame, _PIXEL_VALUE, _INTERCEPT)
        rows.append((*row, 1.0 if slope is None else slope[0], 0.0 if intercept is None else intercept[0]))
    positions, orientations, spacings, slopes, intercepts = (np.array(c) for c in zip(*rows, strict=True))
    if np.max(np.abs(spacings - spacings[0])) > 1e-4:
        raise ImageReadError(f"'{path.name}' has frames with different pixel sizes; it is not one 3D volume.")
    return _FrameGeometry(positions, orientations, spacings[0], slopes, intercepts)


def _apply_frame_geometry(image: sitk.Image, geometry: _FrameGeometry, what: str) -> sitk.Image:
    """Sort the frames along their normal and give the image the geometry of its functional groups."""
    normal = _check_parallel(geometry.orientations, what, "frames")
    labels = [f"frame {i + 1}" for i in range(len(geometry.positions))]
    order, spacing = _stack_order(geometry.positions, normal, labels, what, "")
    array = sitk.GetArrayFromImage(image)
    slopes, intercepts = geometry.slopes, geometry.intercepts
    if np.ptp(slopes) > 0 or np.ptp(intercepts) > 0:
        # GDCM applied the first frame's rescale to every frame; redo it frame by frame.
        stored = (array.astype(np.float64) - intercepts[0]) / slopes[0]
        array = (stored * slopes[:, None, None] + intercepts[:, None, None]).astype(np.float32)
    out = sitk.GetImageFromArray(np.ascontiguousarray(array[order]))
    row, column = geometry.orientations[0, :3], geometry.orientations[0, 3:]
    out.SetSpacing((float(geometry.pixel_spacing[1]), float(geometry.pixel_spacing[0]), spacing))
    out.SetOrigin([float(v) for v in geometry.positions[order[0]]])
    out.SetDirection([float(v) for v in np.column_stack([row, column, normal]).ravel()])
    return out


# --- Writing ------------------------------------------------------------------------------------------


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
        writer.Execute(slice_image)
        paths.append(path)
    log.info("Wrote %d DICOM files to %s", len(paths), folder)
    return paths
