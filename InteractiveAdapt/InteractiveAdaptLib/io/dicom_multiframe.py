"""Enhanced multi-frame MR geometry: per-frame position and orientation from the functional groups,
parsed straight from the file (GDCM gives one origin and spacing for all frames)."""

from __future__ import annotations

import logging
import mmap
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from InteractiveAdaptLib.errors import ImageReadError
from InteractiveAdaptLib.io.dicom_geometry import FrameGeometry

log = logging.getLogger(__name__)


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


def frame_geometry(path: Path, frames: int) -> FrameGeometry | None:
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
    return FrameGeometry(positions, orientations, spacings[0], slopes, intercepts)
