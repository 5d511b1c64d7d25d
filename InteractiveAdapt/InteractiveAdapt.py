"""InteractiveAdapt: click-based MRI segmentation that adapts online to each site. GUI glue only: behaviour
lives in InteractiveAdaptLib (the panel's state and actions); its torch imports wait for the dependencies."""

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
from InteractiveAdaptLib.app import dependencies, module_help, panel_view
from InteractiveAdaptLib.app import settings as prefs
from InteractiveAdaptLib.app.panel_actions import PanelActions
from InteractiveAdaptLib.app.worker import IDLE_INTERVAL_MS, Worker
from InteractiveAdaptLib.errors import IncompatibleBaseModelError, InteractiveAdaptError
from InteractiveAdaptLib.model.location import find_base_model_dir
from InteractiveAdaptLib.mrml.self_test import run_self_test

MODIFIED = vtk.vtkCommand.ModifiedEvent
SHORTCUTS = {"positivePointButton": "P", "negativePointButton": "N", "undoButton": "Ctrl+Z"}


class InteractiveAdapt(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "InteractiveAdapt"
        self.parent.categories = ["Segmentation"]
        self.parent.contributors = ["InteractiveAdapt developers"]
        self.parent.helpText = module_help.HELP
        self.parent.acknowledgementText = module_help.ACKNOWLEDGEMENT


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
        self.ui = ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = InteractiveAdaptLogic(ask=self.ask, onStatus=self.status, onError=self.showError)
        self.workflow = self.logic.workflow
        installed = lambda: dependencies.is_distribution_installed("torch")  # noqa: E731
        self.panel = panel = PanelActions(
            ui,
            self.workflow,
            self.showError,
            self.ensureDependencies,
            installed,
            self.onParameterNodeModified,
        )
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        slicer.app.layoutManager().layoutChanged.connect(self.onLayoutChanged)
        ui.positivePointButton.toggled.connect(lambda on: panel.place(True, on, self.sliceViews))
        ui.negativePointButton.toggled.connect(lambda on: panel.place(False, on, self.sliceViews))
        for name, slot in [("undoButton", self.workflow.undo), ("finishCaseButton", lambda: panel.finish(self._parameterNode.learnFromCase)), ("resetCaseButton", self.workflow.reset),
                           ("rollbackButton", panel.rollback), ("exportSiteButton", self.onExport),
                           ("cancelButton", self.onCancel), ("addStructureButton", panel.add_structure),
                           ("renameStructureButton", self.onRenameStructure),
                           ("previousStructureButton", lambda: panel.step_structure(-1)),
                           ("nextStructureButton", lambda: panel.step_structure(1))]:  # fmt: skip
            getattr(ui, name).clicked.connect(slot)
        ui.structureComboBox.activated.connect(panel.choose_structure)
        ui.fill3DCheckBox.toggled.connect(panel.fill_options)
        for box in (ui.fromSliceSpinBox, ui.toSliceSpinBox):
            box.valueChanged.connect(panel.fill_options)
        ui.newStructureComboBox.addItems(list(mrml.COMMON_STRUCTURES))
        ui.newStructureComboBox.setCurrentText("")
        ui.newStructureComboBox.lineEdit().returnPressed.connect(panel.add_structure)
        panel_view.show_settings(ui, self.logic.settings)
        panel_view.connect_settings(ui, lambda *args: panel.settings_changed(self.logic.saveSettings))
        ui.weightsFolderLabel.text = str(self.logic.storeRoot)
        for name, keys in SHORTCUTS.items():  # enabled only while the module is shown: no clash elsewhere
            shortcut = qt.QShortcut(qt.QKeySequence(keys), slicer.util.mainWindow())
            shortcut.activated.connect(getattr(ui, name).click)
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
            self.workflow.preload_session(on_ready=self.panel.refresh)
        self.panel.refresh()

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
            if not self.panel.guarded(self.workflow.set_volume, pn.inputVolume):  # kept it, or unusable
                pn.inputVolume = self.workflow.volume
                return
            if pn.inputVolume:
                slicer.util.resetSliceViews()
        if pn.segmentID != self.workflow.segment_id:
            pn.segmentID = self.workflow.segment_id  # comes back here once
            return
        self.panel.refresh()

    def onRenameStructure(self):
        old, window = self.workflow.structure_name, slicer.util.mainWindow()
        name = qt.QInputDialog.getText(window, "Rename structure", "New name:", qt.QLineEdit.Normal, old)
        if name and name != old:
            self.panel.structure_action(self.workflow.rename_structure, name)

    def sliceViews(self):
        """(slice node, interactor) of every slice view of the layout: where clicks place points."""
        manager = slicer.app.layoutManager()
        widgets = [manager.sliceWidget(name) for name in manager.sliceViewNames()]
        return [(w.mrmlSliceNode(), w.sliceView().interactor()) for w in widgets]

    def onLayoutChanged(self, layout=None):
        if self.workflow.placing is not None:  # the new layout's views place points too
            self.workflow.start_placing(self.workflow.placing, self.sliceViews())

    def onExport(self):
        site = self.logic.settings.site
        path = qt.QFileDialog.getSaveFileName(None, "Export site", f"{site}.zip", "Site archive (*.zip)")
        if path and self.ensureDependencies():
            self.panel.guarded(self.workflow.export_site, path)

    # ------------------------------------------------------------ feedback

    def poll(self):
        interval = self.logic.worker.tick()  # waits (lock released) up to 35 ms; applies results here
        install = self.logic.dependencies.poll()  # never blocks: pip runs in its own process
        if install is not None:
            self.status(install.text)
            if install.state == "failed":  # after minutes of waiting: a dialog, not only the status line
                slicer.util.errorDisplay(install.message, windowTitle="InteractiveAdapt")
        deps, worker = self.logic.dependencies, self.logic.worker
        self.panel.show_progress(deps.busy or worker.busy, deps.description or worker.current_description)
        self.timer.setInterval(interval)  # 5 ms while work is pending, 50 ms idle

    def onCancel(self):
        if not self.logic.dependencies.cancel():  # an install runs: stop it; else the worker's job
            self.logic.worker.cancel()

    def status(self, text):
        self.panel.set_status(text)

    def ask(self, question):
        return slicer.util.confirmYesNoDisplay(question, windowTitle="InteractiveAdapt")

    def showError(self, error, traceback=""):
        """Clinician-readable errors go to the status line; only unexpected failures open a dialog."""
        if isinstance(error, IncompatibleBaseModelError) and self.workflow.segment_id:
            ask = f"{error}\n\nStart this structure's learning again from the shipped model now?"
            if slicer.util.confirmYesNoDisplay(ask):
                return self.workflow.restart_profile_from_base()
        if isinstance(error, InteractiveAdaptError):
            return self.status(str(error))  # written for the clinician: what happened and what to do
        logging.error("InteractiveAdapt: %r\n%s", error, traceback, exc_info=not traceback and error)
        message = f"Something unexpected went wrong ({type(error).__name__}); see the error log."
        self.status(message)
        qt.QMessageBox.warning(slicer.util.mainWindow(), "InteractiveAdapt", message)

    def ensureDependencies(self):
        """True when the engine's packages are usable; else asks once and installs in the background."""
        ready = self.panel.guarded(self.logic.dependencies.ensure)
        if not ready:
            self.status(self.logic.dependencies.message)
        return ready


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

    def saveSettings(self, settings=None):
        self.settings = settings or self.settings
        for key, value in self.settings.to_dict().items():
            qt.QSettings().setValue(f"{prefs.SETTINGS_GROUP}/{key}", value)

    def openSession(self, settings):
        """The engine session (on the worker, or the main thread): no Qt call may happen here."""
        return prefs.open_session(settings, self.storeRoot, find_base_model_dir())

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
        """The flow inside Slicer (InteractiveAdaptLib/mrml/self_test.py); without PyTorch its torch-free part."""
        storeRoot = tempfile.mkdtemp(prefix="InteractiveAdaptSelfTest")
        logic = InteractiveAdaptLogic(storeRoot=storeRoot)
        settings = prefs.ModuleSettings(site="Self test", device="cpu")
        drain = lambda: logic.worker.drain(120, tick=slicer.app.processEvents)  # noqa: E731
        learning = dependencies.can_import("torch")
        try:
            run_self_test(slicer.mrmlScene, logic.worker, logic.openSession, settings, storeRoot, learning, drain, self.delayDisplay)  # fmt: skip
        finally:
            logic.shutdown()
        self.delayDisplay("Test passed")
