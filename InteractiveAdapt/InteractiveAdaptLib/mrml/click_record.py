"""What the click controller keeps of each click of the case."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from InteractiveAdaptLib.interaction import Click, SliceKey
from InteractiveAdaptLib.mrml.segment_writer import Change


@dataclass
class ClickRecord:
    """One click of the current case, as the scene knows it."""

    click: Click
    node: Any
    point_id: str
    applied: bool = False
    placed_at: float = 0.0  # time.perf_counter() when the point arrived: the user's wait starts there
    saved: list[Change] = field(default_factory=list)  # this click's writes into the segment (for undo)

    @property
    def slice_key(self) -> SliceKey:
        """(axis, index) of the slice the click is on."""
        return self.click.slice_key
