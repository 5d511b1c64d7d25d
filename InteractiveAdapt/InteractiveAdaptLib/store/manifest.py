"""A profile folder: its lock, the manifest read (under the lock, or without it where the folder may
only be read), repaired and written, and a version's files written, read back and checked against
their checksums."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import filelock
import torch

from InteractiveAdaptLib.errors import TorchTooOldError, WeightsError
from InteractiveAdaptLib.model.checkpoint import atomic_write_bytes, load_state, sha256_file
from InteractiveAdaptLib.store.access import os_errors, profile_lock
from InteractiveAdaptLib.store.versions import (
    FILE_KEYS,
    FORMAT,
    MANIFEST_FILE,
    OPTIMIZER_FILE,
    VERSION_FILE,
    Manifest,
    VersionInfo,
    json_bytes,
    version_file,
)

log = logging.getLogger(__name__)


def _to_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class ProfileFolder:
    """The files of one profile folder and its lock, held whenever anything is written."""

    def __init__(
        self, path: Path, *, site: str, profile: str, user: str | None, label: str, lock_timeout: float = 60.0
    ) -> None:
        self.path, self.site, self.profile, self.user, self.label = path, site, profile, user, label
        self._lock = filelock.FileLock(str(path / ".lock"), timeout=lock_timeout)

    # ----------------------------------------------------------------- the lock
    def hold(self, outcome: str = "") -> contextlib.AbstractContextManager[bool]:
        """The lock, held for a block that writes; `outcome` says what did not happen without it."""
        return profile_lock(self._lock, self.label, outcome=outcome)

    @contextlib.contextmanager
    def reading(self, outcome: str) -> Iterator[tuple[Manifest, bool]]:
        """(the manifest, whether the lock is held) for a block that reads; OSErrors become store errors.

        An empty manifest (and no folder made) when nothing was saved. Without the right to make the
        lock file the folder is read without it, and repairs are made in memory only.
        """
        if not self.path.is_dir():
            yield Manifest(self.profile), False
            return
        with (
            os_errors(self.path, writing=False, outcome=f"{outcome}. Nothing was changed"),
            profile_lock(self._lock, self.label, reading=True) as held,
        ):
            yield self.open(repair=held, strict=False), held

    @contextlib.contextmanager
    def writing(self, outcome: str) -> Iterator[Manifest]:
        """The manifest, under the lock, for a change; OSErrors become store errors naming `outcome`."""
        if not self.path.is_dir():
            yield Manifest(self.profile)
            return
        with (
            os_errors(self.path, writing=True, outcome=outcome),
            profile_lock(self._lock, self.label, outcome=outcome),
        ):
            yield self.open()

    def write_if(self, held: bool, m: Manifest) -> None:
        """Record a change found while reading where the lock is held; else (or if that fails) log it."""
        if not held:
            log.info("%s may only be read: the change is not recorded.", self.label)
            return
        try:
            self.write_manifest(m)
        except OSError as exc:
            log.warning("Could not record the change to %s: %s", self.label, exc)

    @contextlib.contextmanager
    def consistent_files(self) -> Iterator[list[tuple[str, Path | bytes]]]:
        """(name, file or content) of the folder's files but dot files, unchanged until the block ends.

        The manifest is given as the store reads it (interrupted writes repaired, or rebuilt in memory
        where the folder may only be read), so a copy is a clean one.
        """
        with profile_lock(self._lock, self.label, reading=True) as held:
            with os_errors(self.path, writing=False, outcome=f"{self.label} could not be copied"):
                m = self.open(repair=held, strict=False)
                names = [
                    n for n in sorted(os.listdir(self.path)) if not n.startswith(".") and n != MANIFEST_FILE
                ]
            yield [(MANIFEST_FILE, self.manifest_bytes(m)), *((n, self.path / n) for n in names)]

    # ----------------------------------------------------------------- the manifest
    def open(self, *, repair: bool = True, strict: bool = True) -> Manifest:
        """Read the manifest, with what an interrupted write or a damaged file left put right.

        Args:
            repair: write the repairs to disk (the lock is held); False repairs in memory only (a store
                read without its lock: another program may be writing).
            strict: a repair that cannot be written raises; False logs it and reads on.

        Returns:
            The manifest; an empty one for a folder without versions.

        Raises:
            OSError: the folder or the manifest cannot be read, or (strict) a repair cannot be written.
        """

        def fix(action: Callable[[], object]) -> bool:
            if not repair:
                return False
            try:
                action()
            except OSError as exc:
                if strict:
                    raise
                log.warning("Could not repair %s on disk (%s); reading it as it is.", self.label, exc)
                return False
            return True

        path = self.path / MANIFEST_FILE
        names = set(os.listdir(self.path))
        m, rebuild = None, False
        if MANIFEST_FILE in names:
            try:
                m = self.parse(json.loads(path.read_bytes()))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                kept = path.with_name(
                    f"manifest.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}.json"
                )
                fix(lambda: os.replace(path, kept))  # keep it for inspection, never delete user data
                log.warning(
                    "The version list of %s was damaged (%s); rebuilding it from the version files. "
                    "The damaged list is kept as %s; pins and rollbacks may need to be redone.",
                    self.label,
                    exc,
                    kept.name,
                )
                rebuild = True
        files = sorted(int(x[1]) for n in names if (x := VERSION_FILE.match(n)))
        if m is None and files and not rebuild:
            log.warning(
                "The version list of %s is missing; rebuilding it from the version files.", self.label
            )
            rebuild = True
        m = m or Manifest(self.profile)
        changed = rebuild
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):  # an atomic write that was interrupted
                fix(lambda name=name: (self.path / name).unlink(missing_ok=True))
        for v in files:
            if v in m.versions:
                continue
            if v <= m.last_version:  # pruned from the manifest, then interrupted before the file went
                fix(lambda v=v: (self.path / version_file(v)).unlink(missing_ok=True))
                continue
            m.versions[v] = info = self.info_from_file(v)
            if not info.damaged:
                m.current = v  # a save that committed its file but not the manifest (or a rebuild)
            if not rebuild:
                log.warning("Recovered version %d of %s, whose save was interrupted.", v, self.label)
            changed = True
        m.last_version = max([m.last_version, *files])
        for info in m.versions.values():
            if not info.damaged and info.file not in names:
                info.damaged, changed = "its file is missing", True
                log.warning("The file of version %d of %s is missing.", info.version, self.label)
        for n in names:
            if (x := OPTIMIZER_FILE.match(n)) and not getattr(
                m.versions.get(int(x[1])), "has_optimizer", False
            ):
                fix(
                    lambda n=n: (self.path / n).unlink(missing_ok=True)
                )  # left by an interrupted save or prune
        if changed:
            fix(lambda: self.write_manifest(m))
        return m

    def parse(self, data: dict[str, Any]) -> Manifest:
        """The manifest of parsed manifest JSON; ValueError (or KeyError, TypeError) when it is not one."""
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown format {data.get('format')!r}")
        versions = {i.version: i for i in map(VersionInfo.from_dict, data["versions"])}
        m = Manifest(
            str(data.get("profile") or self.profile), int(data["current"]), int(data["last_version"])
        )
        m.versions = versions
        if m.current and m.current not in versions:
            raise ValueError(f"the current version {m.current} is not listed")
        return m

    def manifest_bytes(self, m: Manifest) -> bytes:
        """The manifest file's content for `m`."""
        data = {"format": FORMAT, "site": self.site, "user": self.user, "profile": m.profile}
        data |= {"current": m.current, "last_version": m.last_version}
        data["versions"] = [asdict(m.versions[v]) for v in sorted(m.versions)]
        return json_bytes(data)

    def write_manifest(self, m: Manifest) -> None:
        """Replace the manifest atomically (the lock is held)."""
        atomic_write_bytes(self.path / MANIFEST_FILE, self.manifest_bytes(m))

    def write_markers(self, markers: tuple[tuple[Path, str], ...]) -> None:
        """Write the site.json / user.json files a profile lives under where they are missing (lock held)."""
        for marker, name in markers:
            if not marker.exists():
                atomic_write_bytes(marker, json_bytes({"format": FORMAT, "name": name}))

    def write_version(
        self,
        m: Manifest,
        info: VersionInfo,
        model_state: dict[str, torch.Tensor],
        optimizer_state: dict[str, Any] | None,
    ) -> None:
        """Write a new version's files, then list it in the manifest as current (the lock is held).

        Raises:
            OSError: a file cannot be written; the new version's files are removed again and the
                manifest is as it was.
        """
        written: list[Path] = []
        try:
            if optimizer_state is not None:
                data = _to_bytes(optimizer_state)
                info.optimizer_sha256 = hashlib.sha256(data).hexdigest()
                written.append(self.path / info.optimizer_file)
                atomic_write_bytes(written[-1], data)
            state = {k: t.detach().cpu() for k, t in model_state.items()}
            data = _to_bytes(
                {"format": FORMAT, "info": {k: getattr(info, k) for k in FILE_KEYS}, "model_state": state}
            )
            info.sha256 = hashlib.sha256(data).hexdigest()
            written.append(self.path / info.file)
            # The commit point: after a crash from here on, open() adopts this file.
            atomic_write_bytes(written[-1], data)
            previous, source = (m.current, m.last_version), m.versions.get(info.parent)
            had_child = source is not None and source.has_child
            m.versions[info.version], m.current, m.last_version = info, info.version, info.version
            if source is not None:
                source.has_child = True  # no longer a leaf, even once the new version is pruned
            try:
                self.write_manifest(m)
            except BaseException:
                del m.versions[info.version]
                m.current, m.last_version = previous
                if source is not None:
                    source.has_child = had_child
                raise
        except OSError:
            for path in written:
                path.unlink(missing_ok=True)
            raise

    def damage(self) -> str:
        """What is wrong with the files as they are, checked without repairing ('' when nothing is).

        Raises:
            TorchTooOldError: the torch in use may not read weight files.
            OSError: a version file cannot be read.
        """
        try:
            m = self.parse(json.loads((self.path / MANIFEST_FILE).read_bytes()))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return f"the version list of {self.label} is missing or damaged"
        for info in m.versions.values():
            if not info.damaged and self.read_weights(info)[1]:
                return f"version {info.version} of {self.label} does not match its checksum"
        return ""

    # ----------------------------------------------------------------- a version's files
    def info_from_file(self, version: int) -> VersionInfo:
        """A version's entry from the metadata its own file carries (a damaged entry if unreadable)."""
        path = self.path / version_file(version)
        try:
            info = VersionInfo.from_dict(load_state(path)["info"])
            if info.version != version:
                raise ValueError(f"the file says it is version {info.version}")
            info.sha256 = sha256_file(path)
            return info
        except TorchTooOldError:
            raise  # the torch in use is at fault, not the file
        except (WeightsError, KeyError, TypeError, ValueError, AttributeError) as exc:
            return VersionInfo(version, -1, "", "", 0, 0, damaged=f"its file cannot be read: {exc}")

    def read_weights(self, info: VersionInfo) -> tuple[dict[str, torch.Tensor] | None, str]:
        """(the weights, '') of a version; (None, why) when its file is missing, changed or unreadable.

        Raises:
            TorchTooOldError: the torch in use may not read weight files.
            OSError: the file is there but cannot be read (no right to, a lost drive): not damage.
        """
        path = self.path / info.file
        if not path.is_file():
            return None, "its file is missing"
        if sha256_file(path) != info.sha256:
            return None, "its file was truncated or changed after it was saved"
        try:
            model = load_state(path)["model_state"]
        except TorchTooOldError:
            raise
        except (WeightsError, KeyError) as exc:
            return None, f"its file cannot be read: {exc}"
        if not isinstance(model, dict) or not all(isinstance(t, torch.Tensor) for t in model.values()):
            return None, "its file holds no weights"
        return model, ""

    def read_optimizer(self, info: VersionInfo) -> tuple[dict[str, Any] | None, list[str]]:
        """(optimizer state or None, warnings) of a version.

        Raises:
            TorchTooOldError: the torch in use may not read weight files.
        """
        if not info.has_optimizer:
            return None, []
        path = self.path / info.optimizer_file
        try:
            if sha256_file(path) == info.optimizer_sha256:
                return load_state(path), []
        except TorchTooOldError:
            raise
        except (OSError, WeightsError):
            pass
        warning = (
            f"The optimizer state of version {info.version} of {self.label} is damaged; learning restarts it."
        )
        log.warning(warning)
        return None, [warning]
