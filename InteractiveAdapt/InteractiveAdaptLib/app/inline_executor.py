"""An executor that runs each job at once in the caller's thread, with the Worker's interface: for the
tests, the command line and places where nothing must wait (app/worker.py has the thread)."""

from __future__ import annotations

import itertools
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from InteractiveAdaptLib.app.worker import (
    IDLE_INTERVAL_MS,
    TICK_BUDGET_S,
    Job,
    JobCancelled,
    JobResult,
    ResultCallback,
)
from InteractiveAdaptLib.interaction import JobKind


class InlineExecutor:
    """Runs each job at once in the caller's thread, with the same interface (tests, CLI, self-test)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.wake: Callable[[], None] | None = None  # never called: nothing is ever left to deliver

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        kind: JobKind = JobKind.OTHER,
        description: str = "",
        on_done: ResultCallback | None = None,
        pass_cancel_event: bool = False,
        owner: Any = None,
        **kwargs: Any,
    ) -> Job:
        """Run `fn` now and call `on_done` with its result before returning."""
        job = Job.make(
            next(self._ids), fn, args, kwargs, kind, description, on_done, owner, pass_cancel_event
        )
        result = JobResult(job.id, job.kind, job.description, owner)
        start = time.perf_counter()
        try:
            result.value = fn(*args, **job.kwargs)
        except JobCancelled:
            result.cancelled = True
        except Exception as exc:
            result.error = exc
            result.traceback = traceback.format_exc()
        result.duration_s = time.perf_counter() - start
        if on_done is not None:
            on_done(result)
        return job

    def poll(self, max_results: int | None = None, wait_s: float = 0.0) -> list[JobResult]:
        """Nothing is ever waiting."""
        return []

    def tick(self, budget_s: float = TICK_BUDGET_S) -> int:
        """Nothing to deliver: the idle interval."""
        return IDLE_INTERVAL_MS

    def cancel(self, *, job_ids: Iterable[int] | None = None, owner: Any = None) -> int:
        """Nothing can be pending."""
        return 0

    @property
    def busy(self) -> bool:
        """Never busy between calls."""
        return False
