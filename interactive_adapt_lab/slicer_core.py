"""A Qt-free Slicer core for the lab's benchmarks, scripts and tests: a real MRML scene with the logics
the module relies on, and volumes read as Slicer's "Add data" reads them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any


def make_core() -> SimpleNamespace:
    """Scene + the logics slicer.modules would give (colours, volumes, segmentations with their
    converters, markups); keep the namespace referenced as long as the scene is used."""
    import slicer

    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    color_logic = app_logic.GetColorLogic()
    color_logic.SetMRMLScene(scene)
    color_logic.AddDefaultColorNodes()
    app_logic.SetModuleLogic("Colors", color_logic)
    logics = {}
    for name, cls in [
        ("Volumes", slicer.vtkSlicerVolumesLogic),
        ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic),  # registers the converters
        ("Markups", slicer.vtkSlicerMarkupsLogic),
    ]:
        logic = cls()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app_logic)
        app_logic.SetModuleLogic(name, logic)
        logics[name] = logic
    return SimpleNamespace(scene=scene, app_logic=app_logic, **logics)


def load_volume(scene: Any, path: str | Path, name: str, show: bool = True) -> Any:
    """Read an image file as Slicer's 'Add data' does (storage node: voxels and IJK->RAS from the header)."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    if not storage.ReadData(node):
        raise RuntimeError(f"Slicer could not read {path}; run scripts/setup.sh (package mricron-data).")
    if show:
        node.CreateDefaultDisplayNodes()
    return node
