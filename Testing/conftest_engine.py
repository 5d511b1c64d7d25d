"""Shared fixtures of the engine tests (loaded with `pytest_plugins = ["conftest_engine"]`).

The domains are built from the installed data packages into a fresh cache folder of this test
session, as CI does from nothing; the cost is a few seconds once per session.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from interactive_adapt_lab.data.datasets import Domain, load_domain
from InteractiveAdaptLib.model.network import NetworkConfig, build_network

# A 3-level U-Net of a few thousand parameters: fast on CPU, same code path as the real configs.
TINY_CONFIG = NetworkConfig(name="tiny", channels=(8, 16, 32), num_res_units=1)


@pytest.fixture(scope="session")
def engine_cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engine-cache")


@pytest.fixture(scope="session")
def engine_domain(engine_cache_dir) -> Callable[[str], Domain]:
    """name -> Domain, built once per session into the session's cache folder."""
    loaded: dict[str, Domain] = {}

    def get(name: str) -> Domain:
        if name not in loaded:
            loaded[name] = load_domain(name, engine_cache_dir)
        return loaded[name]

    return get


@pytest.fixture(scope="session")
def caudate_block(engine_domain) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray]:
    """A 70 x 80 x 70 mm block of Colin27 around the left caudate: (image, spacing, the caudate in it)."""
    colin = engine_domain("colin27")
    truth = colin.target_mask("aal:Caudate_L")
    k, j, i = np.argwhere(truth).mean(axis=0).astype(int)
    box = (slice(k - 35, k + 35), slice(j - 40, j + 40), slice(i - 35, i + 35))
    return colin.image[box].copy(), colin.spacing_kji, truth[box].copy()


@pytest.fixture
def tiny_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(TINY_CONFIG).eval()


def disk(shape: tuple[int, int], center: tuple[float, float], radius: float) -> np.ndarray:
    """Boolean disk of a given radius (in pixels) around `center`."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests use small networks: one thread is as fast as two, and far faster on a busy machine."""
    torch.set_num_threads(1)
