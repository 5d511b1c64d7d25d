"""Site store: versioned, crash-safe adapted weights per site, (optional) user and learning profile.

Layout under the root the caller gives (folder names are casefolded names with spaces as '_';
the names as typed live in the JSON files):

    <site>/site.json
    <site>/profiles/<profile>/manifest.json, v000001.pt, v000001.optim.pt
    <site>/users/<user>/user.json, <site>/users/<user>/profiles/<profile>/...

Each version file carries its own metadata, so the manifest (the index, plus what files cannot
say: the current version and the pins) can be rebuilt when it is lost. Every change happens under
a file lock and every file is replaced atomically; the weights file is the commit point of a save.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import platformdirs

from InteractiveAdaptLib.errors import SiteStoreError
from InteractiveAdaptLib.model.checkpoint import atomic_write_bytes
from InteractiveAdaptLib.store.archive import EXPORT_INFO, archive_kind, archive_writer, extract_archive
from InteractiveAdaptLib.store.names import check_name, folder_name
from InteractiveAdaptLib.store.profile_store import (
    FORMAT,
    MANIFEST_FILE,
    ProfileStore,
    holds_versions,
    json_bytes,
    profile_name_in,
    read_name,
    utc_now,
)

log = logging.getLogger(__name__)


def default_store_root() -> Path:
    """Where the CLI keeps sites unless told otherwise: the user's data folder."""
    return Path(platformdirs.user_data_dir("InteractiveAdapt", appauthor=False)) / "sites"


class SiteStore:
    """All sites under one root folder: their profiles, export, import and deletion."""

    def __init__(self, root: Path | str, keep_last: int = 10, lock_timeout: float = 60.0) -> None:
        """A store under the folder `root` (made when first written).

        Args:
            keep_last: how many of its newest versions each profile keeps (pins, the current version
                and its parent are kept as well).
            lock_timeout: seconds a store from `profile` waits for another program to finish changing
                its profile.

        Raises:
            ValueError: `keep_last` is negative.
        """
        if keep_last < 0:
            raise ValueError("keep_last must be >= 0")
        self.root, self.keep_last, self.lock_timeout = Path(root).expanduser(), keep_last, lock_timeout

    def sites(self) -> list[str]:
        """Names of the sites in the store, as typed, sorted without regard to case."""
        if not self.root.is_dir():
            return []
        dirs = [d for d in self.root.iterdir() if not d.name.startswith(".") and (d / "site.json").is_file()]
        return sorted((read_name(d / "site.json", d.name) for d in dirs), key=str.casefold)

    def users(self, site: str) -> list[str]:
        """Users of `site` that have profiles of their own, sorted without regard to case.

        Raises:
            SiteStoreError: `site` is not a valid name.
        """
        users = self.root / folder_name(check_name(site, "site")) / "users"
        dirs = [d for d in users.iterdir() if (d / "user.json").is_file()] if users.is_dir() else []
        return sorted((read_name(d / "user.json", d.name) for d in dirs), key=str.casefold)

    def profiles(self, site: str, user: str | None = None) -> list[str]:
        """Profiles of `site` that hold versions: the shared ones, or those of `user`.

        Raises:
            SiteStoreError: `site` or `user` is not a valid name.
        """
        base = self.root / folder_name(check_name(site, "site"))
        if user is not None:
            base = base / "users" / folder_name(check_name(user, "user"))
        dirs = _profile_dirs(base)
        return sorted((profile_name_in(d) for d in dirs), key=str.casefold)

    def profile(self, site: str, profile: str, user: str | None = None) -> ProfileStore:
        """The store of one profile; nothing is written before its first save.

        Returns:
            The profile's store, with site, user and profile spelled as when they were first saved.

        Raises:
            SiteStoreError: `site`, `profile` or `user` is not a valid name.
        """
        site, profile = check_name(site, "site"), check_name(profile, "profile")
        base = self.root / folder_name(site)
        site = read_name(base / "site.json", site)  # keep the spelling it was created with
        markers = [(base / "site.json", site)]
        if user is not None:
            base = base / "users" / folder_name(check_name(user, "user"))
            user = read_name(base / "user.json", check_name(user, "user"))
            markers.append((base / "user.json", user))
        path = base / "profiles" / folder_name(profile)
        profile = read_name(path / MANIFEST_FILE, profile, "profile")
        return ProfileStore(
            path,
            site=site,
            profile=profile,
            user=user,
            keep_last=self.keep_last,
            lock_timeout=self.lock_timeout,
            markers=tuple(markers),
        )

    def export_site(self, site: str, archive: Path | str) -> Path:
        """Write every profile, user, version and manifest of `site` into one .zip or .tar.gz.

        Returns:
            `archive`, as a Path.

        Raises:
            SiteStoreError: `site` is not a valid name or is not in the store, the file name ends in none
                of .zip, .tar.gz and .tgz, the file cannot be written, or another program holds a
                profile's lock past the timeout. No partial archive is left behind.
        """
        site_dir = self.require_site(site)
        name, archive = read_name(site_dir / "site.json", site), Path(archive)
        kind = archive_kind(archive)
        if kind is None:
            raise SiteStoreError(
                f"Export to a file whose name ends in .zip or .tar.gz (not '{archive.name}')."
            )
        tmp = archive.with_name(f".{archive.name}.{uuid.uuid4().hex}.tmp")
        try:
            archive.parent.mkdir(parents=True, exist_ok=True)
            with archive_writer(tmp, kind) as add:
                add(EXPORT_INFO, json_bytes({"format": FORMAT, "site": name, "exported": utc_now()}))
                add("site/site.json", site_dir / "site.json")
                for user_json in sorted(site_dir.glob("users/*/user.json")):
                    add(f"site/{user_json.relative_to(site_dir).as_posix()}", user_json)
                for store in self._stores(site_dir, name):
                    with store.consistent_files() as files:  # no save can happen meanwhile
                        rel = store.path.relative_to(site_dir).as_posix()
                        for path in files:
                            add(f"site/{rel}/{path.name}", path)
            os.replace(tmp, archive)
        except OSError as exc:
            raise SiteStoreError(
                f"Site '{name}' could not be exported to {archive} ({exc.strerror or exc}); the site is unchanged."
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
        log.info("Exported site '%s' to %s", name, archive)
        return archive

    def import_site(self, archive: Path | str, site: str | None = None, *, replace: bool = False) -> str:
        """Add the site in `archive` (made by export_site), optionally under another name.

        Args:
            site: the name to import it under; None keeps the archive's.
            replace: replace a site of that name (its versions are deleted) instead of refusing.

        Returns:
            The imported site's name.

        Raises:
            SiteStoreError: nothing was imported: the archive is missing, is no InteractiveAdapt export,
                or is damaged (unsafe entries, bad names or checksums); `site` (else the archive's site
                name) is not a valid name; a site of that name exists and `replace` is False; or the
                store cannot be written.
        """
        archive = Path(archive)
        if not archive.is_file():
            raise SiteStoreError(f"The archive {archive} does not exist.")
        new_name = None if site is None else check_name(site, "site")
        nothing = "Nothing was imported."
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".import-"))
        except OSError as exc:
            raise SiteStoreError(
                f"The store folder {self.root} cannot be written ({exc.strerror}). {nothing}"
            ) from exc
        try:
            extract_archive(archive, staging)
            info = (
                json.loads((staging / EXPORT_INFO).read_bytes()) if (staging / EXPORT_INFO).is_file() else {}
            )
            tree = staging / "site"
            if (
                not isinstance(info, dict)
                or info.get("format") != FORMAT
                or not (tree / "site.json").is_file()
            ):
                raise SiteStoreError(f"{archive.name} is not a site exported by InteractiveAdapt. {nothing}")
            name = new_name or check_name(info.get("site"), "site")
            self._verify_tree(tree, name, archive.name)
            atomic_write_bytes(tree / "site.json", json_bytes({"format": FORMAT, "name": name}))
            target = self.root / folder_name(name)
            old = None
            if target.exists():
                if not replace:
                    raise SiteStoreError(
                        f"A site named '{read_name(target / 'site.json', name)}' already exists. {nothing} "
                        "Import it under another name, or replace the existing site (its versions are then "
                        "deleted: export it first to keep a copy)."
                    )
                old = self.root / f".deleted-{uuid.uuid4().hex}"
                os.replace(target, old)
            try:
                os.replace(tree, target)
            except OSError:
                if old is not None:
                    os.replace(old, target)  # put the existing site back
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SiteStoreError(
                f"{archive.name} is not a site exported by InteractiveAdapt. {nothing}"
            ) from exc
        except OSError as exc:
            raise SiteStoreError(
                f"Importing {archive.name} failed ({exc.strerror or exc}). {nothing}"
            ) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("Imported site '%s' from %s", name, archive)
        return name

    def delete_site(self, site: str) -> None:
        """Remove a site with all its users, profiles and versions (the caller has asked the user).

        Raises:
            SiteStoreError: `site` is not a valid name or is not in the store.
        """
        site_dir = self.require_site(site)
        trash = self.root / f".deleted-{uuid.uuid4().hex}"
        os.replace(site_dir, trash)  # vanishes at once; the slow removal happens after
        shutil.rmtree(trash, ignore_errors=True)
        log.info("Deleted site '%s'", site)

    def require_site(self, site: str) -> Path:
        """The folder of an existing site.

        Raises:
            SiteStoreError: `site` is not a valid name, or is not in the store (the message names the
                sites there).
        """
        site_dir = self.root / folder_name(check_name(site, "site"))
        if not (site_dir / "site.json").is_file():
            have = ", ".join(f"'{s}'" for s in self.sites()) or "none"
            raise SiteStoreError(f"There is no site named '{site}' in {self.root}. Sites there: {have}.")
        return site_dir

    def _stores(self, site_dir: Path, site: str) -> Iterator[ProfileStore]:
        bases = [(site_dir, None)] + [
            (d.parent, read_name(d, d.parent.name)) for d in site_dir.glob("users/*/user.json")
        ]
        for base, user in bases:
            for d in _profile_dirs(base):
                profile = profile_name_in(d)
                yield ProfileStore(d, site=site, profile=profile, user=user, keep_last=self.keep_last)

    def _verify_tree(self, tree: Path, site: str, archive: str) -> None:
        """Check names and checksums of an unpacked site before it goes live."""
        problem = ""
        for user_json in tree.glob("users/*/user.json"):
            if folder_name(check_name(read_name(user_json, ""), "user")) != user_json.parent.name:
                problem = f"the user folder '{user_json.parent.name}' does not match its name"
        for store in self._stores(tree, site):
            if folder_name(check_name(store.profile, "profile")) != store.path.name:
                problem = f"the profile folder '{store.path.name}' does not match its name"
                break
            problem = store.damage() or problem
            if problem:
                break
        if problem:
            raise SiteStoreError(f"The archive {archive} is damaged: {problem}. Nothing was imported.")


def _profile_dirs(base: Path) -> list[Path]:
    """Profile folders under a site (or user) folder: those holding a manifest or version files."""
    root = base / "profiles"
    dirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")] if root.is_dir() else []
    return [d for d in sorted(dirs) if holds_versions(d)]
