"""Writes a case's blocks of slices into its segment, keeps what each write replaced (for an exact
undo), and the segment as the case last left it (so that what the user painted can be told apart)."""

from __future__ import annotations

from typing import Any

import numpy as np

from InteractiveAdaptLib.interaction import Block
from InteractiveAdaptLib.mrml.segments import check_segment_grid, read_block, read_segment, write_block
from InteractiveAdaptLib.mrml.volume import VolumeGeometry


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

    def write(self, blocks: list[Block]) -> list[Block]:
        """Write `blocks` in order; returns what each replaced, in the same order."""
        saved = []
        for block in blocks:
            count = block.data.shape[block.axis]
            before = read_block(
                self.segmentation, self.segment_id, self.geometry, block.axis, block.first, count
            )
            saved.append(Block(block.axis, block.first, before))
            self._write(block)
        return saved

    def restore(self, saved: list[Block]) -> None:
        """Put back what `write` returned, newest first: the segment as those writes found it."""
        for block in reversed(saved):
            self._write(block)

    def _write(self, block: Block) -> None:
        write_block(self.segmentation, self.segment_id, self.geometry, block.axis, block.first, block.data)
        if self.expected is not None:
            count = block.data.shape[block.axis]
            np.moveaxis(self.expected, block.axis, 0)[block.first : block.first + count] = np.moveaxis(
                block.data > 0, block.axis, 0
            )
