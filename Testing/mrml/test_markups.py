"""Click point lists (mrml/markups.py) on a real MRML scene: one green list for positive clicks, one red
for negative ones, labelled with their role."""

from __future__ import annotations

from InteractiveAdaptLib import mrml


def test_click_lists_are_green_and_red_and_know_their_role(mri_scene):
    positive, negative = mrml.create_click_nodes(mri_scene.scene)
    for node, colour, role in (
        (positive, mrml.POSITIVE_COLOR, "positive"),
        (negative, mrml.NEGATIVE_COLOR, "negative"),
    ):
        assert node.GetAttribute(mrml.ROLE_ATTRIBUTE) == role
        assert tuple(round(c, 2) for c in node.GetDisplayNode().GetSelectedColor()) == colour
        assert not node.GetDisplayNode().GetPointLabelsVisibility()
