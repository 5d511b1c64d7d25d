"""Retention: which versions of a profile stay, so that its folder does not grow without bound while
no learning is lost."""

from __future__ import annotations

from InteractiveAdaptLib.store.lineage import leaves
from InteractiveAdaptLib.store.manifest import ProfileFolder
from InteractiveAdaptLib.store.versions import Manifest, VersionInfo, optimizer_file, version_file


def versions_kept(m: Manifest, keep_last: int) -> set[int]:
    """The versions retention keeps.

    Args:
        m: the profile's manifest.
        keep_last: how many of the newest versions stay whatever else is true.

    Returns:
        The newest `keep_last`, the pinned ones, the current one and its parent (where loading falls
        back if the current file gets damaged), and every leaf: a version no later version was learned
        from holds learning that no other version has (another writer's, or what a rollback left).
    """
    keep = set(sorted(m.versions)[-keep_last:] if keep_last else ())
    keep |= {v for v, i in m.versions.items() if i.pinned} | leaves(m.versions)
    return keep | {m.current, getattr(m.versions.get(m.current), "parent", 0)}


def prune(folder: ProfileFolder, m: Manifest, keep_last: int) -> list[int]:
    """Remove the versions retention does not keep, and the optimizer state of all but the current one.

    The lock is held. The manifest is written first: a crash after it leaves only files that the next
    open removes.

    Returns:
        The versions removed.

    Raises:
        OSError: the manifest cannot be written (nothing was removed then).
    """
    keep = versions_kept(m, keep_last)
    removed = sorted(set(m.versions) - keep)
    # Only the current version needs its optimizer state: it is the one learning continues from.
    stale: list[VersionInfo] = [
        i for v, i in m.versions.items() if v in keep and v != m.current and i.has_optimizer
    ]
    if not removed and not stale:
        return []
    for v in removed:
        del m.versions[v]
    for info in stale:
        info.optimizer_sha256 = ""
    folder.write_manifest(m)
    for v in removed:
        (folder.path / version_file(v)).unlink(missing_ok=True)
        (folder.path / optimizer_file(v)).unlink(missing_ok=True)
    for info in stale:
        (folder.path / info.optimizer_file).unlink(missing_ok=True)
    return removed
