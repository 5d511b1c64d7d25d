"""Issue 7, DICOM: a real-pixel MR series written from Colin27, read by the engine's image io and by a
Slicer storage node (as the DICOM module's scalar volume plugin does), gives the same voxels and the same
geometry in the scene, and the adapter sees the same volume either way."""

from __future__ import annotations

import numpy as np
import pytest
import slicer
import vtk
from conftest import COLIN27, make_core

from InteractiveAdaptLib import mrml
from InteractiveAdaptLib.io.volumes import Volume, read_volume, write_dicom_series

pytestmark = pytest.mark.slicer


def ijk_to_ras(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return slicer.util.arrayFromVTKMatrix(m)


@pytest.fixture(scope="module")
def colin_series(tmp_path_factory):
    """Colin27 (real pixels) cropped and written as a single-frame MR DICOM series, 2 mm slices."""
    full = read_volume(COLIN27)
    block = full.array[60:120:2, 50:170, 40:140].astype(np.int16)
    geometry = full.ijk_to_ras.copy()
    geometry[:3, 2] *= 2  # every second K slice: 2 mm apart
    corner = np.eye(4)
    corner[:3, 3] = full.ijk_to_ras[:3, :3] @ np.array([40, 50, 60])
    geometry[:3, 3] = (corner @ full.ijk_to_ras)[:3, 3]
    folder = tmp_path_factory.mktemp("dicom")
    files = write_dicom_series(Volume(block, geometry), folder, series_description="Colin27 T1 block")
    return folder, files, Volume(block, geometry)


def test_engine_and_slicer_storage_node_read_the_same_voxels_and_geometry(colin_series):
    folder, files, written = colin_series
    engine = read_volume(folder)
    np.testing.assert_array_equal(engine.array, written.array)
    np.testing.assert_allclose(engine.ijk_to_ras, written.ijk_to_ras, atol=1e-4)

    core = make_core()
    node = core.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "DICOM series")
    storage = core.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(sorted(files)[0]))  # an archetype file: the reader finds the whole series
    node.SetAndObserveStorageNodeID(storage.GetID())
    assert storage.ReadData(node), "Slicer's storage node could not read the DICOM series"
    slicer_array = slicer.util.arrayFromVolume(node)
    assert slicer_array.shape == engine.array.shape
    np.testing.assert_array_equal(slicer_array, engine.array)
    np.testing.assert_allclose(ijk_to_ras(node), engine.ijk_to_ras, atol=1e-3)

    # The adapter, which the module uses on whatever the DICOM module loaded, sees the same volume.
    geometry = mrml.volume_geometry(node)
    np.testing.assert_array_equal(mrml.volume_array(node), engine.array)
    np.testing.assert_allclose(np.asarray(geometry.ijk_to_ras), engine.ijk_to_ras, atol=1e-3)
