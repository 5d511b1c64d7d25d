"""What the module panel's buttons do: each action goes to the workflow, a clinician's error to the
status line, and the panel is shown again from the workflow's state.

Qt-free (no import of qt): it uses only the widgets' own methods that PythonQt (inside Slicer) and
PySide6 (the tests, on the real .ui file) share. The module file connects the widgets' signals here and
keeps what needs the application (dialogs, shortcuts, the timer, the parameter node).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from InteractiveAdaptLib.app import panel_view
from InteractiveAdaptLib.errors import InteractiveAdaptError


class PanelActions:
    """The panel's actions on a workflow (mrml.Workflow).

    Args:
        ui: the panel's widgets by object name, as attributes.
        workflow: the clinician's workflow on the scene.
        show_error: shows an error (the module: status line, or a dialog for unexpected failures).
        ensure_dependencies: True when the engine's packages can be used (else it offers to install).
        engine_installed: True once PyTorch is installed (the profile's versions show then).
        on_structure_changed: after a patient or structure action (the module syncs its parameter node).
    """

    def __init__(
        self,
        ui: Any,
        workflow: Any,
        show_error: Callable[[BaseException], None],
        ensure_dependencies: Callable[[], bool],
        engine_installed: Callable[[], bool],
        on_structure_changed: Callable[[], None] | None = None,
    ) -> None:
        self.ui, self.workflow = ui, workflow
        self._show_error, self._ensure, self._installed = show_error, ensure_dependencies, engine_installed
        self._structure_changed = on_structure_changed or self.refresh

    def refresh(self) -> None:
        """Show the workflow's panel state (asked again once the network it starts loading is ready)."""
        panel_view.render_panel(self.ui, self.workflow.panel(self._installed(), self.refresh))

    def set_status(self, text: str) -> None:
        """The status line, and the clicked slices that news may have changed."""
        self.ui.statusLabel.setText(text)
        self.ui.clickedSlicesLabel.setText(self.workflow.panel(False).clicked_slices_text)

    def show_progress(self, busy: bool, text: str) -> None:
        """The progress bar and Cancel while an install or the worker is busy, saying what it does."""
        for widget in (self.ui.progressBar, self.ui.cancelButton):
            widget.setVisible(bool(busy))
        self.ui.progressBar.setFormat(text or "Working...")

    def guarded(self, action: Callable[..., Any], *args: Any) -> Any:
        """Run a workflow action; a clinician's error goes to `show_error` and the result is False."""
        try:
            return action(*args)
        except InteractiveAdaptError as error:
            self._show_error(error)
            return False

    def structure_action(self, action: Callable[..., Any], *args: Any) -> Any:
        """A patient or structure action; the panel shows what is true after it (also after a No)."""
        done = self.guarded(action, *args)
        self._structure_changed()
        return done

    def choose_structure(self, index: int) -> None:
        self.structure_action(self.workflow.select_structure, self.ui.structureComboBox.itemData(index))

    def add_structure(self) -> None:
        if self.structure_action(self.workflow.add_structure, self.ui.newStructureComboBox.currentText()):
            self.ui.newStructureComboBox.setCurrentText("")

    def step_structure(self, step: int) -> None:
        self.structure_action(self.workflow.step_structure, step)

    def place(self, positive: bool, checked: bool, views: Callable[[], list]) -> None:
        """A point button toggled: place positive or negative points in `views()`, or stop placing."""
        ui = self.ui
        other = ui.negativePointButton if positive else ui.positivePointButton
        if not checked:
            if not other.isChecked():
                self.workflow.stop_placing()
            return
        panel_view.set_checked_quietly(other, False)
        if self._ensure():  # else declined, or installing: the status line says which
            self.guarded(self.workflow.start_placing, positive, views())
        self.refresh()

    def finish(self, learn: bool) -> None:
        self.guarded(self.workflow.finish, bool(learn), lambda result: self.refresh())

    def fill_options(self, *args: Any) -> None:
        ui = self.ui
        checked, first, last = (
            ui.fill3DCheckBox.isChecked(),
            ui.fromSliceSpinBox.value(),
            ui.toSliceSpinBox.value(),
        )
        self.guarded(self.workflow.set_fill, checked, first, last)

    def rollback(self) -> None:
        version = self.ui.modelVersionComboBox.currentData()
        if version is None:
            return self.set_status("Choose the version to go back to first.")
        self.guarded(self.workflow.rollback, int(version), lambda result: self.refresh())

    def settings_changed(self, save: Callable[[Any], None]) -> None:
        """A setting's widget changed: valid settings are saved (`save`) and used from the next case."""
        try:
            settings = panel_view.read_settings(self.ui)
        except (ValueError, InteractiveAdaptError) as error:
            return self.set_status(f"Setting not saved: {str(error).rstrip('.')}.")
        self.workflow.settings = settings
        save(settings)
        if self.workflow.clicks:
            return self.set_status("Settings saved; they apply from the next case.")
        self.refresh()
