"""Click point lists: positive clicks green, negative clicks red (points are placed by point_placer.py,
not in Slicer's Place mode, so that pan and zoom keep working)."""

from __future__ import annotations

from typing import Any

POSITIVE_COLOR = (0.15, 0.8, 0.25)
NEGATIVE_COLOR = (0.9, 0.15, 0.15)
ROLE_ATTRIBUTE = "InteractiveAdapt.Role"


def style_click_node(node: Any, positive: bool) -> None:
    """Green (positive) or red (negative) points without labels, locked against dragging."""
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    color = POSITIVE_COLOR if positive else NEGATIVE_COLOR
    display.SetSelectedColor(*color)
    display.SetColor(*color)
    display.SetActiveColor(*color)
    display.SetPointLabelsVisibility(False)
    display.SetPropertiesLabelVisibility(False)
    node.SetAttribute(ROLE_ATTRIBUTE, "positive" if positive else "negative")


def create_click_nodes(scene: Any) -> tuple[Any, Any]:
    """Two point lists: positive clicks (green) and negative clicks (red); the scene's own when it has
    them (e.g. a saved scene opened again)."""
    found = {}
    for n in range(scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode")):
        node = scene.GetNthNodeByClass(n, "vtkMRMLMarkupsFiducialNode")
        found.setdefault(node.GetAttribute(ROLE_ATTRIBUTE), node)
    if "positive" in found and "negative" in found:
        return found["positive"], found["negative"]
    # Slicer's markups logic makes each new point list the active place list: the toolbar's "place
    # point" in any module would then add clicks to a case. The list active before stays active.
    selection = scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")
    active = selection.GetActivePlaceNodeID() if selection is not None else None
    nodes = []
    for positive in (True, False):
        node = scene.AddNewNodeByClass(
            "vtkMRMLMarkupsFiducialNode", "Positive clicks" if positive else "Negative clicks"
        )
        style_click_node(node, positive)
        nodes.append(node)
    if selection is not None and selection.GetActivePlaceNodeID() != active:
        selection.SetActivePlaceNodeID(active)
    return nodes[0], nodes[1]
