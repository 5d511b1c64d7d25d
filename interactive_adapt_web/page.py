"""The page's layout: three slice views and the module's panel. Layout only; app.py wires the events.

Every control reads and writes trame state variables named in `STATE_DEFAULTS`; buttons call the
controller methods `app.py` defines (ctrl.open_study, ctrl.add_structure, ...). Element ids (`ia-*`)
are what the browser tests click.
"""

from __future__ import annotations

from trame.ui.vuetify3 import SinglePageWithDrawerLayout
from trame.widgets import client, html
from trame.widgets import vuetify3 as v3

STATE_DEFAULTS = {
    "studies": [],  # the studies folder's volume files and DICOM folders: {id, label} (study_list.py)
    "study_id": None,
    "series": [],  # the chosen DICOM folder's series when it has several: {uid, label}
    "series_uid": None,
    "studies_note": "",
    "studies_folder": "",
    "status": "Choose a study in the list and open it, then add the structure to segment.",
    "latency": "",
    "screen_latency": "",
    "structures": [],
    "structure_id": None,
    "new_structure": "",
    "profile": "",
    "placing": "",  # "positive", "negative" or ""
    "learn": True,
    "versions": [],
    "version": None,
    "clicked_slices": "",
    "busy": False,
    "busy_text": "",
    "question": "",  # a Yes/No question waiting for the user (dropping unfinished clicks)
    "clients": 1,
    "server_notice": "",  # the server is about to stop (Ctrl+C, its lifetime): stays until it does
    "has_volume": False,
    "has_structure": False,
}

# What the user waited, measured in this browser: from the press of a click in a view to the first
# frame of the views that arrives after the server said the click's slice was written (`latency`).
SCREEN_LATENCY_SCRIPT = """
window.document.addEventListener('pointerdown', (e) => {
  if (e.target.closest && e.target.closest('#ia-views')) { window.__iaDown = window.performance.now(); window.__iaArmed = false; screen_latency = ''; }
}, true);
window.document.addEventListener('load', (e) => {
  if (!window.__iaArmed || window.__iaDown == null || !(e.target.closest && e.target.closest('#ia-views'))) return;
  screen_latency = ` · on your screen after ${Math.round(window.performance.now() - window.__iaDown)} ms`;
  window.__iaArmed = false; window.__iaDown = null;
}, true);
"""

# P / N / Ctrl+Z as in the Slicer module; ignored while typing in a text field.
KEYS_SCRIPT = """
window.addEventListener('keydown', (e) => {
  const tag = (e.target && e.target.tagName) || '';
  if (tag === 'INPUT' || tag === 'TEXTAREA') { return; }
  const key = e.key.toLowerCase();
  if ((e.ctrlKey || e.metaKey) && key === 'z') { e.preventDefault(); trigger('key', ['undo']); }
  else if (!e.ctrlKey && !e.metaKey && !e.altKey && (key === 'p' || key === 'n')) { trigger('key', [key]); }
});
"""


def build_page(server, layout_manager, title: str) -> SinglePageWithDrawerLayout:
    """The whole page; the slice views fill the content area through trame-slicer's layout grid."""
    state, ctrl = server.state, server.controller
    for key, value in STATE_DEFAULTS.items():
        state.setdefault(key, value)
    with SinglePageWithDrawerLayout(server, full_height=True) as layout:
        layout.title.set_text(title)
        layout.drawer.width = 380
        client.ClientTriggers(mounted=KEYS_SCRIPT + SCREEN_LATENCY_SCRIPT)
        client.ClientStateChange(
            value="latency", change="if (window.__iaDown != null) window.__iaArmed = true;"
        )
        with layout.toolbar:
            v3.VSpacer()
            html.Div("{{ latency }}{{ screen_latency }}", id="ia-latency", classes="text-caption mr-4")
        with layout.drawer, html.Div(classes="pa-3 d-flex flex-column ga-2"):
            _status(ctrl)
            v3.VDivider()
            _study(ctrl)
            v3.VDivider()
            _structures(ctrl)
            v3.VDivider()
            _clicks(ctrl)
            v3.VDivider()
            _versions(ctrl)
        with layout.content, html.Div(style="height: calc(100vh - 90px); width: 100%;", id="ia-views"):
            layout_manager.initialize_layout_grid(layout)
        _question_dialog(ctrl)
    return layout


def _study(ctrl) -> None:
    html.Div("Study (from the studies folder '{{ studies_folder }}')", classes="text-subtitle-2")
    with html.Div(classes="d-flex ga-2 align-center"):
        _choice(
            "study_id",
            "studies",
            "label",
            "id",
            "Volume file or DICOM folder",
            "ia-study",
            update_modelValue=(ctrl.select_study, "[$event]"),
        )
        v3.VBtn(
            "Refresh", click=ctrl.refresh_studies, id="ia-refresh-studies", disabled=("busy",), size="small"
        )
    _choice("series_uid", "series", "label", "uid", "DICOM series", "ia-series", v_if=("series.length > 1",))
    html.Div("{{ studies_note }}", classes="text-caption", id="ia-studies-note")
    v3.VBtn(
        "Open",
        click=(ctrl.open_study, "[study_id, series_uid]"),
        id="ia-open",
        disabled=("busy || !study_id",),
        size="small",
    )


def _structures(ctrl) -> None:
    html.Div("Structure", classes="text-subtitle-2")
    _choice(
        "structure_id",
        "structures",
        "name",
        "id",
        "Structure being segmented",
        "ia-structure",
        disabled=("!has_volume",),
        update_modelValue=(ctrl.select_structure, "[$event]"),
    )
    with html.Div(classes="d-flex ga-2"):
        v3.VCombobox(
            v_model=("new_structure",),
            items=("common_structures", []),
            label="New structure, e.g. Hippocampus (L)",
            density="compact",
            hide_details=True,
            id="ia-new-structure",
        )
        v3.VBtn(
            "Add",
            click=(ctrl.add_structure, "[new_structure]"),
            id="ia-add-structure",
            disabled=("!has_volume",),
        )
    html.Div("{{ profile }}", classes="text-caption", id="ia-profile")


def _clicks(ctrl) -> None:
    html.Div("Points (P, N, Ctrl+Z)", classes="text-subtitle-2")
    with html.Div(classes="d-flex ga-2 flex-wrap"):
        v3.VBtn(
            "Positive (P)",
            color=("placing === 'positive' ? 'green' : undefined",),
            variant=("placing === 'positive' ? 'flat' : 'outlined'",),
            click=(ctrl.place, "['positive']"),
            disabled=("!has_structure",),
            id="ia-positive",
            size="small",
        )
        v3.VBtn(
            "Negative (N)",
            color=("placing === 'negative' ? 'red' : undefined",),
            variant=("placing === 'negative' ? 'flat' : 'outlined'",),
            click=(ctrl.place, "['negative']"),
            disabled=("!has_structure",),
            id="ia-negative",
            size="small",
        )
        v3.VBtn("Undo", click=ctrl.undo, id="ia-undo", size="small", variant="outlined")
    html.Div("{{ clicked_slices }}", classes="text-caption", id="ia-clicked-slices")
    v3.VCheckbox(v_model=("learn",), label="Learn from this case", density="compact", hide_details=True)
    v3.VBtn(
        "Finish case",
        click=ctrl.finish,
        id="ia-finish",
        color="primary",
        disabled=("busy || !has_structure",),
    )


def _versions(ctrl) -> None:
    html.Div("Site and model", classes="text-subtitle-2")
    with html.Div(classes="d-flex ga-2"):
        _choice(
            "version", "versions", "label", "version", "Version of this structure's profile", "ia-version"
        )
        v3.VBtn("Roll back", click=ctrl.rollback, id="ia-rollback", disabled=("busy || !has_structure",))


def _choice(model: str, items: str, title: str, value: str, label: str, element_id: str, **more) -> None:
    """A drop-down list of the state list `items` (dicts: `title` shown, `value` kept in `model`)."""
    v3.VSelect(
        v_model=(model,),
        items=(items,),
        item_title=title,
        item_value=value,
        label=label,
        density="compact",
        hide_details=True,
        id=element_id,
        **more,
    )


def _status(ctrl) -> None:
    v3.VAlert(
        "This page is open in {{ clients }} tabs or browsers. They share one case and its clicks: "
        "keep one and close the others.",
        v_if=("clients > 1",),
        type="warning",
        density="compact",
        id="ia-tabs-warning",
    )
    v3.VAlert(
        "{{ server_notice }}",
        v_if=("server_notice",),
        type="warning",
        density="compact",
        id="ia-server-notice",
    )
    with html.Div(v_if=("busy",), classes="d-flex flex-column ga-1"):
        v3.VProgressLinear(indeterminate=True, color="primary")
        with html.Div(classes="d-flex align-center ga-2"):
            html.Span("{{ busy_text }}", classes="text-caption", id="ia-busy")
            v3.VBtn("Cancel", click=ctrl.cancel, size="x-small", variant="outlined", id="ia-cancel")
    html.Div("{{ status }}", id="ia-status", classes="text-body-2")


def _question_dialog(ctrl) -> None:
    with v3.VDialog(model_value=("question !== ''",), persistent=True, max_width=480):
        with v3.VCard():
            v3.VCardText("{{ question }}", id="ia-question")
            with v3.VCardActions():
                v3.VSpacer()
                v3.VBtn("Keep the case", click=(ctrl.answer, "[false]"), id="ia-answer-no")
                v3.VBtn("Drop them", click=(ctrl.answer, "[true]"), color="error", id="ia-answer-yes")
