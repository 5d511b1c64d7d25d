"""The module panel's widgets from the workflow's state, and the settings to and from their widgets.

Qt-free (no import of qt): it calls only the widgets' own methods that PythonQt (inside Slicer) and
PySide6 (the tests, on the real .ui file) share, so the module file stays glue.
"""

from __future__ import annotations

from typing import Any

from InteractiveAdaptLib.app import settings as prefs
from InteractiveAdaptLib.interaction import PanelState

# settings field -> (widget, Qt property, change signal)
SETTINGS_WIDGETS = {
    "site": ("siteLineEdit", "text", "editingFinished"),
    "user": ("userLineEdit", "text", "editingFinished"),
    "device": ("deviceComboBox", "currentIndex", "currentIndexChanged"),
    "learning_rate": ("learningRateSpinBox", "value", "valueChanged"),
    "mid_interaction": ("midInteractionCheckBox", "checked", "toggled"),
    "post_interaction": ("postInteractionCheckBox", "checked", "toggled"),
    "working_spacing_mm": ("workingSpacingSpinBox", "value", "valueChanged"),
}
STRUCTURE_WIDGETS = (
    "structureComboBox",
    "previousStructureButton",
    "nextStructureButton",
    "renameStructureButton",
)


def render_panel(ui: Any, state: PanelState) -> None:
    """Show `state` on the panel's widgets (`ui`: the widgets by object name, as attributes)."""
    combo = ui.structureComboBox
    combo.blockSignals(True)
    combo.clear()
    for segment_id, name in state.structures:
        combo.addItem(name, segment_id)
    ids = [sid for sid, _ in state.structures]
    combo.setCurrentIndex(ids.index(state.structure_id) if state.structure_id in ids else -1)
    combo.blockSignals(False)
    for name in STRUCTURE_WIDGETS:
        getattr(ui, name).setEnabled(bool(state.structures))
    ui.addStructureButton.setEnabled(bool(state.patient))
    for button in (ui.positivePointButton, ui.negativePointButton):
        button.setEnabled(bool(state.structure_id))
    ui.profileLabel.setText(state.profile)
    ui.provenanceLabel.setText(state.profile)
    ui.modelVersionComboBox.clear()
    for label, version in state.versions:
        ui.modelVersionComboBox.addItem(label, version)
    ui.clickedSlicesLabel.setText(state.clicked_slices_text)
    set_checked_quietly(ui.positivePointButton, state.placing is True)  # a new structure stops placing
    set_checked_quietly(ui.negativePointButton, state.placing is False)


def set_checked_quietly(button: Any, checked: bool) -> None:
    """Check or uncheck a button without firing its signals."""
    button.blockSignals(True)
    button.setChecked(checked)
    button.blockSignals(False)


def show_settings(ui: Any, settings: prefs.ModuleSettings) -> None:
    """Put `settings` into their widgets."""
    values = settings.to_dict()
    values["device"] = prefs.DEVICES.index(values["device"])
    for key, (name, prop, _) in SETTINGS_WIDGETS.items():
        getattr(ui, name).setProperty(prop, values[key])


def read_settings(ui: Any) -> prefs.ModuleSettings:
    """The settings as their widgets show them.

    Raises:
        ValueError, InteractiveAdaptError: a value is not valid (e.g. a site name the store refuses).
    """
    values = {key: getattr(ui, w).property(prop) for key, (w, prop, _) in SETTINGS_WIDGETS.items()}
    values["device"] = prefs.DEVICES[int(values["device"])]
    return prefs.ModuleSettings.from_dict(values, strict=True)


def connect_settings(ui: Any, slot: Any) -> None:
    """Call `slot` whenever a setting's widget changes."""
    for name, _, signal in SETTINGS_WIDGETS.values():
        getattr(getattr(ui, name), signal).connect(slot)
