"""Site, user and profile names (store/names.py): names that could escape the store's root are refused
wherever the store takes a name, any text is either refused or stays inside the root, and free text
such as a segment name always gives a valid suggested name."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from InteractiveAdaptLib.errors import SiteStoreError
from InteractiveAdaptLib.store.names import (
    MAX_NAME_LENGTH,
    ProfileName,
    check_name,
    folder_name,
    profile_name,
    suggest_name,
)
from InteractiveAdaptLib.store.site_store import SiteStore

BAD_NAMES = ["", "   ", "..", ".", "../etc", "a/b", "a\\b", "/abs", ".hidden", "trailing.", "tab\there",
             "nul\x00byte", "new\nline", "C:", "con", "LPT1", "x" * 65, "semi;colon", "star*"]  # fmt: skip


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_that_could_escape_the_root_are_rejected(store: SiteStore, tmp_path: Path, name: str) -> None:
    before = sorted(tmp_path.rglob("*"))
    for call in (
        lambda: store.profile(name, "Grey matter"),
        lambda: store.profile("Hospital A", name),
        lambda: store.profile("Hospital A", "Grey matter", user=name),
        lambda: store.profiles(name),
        lambda: store.delete_site(name),
    ):
        with pytest.raises(SiteStoreError) as caught:
            call()
        assert "name" in str(caught.value) and "Traceback" not in str(caught.value)
    assert sorted(tmp_path.rglob("*")) == before


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_either_refused_or_stays_inside_the_root(text: str) -> None:
    root = Path("/srv/store").resolve()
    try:
        name = check_name(text)
    except SiteStoreError as error:
        assert "name" in str(error)
    else:
        assert (root / folder_name(name)).resolve().parent == root and folder_name(name) not in (".", "..")
    suggestion = suggest_name(text)  # free text such as a segment name always maps to a valid name
    assert (
        check_name(suggestion, "profile") == suggestion
        and (root / folder_name(suggestion)).resolve().parent == root
    )
    if text.strip() and check_name_ok(text):
        assert suggestion == check_name(text)


def check_name_ok(text: str) -> bool:
    try:
        check_name(text)
    except SiteStoreError:
        return False
    return True


def test_suggested_names_for_segment_names() -> None:
    assert suggest_name("Left/Right (L)") == "Left Right L"
    assert suggest_name("  ../../etc/passwd ") == "etc passwd"
    assert suggest_name("CON") == "profile CON" and suggest_name("\x00\n") == "Unnamed"
    assert suggest_name("Grey matter") == "Grey matter" and len(suggest_name("x" * 200)) == 64


@pytest.mark.parametrize(
    "name, profile",
    [
        ("Hippocampus (L)", "Hippocampus"),
        ("Right hippocampus", "Hippocampus"),
        ("Hippocampus_R", "Hippocampus"),
        ("Tumor #1", "Tumor 1"),
        ("Läsion", "Läsion"),
        ("Left", "Left"),  # only a side: kept, not emptied
        ("CON", "profile CON"),  # a Windows device name gets a word in front
    ],
)
def test_profile_name_is_the_one_rule_from_a_structure_to_its_profile(name, profile):
    assert profile_name(name) == profile
    assert check_name(profile_name(name), "profile") == profile  # always a valid store name
    long = profile_name("Lesion of the left temporal lobe " * 4)
    assert len(long) <= MAX_NAME_LENGTH and check_name(long, "profile") == long


def test_a_profile_name_is_normalised_once_on_its_way_to_the_store():
    once = profile_name("Hippocampus (L)")
    assert isinstance(once, ProfileName) and once == "Hippocampus"
    assert profile_name(once) is once  # the session and the store take it as it is
    assert profile_name(str(once)) == once and profile_name(str(once)) is not once
