"""Site store: versioned, crash-safe adapted weights per site, (optional) user and learning profile.

Layout under the root the caller gives (folder names are casefolded names with spaces as '_';
the names as typed live in the JSON files):

    <site>/site.json
    <site>/profiles/<profile>/manifest.json, v000001.pt, v000001.optim.pt
    <site>/users/<user>/user.json, <site>/users/<user>/profiles/<profile>/...

Each version file carries its own metadata, so the manifest (the index, plus what files cannot
say: the current version and the pins) can be rebuilt when it is lost. Every change happens under
a file lock (deleting or replacing a site takes the locks of all its profiles) and every file is
replaced atomically; the weights file is the commit point of a save. A store the user may only read
is read without locks. An archive is checked (size, entry count, free space, export info) before
anything of it is written.
"""

from __future__ import annotations

import contextlib
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
from InteractiveAdaptLib.store.access import access_error, os_errors
from InteractiveAdaptLib.store.archive import (
    EXPORT_INFO,
    IMPORT_LIMIT_BYTES,
    IMPORT_MAX_ENTRIES,
    archive_kind,
    archive_writer,
    extract_archive,
    read_table,
)
from InteractiveAdaptLib.store.names import check_name, folder_name
from InteractiveAdaptLib.store.profile_store import ProfileStore
from InteractiveAdaptLib.store.versions import (
    FORMAT,
    MANIFEST_FILE,
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

    def __init__(
        self,
        root: Path | str,
        keep_last: int = 10,
        lock_timeout: float = 60.0,
        *,
        import_limit_bytes: int = IMPORT_LIMIT_BYTES,
        import_max_entries: int = IMPORT_MAX_ENTRIES,
    ) -> None:
        """A store under the folder `root` (made when first written).

        Args:
            keep_last: how many of its newest versions each profile keeps (pins, the current version
                and its parent, and the newest version of every line of learning are kept as well).
            lock_timeout: seconds a store from `profile` waits for another program to finish changing
                its profile.
            import_limit_bytes: the most an imported archive may unpack to.
            import_max_entries: the most entries an imported archive may hold.

        Raises:
            ValueError: `keep_last` is negative.
        """
        if keep_last < 0:
            raise ValueError("keep_last must be >= 0")
        self.root, self.keep_last, self.lock_timeout = Path(root).expanduser(), keep_last, lock_timeout
        self.import_limit_bytes, self.import_max_entries = import_limit_bytes, import_max_entries

    def sites(self) -> list[str]:
        """Names of the sites in the store, as typed, sorted without regard to case.

        Raises:
            SiteStoreAccessError: the store folder cannot be read.
        """
        if not self.root.is_dir():
            return []
        with self._reading("the sites cannot be listed"):
            dirs = [
                d for d in self.root.iterdir() if not d.name.startswith(".") and (d / "site.json").is_file()
            ]
        return sorted((read_name(d / "site.json", d.name) for d in dirs), key=str.casefold)

    def users(self, site: str) -> list[str]:
        """Users of `site` that have profiles of their own, sorted without regard to case.

        Raises:
            SiteStoreError: `site` is not a valid name.
            SiteStoreAccessError: the site's folder cannot be read.
        """
        users = self.root / folder_name(check_name(site, "site")) / "users"
        with self._reading(f"the users of site '{site}' cannot be listed"):
            dirs = [d for d in users.iterdir() if (d / "user.json").is_file()] if users.is_dir() else []
        return sorted((read_name(d / "user.json", d.name) for d in dirs), key=str.casefold)

    def profiles(self, site: str, user: str | None = None) -> list[str]:
        """Profiles of `site` that hold versions: the shared ones, or those of `user`.

        Raises:
            SiteStoreError: `site` or `user` is not a valid name.
            SiteStoreAccessError: the site's folder cannot be read.
        """
        base = self.root / folder_name(check_name(site, "site"))
        if user is not None:
            base = base / "users" / folder_name(check_name(user, "user"))
        with self._reading(f"the profiles of site '{site}' cannot be listed"):
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
            SiteStoreAccessError: the site's folder cannot be read, or the archive cannot be written.
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
                        for file_name, src in files:
                            add(f"site/{rel}/{file_name}", src)
            os.replace(tmp, archive)
        except OSError as exc:
            outcome = f"site '{name}' was not exported to {archive}. The site is unchanged"
            if isinstance(exc.filename, str) and Path(exc.filename).is_relative_to(site_dir):
                raise access_error(exc, site_dir, writing=False, outcome=outcome) from exc
            raise access_error(exc, archive.parent, writing=True, outcome=outcome) from exc
        finally:
            tmp.unlink(missing_ok=True)
        log.info("Exported site '%s' to %s", name, archive)
        return archive

    def import_site(self, archive: Path | str, site: str | None = None, *, replace: bool = False) -> str:
        """Add the site in `archive` (made by export_site), optionally under another name.

        The archive's table is checked before anything is written: entry names and kinds, at most
        `import_max_entries` entries unpacking to at most `import_limit_bytes` and to less than the free
        disk space, and its export description. Replacing a site takes the locks of all its profiles.

        Args:
            site: the name to import it under; None keeps the archive's.
            replace: replace a site of that name (its versions are deleted) instead of refusing.

        Returns:
            The imported site's name.

        Raises:
            SiteStoreError: nothing was imported: the archive is missing, is no InteractiveAdapt export,
                is too large or holds too many entries, or is damaged (unsafe entries, links, bad names
                or checksums); `site` (else the archive's site name) is not a valid name; a site of that
                name exists and `replace` is False; the disk has no room for it; another program is
                changing the site to be replaced; or the store cannot be written.
            TorchTooOldError: the torch in use may not read the archive's weight files.
        """
        archive = Path(archive)
        if not archive.is_file():
            raise SiteStoreError(f"The archive {archive} does not exist.")
        new_name = None if site is None else check_name(site, "site")
        nothing = "Nothing was imported."
        table = read_table(
            archive,
            limit_bytes=self.import_limit_bytes,
            max_entries=self.import_max_entries,
            unpack_into=self.root,
        )
        name = new_name or check_name(table.info.get("site"), "site")
        target = self.root / folder_name(name)
        if target.exists() and not replace:
            raise self._exists_error(target, name)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".import-"))
        except OSError as exc:
            raise SiteStoreError(
                f"The store folder {self.root} cannot be written ({exc.strerror}). {nothing}"
            ) from exc
        try:
            extract_archive(archive, staging, table)
            tree = staging / "site"
            if not (tree / "site.json").is_file():
                raise SiteStoreError(f"{archive.name} is not a site exported by InteractiveAdapt. {nothing}")
            self._verify_tree(tree, name, archive.name)
            atomic_write_bytes(tree / "site.json", json_bytes({"format": FORMAT, "name": name}))
            old = None
            if target.exists():
                if not replace:
                    raise self._exists_error(target, name)
                old = self.root / f".deleted-{uuid.uuid4().hex}"
            with self._site_locked(target, name) if old else contextlib.nullcontext():
                if old is not None:
                    os.replace(target, old)  # no save is half-way: every profile's lock is held
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
            SiteStoreError: `site` is not a valid name or is not in the store, or another program is
                changing one of its profiles (nothing was deleted).
            SiteStoreAccessError: the site's folder cannot be moved away (nothing was deleted).
        """
        site_dir = self.require_site(site)
        trash = self.root / f".deleted-{uuid.uuid4().hex}"
        with os_errors(site_dir, writing=True, outcome=f"site '{site}' was not deleted"):
            with self._site_locked(site_dir, read_name(site_dir / "site.json", site)):
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
                yield ProfileStore(
                    d,
                    site=site,
                    profile=profile,
                    user=user,
                    keep_last=self.keep_last,
                    lock_timeout=self.lock_timeout,
                )

    @contextlib.contextmanager
    def _site_locked(self, site_dir: Path, site: str) -> Iterator[None]:
        """Hold the locks of every profile of a site, so that no save is half-way while it is moved."""
        with contextlib.ExitStack() as held:
            for store in list(self._stores(site_dir, site)):
                held.enter_context(store.hold())
            yield

    def _reading(self, outcome: str) -> contextlib.AbstractContextManager[None]:
        return os_errors(self.root, writing=False, outcome=f"{outcome}. Nothing was changed")

    def _exists_error(self, target: Path, name: str) -> SiteStoreError:
        return SiteStoreError(
            f"A site named '{read_name(target / 'site.json', name)}' already exists. Nothing was imported. "
            "Import it under another name, or replace the existing site (its versions are then deleted: "
            "export it first to keep a copy)."
        )

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
