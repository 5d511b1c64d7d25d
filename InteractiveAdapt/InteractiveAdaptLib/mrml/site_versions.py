"""The workflow's actions on the site's versions: roll a structure's profile back, export the site,
start a profile again from the shipped model. Mixed into Workflow (mrml/workflow.py), whose session,
worker, structure and status line they use; the work runs on the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from InteractiveAdaptLib.errors import CaseStateError
from InteractiveAdaptLib.interaction import JobKind


class SiteVersions:
    """Rollback, export and restart for a Workflow (a mixin: the workflow holds the state)."""

    def rollback(self, version: int, on_done: Callable[[Any], None] | None = None) -> bool:
        """Make `version` (0 = shipped model) current for this structure's profile only. False if the user
        kept the open case."""
        if not self.segment_id:
            raise CaseStateError("Choose the structure whose learning to roll back.")
        if not self._may_drop_clicks("roll back"):
            return False
        self._end_case()
        profile, session = self.profile, self.session()
        label = f"version {version}" if version else "the shipped model"

        def done(result: Any) -> None:
            if result.error is not None:
                self._error(result.error, result.traceback)
            elif result.cancelled:
                self._status(f"Rollback cancelled: '{profile}' keeps its version.")
            else:
                self._status(f"'{profile}' rolled back to {label}.")
            if on_done is not None:
                on_done(result)

        self.executor.submit(session.rollback, profile, int(version), kind=JobKind.ROLLBACK, on_done=done)
        return True

    def export_site(self, path: str) -> None:
        """Write every profile and version of the site into one archive, on the worker."""

        def done(result: Any) -> None:
            if result.error is not None:
                self._error(result.error, result.traceback)
            else:
                self._status("Export cancelled." if result.cancelled else f"Site exported to {path}.")

        self.executor.submit(self.session().export_site, path, kind=JobKind.EXPORT, on_done=done)

    def restart_profile_from_base(self) -> None:
        """After the user agreed: the structure's profile, learned from another base model, starts again
        from the shipped one (its old versions stay listed), and the case starts again."""
        self.cases.restart_profile_from_base()
        self._status("Learning starts again from the shipped model; its old versions stay listed.")
