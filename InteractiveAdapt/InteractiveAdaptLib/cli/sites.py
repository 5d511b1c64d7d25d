"""`interactive-adapt sites ...`: list, show, roll back, pin, prune, export, import and delete site weights."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from InteractiveAdaptLib.errors import SiteStoreError
from InteractiveAdaptLib.store.names import profile_name
from InteractiveAdaptLib.store.profile_store import ProfileStore, VersionInfo
from InteractiveAdaptLib.store.site_store import SiteStore, default_store_root


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `sites` command and its actions."""
    sites = subparsers.add_parser(
        "sites",
        help="manage the adapted weights kept per site",
        description="Manage the adapted weights kept per site, user and learning profile.",
    )
    actions = sites.add_subparsers(dest="sites_action", metavar="ACTION", required=True)
    root = argparse.ArgumentParser(add_help=False)
    root.add_argument("--root", type=Path, help="site store folder (default: the user data folder)")
    where = argparse.ArgumentParser(add_help=False, parents=[root])
    where.add_argument("--site", required=True, help="site name, such as 'Hospital A'")
    where.add_argument("--profile", required=True, help="learning profile, such as 'Grey matter'")
    where.add_argument("--user", help="the user's own profiles instead of the site's shared ones")
    version = argparse.ArgumentParser(add_help=False)
    version.add_argument(
        "--version", type=int, required=True, help="version number (0 = the shipped base model)"
    )

    def add(name: str, help: str, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
        parser = actions.add_parser(
            name, help=help, description=help[0].upper() + help[1:] + ".", parents=parents
        )
        parser.set_defaults(func=_run)
        return parser

    listing = add("list", "list sites, or the profiles of one site", [root])
    listing.add_argument("--site", help="list this site's profiles")
    listing.add_argument("--user", help="with --site: only this user's profiles")
    add("show", "show the versions of a profile", [where])
    add("rollback", "make an earlier version (or 0, the base model) current", [where, version])
    add("pin", "keep a version whatever the retention says", [where, version])
    add("unpin", "let retention remove a pinned version again", [where, version])
    add("prune", "remove versions beyond the retention now", [where]).add_argument(
        "--keep", type=int, default=10, help="newest versions to keep besides pinned and current (default 10)"
    )
    export = add("export", "write a site into one .zip or .tar.gz archive", [root])
    export.add_argument("--site", required=True)
    export.add_argument("--output", type=Path, required=True, help="archive file (.zip or .tar.gz)")
    imp = add("import", "add a site from an archive made by export", [root])
    imp.add_argument("archive", type=Path)
    imp.add_argument("--as", dest="name", help="import under this site name")
    imp.add_argument("--replace", action="store_true", help="replace an existing site of that name")
    delete = add("delete", "delete a site, or one profile with --profile", [root])
    delete.add_argument("--site", required=True)
    delete.add_argument("--profile")
    delete.add_argument("--user")
    delete.add_argument("--yes", action="store_true", help="confirm: deleting cannot be undone")


def _run(args: argparse.Namespace) -> int:
    store = SiteStore(args.root or default_store_root(), keep_last=getattr(args, "keep", 10))
    action = args.sites_action
    if action == "list":
        return _list(store, args)
    if action == "import":
        name = store.import_site(args.archive, args.name, replace=args.replace)
        print(f"Imported site '{name}' into {store.root}.")
        return 0
    if action == "export":
        path = store.export_site(args.site, args.output)
        print(f"Exported site '{args.site}' to {path}.")
        return 0
    if action == "delete":
        return _delete(store, args)
    profile = _existing_profile(store, args.site, args.profile, args.user)
    if action == "show":
        _show(profile)
    elif action == "rollback":
        profile.rollback(args.version)
        now = f"version {args.version}" if args.version else "the shipped base model (version 0)"
        print(f"{profile.label} now uses {now}; the next case learned builds on it.")
    elif action in ("pin", "unpin"):
        getattr(profile, action)(args.version)
        print(
            f"Version {args.version} of {profile.label} is {'pinned' if action == 'pin' else 'no longer pinned'}."
        )
    elif action == "prune":
        removed = profile.prune()
        print(f"Removed versions {', '.join(map(str, removed))}." if removed else "Nothing to remove.")
    return 0


def _existing_profile(store: SiteStore, site: str, name: str, user: str | None) -> ProfileStore:
    """The profile listed under `name`, else the one a segment called `name` learns in (the module's
    rule: 'Tumor #1' -> 'Tumor 1', 'Hippocampus (L)' -> 'Hippocampus')."""
    store.require_site(site)
    try:
        profile = store.profile(site, name, user)
    except SiteStoreError:
        profile = None  # not a valid stored name as typed: the segment name rule may map it
    if profile is None or not profile.exists():
        profile = store.profile(site, profile_name(name), user)
    if not profile.exists():
        have = ", ".join(f"'{p}'" for p in store.profiles(site, user)) or "none"
        raise SiteStoreError(f"There is no {profile.label}. Profiles there: {have}.")
    return profile


def _list(store: SiteStore, args: argparse.Namespace) -> int:
    if args.site is None:
        sites = store.sites()
        if not sites:
            print(f"No sites in {store.root} yet.")
            return 0
        rows = [[s, str(len(store.profiles(s))), ", ".join(store.users(s))] for s in sites]
        print(_table(["site", "shared profiles", "users with own profiles"], rows))
        return 0
    store.require_site(args.site)
    users = [args.user] if args.user is not None else [None, *store.users(args.site)]
    rows = []
    for user in users:
        for name in store.profiles(args.site, user):
            profile = store.profile(args.site, name, user)
            versions, current = profile.versions(), profile.current()
            rows.append([user or "(shared)", name, str(len(versions)), _current(current), _when(current)])
    print(_table(["user", "profile", "versions", "current", "saved"], rows) if rows else "No profiles yet.")
    return 0


def _show(profile: ProfileStore) -> None:
    versions, current = profile.versions(), profile.current()
    print(f"{profile.label}: {len(versions)} version(s); current: {_current(current)}")
    rows = [
        [
            str(v.version), str(v.parent), _when(v), str(v.cases_learned), str(v.clicks_learned),
            "yes" if v.pinned else "", "*" if current and v.version == current.version else "",
            v.base_sha256[:8], f"DAMAGED: {v.damaged}" if v.damaged else v.note,
        ]
        for v in versions
    ]  # fmt: skip
    print(
        _table(["version", "parent", "created", "cases", "clicks", "pinned", "current", "base", "note"], rows)
    )


def _delete(store: SiteStore, args: argparse.Namespace) -> int:
    what = f"site '{args.site}' with all its profiles and versions"
    profile = None
    if args.profile is not None:
        profile = _existing_profile(store, args.site, args.profile, args.user)
        what = f"{profile.label} with all its versions"
    else:
        store.require_site(args.site)
    if not args.yes:
        raise SiteStoreError(
            f"Deleting {what} cannot be undone. Run again with --yes to confirm "
            "(export the site first to keep a copy). Nothing was deleted."
        )
    if profile is not None:
        profile.delete()
    else:
        store.delete_site(args.site)
    print(f"Deleted {what}.")
    return 0


def _current(info: VersionInfo | None) -> str:
    return f"version {info.version}" if info else "base model (0)"


def _when(info: VersionInfo | None) -> str:
    """ISO time as 'YYYY-MM-DD HH:MM UTC' (empty for the base model or an unreadable date)."""
    try:
        return datetime.fromisoformat(info.created).strftime("%Y-%m-%d %H:%M UTC") if info else ""
    except ValueError:
        return ""


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
