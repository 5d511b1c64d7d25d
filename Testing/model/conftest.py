"""Fixtures shared by the model tests: tiny U-Nets of a fixed seed and a check that two networks give
the same outputs.

With --import-mode=importlib a module beside the tests cannot be imported by name, so the helpers
that several test files use are handed out as session fixtures.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from conftest_engine import TINY_CONFIG

from InteractiveAdaptLib.model.network import NetworkConfig, build_network


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.randn(1, 3, 23, 29, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def _network(seed: int, config: NetworkConfig = TINY_CONFIG) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_network(config).eval()


@pytest.fixture(scope="session")
def same_outputs() -> Callable[[torch.nn.Module, torch.nn.Module], bool]:
    """same_outputs(a, b): whether both networks give bit-identical outputs on one fixed input."""
    return _same_outputs


@pytest.fixture(scope="session")
def network() -> Callable[..., torch.nn.Module]:
    """network(seed, config=TINY_CONFIG): a freshly initialised network (eval mode) of that seed."""
    return _network
