"""The store's file system troubles in the clinician's words, and the profile lock (which a store
that may only be read goes without)."""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Iterator
from pathlib import Path

import filelock

from InteractiveAdaptLib.errors import SiteStoreAccessError, SiteStoreError

log = logging.getLogger(__name__)

# Why a lock file cannot be made where the store may still be read: no right to write, read-only disk.
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


def access_error(
    exc: OSError, path: Path, *, writing: bool, outcome: str, name_file: bool = True
) -> SiteStoreAccessError:
    """The store error to raise for an OSError, naming the folder, what it meant and what to do.

    Args:
        exc: the error the file system gave.
        path: the store folder being read or written.
        writing: whether the store was being written (else read).
        outcome: what did or did not happen, as a clause: "the new weights were not saved".
        name_file: name the file the error names, where it names one, instead of `path`.

    Returns:
        The error, to raise from `exc`.
    """
    where = Path(exc.filename) if name_file and isinstance(exc.filename, str) else path
    why = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        text = f"The disk holding {where} is full, so {outcome}. Free some disk space (or prune old versions)"
    elif writing and exc.errno in _READ_ONLY:
        text = (
            f"{where} cannot be written ({why}): the folder is read-only or belongs to another user, so "
            f"{outcome}. Ask for write access to it, or choose another site store folder"
        )
    elif writing:
        text = f"{where} cannot be written ({why}), so {outcome}. Check that the folder is writable"
    else:
        text = (
            f"{where} cannot be read ({why}), so {outcome}. Check that it exists and that you may read "
            "it (a network drive may have gone offline)"
        )
    return SiteStoreAccessError(f"{text}, then try again.")


@contextlib.contextmanager
def os_errors(path: Path, *, writing: bool, outcome: str) -> Iterator[None]:
    """Turn any OSError raised inside the block into the store error of `access_error`."""
    try:
        yield
    except OSError as exc:
        raise access_error(exc, path, writing=writing, outcome=outcome) from exc


@contextlib.contextmanager
def profile_lock(
    lock: filelock.BaseFileLock, label: str, *, reading: bool = False, outcome: str = ""
) -> Iterator[bool]:
    """Hold a profile's lock for the block.

    Args:
        lock: the profile's file lock.
        label: how messages name the profile.
        reading: the block only reads; where no lock file can be made (a store the user may only read),
            it runs without the lock instead of failing.
        outcome: what did not happen when the lock file cannot be made, as a clause.

    Yields:
        True when the lock is held; False when reading without it.

    Raises:
        SiteStoreError: another program holds the lock past its timeout.
        SiteStoreAccessError: the lock file cannot be made, and the block would write.
    """
    held = True
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        raise SiteStoreError(
            f"{label} is being changed by another InteractiveAdapt (another Slicer or command). "
            "Try again in a minute."
        ) from exc
    except OSError as exc:
        if not (reading and exc.errno in _READ_ONLY):
            outcome = outcome or f"{label} was not changed"
            folder = Path(lock.lock_file).parent
            raise access_error(exc, folder, writing=True, outcome=outcome, name_file=False) from exc
        log.info(
            "Reading %s without its lock: %s cannot be written (%s)", label, lock.lock_file, exc.strerror
        )
        held = False
    if not held:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
