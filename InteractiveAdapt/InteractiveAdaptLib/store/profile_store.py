"""One learning profile's versioned weights: save (atomic, locked), load with checks, rollback, pins,
retention, and recovery of a lost or damaged manifest from the version files themselves."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import filelock
import torch

from InteractiveAdaptLib.errors import IncompatibleBaseModelError, SiteStoreError, WeightsError
from InteractiveAdaptLib.model.checkpoint import atomic_write_bytes, load_state, sha256_file

log = logging.getLogger(__name__)

FORMAT = 1
# The file names of a profile folder: this module owns them (the site store and the tools ask here).
MANIFEST_FILE = "manifest.json"
VERSION_FILE = re.compile(r"^v(\d{6,})\.pt$")
_OPTIMIZER_FILE = re.compile(r"^v(\d{6,})\.optim\.pt$")


def version_file(version: int) -> str:
    """The weights file of `version` (v000001.pt, ...)."""
    return f"v{version:06d}.pt"


def optimizer_file(version: int) -> str:
    """The optimizer-state file of `version` (v000001.optim.pt, ...)."""
    return f"v{version:06d}.optim.pt"


# Metadata a version file carries about itself (the rest is manifest state).
_FILE_KEYS = ("version", "parent", "base_sha256", "created", "cases_learned", "clicks_learned")
_FILE_KEYS += ("metrics", "note", "optimizer_sha256")


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _to_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def json_bytes(obj: Any) -> bytes:
    """`obj` as indented UTF-8 JSON (non-ASCII kept as is)."""
    return json.dumps(obj, indent=1, ensure_ascii=False).encode("utf-8")


def read_name(path: Path, default: str, key: str = "name") -> str:
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        name = json.loads(path.read_text("utf-8")).get(key)
        if isinstance(name, str) and name:
            return name
    return default


@dataclass
class VersionInfo:
    """One saved version of a profile, as the manifest lists it."""

    version: int
    parent: int  # 0 = the shipped base model, -1 = unknown (an unreadable file)
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

    @property
    def file(self) -> str:
        return version_file(self.version)

    @property
    def optimizer_file(self) -> str:
        return optimizer_file(self.version)

    @property
    def has_optimizer(self) -> bool:
        return bool(self.optimizer_sha256)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionInfo:
        info = cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        if not (isinstance(info.version, int) and info.version > 0 and isinstance(info.parent, int)):
            raise ValueError(f"bad version entry {data!r}")
        return info


@dataclass
class LoadedVersion:
    """Weights (and optimizer state, when kept) of one version, plus what went wrong on the way."""

    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    info: VersionInfo
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Manifest:
    profile: str
    current: int = 0
    last_version: int = 0  # never reused, even after pruning
    versions: dict[int, VersionInfo] = field(default_factory=dict)


class ProfileStore:
    """The versions of one learning profile of one site (and user), in its own folder."""

    def __init__(
        self,
        path: Path,
        *,
        site: str,
        profile: str,
        user: str | None = None,
        keep_last: int = 10,
        lock_timeout: float = 60.0,
        markers: tuple[tuple[Path, str], ...] = (),
    ) -> None:
        self.path, self.site, self.profile, self.user = Path(path), site, profile, user
        self.keep_last = keep_last
        self._markers = markers  # (site.json / user.json, name) written on the first save
        self._lock = filelock.FileLock(str(self.path / ".lock"), timeout=lock_timeout)

    @property
    def label(self) -> str:
        """How messages name the profile: "profile 'P' (site 'S', user 'U')"."""
        user = f", user '{self.user}'" if self.user else ""
        return f"profile '{self.profile}' (site '{self.site}'{user})"

    # ----------------------------------------------------------------- reading
    def exists(self) -> bool:
        """Whether anything was ever saved for this profile."""
        return holds_versions(self.path)

    def versions(self) -> list[VersionInfo]:
        """Every listed version, damaged ones included, oldest first.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout.
        """
        with self._opened() as m:
            return [m.versions[v] for v in sorted(m.versions)]

    def current(self) -> VersionInfo | None:
        """The version in use; None when the shipped base model is.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout.
        """
        with self._opened() as m:
            return m.versions.get(m.current)

    def compatible_versions(self, base_sha256: str) -> list[VersionInfo]:
        """Undamaged versions adapted from the base model with this sha256, oldest first.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout.
        """
        return [i for i in self.versions() if i.base_sha256 == base_sha256 and not i.damaged]

    def load(self, base_sha256: str, version: int | None = None) -> LoadedVersion | None:
        """Read the weights of a version: by default the current one, falling back past damaged files.

        A damaged current version gives way to its parent (or the newest version below it), which is
        made current; when every version on the way is damaged, the base model is.

        Args:
            base_sha256: the sha256 of the installed base model.
            version: the version to read; None = the current one; 0 = the base model.

        Returns:
            The weights, the optimizer state (None when not kept or damaged) and warnings; None when
            the base model is to be used.

        Raises:
            IncompatibleBaseModelError: the version to read was learned from another base model.
            WeightsError: the file of the requested `version` is missing, changed or unreadable (the
                default falls back instead).
            SiteStoreError: `version` is not listed, or another program holds the profile's lock past
                the timeout.
        """
        if version == 0:
            return None
        with self._opened() as m:
            if version is not None:
                info = self._get(m, version)
                self._check_base(m, info, base_sha256)
                model, reason = self._read_weights(info)
                if model is None:
                    raise WeightsError(
                        f"Version {version} of {self.label} cannot be used: {reason}. "
                        "Roll back to another version or to the base model (version 0)."
                    )
                optimizer, warnings = self._read_optimizer(info)
                return LoadedVersion(model, optimizer, info, warnings)
            warnings: list[str] = []
            v = m.current
            while v > 0:
                info = m.versions[v]
                if not info.damaged:
                    self._check_base(m, info, base_sha256)
                    model, info.damaged = self._read_weights(info)
                    if model is not None:
                        if v != m.current:
                            m.current = v
                            self._write_manifest(m)
                        optimizer, more = self._read_optimizer(info)
                        return LoadedVersion(model, optimizer, info, warnings + more)
                v = self._fallback(m, info)
                kept = " The damaged file was kept." if (self.path / info.file).exists() else ""
                warnings.append(
                    f"Version {info.version} of {self.label} is damaged ({info.damaged}); using "
                    f"{f'version {v}' if v else 'the shipped base model'} instead.{kept}"
                )
                log.warning(warnings[-1])
            if warnings:  # every version on the way was damaged
                m.current = 0
                self._write_manifest(m)
            return None

    # ----------------------------------------------------------------- writing
    def save(
        self,
        model_state: dict[str, torch.Tensor],
        optimizer_state: dict[str, Any] | None,
        *,
        base_sha256: str,
        cases_learned: int,
        clicks_learned: int,
        metrics: dict[str, Any] | None = None,
        note: str = "",
    ) -> VersionInfo:
        """Store a new version as a child of the current one, make it current and apply retention.

        Args:
            optimizer_state: None saves the version without one.
            base_sha256: the sha256 of the base model the weights were adapted from.
            metrics: plain numbers and text, kept in the manifest.

        Returns:
            The new version's entry, as `versions` lists it.

        Raises:
            TypeError: `model_state` is not a dict of tensors, or `metrics` is not plain data.
            IncompatibleBaseModelError: the current version was learned from another base model.
            SiteStoreError: the folder cannot be written or the disk is full (nothing saved before is
                lost), or another program holds the profile's lock past the timeout.
        """
        if not isinstance(model_state, dict) or not all(
            isinstance(t, torch.Tensor) for t in model_state.values()
        ):
            raise TypeError("model_state must be a state dict of tensors")
        try:
            metrics = json.loads(json.dumps(metrics or {}))  # plain data only: the manifest is JSON
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metrics must hold plain numbers and text: {exc}") from exc
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for marker, name in self._markers:
                if not marker.exists():
                    atomic_write_bytes(marker, json_bytes({"format": FORMAT, "name": name}))
        except OSError as exc:
            raise self._write_error(exc, None) from exc
        with self._locked():
            m = self._open()
            parent = m.versions.get(m.current)
            if parent is not None and parent.base_sha256 not in ("", base_sha256):
                raise IncompatibleBaseModelError(
                    f"The current version {parent.version} of {self.label} was learned from another base model "
                    "than these new weights. Restart the profile from the new base model (roll back to "
                    "version 0) before saving; nothing was changed."
                )
            info = VersionInfo(
                m.last_version + 1, m.current, base_sha256, utc_now(), int(cases_learned), int(clicks_learned)
            )
            info.metrics, info.note = metrics, str(note)
            written: list[Path] = []
            try:
                if optimizer_state is not None:
                    data = _to_bytes(optimizer_state)
                    info.optimizer_sha256 = hashlib.sha256(data).hexdigest()
                    written.append(self.path / info.optimizer_file)
                    atomic_write_bytes(written[-1], data)
                state = {k: t.detach().cpu() for k, t in model_state.items()}
                data = _to_bytes(
                    {
                        "format": FORMAT,
                        "info": {k: getattr(info, k) for k in _FILE_KEYS},
                        "model_state": state,
                    }
                )
                info.sha256 = hashlib.sha256(data).hexdigest()
                written.append(self.path / info.file)
                # The commit point: after a crash from here on, _open adopts this file.
                atomic_write_bytes(written[-1], data)
                m.versions[info.version], m.current, m.last_version = info, info.version, info.version
                self._write_manifest(m)
            except OSError as exc:
                for path in written:
                    path.unlink(missing_ok=True)
                raise self._write_error(exc, parent) from exc
            try:
                self._prune(m)
            except OSError as exc:  # the save itself succeeded; retention catches up next time
                log.warning("Could not prune old versions of %s: %s", self.label, exc)
        log.info("Saved version %d of %s (parent %d)", info.version, self.label, info.parent)
        return info

    def rollback(self, version: int) -> None:
        """Make `version` current (0 = the shipped base model); the next save becomes its child.

        The version's base model is not checked here; `load` checks it.

        Raises:
            SiteStoreError: `version` is not listed or its file is damaged, or another program holds the
                profile's lock past the timeout.
        """
        if version == 0 and not self.path.is_dir():
            return
        with self._opened() as m:
            if version != 0:
                info = self._get(m, version)
                # Check the file now: it may have been damaged (or restored) since it was listed.
                _, damaged = self._read_weights(info)
                if damaged != info.damaged:
                    info.damaged = damaged
                    self._write_manifest(m)
                if info.damaged:
                    raise SiteStoreError(
                        f"Version {version} of {self.label} is damaged ({info.damaged}). Pick another version."
                    )
            m.current = version
            self._write_manifest(m)
        log.info("Rolled %s back to %s", self.label, f"version {version}" if version else "the base model")

    def restart_from_base(self, base_sha256: str = "") -> None:
        """Start over from the (new) shipped base model, keeping every old version listed; ask the user first.

        Args:
            base_sha256: the new base model's sha256, for the log only.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout.
        """
        self.rollback(0)
        log.info(
            "Restarted %s from the base model %s; old versions stay listed", self.label, base_sha256[:12]
        )

    def pin(self, version: int) -> None:
        """Keep `version` whatever the retention policy says.

        Raises:
            SiteStoreError: `version` is not listed, or another program holds the profile's lock past
                the timeout.
        """
        self._set_pin(version, True)

    def unpin(self, version: int) -> None:
        """Let the retention policy remove `version` again.

        Raises:
            SiteStoreError: as `pin`.
        """
        self._set_pin(version, False)

    def prune(self) -> list[int]:
        """Apply retention now (the last `keep_last` versions, pins, the current one and its parent stay).

        Returns:
            The versions removed.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout.
        """
        with self._opened() as m:
            return self._prune(m)

    def delete(self) -> None:
        """Remove the profile and all its versions (the caller has asked the user).

        Raises:
            SiteStoreError: the profile has no folder, or another program holds the profile's lock past
                the timeout.
        """
        if not self.path.is_dir():
            raise SiteStoreError(f"There is no {self.label} to delete.")
        trash = self.path.with_name(f".deleted-{uuid.uuid4().hex}")
        with self._locked():
            os.replace(self.path, trash)  # vanishes at once; the slow removal happens outside
        shutil.rmtree(trash, ignore_errors=True)
        log.info("Deleted %s", self.label)

    @contextlib.contextmanager
    def consistent_files(self) -> Iterator[list[Path]]:
        """The profile's files, held unchanged until the block ends.

        Yields:
            The paths of every file in the profile's folder but dot files (manifest, version and
            optimizer files), after repairing what an interrupted save left.

        Raises:
            SiteStoreError: another program is changing the profile (the lock did not come in time).
        """
        with self._locked():
            self._open()  # repairs an interrupted write first, so the copy is a clean one
            yield [self.path / n for n in sorted(os.listdir(self.path)) if not n.startswith(".")]

    def damage(self) -> str:
        """What is wrong with the profile's files as they are, checked without repairing.

        Returns:
            "" when the manifest parses and every version it lists as undamaged reads back and matches
            its checksum; else the first problem found.
        """
        try:
            m = self._parse_manifest(json.loads((self.path / MANIFEST_FILE).read_bytes()))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return f"the version list of {self.label} is missing or damaged"
        for info in m.versions.values():
            if not info.damaged and self._read_weights(info)[1]:
                return f"version {info.version} of {self.label} does not match its checksum"
        return ""

    # ---------------------------------------------------------------- internals
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self._lock.acquire()
        except filelock.Timeout as exc:
            raise SiteStoreError(
                f"{self.label} is being changed by another InteractiveAdapt (another Slicer or command). "
                "Try again in a minute."
            ) from exc
        try:
            yield
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def _opened(self) -> Iterator[_Manifest]:
        """The manifest, under the lock; an empty one (and no folder made) when nothing was saved."""
        if not self.path.is_dir():
            yield _Manifest(self.profile)
            return
        with self._locked():
            yield self._open()

    def _open(self) -> _Manifest:
        """Read the manifest and repair what an interrupted write or a damaged file left (lock held)."""
        path = self.path / MANIFEST_FILE
        names = set(os.listdir(self.path))
        m, rebuild = None, False
        if path.exists():
            try:
                m = self._parse_manifest(json.loads(path.read_bytes()))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                kept = path.with_name(
                    f"manifest.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}.json"
                )
                os.replace(path, kept)  # keep it for inspection, never delete user data
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
        m = m or _Manifest(self.profile)
        changed = rebuild
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):  # an atomic write that was interrupted
                (self.path / name).unlink(missing_ok=True)
        for v in files:
            if v in m.versions:
                continue
            if v <= m.last_version:  # pruned from the manifest, then interrupted before the file went
                (self.path / version_file(v)).unlink(missing_ok=True)
                continue
            m.versions[v] = info = self._info_from_file(v)
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
            if (x := _OPTIMIZER_FILE.match(n)) and not getattr(
                m.versions.get(int(x[1])), "has_optimizer", False
            ):
                (self.path / n).unlink(missing_ok=True)  # left by an interrupted save or prune
        if changed:
            self._write_manifest(m)
        return m

    def _parse_manifest(self, data: dict[str, Any]) -> _Manifest:
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown format {data.get('format')!r}")
        versions = {i.version: i for i in map(VersionInfo.from_dict, data["versions"])}
        m = _Manifest(
            str(data.get("profile") or self.profile),
            int(data["current"]),
            int(data["last_version"]),
            versions,
        )
        if m.current and m.current not in versions:
            raise ValueError(f"the current version {m.current} is not listed")
        return m

    def _write_manifest(self, m: _Manifest) -> None:
        data = {"format": FORMAT, "site": self.site, "user": self.user, "profile": m.profile}
        data |= {"current": m.current, "last_version": m.last_version}
        data["versions"] = [asdict(m.versions[v]) for v in sorted(m.versions)]
        atomic_write_bytes(self.path / MANIFEST_FILE, json_bytes(data))

    def _info_from_file(self, version: int) -> VersionInfo:
        path = self.path / version_file(version)
        try:
            info = VersionInfo.from_dict(load_state(path)["info"])
            if info.version != version:
                raise ValueError(f"the file says it is version {info.version}")
            info.sha256 = sha256_file(path)
            return info
        except (WeightsError, KeyError, TypeError, ValueError, AttributeError) as exc:
            return VersionInfo(version, -1, "", "", 0, 0, damaged=f"its file cannot be read: {exc}")

    def _read_weights(self, info: VersionInfo) -> tuple[dict[str, torch.Tensor] | None, str]:
        path = self.path / info.file
        if not path.is_file():
            return None, "its file is missing"
        if sha256_file(path) != info.sha256:
            return None, "its file was truncated or changed after it was saved"
        try:
            model = load_state(path)["model_state"]
        except (WeightsError, KeyError) as exc:
            return None, f"its file cannot be read: {exc}"
        if not isinstance(model, dict) or not all(isinstance(t, torch.Tensor) for t in model.values()):
            return None, "its file holds no weights"
        return model, ""

    def _read_optimizer(self, info: VersionInfo) -> tuple[dict[str, Any] | None, list[str]]:
        """(optimizer state or None, warnings)."""
        if not info.has_optimizer:
            return None, []
        path = self.path / info.optimizer_file
        try:
            if sha256_file(path) == info.optimizer_sha256:
                return load_state(path), []
        except (OSError, WeightsError):
            pass
        warning = (
            f"The optimizer state of version {info.version} of {self.label} is damaged; learning restarts it."
        )
        log.warning(warning)
        return None, [warning]

    def _get(self, m: _Manifest, version: int) -> VersionInfo:
        if version not in m.versions:
            have = ", ".join(map(str, sorted(m.versions))) or "none"
            raise SiteStoreError(
                f"Version {version} of {self.label} does not exist. Versions kept: {have} "
                "(0 = the shipped base model)."
            )
        return m.versions[version]

    def _check_base(self, m: _Manifest, info: VersionInfo, base_sha256: str) -> None:
        if info.base_sha256 == base_sha256:
            return
        ok = [str(i.version) for i in m.versions.values() if i.base_sha256 == base_sha256 and not i.damaged]
        also = f", roll back to version {', '.join(ok)} (made from the installed one)" if ok else ""
        raise IncompatibleBaseModelError(
            f"Version {info.version} of {self.label} was learned from a different base model (sha256 "
            f"{info.base_sha256[:12]}...) than the one installed now ({base_sha256[:12]}...), so it cannot be "
            f"used with it. Restart the profile from the new base model (roll back to version 0; the old "
            f"versions stay listed and can be exported){also}, or reinstall the earlier base model."
        )

    @staticmethod
    def _fallback(m: _Manifest, info: VersionInfo) -> int:
        """The version to try after `info`: its parent, else the newest listed one below."""
        if 0 <= info.parent < info.version and (info.parent == 0 or info.parent in m.versions):
            return info.parent  # always a smaller number: the walk ends even on a hand-edited manifest
        bound = info.parent if 0 < info.parent < info.version else info.version
        return max((v for v in m.versions if v < bound), default=0)

    def _set_pin(self, version: int, pinned: bool) -> None:
        with self._opened() as m:
            self._get(m, version).pinned = pinned
            self._write_manifest(m)

    def _prune(self, m: _Manifest) -> list[int]:
        keep = set(sorted(m.versions)[-self.keep_last :] if self.keep_last else ())
        # Pins, the current version and its parent (where loading falls back if current gets damaged).
        keep |= {v for v, i in m.versions.items() if i.pinned} | {
            m.current,
            getattr(m.versions.get(m.current), "parent", 0),
        }
        removed = sorted(set(m.versions) - keep)
        # Only the current version needs its optimizer state: it is the one learning continues from.
        stale = [i for v, i in m.versions.items() if v in keep and v != m.current and i.has_optimizer]
        if not removed and not stale:
            return []
        for v in removed:
            del m.versions[v]
        for info in stale:
            info.optimizer_sha256 = ""
        self._write_manifest(m)  # index first: a crash now leaves only files that _open removes
        for v in removed:
            (self.path / version_file(v)).unlink(missing_ok=True)
            (self.path / optimizer_file(v)).unlink(missing_ok=True)
        for info in stale:
            (self.path / info.optimizer_file).unlink(missing_ok=True)
        if removed:
            log.info("Retention removed versions %s of %s", removed, self.label)
        return removed

    def _write_error(self, exc: OSError, current: VersionInfo | None) -> SiteStoreError:
        now = f"version {current.version}" if current else "its last saved version"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            what, todo = (
                f"The disk holding {self.path} is full",
                "Free some disk space (or prune old versions)",
            )
        else:
            what, todo = (
                f"{self.path} cannot be written ({exc.strerror or exc})",
                "Check that the folder is writable",
            )
        return SiteStoreError(
            f"{what}, so the new weights of {self.label} were not saved. Nothing saved before was lost: "
            f"the profile is still at {now}. {todo} and save again."
        )


def profile_name_in(folder: Path) -> str:
    """The profile name as typed, from a profile folder's manifest (the folder name if unreadable)."""
    return read_name(folder / MANIFEST_FILE, folder.name, "profile")


def holds_versions(folder: Path) -> bool:
    """Whether `folder` is a profile folder: it holds a manifest or a version file."""
    return folder.is_dir() and any(n == MANIFEST_FILE or VERSION_FILE.match(n) for n in os.listdir(folder))
