"""Shared fixtures: a Qt-free Slicer core (real MRML scene + logics) and real MRI volumes placed in it.

The volumes are blocks of the Colin27 T1 template (package mricron-data) put into the scene with
non-trivial geometries: LPS-stored axes with anisotropic spacing and an offset origin, and a permuted
axis order in which the array's K axis runs left-right (so axial slices fix J, not K).
"""

from __future__ import annotations

import os

# Before VTK creates its first render window / before PySide6 starts: offscreen Mesa EGL, no X server.
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# ITK's pool threader (Slicer's ITK, through vtkITK filters) crashes the process at exit once it ran.
os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Platform")

import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from interactive_adapt_lab.slicer_core import make_core  # noqa: F401 (the tests import it from here)

# The engine's shared fixtures (Testing/conftest_engine.py), registered here so that pytest loads and
# assertion-rewrites it once for every test file.
pytest_plugins = ["conftest_engine"]

REPO = Path(__file__).resolve().parents[1]
COLIN27 = Path("/usr/share/mricron/templates/ch2.nii.gz")

# Slice-view orientations as Slicer's presets define them (columns: slice x, y, normal).
SLICE_TO_RAS = {
    "Axial": np.array([[-1.0, 0, 0], [0, 1, 0], [0, 0, 1]]),
    "Sagittal": np.array([[0.0, 0, 1], [-1, 0, 0], [0, 1, 0]]),
    "Coronal": np.array([[-1.0, 0, 0], [0, 0, 1], [0, 1, 0]]),
}


@dataclass(frozen=True)
class GeometrySpec:
    """How a (K, J, I) block is placed in the scene, and which array axis each standard view fixes."""

    name: str
    directions: tuple  # 3x3, columns = RAS unit vectors of the I, J, K axes
    spacing_ijk: tuple[float, float, float]
    origin: tuple[float, float, float]
    transpose: tuple[int, int, int]  # applied to the (K, J, I) Colin block
    view_axis: dict  # view name -> array axis it holds fixed

    def ijk_to_ras(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = np.asarray(self.directions, float) @ np.diag(self.spacing_ijk)
        m[:3, 3] = self.origin
        return m


GEOMETRIES = {
    # Stored like an ITK/DICOM LPS volume: I runs to the left, J to posterior, K to superior.
    "lps": GeometrySpec(
        "lps",
        ((-1, 0, 0), (0, -1, 0), (0, 0, 1)),
        (0.9, 1.2, 2.5),
        (31.5, 17.25, -12.0),
        (0, 1, 2),
        {"Axial": 0, "Coronal": 1, "Sagittal": 2},
    ),
    # A sagittally stacked acquisition: I -> posterior, J -> inferior, K -> left.
    "permuted": GeometrySpec(
        "permuted",
        ((0, 0, -1), (-1, 0, 0), (0, -1, 0)),
        (1.1, 0.8, 1.7),
        (-20.0, 40.5, 60.0),
        (2, 0, 1),
        {"Axial": 1, "Coronal": 2, "Sagittal": 0},
    ),
}


@pytest.fixture(scope="session")
def colin_block() -> np.ndarray:
    """A 20 x 36 x 44 (K, J, I) block of real T1 MRI through the middle of the brain."""
    import SimpleITK as sitk

    if not COLIN27.is_file():
        pytest.fail(f"{COLIN27} is missing: run the set-up (it installs the mricron-data package).")
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(COLIN27)))
    k, j, i = (n // 2 for n in array.shape)
    return np.ascontiguousarray(array[k - 10 : k + 10, j - 18 : j + 18, i - 22 : i + 22]).astype(np.int16)


def add_volume(scene, array: np.ndarray, spec: GeometrySpec, name: str = "MRI"):
    """A scalar volume node holding `array` (K, J, I) with the geometry of `spec`."""
    import slicer

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetSpacing(*spec.spacing_ijk)
    node.SetOrigin(*spec.origin)
    node.SetIJKToRASDirections([list(row) for row in spec.directions])
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array))
    node.CreateDefaultDisplayNodes()
    return node


@pytest.fixture(params=sorted(GEOMETRIES))
def mri_scene(request, colin_block):
    """(core, volume node, array, spec) for each geometry."""
    spec = GEOMETRIES[request.param]
    core = make_core()
    array = np.ascontiguousarray(colin_block.transpose(spec.transpose))
    volume = add_volume(core.scene, array, spec)
    return types.SimpleNamespace(core=core, scene=core.scene, volume=volume, array=array, spec=spec)


def add_slice_node(scene, name: str, orientation: str, through_ras=None):
    """A slice view node (Red/Yellow/Green style) with a standard orientation, through a point."""
    import slicer
    import vtk

    node = scene.AddNewNodeByClass("vtkMRMLSliceNode", name)
    node.SetLayoutName(name)
    matrix = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            matrix.SetElement(r, c, float(SLICE_TO_RAS[orientation][r, c]))
    node.GetSliceToRAS().DeepCopy(matrix)
    node.UpdateMatrices()
    if through_ras is not None:
        node.JumpSliceByOffsetting(*[float(v) for v in through_ras])
    assert isinstance(node, slicer.vtkMRMLSliceNode)
    return node


def tilt_slice_node(node, axis: str, degrees: float) -> None:
    """Rotate a slice view about its own X or Y axis (an oblique view, as a user's reformat makes)."""
    import vtk

    tilt = vtk.vtkTransform()
    getattr(tilt, f"Rotate{axis}")(degrees)
    tilt.Concatenate(node.GetSliceToRAS())
    node.GetSliceToRAS().DeepCopy(tilt.GetMatrix())
    node.UpdateMatrices()


def voxel_ras(spec: GeometrySpec, kji) -> np.ndarray:
    """RAS of the centre of voxel (k, j, i)."""
    k, j, i = kji
    return (spec.ijk_to_ras() @ np.array([i, j, k, 1.0]))[:3]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A shipped-model folder (weights.pt + model.json) holding a tiny untrained U-Net."""
    import torch
    from conftest_engine import TINY_CONFIG

    from InteractiveAdaptLib.model.base_model import save_base_model
    from InteractiveAdaptLib.model.network import build_network

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("models") / "tiny"
    save_base_model(build_network(TINY_CONFIG), directory, {"name": "tiny-test"})
    return directory


def wait_idle(worker, timeout: float | None = None) -> bool:
    """Block until every job submitted to `worker` has its result in the output queue (its callbacks
    have not run yet: `poll` runs them); False on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while worker.busy:
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True
