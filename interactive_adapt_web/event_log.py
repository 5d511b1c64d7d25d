"""The server's JSON-lines event log (`--event-log`, hidden): what tests and bench-web need to see from
the Python side (ready, study opened, segment voxels after each result, status lines, click timings,
frames drawn, saved versions). Off for users: every call is then a no-op."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from InteractiveAdaptLib.mrml import read_segment, segmentation_of
from InteractiveAdaptLib.mrml.volume import volume_geometry


class EventLog:
    """One JSON object per line: {"event": ..., "t": unix time, ...fields}."""

    def __init__(self, path: str | Path | None) -> None:
        self._file = open(path, "a", buffering=1) if path else None  # noqa: SIM115 (closed in close())

    @property
    def on(self) -> bool:
        """Whether anything is logged."""
        return self._file is not None

    def emit(self, event: str, **fields: Any) -> None:
        if self._file is not None:
            self._file.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")

    def segment(self, workflow: Any) -> None:
        """The voxels and points of the structure being segmented."""
        if not self.on or workflow.segmentation is None or not workflow.segment_id:
            return
        mask = read_segment(workflow.segmentation, workflow.segment_id, volume_geometry(workflow.volume))
        positive, negative = (
            node.GetNumberOfControlPoints() if node else 0 for node in (workflow.positive, workflow.negative)
        )
        self.emit(
            "segment",
            volume=workflow.volume.GetName(),
            structure=workflow.structure_name,
            voxels=int(mask.sum()),
            clicks=workflow.clicks,
            positive=positive,
            negative=negative,
        )

    def scene(self, scene: Any) -> None:
        """Every volume of the scene with the voxels of each of its structures (patients must not mix)."""
        if not self.on:
            return
        found = {}
        for n in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
            volume = scene.GetNthNodeByClass(n, "vtkMRMLScalarVolumeNode")
            segmentation, structures = segmentation_of(scene, volume), {}
            if segmentation is not None:
                for index in range(segmentation.GetSegmentation().GetNumberOfSegments()):
                    segment_id = segmentation.GetSegmentation().GetNthSegmentID(index)
                    name = segmentation.GetSegmentation().GetSegment(segment_id).GetName()
                    structures[name] = int(
                        read_segment(segmentation, segment_id, volume_geometry(volume)).sum()
                    )
            found[volume.GetName()] = structures
        self.emit("scene", volumes=found)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
