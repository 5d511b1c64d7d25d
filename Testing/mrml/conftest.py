"""Fixtures shared by the scene adapter tests: the standard views, target voxels of the MRI block and
helpers that make segmentations and random masks on the scene of a test.

With --import-mode=importlib a module beside the tests cannot be imported by name, so the helpers
that several test files use are handed out as fixtures. The scene, the volumes and the slice view
nodes themselves come from Testing/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest

from InteractiveAdaptLib import mrml

VIEWS = ("Axial", "Coronal", "Sagittal")
TARGETS_KJI = [(7, 11, 29), (12, 25, 9), (3, 30, 40)]  # for the (20, 36, 44) block; transposed per geometry


def _blob(shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(shape) > 0.6).astype(np.uint8)


@pytest.fixture(scope="session")
def views() -> tuple[str, ...]:
    """The three standard slice-view orientations, in the order that pairs them with `targets`."""
    return VIEWS


@pytest.fixture(params=VIEWS)
def view(request) -> str:
    """Each standard slice-view orientation in turn."""
    return request.param


@pytest.fixture
def targets(mri_scene: SimpleNamespace) -> list[tuple[int, int, int]]:
    """The target voxels of the block, transposed like the array of this test's geometry."""
    order = list(mri_scene.spec.transpose)
    return [tuple(int(v) for v in np.array(kji)[order]) for kji in TARGETS_KJI]


@pytest.fixture
def make_segmentation(mri_scene: SimpleNamespace) -> Callable[..., tuple]:
    """make_segmentation(*names): (segmentation node on the volume, ids of new empty segments so named)."""

    def make(*names: str):
        seg = mrml.create_segmentation(mri_scene.scene, mri_scene.volume)
        ids = [seg.GetSegmentation().AddEmptySegment("", name) for name in names]
        return seg, ids

    return make


@pytest.fixture(scope="session")
def blob() -> Callable[..., np.ndarray]:
    """blob(shape, seed): a random binary mask (uint8), the same for the same seed."""
    return _blob
