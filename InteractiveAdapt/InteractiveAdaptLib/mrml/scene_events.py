"""What the workflow does when the scene changes under it: the scene closing (ask before dropping a
case's clicks) and a node the case works on being deleted. Mixed into Workflow (mrml/workflow.py)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import vtk
from vtkmodules.util.misc import calldata_type

from InteractiveAdaptLib.mrml.volume import node_name


class SceneEvents:
    """Scene close and node removal for a Workflow (a mixin: the workflow holds the state)."""

    def close_scene(self) -> None:
        """The scene is closing: a case with clicks is learned first if the user says so, then ends."""
        n, structure = self.clicks, self.structure_name or "the structure"
        question = (
            f"The scene is closing. The open case ({structure} on '{node_name(self.volume)}') has {n} "
            f"click{'s' if n > 1 else ''} not finished. Learn from it before it closes? (No drops the clicks.)"
        )
        if n and self._ask(question):
            self.finish(learn=True)  # the segment is read now, the learning runs on the worker
        self.close()

    def close(self) -> None:
        """The scene is closing: end the case without learning and forget its nodes."""
        self._end_case()
        self.volume = self.segmentation = self.positive = self.negative = None
        self.segment_id = ""

    def _on_node_removed(self, node: Any) -> None:
        """A node the case works on left the scene (Data module, a partly closed scene): end the case
        without learning, forget the node, and say so; nothing is written into a node out of the scene."""
        kept = {
            "volume": self.volume,
            "segmentation": self.segmentation,
            "positive": self.positive,
            "negative": self.negative,
        }
        role = next((name for name, held in kept.items() if held is not None and held is node), None)
        if role is None:
            return
        ended = self.clicks > 0
        self._end_case()
        if role == "volume":
            self.volume = self.segmentation = None
        if role in ("volume", "segmentation"):
            self.segmentation, self.segment_id, self._shown = None, "", False
        else:
            self.positive = self.negative = None
        if ended:
            what = {"volume": "The MRI volume", "segmentation": "The segmentation"}.get(role, "A point list")
            self._status(f"{what} of the open case was deleted: the case ended without learning.")


def removed_node_observer(workflow: weakref.ref) -> Callable[..., None]:
    """The scene's NodeRemovedEvent for a workflow held weakly: a scene outliving its workflow (or both
    being collected) never calls into a half-destroyed workflow."""

    @calldata_type(vtk.VTK_OBJECT)
    def removed(scene: Any, event: Any, node: Any) -> None:
        owner = workflow()
        if owner is not None:
            owner._on_node_removed(node)

    return removed
