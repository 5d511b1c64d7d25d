"""The lines of learning a profile's versions form: each version names the one it was learned from
(its parent). A save records its true parent; where loading falls back; which base model a line
started from."""

from __future__ import annotations

from InteractiveAdaptLib.errors import IncompatibleBaseModelError, SiteStoreError
from InteractiveAdaptLib.store.versions import Manifest, VersionInfo, utc_now


def leaves(versions: dict[int, VersionInfo]) -> set[int]:
    """The versions no later version was learned from: the newest of each line of learning.

    A save marks the version it learned from (`has_child`), so a version whose child was pruned is no
    leaf; a manifest rebuilt from the version files knows only the parents still listed, so it may
    count a version as a leaf that is none (retention then keeps more, never less).
    """
    return {v for v, i in versions.items() if not i.has_child} - {i.parent for i in versions.values()}


def new_version(m: Manifest, base_sha256: str, parent: int | None, label: str) -> VersionInfo:
    """The entry of the version a save adds (the lock is held), with its true parent.

    Args:
        m: the manifest as it is on disk now.
        base_sha256: the base model the new weights were adapted from.
        parent: the version the weights were learned from; None = the current one.
        label: how messages name the profile.

    Returns:
        The entry, numbered after every version ever saved. When `parent` is not the current version,
        another writer got there first: `other_leaves` lists the versions whose learning is not in this
        one. A parent numbered at or above the new version (the profile was deleted or replaced since
        it was loaded) is recorded as -1, unknown.

    Raises:
        IncompatibleBaseModelError: the version learned from was learned from another base model.
    """
    learned_from = m.current if parent is None else parent
    source = m.versions.get(learned_from)
    if source is not None and source.base_sha256 not in ("", base_sha256):
        raise IncompatibleBaseModelError(
            f"Version {source.version} of {label}, which these weights were learned from, was learned "
            "from another base model than these new weights. Restart the profile from the new base model "
            "(roll back to version 0) before saving; nothing was changed."
        )
    number = m.last_version + 1
    info = VersionInfo(number, learned_from if learned_from < number else -1, base_sha256, utc_now(), 0, 0)
    if learned_from != m.current:
        info.other_leaves = sorted(leaves(m.versions) - {learned_from})
    return info


def listed(m: Manifest, version: int, label: str) -> VersionInfo:
    """The entry of `version`.

    Raises:
        SiteStoreError: it is not listed (the message names the versions kept).
    """
    if version not in m.versions:
        have = ", ".join(map(str, sorted(m.versions))) or "none"
        raise SiteStoreError(
            f"Version {version} of {label} does not exist. Versions kept: {have} (0 = the shipped base model)."
        )
    return m.versions[version]


def check_base(m: Manifest, info: VersionInfo, base_sha256: str, label: str) -> None:
    """Refuse a version learned from another base model than the installed one.

    Raises:
        IncompatibleBaseModelError: it was (the message names the versions made from the installed one).
    """
    if info.base_sha256 == base_sha256:
        return
    ok = [str(i.version) for i in m.versions.values() if i.base_sha256 == base_sha256 and not i.damaged]
    also = f", roll back to version {', '.join(ok)} (made from the installed one)" if ok else ""
    raise IncompatibleBaseModelError(
        f"Version {info.version} of {label} was learned from a different base model (sha256 "
        f"{info.base_sha256[:12]}...) than the one installed now ({base_sha256[:12]}...), so it cannot be "
        f"used with it. Restart the profile from the new base model (roll back to version 0; the old "
        f"versions stay listed and can be exported){also}, or reinstall the earlier base model."
    )


def fallback(m: Manifest, info: VersionInfo) -> int:
    """The version to try after a damaged `info`: its parent, else the newest listed one below."""
    if 0 <= info.parent < info.version and (info.parent == 0 or info.parent in m.versions):
        return info.parent  # always a smaller number: the walk ends even on a hand-edited manifest
    bound = info.parent if 0 < info.parent < info.version else info.version
    return max((v for v in m.versions if v < bound), default=0)
