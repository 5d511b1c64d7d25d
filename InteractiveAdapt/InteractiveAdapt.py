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
from InteractiveAdaptLib.app.module_loop import ModuleLoop, drop_library_modules
from InteractiveAdaptLib.app.panel_actions import PanelActions
from InteractiveAdaptLib.app.worker import Worker
from InteractiveAdaptLib.errors import IncompatibleBaseModelError
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
        self._shortcuts, self._autoPick = [], False

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/InteractiveAdapt.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        ask = lambda question: slicer.util.confirmYesNoDisplay(question, windowTitle="InteractiveAdapt")  # noqa: E731
        self.logic = InteractiveAdaptLogic(
            ask=ask, onStatus=lambda t: self.panel.set_status(t), onError=self.showError
        )
        self.workflow = self.logic.workflow
        deps = self.logic.dependencies
        self.panel = panel = PanelActions(
            ui,
            self.workflow,
            self.showError,
            self.ensureDependencies,
            deps.installed,
            self.onParameterNodeModified,
        )
        # Slicer's idle loop holds Python's lock: the timer lends it to the worker in short waits.
        self.timer = qt.QTimer()
        self.loop = ModuleLoop(
            self.timer, self.logic.worker, deps, panel, self.warn, lambda f: qt.QTimer.singleShot(0, f)
        )
        self.timer.timeout.connect(self.loop.tick)
        for event, handler in ((slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose), (slicer.mrmlScene.EndCloseEvent, self.takeUpScene),
                               (slicer.mrmlScene.EndImportEvent, self.takeUpScene)):  # fmt: skip
            self.addObserver(slicer.mrmlScene, event, handler)
        if slicer.app.layoutManager():  # none in Slicer's "no main window" tests
            slicer.app.layoutManager().layoutChanged.connect(self.onLayoutChanged)
        ui.positivePointButton.toggled.connect(lambda on: panel.place(True, on, self.sliceViews))
        ui.negativePointButton.toggled.connect(lambda on: panel.place(False, on, self.sliceViews))
        for name, slot in [("undoButton", self.workflow.undo), ("finishCaseButton", lambda: panel.finish(self._parameterNode.learnFromCase)), ("resetCaseButton", self.workflow.reset),
                           ("rollbackButton", panel.rollback), ("exportSiteButton", self.onExport),
                           ("cancelButton", lambda: deps.cancel() or self.logic.worker.cancel()), ("addStructureButton", panel.add_structure),
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
        ui.weightsFolderLabel.setText(str(self.logic.storeRoot))
        for name, keys in SHORTCUTS.items() if slicer.util.mainWindow() else ():  # only while shown
            shortcut = qt.QShortcut(qt.QKeySequence(keys), slicer.util.mainWindow())
            shortcut.activated.connect(getattr(ui, name).click)
            shortcut.setEnabled(False)
            self._shortcuts.append(shortcut)
        self.initializeParameterNode()

    def cleanup(self):
        self.logic.worker.wake = None  # a stopped timer must not be restarted by a late submit
        if slicer.app.layoutManager():
            slicer.app.layoutManager().layoutChanged.disconnect(
                self.onLayoutChanged
            )  # a reload adds it again
        self.timer.stop()
        self.logic.dependencies.cancel()  # no install may outlive the module; the next plan repairs it
        for shortcut in self._shortcuts:  # a reloaded module must not leave its old shortcuts behind
            shortcut.setParent(None)
            shortcut.deleteLater()
        self._shortcuts = []
        self.removeObservers()
        self.logic.shutdown()

    def onReload(self):
        drop_library_modules()  # Slicer runs only this file again: the library is read afresh too
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self):
        self.initializeParameterNode()
        for shortcut in self._shortcuts:
            shortcut.setEnabled(True)
        self.loop.show(True)
        if self.logic.dependencies.installed():  # load the network while a study is loaded
            self.workflow.preload_session(on_ready=self.panel.refresh)
        self.panel.refresh()

    def exit(self):
        for shortcut in self._shortcuts:
            shortcut.setEnabled(False)
        self.workflow.stop_placing()  # left clicks belong to the next module (e.g. the Segment Editor)
        self.panel.refresh()
        self.loop.show(False)
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        self.workflow.close_scene()  # asks before it drops a case's clicks
        self.setParameterNode(None)

    def takeUpScene(self, *args):
        pn = self.logic.getParameterNode()  # after a close or an import: the scene's patient and structure
        if pn.inputVolume is not self.workflow.volume or pn.segmentID != self.workflow.segment_id:
            self.workflow.restore(pn.inputVolume, pn.segmentID)
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        pn = self.logic.getParameterNode()
        if pn.inputVolume and self.workflow.volume is None:  # a saved scene: its structure, not the first
            self.workflow.restore(pn.inputVolume, pn.segmentID)
        self.setParameterNode(pn)
        if not pn.inputVolume:  # offered, not opened: the scene changes once a structure is added
            self._autoPick = True
            pn.inputVolume = mrml.first_mri_volume(slicer.mrmlScene)  # never a label map the selector hides
            self._autoPick = False

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
        if pn is None or slicer.mrmlScene.IsImporting():  # an import ends with onSceneEndImport
            return
        if pn.inputVolume is not self.workflow.volume:
            show = not self._autoPick
            if not self.panel.guarded(self.workflow.set_volume, pn.inputVolume, show):  # kept, or unusable
                pn.inputVolume = self.workflow.volume
                return
            if pn.inputVolume and show:
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
        widgets = [manager.sliceWidget(name) for name in manager.sliceViewNames()] if manager else []
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

    def warn(self, message):
        slicer.util.warningDisplay(message, windowTitle="InteractiveAdapt")

    def showError(self, error, traceback=""):
        """Clinician-readable errors go to the status line; only unexpected failures open a dialog."""
        if isinstance(error, IncompatibleBaseModelError) and self.workflow.segment_id:
            ask = f"{error}\n\nStart this structure's learning again from the shipped model now?"
            if slicer.util.confirmYesNoDisplay(ask):
                return self.workflow.restart_profile_from_base()
        self.loop.error(error, traceback)

    def ensureDependencies(self):
        """True when the engine's packages are usable; else asks once and installs in the background."""
        ready = self.panel.guarded(self.logic.dependencies.ensure)
        if not ready:
            self.panel.set_status(self.logic.dependencies.message)
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
        onError = onError or (lambda error, traceback: logging.error("%s\n%s", error, traceback))  # noqa: N806
        self.workflow = mrml.Workflow(slicer.mrmlScene, self.worker, self.openSession, self.settings,
                                      ask or (lambda question: False), onStatus or logging.info, onError)  # fmt: skip

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
        self.worker.shutdown(cancel_pending=True, timeout=5)  # a running Finish stops between its steps


class InteractiveAdaptTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp(), self.test_PatientStructureClickFinish()

    def test_PatientStructureClickFinish(self):
        """The flow inside Slicer (InteractiveAdaptLib/mrml/self_test.py); without PyTorch its torch-free part."""
        storeRoot = tempfile.mkdtemp(prefix="InteractiveAdaptSelfTest")
        logic = InteractiveAdaptLogic(storeRoot=storeRoot)
        settings, drain = (
            prefs.ModuleSettings(site="Self test", device="cpu"),
            lambda: logic.worker.drain(120),
        )
        try:
            run_self_test(slicer.mrmlScene, logic.worker, logic.openSession, settings, storeRoot,
                          logic.dependencies.installed(), drain, self.delayDisplay)  # fmt: skip
        finally:
            logic.shutdown()
        self.delayDisplay("Test passed")
