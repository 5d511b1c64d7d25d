"""InteractiveAdapt: click-based MRI segmentation that adapts online to each site. GUI glue only:
behaviour lives in InteractiveAdaptLib; its torch imports wait until the dependencies are checked."""

import logging
import tempfile

import qt
import slicer
import vtk
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.app import dependencies
from InteractiveAdaptLib.app import settings as prefs
from InteractiveAdaptLib.app.worker import IDLE_INTERVAL_MS, Worker
from InteractiveAdaptLib.errors import IncompatibleBaseModelError, InteractiveAdaptError
from InteractiveAdaptLib.model.location import find_base_model_dir
from InteractiveAdaptLib.mrml.self_test import run_self_test

MODIFIED = vtk.vtkCommand.ModifiedEvent
SHORTCUTS = {"positivePointButton": "P", "negativePointButton": "N", "undoButton": "Ctrl+Z"}
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
CITATION = (
    "Xu, Liang, Anthony, Ibrahim, Cohen, Yang, Kamnitsas. <i>You Point, I Learn: Online Adaptation of "
    "Interactive Segmentation Models for Handling Distribution Shifts in Medical Imaging.</i> ICLR 2026."
)


class InteractiveAdapt(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "InteractiveAdapt"
        self.parent.categories = ["Segmentation"]
        self.parent.contributors = ["InteractiveAdapt developers"]
        self.parent.helpText = (
            "Segment a structure on MRI with a few clicks; the network learns from every click and every "
            "finished case, so the next studies of the same site need fewer clicks.<br><br>"
            "<b>Use:</b> choose the MRI volume (it gets its own segmentation), then add the structure by name, "
            "e.g. 'Hippocampus (L)': the name picks the learning profile, left and right share one, and the "
            "panel shows what that profile has learned. Press <b>Positive point</b> (key <b>P</b>) and "
            "left-click inside the structure in any view: the slice is segmented, and with <b>Fill the "
            "structure in 3D</b> the slices beyond it and between clicked slices are filled. Add <b>Negative "
            "points</b> (key <b>N</b>) where it spills over, positive ones where it misses. <b>Ctrl+Z</b> undoes "
            "the last click; deleting an earlier point also places the later ones again. Correct with the "
            "Segment Editor if needed, then press "
            "<b>Finish case</b>: the case is learned and a new version of the site's weights is saved (roll "
            "back under <i>Site and model</i>, per structure). Press the button again to stop placing; right-drag "
            "zooms, middle-drag pans and the wheel changes slice meanwhile. Changing patient or structure asks "
            "before it drops unfinished clicks.<br><br>"
            f"<b>Method:</b> {CITATION}"
        )
        self.parent.acknowledgementText = (
            f"Built on 3D Slicer, MONAI and PyTorch. The online adaptation follows {CITATION}"
        )


@parameterNodeWrapper
class InteractiveAdaptParameterNode:
    inputVolume: slicer.vtkMRMLScalarVolumeNode
    learnFromCase: bool = True
    segmentID: str = ""  # the structure being segmented, saved with the scene


class InteractiveAdaptWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self._parameterNode = self._parameterNodeGuiTag = None
        self._shortcuts = []

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/InteractiveAdapt.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = InteractiveAdaptLogic(ask=self.ask, onStatus=self.setStatus, onError=self.showError)
        self.workflow = self.logic.workflow
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        slicer.app.layoutManager().layoutChanged.connect(self.onLayoutChanged)
        self.ui.positivePointButton.toggled.connect(lambda on: self.onPlace(True, on))
        self.ui.negativePointButton.toggled.connect(lambda on: self.onPlace(False, on))
        for name, slot in [("undoButton", self.workflow.undo), ("finishCaseButton", self.onFinish), ("resetCaseButton", self.workflow.reset),
                           ("rollbackButton", self.onRollback), ("exportSiteButton", self.onExport),
                           ("cancelButton", self.onCancel), ("addStructureButton", self.onAddStructure),
                           ("renameStructureButton", self.onRenameStructure),
                           ("previousStructureButton", lambda: self.onStepStructure(-1)),
                           ("nextStructureButton", lambda: self.onStepStructure(1))]:  # fmt: skip
            getattr(self.ui, name).clicked.connect(slot)
        self.ui.structureComboBox.activated.connect(self.onStructureChosen)
        self.ui.fill3DCheckBox.toggled.connect(self.onFillOptions)
        for box in (self.ui.fromSliceSpinBox, self.ui.toSliceSpinBox):
            box.valueChanged.connect(self.onFillOptions)
        self.ui.newStructureComboBox.addItems(list(mrml.COMMON_STRUCTURES))
        self.ui.newStructureComboBox.setCurrentText("")
        self.ui.newStructureComboBox.lineEdit().returnPressed.connect(self.onAddStructure)
        values = self.logic.settings.to_dict()
        values["device"] = prefs.DEVICES.index(values["device"])
        for key, (name, prop, signal) in SETTINGS_WIDGETS.items():
            setattr(getattr(self.ui, name), prop, values[key])
            getattr(getattr(self.ui, name), signal).connect(self.onSettingsChanged)
        self.ui.weightsFolderLabel.text = str(self.logic.storeRoot)
        for name, keys in SHORTCUTS.items():  # enabled only while the module is shown: no clash elsewhere
            shortcut = qt.QShortcut(qt.QKeySequence(keys), slicer.util.mainWindow())
            shortcut.activated.connect(getattr(self.ui, name).click)
            shortcut.setEnabled(False)
            self._shortcuts.append(shortcut)
        # Slicer's idle loop holds Python's lock: the timer lends it to the worker in short waits.
        self.timer = qt.QTimer()
        self.timer.timeout.connect(self.poll)
        self.timer.start(IDLE_INTERVAL_MS)
        self.logic.worker.wake = lambda: self.timer.start(0)  # a job submitted: tick at once
        self.initializeParameterNode()

    def cleanup(self):
        self.logic.worker.wake = None  # a stopped timer must not be restarted by a late submit
        slicer.app.layoutManager().layoutChanged.disconnect(self.onLayoutChanged)  # a reload adds it again
        self.timer.stop()
        self.logic.dependencies.cancel()  # no install may outlive the module; the next plan repairs it
        for shortcut in self._shortcuts:  # a reloaded module must not leave its old shortcuts behind
            shortcut.setParent(None)
            shortcut.deleteLater()
        self._shortcuts = []
        self.removeObservers()
        self.logic.shutdown()

    def enter(self):
        self.initializeParameterNode()
        for shortcut in self._shortcuts:
            shortcut.setEnabled(True)
        if dependencies.is_distribution_installed("torch"):  # load the network while a study is loaded
            self.workflow.preload_session(on_ready=self.refreshProfile)
        self.refreshProfile()

    def exit(self):
        for shortcut in self._shortcuts:
            shortcut.setEnabled(False)
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        self.workflow.close()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        pn = self._parameterNode
        if pn.inputVolume and self.workflow.volume is None:
            self.workflow.restore(pn.inputVolume, pn.segmentID)
        if not pn.inputVolume:
            pn.inputVolume = mrml.first_mri_volume(slicer.mrmlScene)  # never a label map the selector hides

    def setParameterNode(self, parameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, MODIFIED, self.onParameterNodeModified)
        self._parameterNode = parameterNode
        if parameterNode:
            self._parameterNodeGuiTag = parameterNode.connectGui(self.ui)
            self.addObserver(parameterNode, MODIFIED, self.onParameterNodeModified)
            self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None):
        pn = self._parameterNode
        if pn.inputVolume is not self.workflow.volume:
            if not self.guarded(self.workflow.set_volume, pn.inputVolume):  # kept the case, or unusable
                pn.inputVolume = self.workflow.volume
                return
            if pn.inputVolume:
                slicer.util.resetSliceViews()
        if pn.segmentID != self.workflow.segment_id:
            pn.segmentID = self.workflow.segment_id  # comes back here once
            return
        self.refreshStructures()
        self.ui.positivePointButton.enabled = self.ui.negativePointButton.enabled = bool(pn.segmentID)
        self.updatePlaceButtons()  # a patient or structure change stops placing

    def onSettingsChanged(self, *args):
        values = {key: getattr(getattr(self.ui, w), prop) for key, (w, prop, _) in SETTINGS_WIDGETS.items()}
        values["device"] = prefs.DEVICES[values["device"]]
        try:
            self.logic.settings = self.workflow.settings = prefs.ModuleSettings.from_dict(values)
        except (ValueError, InteractiveAdaptError) as error:
            return self.setStatus(f"Setting not saved: {error}.")
        self.logic.saveSettings()
        if self.workflow.clicks:
            self.setStatus("Settings saved; they apply from the next case.")
        else:
            self.refreshProfile()

    # ------------------------------------------------------------ structures

    def refreshStructures(self):
        combo, structures = self.ui.structureComboBox, self.workflow.structures()
        combo.blockSignals(True)
        combo.clear()
        for segment_id, name in structures:
            combo.addItem(name, segment_id)
        ids = [sid for sid, _ in structures]
        combo.setCurrentIndex(ids.index(self.workflow.segment_id) if self.workflow.segment_id else -1)
        combo.blockSignals(False)
        for name in ("structureComboBox", "previousStructureButton", "nextStructureButton", "renameStructureButton"):  # fmt: skip
            getattr(self.ui, name).enabled = bool(structures)
        self.ui.addStructureButton.enabled = self.workflow.volume is not None
        self.refreshProfile()

    def onStructureChosen(self, index):
        self.structureAction(self.workflow.select_structure, self.ui.structureComboBox.itemData(index))

    def onStepStructure(self, step):
        self.structureAction(self.workflow.step_structure, step)

    def onAddStructure(self):
        if self.structureAction(self.workflow.add_structure, self.ui.newStructureComboBox.currentText):
            self.ui.newStructureComboBox.setCurrentText("")

    def onRenameStructure(self):
        old = self.workflow.structure_name
        name = qt.QInputDialog.getText(
            slicer.util.mainWindow(), "Rename structure", "New name:", qt.QLineEdit.Normal, old
        )
        if name and name != old:
            self.structureAction(self.workflow.rename_structure, name)

    def structureAction(self, action, *args):
        done = self.guarded(action, *args)
        self.onParameterNodeModified()  # the panel shows what is now true, also when the user said No
        return done

    def refreshProfile(self):
        """What the structure's profile has learned, and its versions: from the store, before any click."""
        self.ui.modelVersionComboBox.clear()
        if self.workflow.segment_id and not self.workflow.session_ready:
            if not dependencies.is_distribution_installed("torch"):
                self.ui.profileLabel.text = "Versions show once PyTorch is installed (press a point button)."
                return
            self.ui.profileLabel.text = "Loading the network..."  # on the worker; shown when it is done
            return self.workflow.preload_session(on_ready=self.refreshProfile)
        try:
            summary, choices = self.workflow.profile_summary(), self.workflow.version_choices()
        except InteractiveAdaptError as error:
            return self.showError(error)
        self.ui.profileLabel.text = self.ui.provenanceLabel.text = summary
        for label, version in choices:
            self.ui.modelVersionComboBox.addItem(label, version)

    # ------------------------------------------------------------ actions

    def onPlace(self, positive, checked):
        other = self.ui.negativePointButton if positive else self.ui.positivePointButton
        if not checked:
            if not other.checked:
                self.workflow.stop_placing()
            return
        _setChecked(other, False)
        if self.ensureDependencies():  # else declined, or installing: the status line says which
            self.guarded(self.workflow.start_placing, positive, self.sliceViews())
        self.updatePlaceButtons()

    def sliceViews(self):
        """(slice node, interactor) of every slice view of the layout: where clicks place points."""
        widgets = [
            slicer.app.layoutManager().sliceWidget(name)
            for name in slicer.app.layoutManager().sliceViewNames()
        ]
        return [(w.mrmlSliceNode(), w.sliceView().interactor()) for w in widgets]

    def onLayoutChanged(self, layout=None):
        if self.workflow.placing is not None:  # the new layout's views place points too
            self.workflow.start_placing(self.workflow.placing, self.sliceViews())

    def updatePlaceButtons(self):
        _setChecked(self.ui.positivePointButton, self.workflow.placing is True)
        _setChecked(self.ui.negativePointButton, self.workflow.placing is False)

    def guarded(self, action, *args, **kwargs):
        """Run a workflow action; a clinician's error goes to the status line."""
        try:
            return action(*args, **kwargs)
        except InteractiveAdaptError as error:
            self.showError(error)
            return False

    def onFinish(self):
        self.guarded(
            self.workflow.finish, self._parameterNode.learnFromCase, lambda result: self.refreshProfile()
        )

    def onFillOptions(self, *args):
        ui, fill = self.ui, self.workflow.set_fill
        self.guarded(fill, ui.fill3DCheckBox.checked, ui.fromSliceSpinBox.value, ui.toSliceSpinBox.value)

    def onRollback(self):
        version = self.ui.modelVersionComboBox.currentData
        if version is None:
            return self.setStatus("Choose the version to go back to first.")
        self.guarded(self.workflow.rollback, int(version), lambda result: self.refreshProfile())

    def onExport(self):
        site = self.logic.settings.site
        path = qt.QFileDialog.getSaveFileName(None, "Export site", f"{site}.zip", "Site archive (*.zip)")
        if path and self.ensureDependencies():
            self.guarded(self.workflow.export_site, path)

    # ------------------------------------------------------------ feedback

    def poll(self):
        interval = self.logic.worker.tick()  # waits (lock released) up to 35 ms; applies results here
        install = self.logic.dependencies.poll()  # never blocks: pip runs in its own process
        if install is not None:
            self.setStatus(install.text)
            if install.state == "failed":  # after minutes of waiting: a dialog, not only the status line
                slicer.util.errorDisplay(install.message, windowTitle="InteractiveAdapt")
        busy = self.logic.worker.busy or self.logic.dependencies.busy
        self.ui.progressBar.visible = self.ui.cancelButton.visible = busy
        text = self.logic.dependencies.description or self.logic.worker.current_description
        self.ui.progressBar.setFormat(text or "Working...")
        self.timer.setInterval(interval)  # 5 ms while work is pending, 50 ms idle

    def onCancel(self):
        if not self.logic.dependencies.cancel():  # an install runs: stop it; else the worker's job
            self.logic.worker.cancel()

    def ask(self, question):
        return slicer.util.confirmYesNoDisplay(question, windowTitle="InteractiveAdapt")

    def setStatus(self, text):
        self.ui.statusLabel.text = text
        self.ui.clickedSlicesLabel.text = self.workflow.clicked_slices_text()

    def showError(self, error, traceback=""):
        """Clinician-readable errors go to the status line; only unexpected failures open a dialog."""
        if isinstance(error, IncompatibleBaseModelError) and self.workflow.segment_id:
            ask = f"{error}\n\nStart this structure's learning again from the shipped model now?"
            if slicer.util.confirmYesNoDisplay(ask):
                self.workflow.cases.restart_profile_from_base()
                return self.setStatus(
                    "Learning starts again from the shipped model; its old versions stay listed."
                )
        if isinstance(error, InteractiveAdaptError):
            return self.setStatus(str(error))  # written for the clinician: what happened and what to do
        logging.error("InteractiveAdapt: %r\n%s", error, traceback, exc_info=not traceback and error)
        message = f"Something unexpected went wrong ({type(error).__name__}); see the error log."
        self.setStatus(message)
        qt.QMessageBox.warning(slicer.util.mainWindow(), "InteractiveAdapt", message)

    def ensureDependencies(self):
        """True when the engine's packages are usable; else asks once and installs in the background."""
        ready = self.guarded(self.logic.dependencies.ensure)
        if not ready:
            self.setStatus(self.logic.dependencies.message)
        return ready


def _setChecked(button, checked):
    button.blockSignals(True)
    button.checked = checked
    button.blockSignals(False)


class InteractiveAdaptLogic(ScriptedLoadableModuleLogic):
    """Owns the worker thread, the settings and the workflow (patient, structures, case, session)."""

    def __init__(self, storeRoot=None, ask=None, onStatus=None, onError=None):
        ScriptedLoadableModuleLogic.__init__(self)
        self.worker = Worker()
        self.dependencies = dependencies.DependencyGate(
            confirm=lambda text: slicer.util.confirmOkCancelDisplay(text, "InteractiveAdapt set-up"),
            slicer_pytorch_available=lambda: hasattr(slicer.modules, "pytorchutils"),
        )
        self.storeRoot = storeRoot or prefs.site_store_root(slicer.app.slicerUserSettingsFilePath)
        saved = {
            k: qt.QSettings().value(f"{prefs.SETTINGS_GROUP}/{k}") for k in prefs.ModuleSettings().to_dict()
        }
        self.settings = prefs.ModuleSettings.from_dict(saved)
        self.workflow = mrml.Workflow(
            slicer.mrmlScene,
            self.worker,
            self.openSession,
            self.settings,
            ask=ask or (lambda question: False),
            on_status=onStatus or logging.info,
            on_error=onError or (lambda error, traceback: logging.error("%s\n%s", error, traceback)),
        )

    def getParameterNode(self):
        return InteractiveAdaptParameterNode(super().getParameterNode())

    def saveSettings(self):
        for key, value in self.settings.to_dict().items():
            qt.QSettings().setValue(f"{prefs.SETTINGS_GROUP}/{key}", value)

    def openSession(self, settings):
        modelDir = find_base_model_dir()  # beside this file when installed, ../models in a checkout
        with slicer.util.WaitCursor():  # once per settings change; the model is small
            return prefs.open_session(settings, self.storeRoot, modelDir)

    def shutdown(self):
        self.workflow.close()
        self.worker.shutdown(cancel_pending=False)


class InteractiveAdaptTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_PatientStructureClickFinish()

    def test_PatientStructureClickFinish(self):
        """The whole flow inside Slicer (InteractiveAdaptLib/mrml/self_test.py); without PyTorch only its
        torch-free part, and it asks nothing."""
        storeRoot = tempfile.mkdtemp(prefix="InteractiveAdaptSelfTest")
        logic = InteractiveAdaptLogic(storeRoot=storeRoot)
        settings = prefs.ModuleSettings(site="Self test", device="cpu")
        try:
            run_self_test(
                slicer.mrmlScene,
                logic.worker,
                logic.openSession,
                settings,
                storeRoot,
                learning=dependencies.can_import("torch"),
                drain=lambda: logic.worker.drain(120, tick=slicer.app.processEvents),
                say=self.delayDisplay,
            )
        finally:
            logic.shutdown()
        self.delayDisplay("Test passed")
