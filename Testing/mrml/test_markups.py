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


def test_creating_the_click_lists_leaves_slicer_s_active_place_list_alone(mri_scene):
    """The markups logic makes every new point list the active one, so the toolbar's "place point" in
    any module would then add negative clicks; the user's own list stays active instead."""
    scene = mri_scene.scene
    selection = scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")
    own = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Landmarks")
    selection.SetActivePlaceNodeID(own.GetID())
    positive, negative = mrml.create_click_nodes(scene)
    assert selection.GetActivePlaceNodeID() == own.GetID()
    selection.SetActivePlaceNodeID(None)
    scene.RemoveNode(positive)
    scene.RemoveNode(negative)
    mrml.create_click_nodes(scene)
    assert selection.GetActivePlaceNodeID() in (None, "")
