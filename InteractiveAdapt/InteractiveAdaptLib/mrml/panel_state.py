"""What the panel shows, as one plain value: the Slicer module and the web page only render it."""

from __future__ import annotations

from dataclasses import dataclass, field

from InteractiveAdaptLib.mrml.click_record import ClickTimes


@dataclass
class PanelState:
    """The panel at one moment, built by `Workflow.panel`.

    Attributes:
        patient: the MRI volume's name ('' when none is chosen).
        structures: (segment id, name) of the patient's structures, in order.
        structure_id: the structure being segmented ('' when none).
        profile: one line on what the structure's learning profile has learned (or why it is not
            shown yet, e.g. while the network loads).
        versions: (label, version) of the profile's saved versions, newest first, then the shipped
            base model (version 0); empty until the network is loaded.
        clicked_slices: the clicked slices of the volume's K axis in the open case, in order.
        clicks: clicks of the open case.
        placing: True while placing positive points, False for negative ones, None when not placing.
        busy: the worker has work queued or running.
        progress: what the worker is doing now ('' when idle).
        status: the newest status line.
        last_click: what the newest click's user waited (None before the first click).
    """

    patient: str = ""
    structures: list[tuple[str, str]] = field(default_factory=list)
    structure_id: str = ""
    profile: str = ""
    versions: list[tuple[str, int]] = field(default_factory=list)
    clicked_slices: list[int] = field(default_factory=list)
    clicks: int = 0
    placing: bool | None = None
    busy: bool = False
    progress: str = ""
    status: str = ""
    last_click: ClickTimes | None = None

    @property
    def clicked_slices_text(self) -> str:
        """The clicked slices for the panel, e.g. 'Clicked slices: 42, 50, 61'."""
        if not self.clicked_slices:
            return "Clicked slices: none yet."
        return "Clicked slices: " + ", ".join(str(n) for n in self.clicked_slices)

    @property
    def latency(self) -> str:
        """What the newest click's user waited ('' before the first click)."""
        return self.last_click.latency if self.last_click is not None else ""
