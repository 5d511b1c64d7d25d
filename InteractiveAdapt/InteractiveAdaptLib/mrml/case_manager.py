"""The module's current case: the nodes it needs (created when missing), one session, one controller."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from InteractiveAdaptLib.errors import CaseStateError
from InteractiveAdaptLib.interaction import CaseSession, ErrorCallback, JobKind, StatusCallback
from InteractiveAdaptLib.mrml.click_controller import ClickController
from InteractiveAdaptLib.mrml.segments import (
    segment_profile,
)


@dataclass
class CaseNodes:
    """The scene nodes a case works on."""

    volume: Any
    segmentation: Any
    segment_id: str
    positive: Any
    negative: Any


class CaseManager:
    """The module's current case: one engine session (reopened when the settings change) and one controller."""

    def __init__(self, executor: Any, open_session: Callable[[Any], CaseSession]) -> None:
        self.executor = executor
        self._open_session = open_session
        self.session: CaseSession | None = None
        self.session_settings: Any = None
        self.controller: ClickController | None = None
        self.profile: str | None = None
        self._opening = threading.Lock()  # the worker may be opening it ahead (Workflow.preload_session)

    def matches(self, volume_node: Any, segmentation_node: Any, segment_id: str | None) -> bool:
        """True if the open case works on these nodes."""
        c = self.controller
        return c is not None and (c.volume_node, c.segmentation_node, c.segment_id) == (
            volume_node,
            segmentation_node,
            segment_id,
        )

    def prepare(
        self,
        scene: Any,
        settings: Any,
        nodes: CaseNodes,
        on_error: ErrorCallback | None = None,
        on_status: StatusCallback | None = None,
        **controller_options: Any,
    ) -> None:
        """Start a case on `nodes`, (re)opening the session if the settings changed. A case with clicks on
        the same nodes goes on as it is (new settings apply from the next case)."""
        if self.matches(nodes.volume, nodes.segmentation, nodes.segment_id) and (
            self.controller.records or self.session_settings == settings
        ):
            return
        self.close(learn=False)
        self.profile = segment_profile(nodes.segmentation, nodes.segment_id)
        self.session_for(settings)
        self.controller = ClickController(
            self.session,
            self.executor,
            nodes.volume,
            nodes.segmentation,
            nodes.segment_id,
            nodes.positive,
            nodes.negative,
            profile=self.profile,
            on_error=on_error,
            on_status=on_status,
            **controller_options,
        )
        self.controller.start_case()

    def session_for(self, settings: Any) -> CaseSession:
        """The engine session for `settings`, opened again only when they changed (on whichever thread
        asks first; another thread asking meanwhile waits for that one)."""
        with self._opening:
            if self.session is None or self.session_settings != settings:
                self.session = self._open_session(settings)
                self.session_settings = copy.copy(settings)
            return self.session

    def session_ready(self, settings: Any) -> bool:
        """True if the session for `settings` is open (asking for it would not wait)."""
        return self.session is not None and self.session_settings == settings and not self._opening.locked()

    def restart_profile_from_base(self) -> None:
        """After the user agreed: the case's profile, learned from another base model, starts again from
        the shipped one (its old versions stay listed and exportable), then the case starts again."""
        if self.controller is None:
            raise CaseStateError("There is no case to start again: choose the volume and segment first.")
        self.executor.submit(
            self.session.restart_profile_from_base, self.profile, kind=JobKind.RESTART_PROFILE
        )
        self.controller.start_case()

    def close(self, learn: bool = False) -> None:
        """End the current case keeping the segment as it is (learning from it only if asked)."""
        if self.controller is not None:
            if self.controller.started:  # also closes the session's case when it has no clicks yet
                self.controller.finish_case(learn=learn)
            self.controller.cleanup()
            self.controller = None
