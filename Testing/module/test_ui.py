"""The module's Designer file loads headless (PySide6 QUiLoader, stand-ins for the CTK/MRML widgets) and
holds every widget the module drives, with the type, role, tooltip and shortcut the module expects."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
from PySide6.QtCore import SIGNAL  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)
from slicer_app import ctkCollapsibleButton, load_ui, qMRMLNodeComboBox, qMRMLWidget  # noqa: E402

from InteractiveAdaptLib.app import module_help  # noqa: E402
from InteractiveAdaptLib.app import settings as prefs  # noqa: E402
from InteractiveAdaptLib.app.panel_view import SETTINGS_WIDGETS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
UI_FILE = REPO / "InteractiveAdapt" / "Resources" / "UI" / "InteractiveAdapt.ui"
MODULE_FILE = REPO / "InteractiveAdapt" / "InteractiveAdapt.py"
# Keys Slicer itself binds in slice views (vtkMRMLSliceIntersectionWidget), in the Segment Editor and
# application-wide; the module's shortcuts must not take any of them.
SLICER_DEFAULT_KEYS = {
    "B", "F", "G", "T", "R", "V", "[", "]", "{", "}", "Left", "Right", "Up", "Down", "Space", "Escape",
    "Z", "Y", "Ctrl+Y", "Ctrl+F", "Ctrl+O", "Ctrl+S", "Ctrl+Q", "Ctrl+W", "Ctrl+3", "Ctrl+Shift+A",
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
}  # fmt: skip


@pytest.fixture(scope="module")
def ui():
    """The .ui file loaded as Slicer's loadUI would, with the stand-ins of the CTK/MRML widget classes."""
    app = QApplication.instance() or QApplication([])
    widget = load_ui(str(UI_FILE))
    yield widget
    widget.deleteLater()
    assert app is not None


def child(ui, cls, name):
    found = ui.findChild(cls, name)
    assert found is not None, f"{name} ({cls.__name__}) is missing from {UI_FILE.name}"
    return found


def _module_constant(name: str):
    tree = ast.parse(MODULE_FILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not defined in {MODULE_FILE.name}")


def _parameter_node_fields() -> dict[str, str]:
    tree = ast.parse(MODULE_FILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
            getattr(d, "id", "") == "parameterNodeWrapper" for d in node.decorator_list
        ):
            return {s.target.id: ast.unparse(s.annotation) for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class in the module")


# ---------------------------------------------------------------- tests


def test_root_is_an_mrml_widget_that_hands_the_scene_to_its_mrml_children(ui):
    assert isinstance(ui, qMRMLWidget) and ui.objectName() == "InteractiveAdapt"
    # the Designer connection was made: setMRMLScene on the root reaches the volume selector
    assert ui.receivers(SIGNAL("mrmlSceneChanged(vtkMRMLScene*)")) == 1


def test_inputs(ui):
    volume = child(ui, qMRMLNodeComboBox, "inputVolumeSelector")
    assert volume.nodeTypes == ["vtkMRMLScalarVolumeNode"]
    assert not volume.showChildNodeTypes  # no label maps, vector/RGB or DWI volumes offered
    assert not volume.addEnabled and volume.noneEnabled
    # The segmentation is the patient's own (the workflow finds or makes it): no selector for it.
    assert ui.findChild(qMRMLNodeComboBox, "segmentationSelector") is None


def test_structures_are_named_stepped_and_renamed_and_show_their_profile(ui):
    structures = child(ui, QComboBox, "structureComboBox")
    assert not structures.isEditable() and "profile" in structures.toolTip()
    new = child(ui, QComboBox, "newStructureComboBox")
    assert new.isEditable() and "name" in new.toolTip()
    for name, text in (("addStructureButton", "Add"), ("previousStructureButton", "<"),
                       ("nextStructureButton", ">"), ("renameStructureButton", "Rename...")):  # fmt: skip
        assert child(ui, QPushButton, name).text() == text
    assert child(ui, QLabel, "profileLabel").wordWrap()
    source = MODULE_FILE.read_text()
    assert "mrml.COMMON_STRUCTURES" in source  # the common names are offered in the box


def test_site_model_version_and_rollback(ui):
    for name in ("siteLineEdit", "userLineEdit"):
        assert child(ui, QLineEdit, name).placeholderText()
    assert isinstance(child(ui, QComboBox, "modelVersionComboBox"), QComboBox)
    assert child(ui, QLabel, "provenanceLabel").wordWrap()
    assert child(ui, QPushButton, "rollbackButton").text() == "Roll back"


def test_click_buttons_are_persistent_toggles_and_undo_finish_reset_exist(ui):
    for name in ("positivePointButton", "negativePointButton"):
        assert child(ui, QPushButton, name).isCheckable(), (
            f"{name} must stay on (placing stays on until pressed again)"
        )
    for name in ("undoButton", "finishCaseButton", "resetCaseButton"):
        assert not child(ui, QPushButton, name).isCheckable()
    learn = child(ui, QCheckBox, "learnFromCaseCheckBox")
    assert learn.isChecked() and learn.text() == "Learn from this case"


def test_3d_filling_switch_slice_range_and_clicked_slices(ui):
    clicks = child(ui, ctkCollapsibleButton, "clicksCollapsibleButton")
    fill = child(ui, QCheckBox, "fill3DCheckBox")
    assert fill.isChecked() and fill.text() == "Fill the structure in 3D"
    assert clicks.findChild(QCheckBox, "fill3DCheckBox") is fill
    for name in ("fromSliceSpinBox", "toSliceSpinBox"):
        box = child(ui, QSpinBox, name)
        # -1 shows "none" and means no bound (the workflow maps it to None): slice 0 can be a bound
        assert box.value() == box.minimum() == -1 and box.specialValueText() == "none"
        assert box.maximum() >= 2000 and "slice" in box.toolTip()
    label = child(ui, QLabel, "clickedSlicesLabel")
    assert label.wordWrap() and label.text() == "Clicked slices: none yet."


class Widgets:
    """The panel's widgets by object name, as Slicer's childWidgetVariables gives them to the module."""

    def __init__(self, ui):
        self._ui = ui

    def __getattr__(self, name):
        found = self._ui.findChild(QWidget, name)
        assert found is not None, f"{name} is missing from {UI_FILE.name}"
        return found


def test_the_panel_state_is_shown_on_the_real_widgets(ui):
    """panel_view.render_panel (what the module shows) on the widgets of the real .ui file."""
    from InteractiveAdaptLib.app.panel_view import render_panel
    from InteractiveAdaptLib.interaction import ClickTimes, PanelState

    widgets = Widgets(ui)
    state = PanelState(
        patient="Patient A",
        structures=[("s1", "Hippocampus (L)"), ("s2", "Caudate (R)")],
        structure_id="s2",
        profile="'Caudate (R)' learns in profile 'Caudate'. Version 1 of site 'A': learned from 1 case.",
        versions=[("Version 1 (2026-12-07, 1 case)", 1), ("Shipped base model", 0)],
        clicked_slices=[42, 50],
        clicks=3,
        placing=False,
        last_click=ClickTimes(3, 40.0, 600.0, 12),
    )
    render_panel(widgets, state)
    combo = widgets.structureComboBox
    assert [combo.itemText(n) for n in range(combo.count())] == ["Hippocampus (L)", "Caudate (R)"]
    assert combo.currentIndex() == 1 and combo.itemData(1) == "s2"
    assert widgets.clickedSlicesLabel.text() == "Clicked slices: 42, 50"
    assert widgets.profileLabel.text() == state.profile == widgets.provenanceLabel.text()
    versions = widgets.modelVersionComboBox
    assert [versions.itemData(n) for n in range(versions.count())] == [1, 0]
    assert widgets.positivePointButton.isEnabled() and widgets.addStructureButton.isEnabled()
    assert widgets.negativePointButton.isChecked() and not widgets.positivePointButton.isChecked()
    assert "after 40 ms, filled in 3D after 600 ms" in state.latency
    render_panel(widgets, PanelState())  # no patient: nothing to choose, nothing to click
    assert combo.count() == 0 and not combo.isEnabled() and not widgets.positivePointButton.isEnabled()
    assert widgets.clickedSlicesLabel.text() == "Clicked slices: none yet."
    assert not widgets.negativePointButton.isChecked()


def test_settings_go_to_their_widgets_and_come_back(ui):
    from InteractiveAdaptLib.app import panel_view

    widgets = Widgets(ui)
    chosen = prefs.ModuleSettings(site="Hospital B", user="Dr A", device="cpu", learning_rate=2e-5)
    panel_view.show_settings(widgets, chosen)
    assert panel_view.read_settings(widgets) == chosen
    panel_view.show_settings(widgets, prefs.ModuleSettings())


def test_a_site_name_the_store_refuses_is_not_saved_and_the_panel_says_why(ui):
    """The site typed into the real line edit goes through PanelActions.settings_changed, as in Slicer."""
    from types import SimpleNamespace

    from InteractiveAdaptLib.app import panel_view
    from InteractiveAdaptLib.app.panel_actions import PanelActions

    widgets = Widgets(ui)
    workflow = SimpleNamespace(
        settings=prefs.ModuleSettings(site="Hospital B"),
        clicks=["a click"],  # a case is open: a saved setting applies from the next one
        panel=lambda *args: SimpleNamespace(clicked_slices_text="Clicked slices: none yet."),
    )
    actions = PanelActions(widgets, workflow, lambda error: None, lambda: False, lambda: False)
    saved = []
    panel_view.show_settings(widgets, workflow.settings)
    widgets.siteLineEdit.setText("St Mary's/MRI")
    actions.settings_changed(saved.append)
    status = widgets.statusLabel.text()
    assert saved == [] and workflow.settings.site == "Hospital B"
    assert status.startswith('Setting not saved: The site name "St Mary\'s/MRI" contains')
    assert "Use only letters, digits, spaces" in status and status.endswith("such as 'Hospital A'.")
    widgets.userLineEdit.setText("CON")
    widgets.siteLineEdit.setText(" St Mary MRI ")
    actions.settings_changed(saved.append)
    assert saved == [] and "The user name 'CON' is reserved by Windows" in widgets.statusLabel.text()
    widgets.userLineEdit.setText("")
    actions.settings_changed(saved.append)
    assert [s.site for s in saved] == ["St Mary MRI"] and workflow.settings.site == "St Mary MRI"
    assert widgets.statusLabel.text() == "Settings saved; they apply from the next case."
    panel_view.show_settings(widgets, prefs.ModuleSettings())


def test_advanced_section_defaults_match_the_settings_defaults(ui):
    advanced = child(ui, ctkCollapsibleButton, "advancedCollapsibleButton")
    assert advanced.collapsed and advanced.text == "Advanced"
    defaults = prefs.ModuleSettings()
    for name in ("midInteractionCheckBox", "postInteractionCheckBox", "learningRateSpinBox", "deviceComboBox",
                 "workingSpacingSpinBox", "weightsFolderLabel", "exportSiteButton"):  # fmt: skip
        assert advanced.findChild(QWidget, name) is not None, f"{name} belongs in the Advanced section"
    assert child(ui, QCheckBox, "midInteractionCheckBox").isChecked() == defaults.mid_interaction
    assert child(ui, QCheckBox, "postInteractionCheckBox").isChecked() == defaults.post_interaction
    rate = child(ui, QDoubleSpinBox, "learningRateSpinBox")
    assert rate.value() == pytest.approx(defaults.learning_rate) and rate.decimals() >= 6
    low, high = prefs.LEARNING_RATE_RANGE
    assert low <= rate.minimum() and rate.maximum() <= high
    spacing = child(ui, QDoubleSpinBox, "workingSpacingSpinBox")
    assert spacing.value() == pytest.approx(defaults.working_spacing_mm)
    assert (spacing.minimum(), spacing.maximum()) == pytest.approx(prefs.WORKING_SPACING_RANGE_MM)
    device = child(ui, QComboBox, "deviceComboBox")
    assert [device.itemText(n).lower() for n in range(device.count())] == list(prefs.DEVICES)
    assert child(ui, QPushButton, "exportSiteButton").text() == "Export site..."


def test_status_and_progress(ui):
    assert isinstance(child(ui, QLabel, "statusLabel"), QLabel)
    assert child(ui, QProgressBar, "progressBar").isHidden()
    assert child(ui, QPushButton, "cancelButton").isHidden()


def test_shortcuts_are_documented_and_do_not_clash_with_slicer(ui):
    shortcuts = _module_constant("SHORTCUTS")
    assert set(shortcuts) == {"positivePointButton", "negativePointButton", "undoButton"}
    assert shortcuts["undoButton"] == "Ctrl+Z"
    for name, keys in shortcuts.items():
        button = child(ui, QPushButton, name)
        assert f"Shortcut: {keys}" in button.toolTip(), f"{name}'s tooltip must name its shortcut {keys}"
        assert f"({keys})" in button.text()
        assert f"<b>{keys}</b>" in module_help.HELP, f"the help text must document {keys}"
        assert keys not in SLICER_DEFAULT_KEYS and keys.upper() not in SLICER_DEFAULT_KEYS
    assert len(set(shortcuts.values())) == len(shortcuts)


def test_settings_widgets_have_the_properties_and_signals_the_module_uses(ui):
    table = SETTINGS_WIDGETS
    assert set(table) == set(prefs.ModuleSettings().to_dict())
    for name, prop, signal in table.values():
        widget = child(ui, QWidget, name)
        assert widget.metaObject().indexOfProperty(prop) >= 0, f"{name} has no property {prop}"
        assert hasattr(widget, signal), f"{name} has no signal {signal}"


def test_parameter_node_fields_match_the_widgets_bound_to_them(ui):
    fields = _parameter_node_fields()
    bound = {
        w.property("SlicerParameterName"): w
        for w in ui.findChildren(QWidget)
        if w.property("SlicerParameterName")
    }
    assert set(bound) == {"inputVolume", "learnFromCase"}
    for parameter, widget in bound.items():
        assert parameter in fields, f"{widget.objectName()} is bound to unknown parameter {parameter}"
        if isinstance(widget, qMRMLNodeComboBox):
            assert fields[parameter] == f"slicer.{widget.nodeTypes[0]}"
        elif isinstance(widget, QCheckBox):
            assert fields[parameter] == "bool"
    assert "segmentID" in fields  # the structure being segmented, kept by the scene


def test_no_tooltip_promises_what_slicer_does_not_do(ui):
    """A right click in Slicer's views opens their context menu: it never stops placing."""
    for widget in ui.findChildren(QWidget):
        assert "right-click" not in widget.toolTip().lower(), widget.objectName()


def test_every_control_explains_itself(ui):
    for widget in ui.findChildren(QWidget):
        if (
            isinstance(widget, QPushButton | QCheckBox | QLineEdit | QComboBox | QAbstractSpinBox)
            and widget.objectName()
        ):
            if isinstance(widget.parent(), QComboBox | QAbstractSpinBox):
                continue  # inner parts of a composite widget
            assert widget.toolTip().strip(), f"{widget.objectName()} has no tooltip"


def test_designer_connections_name_existing_widgets():
    root = ET.parse(UI_FILE).getroot()
    names = {w.get("name") for w in root.iter("widget")}
    connections = root.findall("./connections/connection")
    assert len(connections) == 1
    for connection in connections:
        assert connection.findtext("sender") in names and connection.findtext("receiver") in names
        assert connection.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
