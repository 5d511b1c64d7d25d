"""STAND-INS for what only the 3D Slicer application provides, so that the module file
(InteractiveAdapt/InteractiveAdapt.py) runs unmodified under real Qt (PySide6, offscreen platform) on a
real MRML scene (slicer-core) with real offscreen slice views and interactors (trame-slicer).

Real here: the scene and its nodes, the module's widgets as its .ui file defines them, Qt's event loop,
timers, signals and shortcuts, the views' interactors and the mouse events sent to them, the module's
logic, workflow, worker thread and engine. Stand-ins, each as thin as the module's use of it:
- `qt`: PySide6's QtCore, QtGui and QtWidgets under one name, as PythonQt's `qt` module offers them.
- `slicer.ScriptedLoadableModule`: the four base classes (panel layout, resource path, the logic's
  parameter node in the scene, the test's delayDisplay); Slicer's own add the Reload & Test section.
- `slicer.parameterNodeWrapper`: typed fields stored on the module's scripted module node (node
  fields as node references, the others as parameters) and `connectGui` for the two widgets the .ui
  binds (the volume selector, the "Learn from this case" box).
- `slicer.app`: the layout manager (slice widgets over the trame-slicer views, or none, as in
  Slicer's "no main window" generic tests), the settings path, processEvents.
- `slicer.util`: loadUI (QUiLoader with stand-ins of the CTK/MRML widget classes), childWidgetVariables,
  mainWindow, resetSliceViews, and the dialogs: each records its question and answers from a queue,
  inside a nested event loop as a modal dialog runs one.
- `slicer.modules`: an empty namespace (no PyTorch extension).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import slicer
import slicer.util
import vtk
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Property, QFile, Signal, Slot
from PySide6.QtUiTools import QUiLoader
from PySide6.QtWidgets import QComboBox, QGroupBox, QWidget

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "InteractiveAdapt"


# ---------------------------------------------------------------- CTK / MRML widget classes of the .ui


class ctkCollapsibleButton(QGroupBox):  # noqa: N801 (CTK's class name)
    def _collapsed(self):
        return getattr(self, "_is_collapsed", False)

    def _set_collapsed(self, value):
        self._is_collapsed = bool(value)

    text = Property(str, QGroupBox.title, QGroupBox.setTitle)
    collapsed = Property(bool, _collapsed, _set_collapsed)


def _flag(name: str, default: bool):
    def get(self):
        return getattr(self, f"_{name}", default)

    def put(self, value):
        setattr(self, f"_{name}", bool(value))

    return Property(bool, get, put)


class qMRMLWidget(QWidget):  # noqa: N801 (Slicer's class name)
    mrmlSceneChanged = Signal("vtkMRMLScene*")

    @Slot("vtkMRMLScene*")
    def setMRMLScene(self, scene):
        self.scene = scene
        for child in self.findChildren(qMRMLNodeComboBox):
            child.setMRMLScene(scene)


class qMRMLNodeComboBox(QComboBox):  # noqa: N801 (Slicer's class name)
    """The scene's nodes of `nodeTypes`, listed again whenever a node is added or removed."""

    currentNodeChanged = Signal(object)

    def _types(self):
        return getattr(self, "_node_types", [])

    def _set_types(self, value):
        self._node_types = list(value)

    nodeTypes = Property("QStringList", _types, _set_types)
    showChildNodeTypes = _flag("showChildNodeTypes", True)
    addEnabled = _flag("addEnabled", True)
    removeEnabled = _flag("removeEnabled", True)
    renameEnabled = _flag("renameEnabled", False)
    noneEnabled = _flag("noneEnabled", False)

    @Slot("vtkMRMLScene*")
    def setMRMLScene(self, scene):
        self.scene = scene
        if scene is not None and not hasattr(self, "_observed"):
            self._observed = [
                scene.AddObserver(event, lambda *a: self._list())
                for event in (scene.NodeAddedEvent, scene.NodeRemovedEvent, scene.EndCloseEvent)
            ]
            self.currentIndexChanged.connect(lambda _: self.currentNodeChanged.emit(self.currentNode()))
        self._list()

    def _list(self) -> None:
        current = self.currentNode()
        self.blockSignals(True)
        self.clear()
        self.addItem("None", "")
        for type_name in self._types():
            for n in range(self.scene.GetNumberOfNodesByClass(type_name)):
                node = self.scene.GetNthNodeByClass(n, type_name)
                if self.showChildNodeTypes or node.GetClassName() == type_name:
                    self.addItem(node.GetName(), node.GetID())
        self.blockSignals(False)
        self.setCurrentNode(current)

    def currentNode(self):
        node_id = self.currentData()
        return self.scene.GetNodeByID(node_id) if node_id and getattr(self, "scene", None) else None

    def setCurrentNode(self, node):
        index = self.findData(node.GetID()) if node is not None else 0
        self.setCurrentIndex(max(index, 0))


# ---------------------------------------------------------------- slicer.parameterNodeWrapper


def parameterNodeWrapper(cls):  # noqa: N802 (Slicer's name)
    """Typed fields of `cls` on a scripted module node: MRML nodes as node references, others as text."""
    fields = dict(cls.__annotations__)
    defaults = {name: getattr(cls, name, None) for name in fields}

    class Wrapped:
        def __init__(self, node):
            object.__setattr__(self, "parameterNode", node)
            object.__setattr__(self, "_guis", {})

        def __getattr__(self, name):
            if name not in fields:  # AddObserver, RemoveObserver, ...: the node's own
                return getattr(self.parameterNode, name)
            node = self.parameterNode
            kind = fields[name]
            if _is_node_type(kind):
                return node.GetNodeReference(name)
            text = node.GetParameter(name)
            if text == "":
                return defaults[name]
            return text == "true" if kind in (bool, "bool") else text

        def __setattr__(self, name, value):
            if name not in fields:
                raise AttributeError(f"{name} is not a parameter")
            node, kind = self.parameterNode, fields[name]
            if _is_node_type(kind):
                if node.GetNodeReference(name) is not value:
                    node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
                    node.Modified()
            else:
                text = ("true" if value else "false") if kind in (bool, "bool") else str(value)
                if node.GetParameter(name) != text:
                    node.SetParameter(name, text)

        def __bool__(self):
            return True

        def connectGui(self, widget):  # noqa: N802 (Slicer's name)
            """Widgets whose dynamic property SlicerParameterName names a field follow it both ways."""
            links = []
            for child in _widgets(widget):
                name = child.property("SlicerParameterName")
                if not name:
                    continue
                if isinstance(child, qMRMLNodeComboBox):
                    child.setCurrentNode(getattr(self, name))
                    links.append((child.currentNodeChanged, lambda node, n=name: setattr(self, n, node)))
                elif isinstance(child, QtWidgets.QCheckBox):
                    child.setChecked(bool(getattr(self, name)))
                    links.append((child.toggled, lambda on, n=name: setattr(self, n, on)))
            for signal, slot in links:
                signal.connect(slot)
            tag = self.parameterNode.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda *a: self._show(widget))
            key = len(self._guis)
            self._guis[key] = (links, tag)
            return key

        def disconnectGui(self, key):  # noqa: N802 (Slicer's name)
            links, tag = self._guis.pop(key)
            for signal, slot in links:
                signal.disconnect(slot)
            self.parameterNode.RemoveObserver(tag)

        def _show(self, widget):
            for child in (w for w in _widgets(widget) if isinstance(w, qMRMLNodeComboBox)):
                name = child.property("SlicerParameterName")
                if name and child.currentNode() is not getattr(self, name):
                    child.blockSignals(True)
                    child.setCurrentNode(getattr(self, name))
                    child.blockSignals(False)

    Wrapped.__name__ = cls.__name__
    return Wrapped


def _widgets(gui) -> list:
    """The widgets of what the module hands connectGui: childWidgetVariables' namespace, or a widget."""
    return list(vars(gui).values()) if isinstance(gui, types.SimpleNamespace) else gui.findChildren(QWidget)


def _is_node_type(kind) -> bool:
    return (
        isinstance(kind, type)
        and issubclass(kind, slicer.vtkMRMLNode)
        or (isinstance(kind, str) and kind.startswith("slicer.vtkMRML"))
    )


# ---------------------------------------------------------------- slicer.ScriptedLoadableModule


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent
        self.moduleName = type(self).__name__


class ScriptedLoadableModuleWidget:
    """The module panel: `parent` is the panel widget (isEntered as Slicer's module widget has it)."""

    def __init__(self, parent=None):
        self.parent = parent or QWidget()
        if self.parent.layout() is None:
            QtWidgets.QVBoxLayout(self.parent)
        self.layout = self.parent.layout()
        self.moduleName = type(self).__name__.removesuffix("Widget")

    def resourcePath(self, filename):  # noqa: N802 (Slicer's name)
        return str(MODULE_DIR / "Resources" / filename)

    def setup(self):
        pass

    def cleanup(self):
        pass

    def enter(self):
        pass

    def exit(self):
        pass

    def onReload(self):  # noqa: N802 (Slicer's name)
        """Slicer runs the module file again (reloadScriptedModule); here the caller does."""


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        self.moduleName = type(self).__name__.removesuffix("Logic")

    def getParameterNode(self):  # noqa: N802 (Slicer's name)
        scene = slicer.mrmlScene
        node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.vtkMRMLScriptedModuleNode()
            node.SetSingletonTag(self.moduleName)
            node.SetName(self.moduleName)
            node.SetModuleName(self.moduleName)
            node = scene.AddNode(node)
        return node


class ScriptedLoadableModuleTest:
    def delayDisplay(self, message, msec=0):  # noqa: N802 (Slicer's name)
        print(message)


# ---------------------------------------------------------------- slicer.app and slicer.util


class SliceWidget:
    """A slice view of the layout as Slicer's qMRMLSliceWidget offers it to the module."""

    def __init__(self, view) -> None:
        self.view = view

    def mrmlSliceNode(self):  # noqa: N802 (Slicer's name)
        return self.view.get_view_node()

    def sliceView(self):  # noqa: N802 (Slicer's name)
        return types.SimpleNamespace(interactor=self.view.interactor)


class LayoutManager(QtCore.QObject):
    layoutChanged = Signal(int)

    def __init__(self, views: dict[str, Any]) -> None:
        super().__init__()
        self.views = views

    def sliceViewNames(self):  # noqa: N802 (Slicer's name)
        return list(self.views)

    def sliceWidget(self, name):  # noqa: N802 (Slicer's name)
        return SliceWidget(self.views[name])


class Application:
    """slicer.app: the layout manager (None without a main window), settings path, processEvents."""

    def __init__(self, settings_file: Path, layout: LayoutManager | None) -> None:
        self.slicerUserSettingsFilePath = str(settings_file)
        self._layout = layout

    def layoutManager(self):  # noqa: N802 (Slicer's name)
        return self._layout

    def processEvents(self):  # noqa: N802 (Slicer's name)
        QtWidgets.QApplication.processEvents()


class Dialogs:
    """The module's dialogs: each records (kind, text) and answers from `answers` (default: No/Cancel)
    after a nested event loop of `modal_ms`, as a modal dialog's own event loop runs the timers."""

    def __init__(self, modal_ms: int = 60) -> None:
        self.shown: list[tuple[str, str]] = []
        self.answers: list[bool] = []
        self.modal_ms = modal_ms
        self.depth = self.deepest = 0

    def show(self, kind: str, text: str) -> bool:
        self.shown.append((kind, str(text)))
        self.depth += 1
        self.deepest = max(self.deepest, self.depth)
        try:
            loop = QtCore.QEventLoop()
            QtCore.QTimer.singleShot(self.modal_ms, loop.quit)
            loop.exec()
        finally:
            self.depth -= 1
        return self.answers.pop(0) if self.answers else False


def _child_widgets(widget) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        **{w.objectName(): w for w in widget.findChildren(QWidget) if w.objectName()}
    )


def load_ui(path: str):
    """A .ui file loaded with QUiLoader and the stand-ins of the CTK/MRML widget classes it uses."""
    loader = QUiLoader()
    for cls in (ctkCollapsibleButton, qMRMLWidget, qMRMLNodeComboBox):
        loader.registerCustomWidget(cls)
    file = QFile(path)
    assert file.open(QFile.ReadOnly), path
    try:
        widget = loader.load(file)
    finally:
        file.close()
    assert widget is not None, loader.errorString()
    return widget


@contextmanager
def slicer_application(
    scene, views: dict[str, Any] | None, settings_file: Path
) -> Iterator[types.SimpleNamespace]:
    """Install the stand-ins (and undo them after): `views` are the layout's slice views by name, None
    for Slicer without a main window. Yields what a test looks at: the dialogs, the main window."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    QtCore.QCoreApplication.setOrganizationName("InteractiveAdaptTests")
    QtCore.QCoreApplication.setApplicationName("Slicer")
    QtCore.QSettings.setPath(
        QtCore.QSettings.IniFormat, QtCore.QSettings.UserScope, str(settings_file.parent)
    )
    QtCore.QSettings.setDefaultFormat(QtCore.QSettings.IniFormat)
    qt = types.ModuleType("qt")
    for source in (QtCore, QtGui, QtWidgets):
        qt.__dict__.update({k: getattr(source, k) for k in dir(source) if not k.startswith("_")})  # lazy
    scripted = types.ModuleType("slicer.ScriptedLoadableModule")
    for cls in (
        ScriptedLoadableModule,
        ScriptedLoadableModuleWidget,
        ScriptedLoadableModuleLogic,
        ScriptedLoadableModuleTest,
    ):
        setattr(scripted, cls.__name__, cls)
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = parameterNodeWrapper
    window = QtWidgets.QMainWindow() if views is not None else None
    dialogs = Dialogs()
    util_names = {
        "loadUI": load_ui,
        "childWidgetVariables": _child_widgets,
        "mainWindow": lambda: window,
        "resetSliceViews": lambda: None,
        "confirmYesNoDisplay": lambda text, **kw: dialogs.show("yes/no", text),
        "confirmOkCancelDisplay": lambda text, *a, **kw: dialogs.show("ok/cancel", text),
        "errorDisplay": lambda text, **kw: dialogs.show("error", text),
        "warningDisplay": lambda text, **kw: dialogs.show("warning", text),
    }
    saved_util = {name: getattr(slicer.util, name, None) for name in util_names}
    saved_modules = {name: sys.modules.get(name) for name in ("qt", scripted.__name__, wrapper.__name__)}
    layout = LayoutManager(views) if views is not None else None
    try:
        sys.modules.update({"qt": qt, scripted.__name__: scripted, wrapper.__name__: wrapper})
        slicer.ScriptedLoadableModule, slicer.parameterNodeWrapper = scripted, wrapper
        for name, value in util_names.items():
            setattr(slicer.util, name, value)
        slicer.app = Application(settings_file, layout)
        slicer.mrmlScene = scene
        slicer.modules = types.SimpleNamespace()
        yield types.SimpleNamespace(qt=qt, dialogs=dialogs, window=window, layout=layout, app=app)
    finally:
        for name, value in saved_util.items():
            setattr(slicer.util, name, value)
        for name, module in saved_modules.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for name in ("app", "mrmlScene", "modules", "ScriptedLoadableModule", "parameterNodeWrapper"):
            if hasattr(slicer, name):
                delattr(slicer, name)
        if window is not None:
            try:
                window.deleteLater()
            except RuntimeError:  # Qt deleted it already
                pass


def load_module_file(name: str = "InteractiveAdapt") -> types.ModuleType:
    """The module file executed afresh (as Slicer does on startup and on Reload)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, MODULE_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
