"""One learning profile's versioned weights: save (atomic, locked, with the version it learned from),
load with checks, rollback, pins, retention, and recovery of a lost or damaged manifest from the
version files themselves. The files are handled in manifest.py, retention in retention.py."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from InteractiveAdaptLib.errors import SiteStoreError, WeightsError
from InteractiveAdaptLib.store import lineage, retention
from InteractiveAdaptLib.store.access import access_error, os_errors
from InteractiveAdaptLib.store.manifest import ProfileFolder
from InteractiveAdaptLib.store.versions import (  # noqa: F401 (the names callers import from here)
    FORMAT,
    MANIFEST_FILE,
    VERSION_FILE,
    LoadedVersion,
    Manifest,
    VersionInfo,
    holds_versions,
    json_bytes,
    optimizer_file,
    profile_name_in,
    read_name,
    utc_now,
    version_file,
)

log = logging.getLogger(__name__)


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
        self._files = ProfileFolder(
            self.path, site=site, profile=profile, user=user, label=self.label, lock_timeout=lock_timeout
        )

    @property
    def label(self) -> str:
        """How messages name the profile: "profile 'P' (site 'S', user 'U')"."""
        user = f", user '{self.user}'" if self.user else ""
        return f"profile '{self.profile}' (site '{self.site}'{user})"

    # ----------------------------------------------------------------- reading
    def exists(self) -> bool:
        """Whether anything was ever saved for this profile.

        Raises:
            SiteStoreAccessError: the folder cannot be read.
        """
        with os_errors(self.path, writing=False, outcome=f"the versions of {self.label} cannot be listed"):
            return holds_versions(self.path)

    def versions(self) -> list[VersionInfo]:
        """Every listed version, damaged ones included, oldest first.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout.
            SiteStoreAccessError: the folder cannot be read.
        """
        with self._files.reading(f"the versions of {self.label} cannot be listed") as (m, _):
            return [m.versions[v] for v in sorted(m.versions)]

    def current(self) -> VersionInfo | None:
        """The version in use; None when the shipped base model is.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout.
            SiteStoreAccessError: the folder cannot be read.
        """
        with self._files.reading(f"the versions of {self.label} cannot be listed") as (m, _):
            return m.versions.get(m.current)

    def compatible_versions(self, base_sha256: str) -> list[VersionInfo]:
        """Undamaged versions adapted from the base model with this sha256, oldest first.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout.
            SiteStoreAccessError: the folder cannot be read.
        """
        return [i for i in self.versions() if i.base_sha256 == base_sha256 and not i.damaged]

    def load(self, base_sha256: str, version: int | None = None) -> LoadedVersion | None:
        """Read the weights of a version: by default the current one, falling back past damaged files.

        A damaged current version gives way to its parent (or the newest version below it), which is
        made current; when every version on the way is damaged, the base model is. A store that may
        only be read is read without its lock, and nothing is written to it.

        Args:
            base_sha256: the sha256 of the installed base model.
            version: the version to read; None = the current one; 0 = the base model.

        Returns:
            The weights, the optimizer state (None when not kept or damaged) and warnings; None when
            the base model is to be used.

        Raises:
            IncompatibleBaseModelError: the version to read was learned from another base model.
            TorchTooOldError: the torch in use may not read weight files (nothing is marked damaged).
            WeightsError: the file of the requested `version` is missing, changed or unreadable (the
                default falls back instead).
            SiteStoreError: `version` is not listed, or another program holds the profile's lock past
                the timeout.
            SiteStoreAccessError: the folder or a version file cannot be read.
        """
        if version == 0:
            return None
        with self._files.reading(f"the weights of {self.label} could not be loaded") as (m, held):
            if version is not None:
                info = lineage.listed(m, version, self.label)
                lineage.check_base(m, info, base_sha256, self.label)
                model, reason = self._files.read_weights(info)
                if model is None:
                    raise WeightsError(
                        f"Version {version} of {self.label} cannot be used: {reason}. "
                        "Roll back to another version or to the base model (version 0)."
                    )
                optimizer, warnings = self._files.read_optimizer(info)
                return LoadedVersion(model, optimizer, info, warnings)
            warnings: list[str] = []
            v = m.current
            while v > 0:
                info = m.versions[v]
                if not info.damaged:
                    lineage.check_base(m, info, base_sha256, self.label)
                    model, info.damaged = self._files.read_weights(info)
                    if model is not None:
                        if v != m.current:
                            m.current = v
                            self._files.write_if(held, m)
                        optimizer, more = self._files.read_optimizer(info)
                        return LoadedVersion(model, optimizer, info, warnings + more)
                v = lineage.fallback(m, info)
                kept = " The damaged file was kept." if (self.path / info.file).exists() else ""
                warnings.append(
                    f"Version {info.version} of {self.label} is damaged ({info.damaged}); using "
                    f"{f'version {v}' if v else 'the shipped base model'} instead.{kept}"
                )
                log.warning(warnings[-1])
            if warnings:  # every version on the way was damaged
                m.current = 0
                self._files.write_if(held, m)
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
        parent: int | None = None,
    ) -> VersionInfo:
        """Store a new version, make it current and apply retention.

        When another writer saved (or changed the version in use) after `parent` was loaded, nothing
        is lost: the new version records `parent` as its parent and becomes current, the other
        writer's versions stay (retention never removes a leaf), the returned entry lists them in
        `other_leaves`, and a warning says so.

        Args:
            optimizer_state: None saves the version without one.
            base_sha256: the sha256 of the base model the weights were adapted from.
            metrics: plain numbers and text, kept in the manifest.
            parent: the version the weights were learned from (0 = the shipped base model); None = the
                current one, for a caller that did not load any.

        Returns:
            The new version's entry, as `versions` lists it.

        Raises:
            TypeError: `model_state` is not a dict of tensors, or `metrics` is not plain data.
            ValueError: `parent` is negative.
            IncompatibleBaseModelError: the version learned from was learned from another base model.
            SiteStoreError: another program holds the profile's lock past the timeout.
            SiteStoreAccessError: the folder cannot be written or the disk is full (nothing saved before
                is lost).
        """
        if not isinstance(model_state, dict) or not all(
            isinstance(t, torch.Tensor) for t in model_state.values()
        ):
            raise TypeError("model_state must be a state dict of tensors")
        try:
            metrics = json.loads(json.dumps(metrics or {}))  # plain data only: the manifest is JSON
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metrics must hold plain numbers and text: {exc}") from exc
        if parent is not None and parent < 0:
            raise ValueError(f"parent must be a version number or 0, not {parent}")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._write_error(exc, None) from exc
        with self._files.hold(self._not_saved(None)):
            try:
                self._files.write_markers(self._markers)  # under the lock: a site deleted meanwhile gets them
                m = self._files.open()
            except OSError as exc:
                raise self._write_error(exc, None) from exc
            info = lineage.new_version(m, base_sha256, parent, self.label)
            info.cases_learned, info.clicks_learned = int(cases_learned), int(clicks_learned)
            info.metrics, info.note = metrics, str(note)
            try:
                self._files.write_version(m, info, model_state, optimizer_state)
            except OSError as exc:
                raise self._write_error(exc, m.versions.get(m.current)) from exc
            try:
                self._prune(m)
            except OSError as exc:  # the save itself succeeded; retention catches up next time
                log.warning("Could not prune old versions of %s: %s", self.label, exc)
        if info.other_leaves:
            log.warning("%s: %s", self.label, info.concurrent_warning)
        log.info("Saved version %d of %s (parent %d)", info.version, self.label, info.parent)
        return info

    def rollback(self, version: int) -> None:
        """Make `version` current (0 = the shipped base model); the next save becomes its child.

        The version's base model is not checked here; `load` checks it.

        Raises:
            SiteStoreError: `version` is not listed or its file is damaged, or another program holds the
                profile's lock past the timeout.
            SiteStoreAccessError: the folder cannot be read or written.
        """
        if version == 0 and not self.path.is_dir():
            return
        with self._files.writing(f"{self.label} was not rolled back") as m:
            if version != 0:
                info = lineage.listed(m, version, self.label)
                # Check the file now: it may have been damaged (or restored) since it was listed.
                _, damaged = self._files.read_weights(info)
                if damaged != info.damaged:
                    info.damaged = damaged
                    self._files.write_manifest(m)
                if info.damaged:
                    raise SiteStoreError(
                        f"Version {version} of {self.label} is damaged ({info.damaged}). Pick another version."
                    )
            m.current = version
            self._files.write_manifest(m)
        log.info("Rolled %s back to %s", self.label, f"version {version}" if version else "the base model")

    def restart_from_base(self, base_sha256: str = "") -> None:
        """Start over from the (new) shipped base model, keeping every old version listed; ask the user first.

        Args:
            base_sha256: the new base model's sha256, for the log only.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout.
            SiteStoreAccessError: the folder cannot be written.
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
            SiteStoreAccessError: the folder cannot be read or written.
        """
        self._set_pin(version, True)

    def unpin(self, version: int) -> None:
        """Let the retention policy remove `version` again.

        Raises:
            SiteStoreError: as `pin`.
        """
        self._set_pin(version, False)

    def prune(self) -> list[int]:
        """Apply retention now: the last `keep_last` versions, pins, the current one and its parent, and
        every version no later version was learned from (a leaf) stay.

        Returns:
            The versions removed.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout.
            SiteStoreAccessError: the folder cannot be read or written.
        """
        if not self.path.is_dir():
            return []
        with self._files.writing(f"no version of {self.label} was removed") as m:
            return self._prune(m)

    def delete(self) -> None:
        """Remove the profile and all its versions (the caller has asked the user).

        Raises:
            SiteStoreError: the profile has no folder, or another program holds the profile's lock past
                the timeout.
            SiteStoreAccessError: the folder cannot be moved away (nothing was deleted).
        """
        if not self.path.is_dir():
            raise SiteStoreError(f"There is no {self.label} to delete.")
        trash = self.path.with_name(f".deleted-{uuid.uuid4().hex}")
        with os_errors(self.path, writing=True, outcome=f"{self.label} was not deleted"), self.hold():
            os.replace(self.path, trash)  # vanishes at once; the slow removal happens outside
        shutil.rmtree(trash, ignore_errors=True)
        log.info("Deleted %s", self.label)

    def hold(self) -> contextlib.AbstractContextManager[None]:
        """Hold the profile's lock for a block: no other program saves, rolls back or pins meanwhile.

        Raises:
            SiteStoreError: another program holds the lock past the timeout.
            SiteStoreAccessError: the lock file cannot be made (the folder may only be read).
        """
        return self._files.hold()

    def consistent_files(self) -> contextlib.AbstractContextManager[list[tuple[str, Path | bytes]]]:
        """The profile's files, held unchanged until the block ends (in a store that may only be read,
        read as they are).

        Yields:
            (name, path or content) of every file in the profile's folder but dot files: the manifest
            as the store reads it (what an interrupted save left repaired, a lost one rebuilt), then
            the version and optimizer files.

        Raises:
            SiteStoreError: another program is changing the profile (the lock did not come in time).
            SiteStoreAccessError: the folder cannot be read.
        """
        return self._files.consistent_files()

    def damage(self) -> str:
        """What is wrong with the profile's files as they are, checked without repairing.

        Returns:
            "" when the manifest parses and every version it lists as undamaged reads back and matches
            its checksum; else the first problem found.

        Raises:
            TorchTooOldError: the torch in use may not read weight files.
            OSError: a version file is there but cannot be read.
        """
        return self._files.damage()

    # ---------------------------------------------------------------- internals
    def _set_pin(self, version: int, pinned: bool) -> None:
        with self._files.writing(
            f"version {version} of {self.label} was not {'' if pinned else 'un'}pinned"
        ) as m:
            lineage.listed(m, version, self.label).pinned = pinned
            self._files.write_manifest(m)

    def _prune(self, m: Manifest) -> list[int]:
        removed = retention.prune(self._files, m, self.keep_last)
        if removed:
            log.info("Retention removed versions %s of %s", removed, self.label)
        return removed

    def _not_saved(self, current: VersionInfo | None) -> str:
        now = f"version {current.version}" if current else "its last saved version"
        return (
            f"the new weights of {self.label} were not saved. Nothing saved before was lost: the profile is "
            f"still at {now}"
        )

    def _write_error(self, exc: OSError, current: VersionInfo | None) -> SiteStoreError:
        return access_error(exc, self.path, writing=True, outcome=self._not_saved(current))
