"""Which Python packages are there: requirement lines, whether a package imports, which version pip
installed, and whether that version is one the module accepts. Imports neither Slicer nor torch."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

try:
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as _Parsed
    from packaging.version import InvalidVersion
except ImportError:  # pip's own copy: Slicer's Python always has pip
    from pip._vendor.packaging.requirements import InvalidRequirement
    from pip._vendor.packaging.requirements import Requirement as _Parsed
    from pip._vendor.packaging.version import InvalidVersion

log = logging.getLogger(__name__)

# pip distribution name -> import name, where they differ
_IMPORT_NAMES = {"simpleitk": "SimpleITK", "pyyaml": "yaml", "scikit-image": "skimage"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class Requirement:
    """One pip requirement line and the module name that proves it is installed."""

    spec: str
    import_name: str

    @property
    def name(self) -> str:
        """The distribution name ('monai' for 'monai>=1.5,<1.7')."""
        match = _NAME.match(self.spec)
        return match.group(1) if match else self.spec

    def accepts(self, version: str) -> bool:
        """Whether an installed `version` is within the line's range (pre-releases count as releases).

        An unreadable version is not accepted: it is installed again. A line pip's parser cannot read
        accepts any version (it has no range to check).
        """
        try:
            specifier = _Parsed(self.spec).specifier
        except InvalidRequirement:
            return True
        try:
            return specifier.contains(version, prereleases=True)
        except InvalidVersion:
            return False


def requirement_from_spec(spec: str) -> Requirement:
    """Parse 'monai>=1.5,<1.7' (extras and markers allowed) into a Requirement.

    Raises:
        ValueError: `spec` names no distribution.
    """
    match = _NAME.match(spec)
    if not match:
        raise ValueError(f"Not a requirement: {spec!r}")
    dist = match.group(1)
    import_name = _IMPORT_NAMES.get(dist.lower(), dist.replace("-", "_"))
    return Requirement(spec.strip(), import_name)


def read_requirements(path: str | Path) -> list[Requirement]:
    """Requirements of a requirements.txt (comments, blank lines and pip options skipped)."""
    requirements = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirements.append(requirement_from_spec(line))
    return requirements


def can_import(module_name: str) -> bool:
    """True if `module_name` imports (a broken install that raises on import counts as missing)."""
    try:
        importlib.import_module(module_name)
    except Exception as exc:  # ImportError, OSError for broken shared libraries, ...
        log.info("Python package %s is not usable: %s", module_name, exc)
        return False
    return True


def is_distribution_installed(name: str) -> bool:
    """True if pip has a record of distribution `name` (even when it no longer imports)."""
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def installed_version(name: str) -> str | None:
    """The version pip recorded for distribution `name`; None when it has no record."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_requirements(
    requirements: Iterable[Requirement], importable: Callable[[str], bool] = can_import
) -> list[Requirement]:
    """The requirements whose module does not import, in the given order."""
    return [r for r in requirements if not importable(r.import_name)]


def outdated_requirements(
    requirements: Iterable[Requirement], version_of: Callable[[str], str | None] = installed_version
) -> dict[str, str]:
    """Distribution name -> installed version, for those installed outside their line's range.

    A package without a pip record (shipped with Slicer, say) is taken as it is.
    """
    found = {r.name: version_of(r.name) for r in requirements}
    return {r.name: v for r in requirements if (v := found[r.name]) is not None and not r.accepts(v)}
