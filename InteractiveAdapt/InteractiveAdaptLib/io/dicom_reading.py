"""DICOM input through SimpleITK (GDCM): series listing and choice, checked 3D reading of a series or a
(multi-frame) file. Writing lives in dicom_writing, stacking geometry in dicom_geometry.

Works on SimpleITK images (LPS geometry); `io.volumes` turns them into `Volume`s. pydicom is not needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from InteractiveAdaptLib.errors import ImageReadError
from InteractiveAdaptLib.io.dicom_geometry import apply_frame_geometry, check_parallel, stack_order
from InteractiveAdaptLib.io.dicom_multiframe import frame_geometry
from InteractiveAdaptLib.io.process_locale import kept_locale

log = logging.getLogger(__name__)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
_IMAGE_TYPE = "0008|0008"  # read from every header: a Siemens mosaic says MOSAIC here
# Siemens private tags: creator of block 0019,10xx and NumberOfImagesInMosaic in that block.
_SIEMENS_CREATOR, _SIEMENS_HEADER, _IMAGES_IN_MOSAIC = "0019|0010", "SIEMENS MR HEADER", "0019|100a"


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
class _Header:
    """What one file's header says about its image (read without the pixels)."""

    path: Path
    size: tuple[int, ...]
    components: int
    tags: dict[str, str]

    @property
    def frames(self) -> int:
        return self.size[2] if len(self.size) > 2 else 1

    @property
    def mosaic(self) -> bool:
        """True for a Siemens mosaic: several slices tiled in one 2D image (ImageType holds MOSAIC)."""
        return "MOSAIC" in (v.strip().upper() for v in self.tags.get(_IMAGE_TYPE, "").split("\\"))

    def numbers(self, tag: str) -> np.ndarray | None:
        text = self.tags.get(tag, "").strip()
        try:
            return np.array([float(v) for v in text.split("\\")]) if text else None
        except ValueError:
            return None


@contextlib.contextmanager
def _quiet_itk() -> Iterator[None]:
    """Silence ITK's console warnings (e.g. 'No Series were found'); we report problems ourselves. The
    process keeps its locale (io/process_locale.py)."""
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        with kept_locale():
            yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _last_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def is_dicom_file(path: str | Path) -> bool:
    """True if GDCM recognises the file as a DICOM image."""
    return sitk.ImageFileReader().GetImageIOFromFileName(str(path)) == "GDCMImageIO"


def _read_header(path: Path, keys: Sequence[str] = (), private: bool = False) -> _Header:
    """The header of one file, with the tags `keys` and always the ImageType (private tags on request)."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    if private:
        reader.LoadPrivateTagsOn()
    try:
        with _quiet_itk():
            reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ImageReadError(
            f"'{path.name}' could not be read as DICOM ({_last_line(exc)}). The file is damaged or "
            "incomplete: copy or export it again."
        ) from exc
    tags = {k: reader.GetMetaData(k) for k in (_IMAGE_TYPE, *keys) if reader.HasMetaDataKey(k)}
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
    _refuse_mosaic(headers, f"{what} is")
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
    normal = check_parallel(np.array(orientations), what, "images")
    order, _ = stack_order(np.array(positions), normal, [h.path.name for h in headers], what, "file")
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


def _mosaic_slices(header: _Header) -> int | None:
    """Slices tiled in the image of a mosaic file, from Siemens' NumberOfImagesInMosaic; None if unknown."""
    tags = _read_header(header.path, (_SIEMENS_CREATOR, _IMAGES_IN_MOSAIC), private=True).tags
    if tags.get(_SIEMENS_CREATOR, "").strip().upper() != _SIEMENS_HEADER:
        return None  # private tags removed (e.g. by anonymisation) or written by another vendor
    text = tags.get(_IMAGES_IN_MOSAIC, "").strip()
    return int(text) if text.isdigit() else None


def _refuse_mosaic(headers: Sequence[_Header], subject: str) -> None:
    """Refuse Siemens mosaic files, which GDCM would read as one (huge) slice each: a wrong volume.

    `subject` starts the message and ends with its verb ("The DICOM series ... is").
    """
    mosaic = next((h for h in headers if h.mosaic), None)
    if mosaic is None:
        return
    slices = _mosaic_slices(mosaic)
    if slices == 1:
        return  # a one-tile "mosaic" is an ordinary 2D image
    count = f"{slices} slices" if slices else "several slices"
    volumes = (
        f" Its {len(headers)} files are {len(headers)} volumes (time points or diffusion directions), so "
        "the NIfTI file will be 4D: keep from it the one 3D volume to segment."
        if len(headers) > 1
        else ""
    )
    raise ImageReadError(
        f"{subject} a Siemens mosaic series (EPI, diffusion or perfusion): each file holds {count} tiled "
        "in one image. InteractiveAdapt cannot read it as a 3D volume. Convert it to NIfTI first, e.g. "
        'with dcm2niix, or in 3D Slicer with the DICOM module and the "DICOM Diffusion Volume Plugin" '
        "(SlicerDMRI extension) or the dcm2niix plugin (SlicerDcm2nii extension), saving the loaded volume "
        f"as NIfTI; then open the NIfTI file (.nii or .nii.gz).{volumes}"
    )


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


def read_dicom_file(path: str | Path) -> sitk.Image:
    """Read one DICOM file that holds a 3D volume (enhanced multi-frame MR); 2D images are refused."""
    path = Path(path)
    header = _read_header(path, ("0008|0016",))
    _refuse_mosaic([header], f"The DICOM file '{path.name}' is part of")
    if header.components != 1:
        raise ImageReadError(
            f"'{path.name}' is a colour (RGB) DICOM image; InteractiveAdapt needs a grey-scale MRI volume."
        )
    if header.frames == 1:
        raise ImageReadError(
            f"'{path.name}' is a single 2D DICOM image (one slice). InteractiveAdapt needs a 3D volume: "
            "open the folder that holds all the slices of the series, or a multi-frame (enhanced) file."
        )
    geometry = frame_geometry(path, header.frames)
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
    return apply_frame_geometry(image, geometry, f"The DICOM file '{path.name}'")
