"""Fixtures shared by the store tests: a site store in a temporary folder, tiny trained networks whose
versions it saves, a bit-for-bit comparison of saved states, and a site with several profiles.

With --import-mode=importlib a module beside the tests cannot be imported by name, so the helpers
that several test files use are handed out as fixtures (session scope where they hold no state:
hypothesis accepts them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from InteractiveAdaptLib.store.profile_store import ProfileStore, VersionInfo
from InteractiveAdaptLib.store.site_store import SiteStore

BASE = "a" * 64


def _trained(seed: int) -> tuple[nn.Module, torch.optim.Adam]:
    """A tiny real network with a real Adam state after one step."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.InstanceNorm2d(4, affine=True), nn.ReLU(), nn.Conv2d(4, 1, 1)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(2, 3, 8, 8)).pow(2).mean().backward()
    opt.step()
    return net, opt


def _assert_same(a: object, b: object) -> None:
    """Nested dicts/lists of tensors and plain values are equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b)
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b


def _save(store: ProfileStore, seed: int, *, base: str = BASE, optimizer: bool = True, **kw) -> VersionInfo:
    net, opt = _trained(seed)
    return store.save(
        net.state_dict(), opt.state_dict() if optimizer else None, base_sha256=base,
        cases_learned=kw.pop("cases", seed), clicks_learned=kw.pop("clicks", 3 * seed), **kw,
    )  # fmt: skip


def _populate(store: SiteStore) -> dict[tuple[str | None, str], ProfileStore]:
    profiles = {
        (None, "Grey matter"): store.profile("Hospital A", "Grey matter"),
        (None, "White matter"): store.profile("Hospital A", "White matter"),
        ("Dr Smith", "Grey matter"): store.profile("Hospital A", "Grey matter", user="Dr Smith"),
    }
    for k, profile in enumerate(profiles.values()):
        for seed in range(3):
            _save(profile, 10 * k + seed)
    profiles[(None, "Grey matter")].pin(1)
    profiles[(None, "White matter")].rollback(2)
    return profiles


@pytest.fixture
def store(tmp_path: Path) -> SiteStore:
    return SiteStore(tmp_path / "store", keep_last=10)


@pytest.fixture(scope="session")
def base() -> str:
    """The base-model checksum that `save` records unless told otherwise."""
    return BASE


@pytest.fixture(scope="session")
def trained() -> Callable[[int], tuple[nn.Module, torch.optim.Adam]]:
    """trained(seed): a tiny real network with a real Adam state after one step."""
    return _trained


@pytest.fixture(scope="session")
def assert_same() -> Callable[[object, object], None]:
    """assert_same(a, b): nested dicts/lists of tensors and plain values are equal, tensors bit for bit."""
    return _assert_same


@pytest.fixture(scope="session")
def save() -> Callable[..., VersionInfo]:
    """save(profile, seed, *, base=<the base fixture>, optimizer=True, cases=seed, clicks=3 * seed, **kw):
    saves the network and Adam state of trained(seed) as the profile's next version."""
    return _save


@pytest.fixture(scope="session")
def populate() -> Callable[[SiteStore], dict[tuple[str | None, str], ProfileStore]]:
    """populate(store): site 'Hospital A' with two shared profiles and one of user 'Dr Smith', three
    versions each, version 1 of 'Grey matter' pinned and 'White matter' rolled back to version 2.
    Returns the profiles by (user, profile name)."""
    return _populate
