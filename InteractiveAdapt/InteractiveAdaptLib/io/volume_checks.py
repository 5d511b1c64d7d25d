"""What a volume must be before a case is made of it, each said in a clinician's words.

- Memory: a case keeps a float32 normalised copy of the image and its masks, and normalising takes
  temporaries on top; a volume too large for this computer is refused from its header, before its
  voxels are read, and a large one is opened with a note of the memory it takes.
- Voxels that are not numbers (NaN, infinite): the case treats them as the image's darkest value
  (engine/normalization.py), the note says how many there are; a volume with no number at all is refused.
- Label maps (an atlas, a segmentation) opened as the MRI: refused by `check_not_label_map`, which the
  front ends that open a chosen file call (the web page's studies).
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from InteractiveAdaptLib.errors import ImageReadError, ImageTooLargeError, LabelMapError

# Bytes a case takes per voxel beyond the image itself, measured (peak resident memory of a process
# that opens a case and clicks twice with the shipped model and learning on): 27.7 on Colin27 (7.1 M
# voxels, float32), 27.1 to 29.1 on Colin27 zoomed 1.6x (29 M voxels; float32, int16, uint8). The peak
# is the normalisation's temporaries (float32 copies, the head mask); a case then keeps ~11.
CASE_BYTES_PER_VOXEL = 30
# ... plus the image twice in its own type: as read, and the scene's copy the views draw.
IMAGE_COPIES = 2
WARN_BYTES = 2 * 1024**3  # a case above this is opened with a note (or above half of the memory)
WARN_FRACTION = 0.5
REFUSE_FRACTION = 0.9  # of this computer's memory: above it the case would swap or be killed
REFUSE_BYTES_UNKNOWN_MEMORY = 64 * 1024**3  # when this computer's memory cannot be found out

# Label maps: whole numbers in uniform regions. Among the voxels above the background, the share whose
# four in-slice neighbours hold the same value: MRIs (mricron's ch2, ch2bet, ch2better: 8-bit, 81 to 249
# distinct values; inia19 T1) 0.00 to 0.04; atlases (aal, brodmann, HarvardOxford, JHU 1 and 2 mm, AICHA,
# jhu189, natbrainlab, inia19-NeuroMaps) 0.34 to 0.81.
LABEL_SHARE = 0.2
LABEL_SHARE_WITH_HINT = 0.1  # the header says labels (NIfTI intent 'label', a Slicer segmentation)
LABEL_SAMPLE_SLICES = 16  # slices per axis the share is measured on
NIFTI_INTENT_LABEL = "1002"


@dataclass(frozen=True)
class MemoryLimits:
    """Case memory (bytes) above which a volume is opened with a note, and above which it is refused."""

    warn_bytes: int
    refuse_bytes: int
    total_bytes: int | None = None  # this computer's memory, when known

    @classmethod
    def of_this_computer(cls) -> MemoryLimits:
        total = physical_memory_bytes()
        if total is None:
            return cls(WARN_BYTES, REFUSE_BYTES_UNKNOWN_MEMORY)
        return cls(min(WARN_BYTES, int(WARN_FRACTION * total)), int(REFUSE_FRACTION * total), total)


def physical_memory_bytes() -> int | None:
    """This computer's memory (RAM) in bytes; None where it cannot be found out."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    if sys.platform == "win32":

        class _MemoryStatus(ctypes.Structure):
            _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong)] + [
                (name, ctypes.c_ulonglong)
                for name in (
                    "total",
                    "avail",
                    "page_total",
                    "page_avail",
                    "virtual_total",
                    "virtual_avail",
                    "ext",
                )
            ]

        status = _MemoryStatus()
        status.length = ctypes.sizeof(status)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return int(status.total)
    return None


def case_memory_bytes(voxels: int, bytes_per_voxel: int) -> int:
    """The memory a case on a volume of `voxels` voxels of `bytes_per_voxel` bytes each takes (its peak)."""
    return int(voxels) * (CASE_BYTES_PER_VOXEL + IMAGE_COPIES * int(bytes_per_voxel))


def size_text(size_ijk: tuple[int, ...]) -> str:
    """'512 x 512 x 320' (I, J, K: columns, rows, slices)."""
    return " x ".join(str(int(n)) for n in size_ijk)


def bytes_text(count: float) -> str:
    """'2.5 GB', '380 MB', '1.2 TB' (powers of 1000, as a computer's settings show memory)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{max(1, round(count / 1e6))} MB"


def check_case_memory(
    size_ijk: tuple[int, ...], bytes_per_voxel: int, name: str, limits: MemoryLimits | None = None
) -> str:
    """The note for a large volume ('' for a usual one); raises for one too large for this computer.

    Args:
        size_ijk: voxels along I, J, K (as the header says them).
        bytes_per_voxel: of the image's type (1 for 8-bit, 4 for float32, ...).
        name: how messages name the image ("'head.nii.gz'").

    Raises:
        ImageTooLargeError: a case on it would need more memory than this computer has.
    """
    limits = limits or MemoryLimits.of_this_computer()
    need = case_memory_bytes(math.prod(int(n) for n in size_ijk), bytes_per_voxel)
    if need > limits.refuse_bytes:
        has = (
            f"this computer has {bytes_text(limits.total_bytes)}"
            if limits.total_bytes
            else "more than allowed"
        )
        raise ImageTooLargeError(
            f"{name} is too large to segment here ({size_text(size_ijk)} voxels): a case on it would need "
            f"about {bytes_text(need)} of memory, and {has}. Crop it to the region you need or resample it "
            "to a coarser spacing (e.g. Slicer's Crop Volume), then open that."
        )
    if need > limits.warn_bytes:
        return (
            f"{name} is large ({size_text(size_ijk)} voxels): a case on it takes about {bytes_text(need)} of "
            "memory, and each step is slower. Close other programs if the computer slows down."
        )
    return ""


def header_bytes_per_voxel(reader: sitk.ImageFileReader) -> int:
    """Bytes of one voxel's component, from a reader that read the image's information."""
    found = re.search(r"(\d+)-bit", sitk.GetPixelIDValueAsString(reader.GetPixelID()))
    return int(found.group(1)) // 8 if found else 8


def count_non_finite(array: np.ndarray) -> int:
    """Voxels that are NaN or infinite (slab by slab: no full-size temporary)."""
    if not np.issubdtype(array.dtype, np.inexact):
        return 0
    step = max(1, (1 << 24) // max(1, array[:1].size))
    return sum(
        int(array[k : k + step].size - np.count_nonzero(np.isfinite(array[k : k + step])))
        for k in range(0, len(array), step)
    )


def check_finite(array: np.ndarray, name: str) -> str:
    """The note on voxels that are not numbers ('' when there are none).

    Raises:
        ImageReadError: no voxel of the image is a number.
    """
    bad = count_non_finite(array)
    if bad == 0:
        return ""
    if bad == array.size:
        raise ImageReadError(
            f"{name} holds no image: none of its {array.size:,} voxels is a number (all are NaN or "
            "infinite). Export the MRI again from the scanner or the program that made this file."
        )
    return (
        f"{name} has {bad:,} voxel{'s' if bad != 1 else ''} that {'are' if bad != 1 else 'is'} not a number "
        "(NaN or infinite, e.g. outside the scanned region): the case treats "
        f"{'them' if bad != 1 else 'it'} as the image's darkest value."
    )


def fill_non_numbers(array: np.ndarray) -> np.ndarray:
    """`array` with its NaN and infinite voxels set to its lowest finite value (what the engine does too):
    a copy when it has some, else `array` itself. For a view's window/level, which one infinite voxel
    turns black; an array with no number at all is returned as it is."""
    if not np.issubdtype(array.dtype, np.inexact):
        return array
    finite = np.isfinite(array)
    if finite.all() or not finite.any():
        return array
    return np.where(finite, array, np.min(array, where=finite, initial=np.inf))


def label_hint(path: str | Path) -> bool:
    """Whether the file's header says it holds labels: NIfTI intent 'label' (1002), or a Slicer
    segmentation (.seg.nrrd: 'Segment0_...' keys)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return False
    keys = reader.GetMetaDataKeys()
    if "intent_code" in keys and reader.GetMetaData("intent_code").strip() == NIFTI_INTENT_LABEL:
        return True
    return any(key.startswith("Segment0_") for key in keys)


def uniform_share(array: np.ndarray) -> float | None:
    """Among voxels above the image's lowest value, the share whose four in-slice neighbours hold the
    same value, on a few slices per axis; None when the image is not whole numbers above a background."""
    low = array.min()
    shares = []
    for axis in range(3):
        if array.shape[axis] < 1 or min(n for a, n in enumerate(array.shape) if a != axis) < 3:
            continue
        picks = np.unique(np.linspace(0, array.shape[axis] - 1, LABEL_SAMPLE_SLICES).round().astype(int))
        slices = np.moveaxis(np.take(array, picks, axis=axis), axis, 0)
        if np.issubdtype(slices.dtype, np.inexact) and not np.array_equal(slices, np.round(slices)):
            return None  # fractions: intensities, not labels
        centre = slices[:, 1:-1, 1:-1]
        same = (
            (centre == slices[:, :-2, 1:-1])
            & (centre == slices[:, 2:, 1:-1])
            & (centre == slices[:, 1:-1, :-2])
            & (centre == slices[:, 1:-1, 2:])
        )
        inside = centre != low
        if inside.any():
            shares.append(float(same[inside].mean()))
    return float(np.median(shares)) if shares else None


def check_not_label_map(array: np.ndarray, name: str, path: str | Path | None = None) -> None:
    """Refuse a label map (an atlas or a segmentation: whole numbers in uniform regions) opened as the MRI.

    Raises:
        LabelMapError: the image looks like labels, not MRI intensities.
    """
    if array.ndim != 3 or not np.issubdtype(array.dtype, np.number) or array.size == 0:
        return
    share = uniform_share(array)
    if share is None:
        return
    hint = path is not None and label_hint(path)
    if share >= (LABEL_SHARE_WITH_HINT if hint else LABEL_SHARE):
        said = " and its header says so" if hint else ""
        raise LabelMapError(
            f"{name} looks like a label map (an atlas or a segmentation), not an MRI: its voxels are whole "
            f"numbers in uniform regions{said}. Open the MRI itself; a segmentation is made on it here."
        )
