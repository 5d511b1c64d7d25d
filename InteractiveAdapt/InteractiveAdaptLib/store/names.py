"""Site, user and profile names: what a name may be, the folder it lives in, a safe name from free
text, and the one rule that maps a structure name to its learning profile."""

from __future__ import annotations

import unicodedata

from InteractiveAdaptLib.errors import SiteStoreError
from InteractiveAdaptLib.store.laterality import without_side

MAX_NAME_LENGTH = 64
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{d}{i}" for d in ("com", "lpt") for i in range(10)}
_EXAMPLES = {"site": "Hospital A", "user": "Dr Smith", "profile": "Grey matter"}


def check_name(name: str, kind: str = "site") -> str:
    """Check a site, user or profile name.

    Args:
        kind: "site", "user" or "profile": the word (and the example) the error message uses.

    Returns:
        `name` cleaned: NFC, outer spaces removed.

    Raises:
        SiteStoreError: saying what to change: the name is not text or is empty, is longer than 64
            characters, holds a character other than letters, digits, spaces, '-', '_' and '.',
            starts or ends with a dot, or is a device name reserved by Windows (CON, COM1, ...).
    """
    example = _EXAMPLES.get(kind, "Hospital A")
    if not isinstance(name, str):
        raise SiteStoreError(f"The {kind} name must be text, such as '{example}'.")
    name = unicodedata.normalize("NFC", name).strip()
    if not name:
        raise SiteStoreError(f"The {kind} name is empty. Type a name such as '{example}'.")
    if len(name) > MAX_NAME_LENGTH:
        raise SiteStoreError(
            f"The {kind} name '{name[:24]}...' is too long ({len(name)} characters); "
            f"use at most {MAX_NAME_LENGTH}."
        )
    bad = sorted({c for c in name if not (c.isalnum() or c in " -_.")})
    if bad:
        raise SiteStoreError(
            f"The {kind} name {name!r} contains {' '.join(repr(c) for c in bad)}, which cannot be part of "
            f"a {kind} name. Use only letters, digits, spaces, '-', '_' and '.', such as '{example}'."
        )
    if name[0] == "." or name[-1] == ".":
        raise SiteStoreError(f"The {kind} name {name!r} cannot start or end with a dot, such as '{example}'.")
    if folder_name(name).split(".")[0] in _RESERVED:
        raise SiteStoreError(
            f"The {kind} name {name!r} is reserved by Windows; add a word, such as '{example}'."
        )
    return name


def suggest_name(text: str, kind: str = "profile") -> str:
    """A valid name close to free text, e.g. a segment name: 'Left/Right (L)' -> 'Left Right L'.

    Characters a name cannot hold become spaces; a Windows device name gets `kind` in front.

    Returns:
        A name that passes `check_name`; 'Unnamed' when nothing of the text is left.
    """
    kept = "".join(c if c.isalnum() or c in "-_." else " " for c in unicodedata.normalize("NFC", str(text)))
    name = " ".join(kept.split())[:MAX_NAME_LENGTH].strip(" .")
    if name and folder_name(name).split(".")[0] in _RESERVED:  # e.g. "CON": a device name on Windows
        name = f"{kind} {name}"[:MAX_NAME_LENGTH].strip(" .")
    return check_name(name or "Unnamed", kind)


def folder_name(name: str) -> str:
    """The folder of a checked name: names differing only in case or space/underscore share it.

    Returns:
        `name` casefolded, with spaces as '_'.
    """
    return name.casefold().replace(" ", "_")


class ProfileName(str):
    """A learning profile's name, as `profile_name` made it: passing one through `profile_name` again
    returns it as it is, so a name is normalised once on its way from the segment to the store."""


def profile_name(structure: str) -> ProfileName:
    """The learning profile of a structure or segment name; every door to a profile goes through it.

    The side is dropped (left and right learn together), then the name is made valid.

    Returns:
        A name that passes `check_name`: 'Hippocampus (L)' -> 'Hippocampus', 'Tumor #1' -> 'Tumor 1'.
    """
    if isinstance(structure, ProfileName):
        return structure
    # Safe characters first, so that a side in brackets ("Hippocampus (L)") is a word of its own.
    return ProfileName(suggest_name(without_side(suggest_name(str(structure), "profile")), "profile"))
