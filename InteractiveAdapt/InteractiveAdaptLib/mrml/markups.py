"""Click point lists (positive green, negative red) and Slicer's place mode."""

from __future__ import annotations

from typing import Any

import slicer

from InteractiveAdaptLib.errors import CaseStateError

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
    """Two point lists: positive clicks (green) and negative clicks (red)."""
    nodes = []
    for positive in (True, False):
        node = scene.AddNewNodeByClass(
            "vtkMRMLMarkupsFiducialNode", "Positive clicks" if positive else "Negative clicks"
        )
        style_click_node(node, positive)
        nodes.append(node)
    return nodes[0], nodes[1]


def start_placing(scene: Any, markups_node: Any, persistent: bool = True) -> None:
    """Put the views in place mode so that each left click adds a point to `markups_node`."""
    selection = scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")
    interaction = scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    if selection is None or interaction is None:
        raise CaseStateError("The views are not ready for placing points. Restart Slicer and try again.")
    selection.SetReferenceActivePlaceNodeClassName(markups_node.GetClassName())
    selection.SetActivePlaceNodeID(markups_node.GetID())
    interaction.SetPlaceModePersistence(1 if persistent else 0)
    interaction.SetCurrentInteractionMode(slicer.vtkMRMLInteractionNode.Place)


def stop_placing(scene: Any) -> None:
    """Back to the normal view interaction (no more points placed on click)."""
    interaction = scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    if interaction is not None:
        interaction.SetCurrentInteractionMode(slicer.vtkMRMLInteractionNode.ViewTransform)


def placing_node(scene: Any) -> Any:
    """The markups node that a click in a view would add a point to now, or None."""
    selection = scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")
    interaction = scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    if selection is None or interaction is None:
        return None
    if interaction.GetCurrentInteractionMode() != slicer.vtkMRMLInteractionNode.Place:
        return None
    return scene.GetNodeByID(selection.GetActivePlaceNodeID() or "")
