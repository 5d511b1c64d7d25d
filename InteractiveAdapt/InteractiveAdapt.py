"""InteractiveAdapt: click-based MRI segmentation that adapts online to each site. GUI glue only:
behaviour lives in InteractiveAdaptLib; its torch imports wait until the dependencies are checked."""

import logging
import tempfile
from pathlib import Path

import numpy as np
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
from InteractiveAdaptLib.app.worker import Worker
from InteractiveAdaptLib.errors import IncompatibleBaseModelError, InteractiveAdaptError
from InteractiveAdaptLib.model.location import find_base_model_dir

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
            "<b>Use:</b> choose the MRI volume and the segment (its name, e.g. 'Brain', picks the learning "
            "profile; left and right of a structure share one). Press <b>Positive point</b> (key <b>P</b>) and left-click inside the structure in an "
            "axial, coronal or sagittal view (the views are turned to the image's own planes); the slice is "
            "segmented at once. Add <b>Negative points</b> (key <b>N</b>) where the result spills over, more "
            "positive points where it misses. <b>Ctrl+Z</b> undoes the last click; deleting an earlier point "
            "re-segments its slice without it. Correct with the Segment Editor if needed, then press "
            "<b>Finish case</b>: the case is learned and a new version of the site's weights is saved (roll "
            "back under <i>Site and model</i>). Right-click or press the button again to stop placing.<br><br>"
            f"<b>Method:</b> {CITATION}"
        )
        self.parent.acknowledgementText = (
            f"Built on 3D Slicer, MONAI and PyTorch. The online adaptation follows {CITATION}"
        )


@parameterNodeWrapper
class InteractiveAdaptParameterNode:
    inputVolume: slicer.vtkMRMLScalarVolumeNode
    segmentation: slicer.vtkMRMLSegmentationNode
    segmentID: str = ""
    positivePoints: slicer.vtkMRMLMarkupsFiducialNode
    negativePoints: slicer.vtkMRMLMarkupsFiducialNode
    learnFromCase: bool = True


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
        self.logic = InteractiveAdaptLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        interaction = slicer.app.applicationLogic().GetInteractionNode()
        self.addObserver(interaction, interaction.InteractionModeChangedEvent, self.updatePlaceButtons)
        self.ui.positivePointButton.toggled.connect(lambda on: self.onPlace(True, on))
        self.ui.negativePointButton.toggled.connect(lambda on: self.onPlace(False, on))
        for name, slot in [("undoButton", self.onUndo), ("finishCaseButton", self.onFinish), ("resetCaseButton", self.onReset),
                           ("rollbackButton", self.onRollback), ("exportSiteButton", self.onExport),
                           ("cancelButton", self.logic.worker.cancel)]:  # fmt: skip
            getattr(self.ui, name).clicked.connect(slot)
        self.ui.segmentSelector.currentSegmentChanged.connect(self.onSegmentChanged)
        values = self.logic.settings.to_dict()
        values["device"] = prefs.DEVICES.index(values["device"])
        for key, (name, prop, signal) in SETTINGS_WIDGETS.items():
            setattr(getattr(self.ui, name), prop, values[key])
            getattr(getattr(self.ui, name), signal).connect(self.onSettingsChanged)
        self.ui.weightsFolderLabel.text = str(self.logic.storeRoot)
        self.timer = qt.QTimer()
        self.timer.setInterval(50)
        self.timer.timeout.connect(self.poll)
        self.timer.start()
        self.initializeParameterNode()

    def cleanup(self):
        self.timer.stop()
        self.removeObservers()
        self.logic.shutdown()

    def enter(self):
        self.initializeParameterNode()
        for name, keys in SHORTCUTS.items():  # only while the module is shown: no clash with other tools
            shortcut = qt.QShortcut(qt.QKeySequence(keys), slicer.util.mainWindow())
            shortcut.activated.connect(self.onUndo if name == "undoButton" else getattr(self.ui, name).click)
            self._shortcuts.append(shortcut)

    def exit(self):
        for shortcut in self._shortcuts:
            shortcut.setParent(None)
        self._shortcuts = []
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        self.logic.cases.close(learn=False)
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

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
        pn, cases = self._parameterNode, self.logic.cases
        if cases.controller and not cases.matches(pn.inputVolume, pn.segmentation, pn.segmentID):
            cases.close(learn=False)  # the inputs changed: keep the segment, drop the clicks
        self.ui.segmentSelector.setCurrentNode(pn.segmentation)
        if pn.segmentID:
            self.ui.segmentSelector.setCurrentSegmentID(pn.segmentID)
        self.ui.positivePointButton.enabled = self.ui.negativePointButton.enabled = bool(pn.inputVolume)

    def onSegmentChanged(self, segmentID):
        if self._parameterNode and segmentID != self._parameterNode.segmentID:
            self._parameterNode.segmentID = segmentID or ""

    def onSettingsChanged(self, *args):
        values = {key: getattr(getattr(self.ui, w), prop) for key, (w, prop, _) in SETTINGS_WIDGETS.items()}
        values["device"] = prefs.DEVICES[values["device"]]
        self.logic.settings = prefs.ModuleSettings.from_dict(values)
        self.logic.saveSettings()
        if self.logic.cases.controller and self.logic.cases.controller.records:
            self.setStatus("Settings saved; they apply from the next case.")

    # ------------------------------------------------------------ actions

    def onPlace(self, positive, checked):
        other = self.ui.negativePointButton if positive else self.ui.positivePointButton
        if not checked:
            if not other.checked:
                mrml.stop_placing(slicer.mrmlScene)
            return
        _setChecked(other, False)
        try:
            if not self.ensureDependencies():
                raise InteractiveAdaptError("Segmenting needs the Python packages installed first.")
            self.logic.prepareCase(self._parameterNode, self.onCaseError, self.setStatus)
            self.logic.worker.submit(lambda: None, on_done=self.refreshVersions)  # once the case is open
            pn = self._parameterNode
            mrml.start_placing(slicer.mrmlScene, pn.positivePoints if positive else pn.negativePoints)
        except Exception as error:
            self.showError(error)
            self.updatePlaceButtons()

    def updatePlaceButtons(self, caller=None, event=None):
        placing, pn = mrml.placing_node(slicer.mrmlScene), self._parameterNode
        _setChecked(self.ui.positivePointButton, bool(pn and placing) and placing is pn.positivePoints)
        _setChecked(self.ui.negativePointButton, bool(pn and placing) and placing is pn.negativePoints)

    def onUndo(self):
        if not (self.logic.cases.controller and self.logic.cases.controller.undo_last()):
            self.setStatus("There is no click to undo.")

    def onFinish(self):
        controller = self.logic.cases.controller
        if not controller or not controller.records:
            self.setStatus("Place at least one point before finishing the case.")
            return
        try:
            controller.finish_case(learn=self._parameterNode.learnFromCase, on_done=self.onCaseFinished)
        except InteractiveAdaptError as error:
            self.showError(error)

    def onCaseFinished(self, result):
        if result.error is not None:
            return self.showError(result.error, result.traceback)
        s = result.value
        saved = f"saved site version {s.version}" if s.version else "nothing saved"
        self.setStatus(f"Case finished ({s.clicks} clicks): {s.slices_learned} slices learned, {saved}.")
        self.refreshVersions()

    def onReset(self):
        if self.logic.cases.controller:
            self.logic.cases.controller.reset_case()
            self.setStatus("Case reset: the clicked slices are back as they were.")

    def onRollback(self):
        version = self.ui.modelVersionComboBox.currentData
        if version is not None and self.logic.cases.session:
            self.logic.cases.close(learn=False)
            args = (self.logic.cases.profile, int(version))
            self.runJob("Rolling back the model", "Rolled back.", self.logic.cases.session.rollback, *args)

    def onExport(self):
        site = self.logic.settings.site
        path = qt.QFileDialog.getSaveFileName(None, "Export site", f"{site}.zip", "Site archive (*.zip)")
        if path and self.ensureDependencies():
            try:
                session = self.logic.cases.session_for(self.logic.settings)
            except InteractiveAdaptError as error:
                return self.showError(error)
            self.runJob("Exporting the site", f"Site exported to {path}.", session.export_site, path)

    def runJob(self, description, message, fn, *args):
        def done(result):
            if result.error is not None:
                return self.showError(result.error, result.traceback)
            self.setStatus(message)
            self.refreshVersions()

        self.logic.worker.submit(fn, *args, description=description, on_done=done)

    # ------------------------------------------------------------ feedback

    def refreshVersions(self, result=None):
        session, profile = self.logic.cases.session, self.logic.cases.profile
        if not session or not profile:
            return
        try:
            choices = session.version_choices(profile)
            self.ui.provenanceLabel.text = session.provenance(profile)
        except InteractiveAdaptError as error:
            return self.showError(error)
        self.ui.modelVersionComboBox.clear()
        for label, version in choices:
            self.ui.modelVersionComboBox.addItem(label, version)

    def poll(self):
        self.logic.worker.poll()  # applies results (segment slices, status) here, on the main thread
        self.ui.progressBar.visible = self.ui.cancelButton.visible = self.logic.worker.busy
        self.ui.progressBar.setFormat(self.logic.worker.current_description or "Working...")

    def onCaseError(self, error, traceback=""):
        ask = f"{error}\n\nStart this segment's learning again from the shipped model now?"
        if not (isinstance(error, IncompatibleBaseModelError) and slicer.util.confirmYesNoDisplay(ask)):
            return self.showError(error, traceback)
        self.logic.cases.restart_profile_from_base()
        self.setStatus("Learning starts again from the shipped model; its old versions stay listed.")

    def setStatus(self, text):
        self.ui.statusLabel.text = text

    def showError(self, error, traceback=""):
        if isinstance(error, InteractiveAdaptError):
            message = str(error)  # written for the clinician: what happened and what to do
        else:
            logging.error("InteractiveAdapt: %r\n%s", error, traceback, exc_info=not traceback and error)
            message = f"Something unexpected went wrong ({type(error).__name__}); see the error log."
        self.setStatus(message)
        qt.QMessageBox.warning(slicer.util.mainWindow(), "InteractiveAdapt", message)

    def ensureDependencies(self):
        if not self.logic.dependenciesChecked:
            requirements = dependencies.read_requirements(self.resourcePath("requirements.txt"))
            hasPyTorchExtension = hasattr(slicer.modules, "pytorchutils")
            plan = dependencies.build_install_plan(requirements, slicer_pytorch_available=hasPyTorchExtension)
            self.logic.dependenciesChecked = dependencies.install_if_confirmed(
                plan,
                confirm=lambda text: slicer.util.confirmOkCancelDisplay(text, "InteractiveAdapt set-up"),
                pip_install=slicer.util.pip_install,
                install_torch=_installTorchWithPyTorchExtension,
                progress=lambda done, total, text: slicer.util.showStatusMessage(f"InteractiveAdapt: {text}"),
            )
        return self.logic.dependenciesChecked


def _installTorchWithPyTorchExtension(versionRequirement):
    import PyTorchUtils  # the SlicerPyTorch extension's module

    return PyTorchUtils.PyTorchUtilsLogic().installTorch(
        askConfirmation=True, torchVersionRequirement=versionRequirement
    )


def _setChecked(button, checked):
    button.blockSignals(True)
    button.checked = checked
    button.blockSignals(False)


class InteractiveAdaptLogic(ScriptedLoadableModuleLogic):
    """Owns the worker thread, the settings and the case manager (engine session + click controller)."""

    def __init__(self, storeRoot=None):
        ScriptedLoadableModuleLogic.__init__(self)
        self.worker = Worker()
        self.cases = mrml.CaseManager(self.worker, self.openSession)
        self.dependenciesChecked = False
        self.storeRoot = storeRoot or prefs.site_store_root(slicer.app.slicerUserSettingsFilePath)
        saved = {
            k: qt.QSettings().value(f"{prefs.SETTINGS_GROUP}/{k}") for k in prefs.ModuleSettings().to_dict()
        }
        self.settings = prefs.ModuleSettings.from_dict(saved)

    def getParameterNode(self):
        return InteractiveAdaptParameterNode(super().getParameterNode())

    def saveSettings(self):
        for key, value in self.settings.to_dict().items():
            qt.QSettings().setValue(f"{prefs.SETTINGS_GROUP}/{key}", value)

    def openSession(self, settings):
        modelDir = find_base_model_dir()  # beside this file when installed, ../models in a checkout
        with slicer.util.WaitCursor():  # once per settings change; the model is small
            return prefs.open_session(settings, self.storeRoot, modelDir)

    def prepareCase(self, pn, onError, onStatus):
        """Create what is missing (segmentation, segment, point lists), then open the case on it."""
        inputs = (pn.inputVolume, pn.segmentation, pn.segmentID, pn.positivePoints, pn.negativePoints)
        nodes = mrml.prepare_case_nodes(slicer.mrmlScene, *inputs)
        with slicer.util.NodeModify(pn.parameterNode):  # one Modified event for the four changes
            pn.segmentation, pn.segmentID = nodes.segmentation, nodes.segment_id
            pn.positivePoints, pn.negativePoints = nodes.positive, nodes.negative
        self.cases.prepare(slicer.mrmlScene, self.settings, nodes, on_error=onError, on_status=onStatus)

    def shutdown(self):
        self.cases.close(learn=False)
        self.worker.shutdown(cancel_pending=False)


class InteractiveAdaptTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ClickSegmentFinish()

    def test_ClickSegmentFinish(self):
        """The whole flow inside Slicer: point in the Red view -> segment on that slice -> finish -> site version."""
        self.delayDisplay("Small MRI-like volume: a bright ball in noise")
        k, j, i = np.mgrid[:24, :64, :64]
        ball = ((k - 12) * 2.5) ** 2 + (j - 32) ** 2 + (i - 30) ** 2 < 15**2
        array = (ball * 600 + np.random.default_rng(0).normal(200, 20, ball.shape)).astype(np.int16)
        volume = slicer.util.addVolumeFromArray(array, np.diag([-1.0, -1.0, 2.5, 1.0]), "SelfTestMRI")
        storeRoot = tempfile.mkdtemp(prefix="InteractiveAdaptSelfTest")
        logic, errors, finished = InteractiveAdaptLogic(storeRoot=storeRoot), [], []
        logic.settings = prefs.ModuleSettings(site="Self test", device="cpu")
        pn = logic.getParameterNode()
        pn.inputVolume = volume
        logic.prepareCase(pn, lambda error, tb="": errors.append(error), logging.info)
        ras = [-30.0, -32.0, 30.0]  # voxel (i=30, j=32, k=12), inside the ball
        slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode().JumpSliceByOffsetting(*ras)
        pn.positivePoints.AddControlPointWorld(vtk.vtkVector3d(*ras))
        self.assertTrue(logic.worker.drain(120, tick=slicer.app.processEvents))
        self.assertEqual(errors, [])
        segment = mrml.read_segment(pn.segmentation, pn.segmentID, mrml.volume_geometry(volume))
        self.assertGreater(int(segment[12].sum()), 0)
        self.assertEqual(int(segment.sum()), int(segment[12].sum()))  # that slice only
        logic.cases.controller.finish_case(learn=True, on_done=finished.append)
        self.assertTrue(logic.worker.drain(120, tick=slicer.app.processEvents))
        self.assertTrue(finished and finished[0].ok, finished and finished[0].error)
        self.assertTrue(list(Path(storeRoot).rglob("v000001.pt")), "no site version was written")
        logic.shutdown()
        self.delayDisplay("Test passed")
