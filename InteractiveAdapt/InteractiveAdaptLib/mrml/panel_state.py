"""What the panel shows, as one plain value: the Slicer module and the web page only render it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from InteractiveAdaptLib.errors import InteractiveAdaptError
from InteractiveAdaptLib.mrml.click_record import ClickTimes

# Offered in the structure name box; any other name can be typed. A side in the name ("(L)", "left")
# shares the profile of the structure.
COMMON_STRUCTURES = (
    "Brain",
    "Hippocampus",
    "Amygdala",
    "Caudate",
    "Putamen",
    "Thalamus",
    "Lateral ventricle",
    "Grey matter",
    "White matter",
    "Cerebellum",
    "Brainstem",
    "Tumour",
    "Oedema",
)


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


def fill_news(fill_3d: bool, first: int | None, last: int | None) -> str:
    """The status line's news of a change of the 3D filling's settings."""
    if not fill_3d:
        how = "3D filling is off: a click segments its own slice (the slices between two clicked slices are still filled)"
    else:
        how = "Each click fills the structure in 3D"
    if first is not None and last is not None:
        within = f", within slices {first} to {last}"
    elif first is not None or last is not None:
        within = f", from slice {first} on" if first is not None else f", up to slice {last}"
    else:
        within = ""
    return f"{how}{within} (from the next click)."


def build_panel(
    workflow: Any, engine_installed: bool = True, on_ready: Callable[[], None] | None = None
) -> PanelState:
    """The panel's state of a Workflow now. With a structure chosen and the network not loaded yet, its loading
    starts (on the worker) and the profile line says so; `on_ready` runs once it is loaded (ask
    again then).

    Args:
        engine_installed: False when the engine's packages are not installed yet (the profile and
            its versions show once they are).
        on_ready: called (on the main thread) when the network this call started loading is ready.

    Returns:
        Patient, structures, the profile's line and versions, clicked slices, clicks, placing,
        the worker's progress, the status line and the newest click's wait.
    """
    controller = workflow.cases.controller
    state = PanelState(
        patient=(workflow.volume.GetName() or "the selected volume") if workflow.volume is not None else "",
        structures=workflow.structures(),
        structure_id=workflow.segment_id,
        clicked_slices=list(controller.confirmed) if controller is not None else [],
        clicks=workflow.clicks,
        placing=workflow.placing,
        busy=bool(workflow.executor.busy),
        progress=getattr(workflow.executor, "current_description", ""),
        status=workflow.status,
        last_click=controller.last_click if controller is not None else None,
    )
    if workflow.volume is None:
        state.profile = "Choose the MRI volume, then add the structure to segment."
    elif not workflow.segment_id:
        state.profile = (
            "Add or choose the structure to segment: its name picks what the network has learned for it."
        )
    elif not engine_installed:
        state.profile = "Versions show once PyTorch is installed (press a point button)."
    elif not workflow.session_ready and (workflow.preload_session(on_ready) or not workflow.session_ready):
        state.profile = "Loading the network..."  # ready at once with an inline executor (tests, CLI)
    else:
        try:
            session = workflow.session()
            provenance = session.provenance(workflow.profile)
            state.versions = session.version_choices(workflow.profile)
        except InteractiveAdaptError as error:
            provenance = str(error)
        state.profile = f"'{workflow.structure_name}' learns in profile '{workflow.profile}'. {provenance}"
    return state
