"""Site archives (.zip or .tar.gz): writing, and unpacking safely. Before anything is written the
archive's table is checked (entry names, links, entry count, unpacked size within a limit and the free
disk space, and that it is an InteractiveAdapt export); while unpacking, no entry may grow past the
size it declared."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from InteractiveAdaptLib.errors import SiteStoreError
from InteractiveAdaptLib.store.versions import FORMAT

log = logging.getLogger(__name__)

EXPORT_INFO = "interactive-adapt-export.json"
# What one site import may unpack. An export holds each profile's kept versions (about 3.5 MB of
# weights each, 10 kept) and one optimizer state: 4 GiB is some 90 profiles, far more than a site has.
IMPORT_LIMIT_BYTES = 4 << 30
IMPORT_MAX_ENTRIES = 20_000
_INFO_MAX_BYTES = 64 << 10  # the export's own description is a few hundred bytes
# Free space kept beyond what the archive unpacks to, so that an import never fills the disk.
_FREE_SPACE_MARGIN = 256 << 20
_NOTHING = "Nothing was imported."


def archive_kind(path: Path) -> str | None:
    """'zip' or 'tar' by the file name's ending (.zip, .tar.gz, .tgz); None for any other name."""
    name = path.name.lower()
    return "zip" if name.endswith(".zip") else "tar" if name.endswith((".tar.gz", ".tgz")) else None


@contextlib.contextmanager
def archive_writer(path: Path, kind: str) -> Iterator[Any]:
    """Yield add(arcname, file path or bytes) writing into a new .zip or .tar.gz."""
    if kind == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            yield lambda name, src: zf.writestr(name, src) if isinstance(src, bytes) else zf.write(src, name)
        return
    with tarfile.open(path, "w:gz") as tf:

        def add(name: str, src: Path | bytes) -> None:
            if isinstance(src, Path):
                tf.add(src, name, recursive=False)
                return
            member = tarfile.TarInfo(name)
            member.size, member.mtime = len(src), int(time.time())
            tf.addfile(member, io.BytesIO(src))

        yield add


@dataclass(frozen=True)
class ArchiveTable:
    """What an archive says it holds, read before anything is unpacked."""

    info: dict[str, Any]  # the export's description (EXPORT_INFO)
    entries: int
    unpacked_bytes: int  # the sum of the sizes the entries declare


def _mb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{max(n / 1e6, 0.1):.1f} MB"


def _check_name(name: str, archive: Path) -> None:
    """Refuse entry names that could land outside the folder they are unpacked into."""
    parts = name.rstrip("/").split("/")
    bad = not name or name.startswith("/") or "\\" in name
    if bad or any(p in ("", ".", "..") or ":" in p or not p.isprintable() or len(p) > 255 for p in parts):
        raise SiteStoreError(
            f"The archive {archive.name} holds an entry named {name!r} that points outside the site folder, "
            f"so it was not made by InteractiveAdapt export. {_NOTHING}"
        )


def read_table(
    archive: Path,
    *,
    limit_bytes: int = IMPORT_LIMIT_BYTES,
    max_entries: int = IMPORT_MAX_ENTRIES,
    unpack_into: Path | None = None,
) -> ArchiveTable:
    """Check an archive's table before anything of it is written: names, kinds, count, size, export info.

    A tar is read header by header and refused at the first header over a limit, so a bomb is not
    unpacked even in memory; a zip's table is at its end.

    Args:
        archive: a .zip or .tar(.gz) file.
        limit_bytes: the most the entries may unpack to, together.
        max_entries: the most entries the archive may hold.
        unpack_into: the folder it would be unpacked into: the entries must also fit its disk's free
            space, with a margin to spare.

    Returns:
        The export's description and what the archive would unpack to.

    Raises:
        SiteStoreError: the archive is no archive, is damaged, has unsafe entry names, links or special
            files, too many entries or too many bytes for the limit or the disk, or is no InteractiveAdapt
            export.
    """
    entries, total, info_bytes, free = 0, 0, None, None
    if unpack_into is not None:
        existing = next(p for p in (unpack_into, *unpack_into.parents) if p.exists())
        with contextlib.suppress(OSError):  # unknown: unpacking stops at a full disk and is removed
            free = shutil.disk_usage(existing).free

    def count(name: str, size: int, special: bool) -> bool:
        nonlocal entries, total
        _check_name(name, archive)
        if special:
            raise SiteStoreError(f"The archive {archive.name} holds links or special files. {_NOTHING}")
        if name != EXPORT_INFO and name.split("/")[0] != "site":  # an export holds nothing else
            raise SiteStoreError(f"{archive.name} is not a site exported by InteractiveAdapt. {_NOTHING}")
        entries, total = entries + 1, total + max(size, 0)
        if entries > max_entries:
            raise SiteStoreError(
                f"The archive {archive.name} holds more than {max_entries} entries, far more than a site "
                f"export has, so it was not unpacked. {_NOTHING}"
            )
        if total > limit_bytes:
            raise SiteStoreError(
                f"The archive {archive.name} would unpack to more than {_mb(limit_bytes)}, more than a site "
                f"import may take, so it was not unpacked. Check that it is a site exported by "
                f"InteractiveAdapt. {_NOTHING}"
            )
        if free is not None and total + _FREE_SPACE_MARGIN > free:
            raise SiteStoreError(
                f"Importing {archive.name} needs more than {_mb(total + _FREE_SPACE_MARGIN)} of free disk "
                f"space in {existing}, but only {_mb(free)} is free. Free some disk space, then import "
                f"again. {_NOTHING}"
            )
        return name == EXPORT_INFO and 0 <= size <= _INFO_MAX_BYTES

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for i in zf.infolist():
                    if count(i.filename, i.file_size, stat.S_ISLNK(i.external_attr >> 16)):
                        info_bytes = zf.read(i)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf:
                while (m := tf.next()) is not None:
                    if count(m.name, m.size, not (m.isdir() or m.isfile())):
                        info_bytes = tf.extractfile(m).read()
        else:
            raise SiteStoreError(f"{archive.name} is not a .zip or .tar.gz archive. {_NOTHING}")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, ValueError) as exc:
        raise SiteStoreError(f"The archive {archive.name} is damaged ({exc}). {_NOTHING}") from exc
    except OSError as exc:
        raise SiteStoreError(
            f"The archive {archive} cannot be read ({exc.strerror or exc}). {_NOTHING}"
        ) from exc
    try:
        info = json.loads(info_bytes) if info_bytes is not None else None
    except (ValueError, UnicodeDecodeError):
        info = None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise SiteStoreError(f"{archive.name} is not a site exported by InteractiveAdapt. {_NOTHING}")
    return ArchiveTable(info, entries, total)


def _member_target(dest: Path, name: str, archive: Path) -> Path:
    """Where an archive entry goes; refuses names that could land outside `dest`."""
    _check_name(name, archive)
    target = dest.joinpath(*name.rstrip("/").split("/"))
    if not target.resolve().is_relative_to(dest.resolve()):
        raise SiteStoreError(
            f"The archive {archive.name} holds an entry named {name!r} that points outside the site folder, "
            f"so it was not made by InteractiveAdapt export. {_NOTHING}"
        )
    return target


def extract_archive(archive: Path, dest: Path, table: ArchiveTable) -> None:
    """Unpack a .zip or .tar(.gz) whose table `read_table` passed into `dest`, writing no more than the
    table declared (an entry that grows past its declared size is refused).

    Raises:
        SiteStoreError: the archive is damaged, or changed since its table was read.
        OSError: `dest` cannot be written.
    """
    budget = table.unpacked_bytes
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                entries = [(i.filename, i.is_dir(), i.file_size, i) for i in zf.infolist()]
                budget = _unpack(entries, zf.open, dest, archive, budget)
        else:
            with tarfile.open(archive, "r:*") as tf:
                entries = [(m.name, m.isdir(), m.size, m) for m in tf if m.isdir() or m.isfile()]
                budget = _unpack(entries, tf.extractfile, dest, archive, budget)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, FileExistsError) as exc:
        raise SiteStoreError(f"The archive {archive.name} is damaged ({exc}). {_NOTHING}") from exc


def _unpack(
    entries: list[tuple[str, bool, int, Any]], opener: Any, dest: Path, archive: Path, budget: int
) -> int:
    grew = SiteStoreError(f"The archive {archive.name} holds more than its table says. {_NOTHING}")
    for name, is_dir, size, entry in entries:
        target = _member_target(dest, name, archive)
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        if size > budget:
            raise grew
        target.parent.mkdir(parents=True, exist_ok=True)
        with opener(entry) as src, open(target, "xb") as out:  # "x": a repeated entry cannot overwrite
            written = 0
            while block := src.read(min(1 << 20, size - written + 1)):
                written += len(block)
                if written > size:
                    raise grew
                out.write(block)
        budget -= written
    return budget
