"""What the click controller keeps of each click of the case, and what the user waited for the newest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from InteractiveAdaptLib.interaction import Block, Click, SliceKey


@dataclass
class ClickRecord:
    """One click of the current case, as the scene knows it."""

    click: Click
    node: Any
    point_id: str
    applied: bool = False
    placed_at: float = 0.0  # time.perf_counter() when the point arrived: the user's wait starts there
    saved: list[Block] = field(default_factory=list)  # the segment where this click wrote, before it

    @property
    def slice_key(self) -> SliceKey:
        """(axis, index) of the slice the click is on."""
        return self.click.slice_key


@dataclass
class ClickTimes:
    """What the newest click's wait was, for the status and latency lines."""

    clicks: int  # clicks of the case after it
    slice_ms: float  # from the point's arrival to its slice written into the segment
    fill_ms: float | None = None  # to the structure filled in 3D (None while filling)
    filled: int = 0  # non-empty slices the filling wrote besides the clicked one

    @property
    def status(self) -> str:
        """The status line's news of the click."""
        if self.fill_ms is None:
            return f"Segmented in {self.slice_ms:.0f} ms ({self.clicks} clicks); filling in 3D..."
        slices = f"{self.filled} slice{'s' if self.filled != 1 else ''}"
        return (
            f"Segmented in {self.slice_ms:.0f} ms, {slices} filled in 3D by {self.fill_ms:.0f} ms "
            f"({self.clicks} clicks)."
        )

    @property
    def latency(self) -> str:
        """One line on what the user waited."""
        fill = f", filled in 3D after {self.fill_ms:.0f} ms" if self.fill_ms is not None else ""
        return f"Last click: slice ready after {self.slice_ms:.0f} ms{fill}"
