"""Site archives (.zip or .tar.gz): writing, and unpacking safely (no member outside the target folder)."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from InteractiveAdaptLib.errors import SiteStoreError

log = logging.getLogger(__name__)

EXPORT_INFO = "interactive-adapt-export.json"


def archive_kind(path: Path) -> str | None:
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


def _member_target(dest: Path, name: str, archive: Path) -> Path:
    """Where an archive entry goes; refuses names that could land outside `dest`."""
    parts = name.rstrip("/").split("/")
    bad = not name or name.startswith("/") or "\\" in name
    bad = bad or any(p in ("", ".", "..") or ":" in p or not p.isprintable() or len(p) > 255 for p in parts)
    target = dest.joinpath(*parts)
    if bad or not target.resolve().is_relative_to(dest.resolve()):
        raise SiteStoreError(
            f"The archive {archive.name} holds an entry named {name!r} that points outside the site folder, "
            "so it was not made by InteractiveAdapt export. Nothing was imported."
        )
    return target


def extract_archive(archive: Path, dest: Path) -> None:
    """Unpack a .zip or .tar(.gz) into `dest`, accepting only plain files and folders with safe names."""
    not_plain = SiteStoreError(
        f"The archive {archive.name} holds links or special files. Nothing was imported."
    )
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                entries = [
                    (i.filename, i.is_dir(), stat.S_ISLNK(i.external_attr >> 16), i) for i in zf.infolist()
                ]
                opener = zf.open
                unpack_archive(entries, opener, dest, archive, not_plain)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf:
                entries = [(m.name, m.isdir(), not (m.isdir() or m.isfile()), m) for m in tf.getmembers()]
                unpack_archive(entries, tf.extractfile, dest, archive, not_plain)
        else:
            raise SiteStoreError(f"{archive.name} is not a .zip or .tar.gz archive. Nothing was imported.")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, FileExistsError) as exc:
        raise SiteStoreError(f"The archive {archive.name} is damaged ({exc}). Nothing was imported.") from exc


def unpack_archive(
    entries: list[tuple[str, bool, bool, Any]], opener: Any, dest: Path, archive: Path, not_plain: Exception
) -> None:
    for name, is_dir, is_special, entry in entries:
        target = _member_target(dest, name, archive)
        if is_special:
            raise not_plain
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with opener(entry) as src, open(target, "xb") as out:  # "x": a repeated entry cannot overwrite
            shutil.copyfileobj(src, out)
