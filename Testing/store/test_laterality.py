"""Left and right of a structure name one learning profile; other names are left as they are."""

from __future__ import annotations

import pytest

from InteractiveAdaptLib.store.laterality import without_side


@pytest.mark.parametrize(
    "name",
    [
        "Hippocampus Left",
        "Hippocampus right",
        "Left hippocampus",
        "Hippocampus_L",
        "Hippocampus-R",
        "rh hippocampus",
        "Lt. hippocampus",
        "  Hippocampus RIGHT ",
    ],
)
def test_both_sides_name_the_same_profile(name):
    assert without_side(name) == "Hippocampus"


def test_the_side_may_sit_inside_the_name():
    assert without_side("Temporal_Mid_L") == without_side("Temporal_Mid_R") == "Temporal_Mid"
    assert without_side("aal:Temporal_Mid_L") == "aal:Temporal_Mid"
    assert without_side("Putamen left head") == "Putamen head"


@pytest.mark.parametrize(
    "name", ["Brain", "Lateral ventricle", "L1 vertebra", "Lesion", "Rectum", "Grey matter", "Left", "R"]
)
def test_names_without_a_side_word_are_unchanged(name):
    assert without_side(name) == name
