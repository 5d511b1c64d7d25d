"""Writes a case's blocks of slices into its segment, keeps what each write replaced and what it wrote
(for an undo that puts back the slices nobody changed since, and keeps the slices the user corrected
after the click), and the segment as the case last left it (so that what the user painted can be told
apart)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from InteractiveAdaptLib.interaction import Block
from InteractiveAdaptLib.mrml.segments import check_segment_grid, read_block, read_segment, write_block
from InteractiveAdaptLib.mrml.volume import VolumeGeometry


@dataclass
class Change:
    """One block write: the segment there before it, and what it wrote."""

    before: Block
    after: Block


class SegmentWriter:
    """One segment of a segmentation, written block by block on the main thread."""

    def __init__(self, segmentation: Any, segment_id: str, geometry: VolumeGeometry) -> None:
        """Raises:
        CaseStateError: the segmentation lies on another grid than the volume (e.g. oversampled)."""
        check_segment_grid(segmentation, segment_id, geometry)
        self.segmentation, self.segment_id, self.geometry = segmentation, segment_id, geometry
        self.expected: np.ndarray | None = None  # the segment as the case left it (None: no case)

    def read(self) -> np.ndarray:
        """The whole segment as it is now (Segment Editor corrections included)."""
        return read_segment(self.segmentation, self.segment_id, self.geometry)

    def start(self) -> None:
        """A case starts: remember the segment as it found it."""
        self.expected = self.read()

    def stop(self) -> np.ndarray | None:
        """The case ends: the segment as it left it (None when it never started)."""
        expected, self.expected = self.expected, None
        return expected

    def write(self, blocks: list[Block]) -> list[Change]:
        """Write `blocks` in order; returns each write's change, in the same order."""
        changes = []
        for block in blocks:
            before = self._read(block)
            after = Block(block.axis, block.first, (np.asarray(block.data) > 0).astype(np.uint8))
            changes.append(Change(Block(block.axis, block.first, before), after))
            self._write(after)
        return changes

    def restore(self, changes: list[Change]) -> None:
        """Undo `write`'s changes, newest first: each slice goes back to what the write found, unless it
        changed since the write (the user painted or erased there, or undid it in the Segment Editor):
        that slice is the user's correction and stays as it is now."""
        for change in reversed(changes):
            axis = change.after.axis
            now = np.moveaxis(self._read(change.after), axis, 0)
            wrote, before = np.moveaxis(change.after.data, axis, 0), np.moveaxis(change.before.data, axis, 0)
            corrected = (now != wrote).reshape(len(now), -1).any(axis=1)
            back = np.where(corrected[:, None, None], now, before).astype(np.uint8)
            self._write(Block(axis, change.after.first, np.moveaxis(back, 0, axis)))

    def _read(self, block: Block) -> np.ndarray:
        count = block.data.shape[block.axis]
        return read_block(self.segmentation, self.segment_id, self.geometry, block.axis, block.first, count)

    def _write(self, block: Block) -> None:
        write_block(self.segmentation, self.segment_id, self.geometry, block.axis, block.first, block.data)
        if self.expected is not None:
            count = block.data.shape[block.axis]
            np.moveaxis(self.expected, block.axis, 0)[block.first : block.first + count] = np.moveaxis(
                block.data > 0, block.axis, 0
            )
