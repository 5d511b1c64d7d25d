"""What the files of the studies folder are, read only from files already checked to be regular files inside
it (studies.py): the DICOM image series among a folder's files (grouped by series UID from each file's
header, so that GDCM never scans a folder, which would open every file in it, a FIFO included), and
whether a NIfTI or NRRD file holds its own voxels. `Budget` bounds a listing: files looked at, seconds,
and a stop flag.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import SimpleITK as sitk

from InteractiveAdaptLib.errors import ImageReadError
from InteractiveAdaptLib.io.dicom_reading import SeriesInfo

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd")  # self-contained volume files (no .hdr/.img, no .nhdr)
DICOM_SUFFIXES = ("", ".dcm", ".ima", ".dicom")  # files without the DICM preamble are tried if named so
_SERIES_TAGS = ("0020|000e", "0008|103e", "0008|0060", "0020|0011")  # UID, description, modality, number
_UNREADABLE = (
    "'{name}' could not be read as an image: it is not in a format InteractiveAdapt reads. "
    "Use a NIfTI (.nii/.nii.gz), NRRD (.nrrd) file or a DICOM folder."
)


class StopListing(Exception):
    """The listing reached one of its limits; `str()` says which, in the user's words."""


def series_label(series: SeriesInfo) -> str:
    """A DICOM series as the page's series list shows it."""
    number = f"#{series.series_number} " if series.series_number else ""
    return f"{number}{series.label}"


class Budget:
    """Counts the entries a listing looks at and checks its time and its stop flag at each one."""

    def __init__(self, max_files: int, seconds: float, stop: threading.Event | None) -> None:
        self.max_files, self.seconds, self.stop = max_files, seconds, stop
        self.files = 0
        self.deadline = time.monotonic() + seconds

    def step(self) -> None:
        self.files += 1
        if self.stop is not None and self.stop.is_set():
            raise StopListing("stopped.")
        if self.files > self.max_files:
            raise StopListing(
                f"only the first {self.max_files:,} files of the studies folder were looked at. Choose a "
                "smaller folder with --studies (e.g. one patient's)."
            )
        if time.monotonic() > self.deadline:
            raise StopListing(
                f"looking through the studies folder took more than {self.seconds:.0f} s, so only part of "
                "it is listed. Choose a smaller folder with --studies (e.g. one patient's)."
            )


def _dicom_candidate(path: Path, real: Path) -> bool:
    """True for a file that may be DICOM: the DICM preamble, or a name DICOM files usually have."""
    if path.name.upper() == "DICOMDIR" or path.name.lower().endswith(VOLUME_SUFFIXES):
        return False
    try:
        with open(real, "rb") as f:
            if f.read(132)[128:] == b"DICM":
                return True
    except OSError:
        return False
    return path.suffix.lower() in DICOM_SUFFIXES


def dicom_series(files: list[tuple[Path, Path]], budget: Budget) -> list[SeriesInfo]:
    """The DICOM image series among `files` (checked regular files of one folder), by series UID."""
    found: dict[str, list[tuple[Path, dict[str, str]]]] = {}
    for path, real in files:
        budget.step()
        if not _dicom_candidate(path, real):
            continue
        tags = _dicom_tags(real)
        if tags is not None and tags.get("0020|000e"):
            found.setdefault(tags["0020|000e"], []).append((real, tags))
    series = []
    for uid, members in found.items():
        tags = members[0][1]
        series.append(
            SeriesInfo(
                uid=uid,
                description=tags.get("0008|103e", ""),
                modality=tags.get("0008|0060", ""),
                number_of_files=len(members),
                first_file=members[0][0],
                series_number=tags.get("0020|0011", ""),
                files=tuple(path for path, _ in members),
            )
        )

    def order(s: SeriesInfo) -> tuple[int, str, str]:
        return (int(s.series_number) if s.series_number.isdigit() else 1 << 30, s.description, s.uid)

    return sorted(series, key=order)


def _dicom_tags(path: Path) -> dict[str, str] | None:
    """The series tags of one DICOM image file; None if it is not one."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    return {k: reader.GetMetaData(k).strip() for k in _SERIES_TAGS if reader.HasMetaDataKey(k)}


def choose_series(series: list[SeriesInfo], series_uid: str | None, name: str) -> SeriesInfo:
    if not series:
        raise ImageReadError(
            f"No DICOM images were found in '{name}'. Choose a folder that holds the image files of an MRI "
            "series, or a NIfTI/NRRD file."
        )
    for candidate in series:
        if candidate.uid == (series_uid or "").strip():
            return candidate
    if series_uid:
        raise ImageReadError(
            f"'{name}' no longer holds the chosen DICOM series. Press Refresh and choose again."
        )
    if len(series) > 1:
        raise ImageReadError(f"'{name}' holds {len(series)} DICOM series: choose one in the series list.")
    return series[0]


def _head(path: Path, size: int) -> bytes:
    """The first `size` bytes of the file's content (uncompressed if gzipped)."""
    with open(path, "rb") as f:
        head = f.read(size)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as f:
                return f.read(size)
        except (OSError, EOFError):
            return b""
    return head


def check_self_contained(path: Path) -> None:
    """Refuse a volume file that is not what its name says, or whose voxels are kept in another file
    (the reader would open whatever that file names); only NIfTI-1/2 single files and attached NRRD."""
    name = path.name
    if name.lower().endswith(".nrrd"):
        head = _head(path, 65536)
        if not head.startswith(b"NRRD000"):
            raise ImageReadError(_UNREADABLE.format(name=name))
        for line in _header_lines(head):
            if line.split(":", 1)[0].strip().lower().replace(" ", "") == "datafile":
                raise ImageReadError(
                    f"'{name}' keeps its voxels in another file (a detached NRRD header). Save the volume as "
                    "one .nrrd or .nii.gz file in the studies folder."
                )
        return
    head = _head(path, 352)
    if head[344:348] not in (b"n+1\0",) and head[4:8] != b"n+2\0":
        raise ImageReadError(_UNREADABLE.format(name=name))


def _header_lines(head: bytes) -> Iterator[str]:
    for raw in head.split(b"\n")[1:]:
        line = raw.decode("latin-1").rstrip("\r")
        if not line:
            return
        yield line
