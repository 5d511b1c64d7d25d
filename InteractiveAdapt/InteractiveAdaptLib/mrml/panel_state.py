"""What the panel shows, built from the workflow as one plain value (interaction.PanelState) that the
Slicer module and the web page only render; the structure names the panel offers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from InteractiveAdaptLib.errors import InteractiveAdaptError
from InteractiveAdaptLib.interaction import PanelState

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
