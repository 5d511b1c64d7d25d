"""What a profile folder holds: its file names, one version's entry, the manifest in memory, and the
lines of learning the versions form (each version names the version it was learned from)."""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

FORMAT = 1
# The file names of a profile folder: the store owns them (the site store and the tools ask here).
MANIFEST_FILE = "manifest.json"
VERSION_FILE = re.compile(r"^v(\d{6,})\.pt$")
OPTIMIZER_FILE = re.compile(r"^v(\d{6,})\.optim\.pt$")
# Metadata a version file carries about itself (the rest is manifest state).
FILE_KEYS = ("version", "parent", "base_sha256", "created", "cases_learned", "clicks_learned")
FILE_KEYS += ("metrics", "note", "optimizer_sha256")


def version_file(version: int) -> str:
    """The weights file of `version` (v000001.pt, ...)."""
    return f"v{version:06d}.pt"


def optimizer_file(version: int) -> str:
    """The optimizer-state file of `version` (v000001.optim.pt, ...)."""
    return f"v{version:06d}.optim.pt"


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def json_bytes(obj: Any) -> bytes:
    """`obj` as indented UTF-8 JSON (non-ASCII kept as is)."""
    return json.dumps(obj, indent=1, ensure_ascii=False).encode("utf-8")


def read_name(path: Path, default: str, key: str = "name") -> str:
    """The name a JSON marker file (site.json, user.json, manifest.json) holds; `default` if unreadable."""
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        name = json.loads(path.read_text("utf-8")).get(key)
        if isinstance(name, str) and name:
            return name
    return default


@dataclass
class VersionInfo:
    """One saved version of a profile, as the manifest lists it."""

    version: int
    parent: int  # the version it was learned from: 0 = the shipped base model, -1 = unknown
    base_sha256: str
    created: str  # ISO 8601, UTC
    cases_learned: int
    clicks_learned: int
    metrics: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    pinned: bool = False
    sha256: str = ""  # of the weights file
    optimizer_sha256: str = ""  # empty once the optimizer state is pruned
    damaged: str = ""  # why the file cannot be used; empty when it is good
    has_child: bool = False  # a later version was learned from this one (that one may be pruned since)
    # Set when another writer saved (or changed the version in use) after `parent` was loaded: the
    # versions, besides this one, that no later version descends from (their learning is not in this one).
    other_leaves: list[int] = field(default_factory=list)

    @property
    def file(self) -> str:
        return version_file(self.version)

    @property
    def optimizer_file(self) -> str:
        return optimizer_file(self.version)

    @property
    def has_optimizer(self) -> bool:
        return bool(self.optimizer_sha256)

    @property
    def concurrent_warning(self) -> str:
        """What to tell the user when another writer saved meanwhile ('' when none did)."""
        if not self.other_leaves:
            return ""
        others = " and ".join(map(str, self.other_leaves))
        one = len(self.other_leaves) == 1
        source = {0: "the shipped base model", -1: "a version no longer kept"}.get(
            self.parent, f"version {self.parent}"
        )
        return (
            f"Another InteractiveAdapt (another Slicer or command) saved this profile while this one "
            f"was learning: version{'' if one else 's'} {others} {'holds' if one else 'hold'} learning "
            f"that the new version {self.version} (learned from {source}) does not. All are kept and "
            f"version {self.version} is in use; roll back to version {self.other_leaves[-1]} to use the "
            "other learning instead."
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionInfo:
        """The entry of a manifest or version file; ValueError when it is not one."""
        info = cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        if not (isinstance(info.version, int) and info.version > 0 and isinstance(info.parent, int)):
            raise ValueError(f"bad version entry {data!r}")
        if not (isinstance(info.other_leaves, list) and all(isinstance(v, int) for v in info.other_leaves)):
            raise ValueError(f"bad other_leaves in {data!r}")
        return info


@dataclass
class LoadedVersion:
    """Weights (and optimizer state, when kept) of one version, plus what went wrong on the way."""

    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    info: VersionInfo
    warnings: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    """A profile's manifest in memory: its versions, the one in use, the last number handed out."""

    profile: str
    current: int = 0
    last_version: int = 0  # never reused, even after pruning
    versions: dict[int, VersionInfo] = field(default_factory=dict)


def holds_versions(folder: Path) -> bool:
    """Whether `folder` is a profile folder: it holds a manifest or a version file."""
    return folder.is_dir() and any(n == MANIFEST_FILE or VERSION_FILE.match(n) for n in os.listdir(folder))


def profile_name_in(folder: Path) -> str:
    """The profile name as typed, from a profile folder's manifest (the folder name if unreadable)."""
    return read_name(folder / MANIFEST_FILE, folder.name, "profile")
