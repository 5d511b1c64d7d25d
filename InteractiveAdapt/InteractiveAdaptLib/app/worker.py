"""One background thread for torch work, so the Slicer GUI never freezes, and the main-thread side that
lets that thread run at full speed inside Slicer.

Jobs run one at a time in submission order. Every job ends as exactly one `JobResult` in the output
queue (value, error or cancelled), which the GUI takes from its main thread with `poll()` or `tick()`;
callbacks given at submission run there, never on the worker.

Inside Slicer the main thread holds Python's GIL while its Qt event loop is idle, so the worker thread
only runs while the main thread executes Python and lets go of the GIL: with a plain 50 ms poll, one
forward pass took about 1 s instead of 0.05-0.1 s. So the module's QTimer calls `tick()`: while jobs
are pending it waits for their results in a call that releases the GIL (a queue wait with a timeout),
for at most `TICK_BUDGET_S`, delivering each result as it arrives, then returns to the event loop so
that the GUI stays responsive; its return value is the timer's next interval (short while busy, long
while idle). `wake`, if set, is called when a job is submitted from the main thread, so that the timer
can tick at once instead of at the end of an idle interval.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from InteractiveAdaptLib.errors import InteractiveAdaptError
from InteractiveAdaptLib.interaction import JobKind

log = logging.getLogger(__name__)

ResultCallback = Callable[["JobResult"], None]

# Longest the main thread waits for results in one tick: the worker runs freely meanwhile, and the GUI
# is back in its event loop after this plus the callbacks' own time.
TICK_BUDGET_S = 0.035
# The GUI timer's interval while jobs are pending: short, because the worker is held up while the
# event loop idles (the GIL is not released there).
BUSY_INTERVAL_MS = 5
# The GUI timer's interval with nothing to do (a submit from the main thread wakes the timer anyway).
IDLE_INTERVAL_MS = 50
# Long jobs nobody waits for click by click (Finish's learning, a rollback, an export): the event loop
# gets 10 ms of every 30 instead of 5 of every 40, so that the views keep drawing meanwhile.
BACKGROUND_KINDS = frozenset(
    {
        JobKind.FINISH,
        JobKind.CLOSE,
        JobKind.ROLLBACK,
        JobKind.EXPORT,
        JobKind.RESTART_PROFILE,
        JobKind.LOAD_NETWORK,
    }
)
BACKGROUND_BUDGET_S, BACKGROUND_INTERVAL_MS = 0.02, 10


class JobCancelled(Exception):
    """Raised by a job that noticed its cancel flag; delivered as a cancelled result, not as an error."""


@dataclass
class Job:
    """A unit of work waiting for, or running on, the worker thread."""

    id: int
    kind: JobKind
    description: str  # what the progress line shows (the kind's text unless given)
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    on_done: ResultCallback | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    owner: Any = None  # who submitted it (e.g. a case's controller): `cancel(owner=...)` picks its jobs

    @property
    def cancel_requested(self) -> bool:
        """True once `Worker.cancel()` asked this job to stop."""
        return self.cancel_event.is_set()

    @classmethod
    def make(cls, job_id, fn, args, kwargs, kind, description, on_done, owner, pass_cancel_event) -> Job:
        """A job as both executors build it; with pass_cancel_event, `fn` also gets `cancel_event=`."""
        job = cls(job_id, kind, description or kind.text, fn, args, kwargs, on_done, owner=owner)
        if pass_cancel_event:
            job.kwargs["cancel_event"] = job.cancel_event
        return job


@dataclass
class JobResult:
    """How a job ended. Exactly one of value / error is meaningful; `cancelled` jobs may carry neither."""

    job_id: int
    kind: JobKind
    description: str
    owner: Any = None
    value: Any = None
    error: BaseException | None = None
    traceback: str = ""
    cancelled: bool = False
    duration_s: float = 0.0
    on_done: ResultCallback | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """The job ran to the end without an error and was not cancelled."""
        return self.error is None and not self.cancelled

    @property
    def slice_range(self) -> tuple[int, int] | None:
        """(first, last) slice of the K axis a case job wrote (None for other jobs or none written)."""
        return getattr(self.value, "slice_range", None) if self.ok else None

    @property
    def message(self) -> str:
        """How the job ended, for the user: '' when it went well, the error's own words when a user
        caused it (they say what to do), a line pointing to the log for an unexpected failure."""
        if self.cancelled:
            return f"{self.kind.text}: cancelled."
        if self.error is None:
            return ""
        if isinstance(self.error, InteractiveAdaptError):
            return str(self.error)
        return f"Something unexpected went wrong ({type(self.error).__name__}); see the error log."


def _matches(job: Job, job_ids: set[int] | None, owner: Any) -> bool:
    """True if the job is one of `job_ids` (when given) and belongs to `owner` (when given)."""
    if job_ids is not None and job.id not in job_ids:
        return False
    return owner is None or job.owner is owner or job.owner == owner


def _deliver(result: JobResult) -> None:
    """Run the result's callback; a failing callback is logged and never stops the next results."""
    if result.on_done is None:
        return
    try:
        result.on_done(result)
    except Exception:
        log.exception("The callback of job %d (%s) failed", result.job_id, result.description)


class Executor(Protocol):
    """What the front ends and the click controller submit work to: the Worker (a thread), the
    InlineExecutor (at once, in the caller's thread), or a wrapper around either (the web page's
    FramesFirst). Results reach `on_done` on the thread that polls."""

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
    ) -> Job: ...

    def poll(self, max_results: int | None = None, wait_s: float = 0.0) -> list[JobResult]: ...

    def tick(self, budget_s: float = TICK_BUDGET_S) -> int: ...

    def cancel(self, *, job_ids: Iterable[int] | None = None, owner: Any = None) -> int: ...

    @property
    def busy(self) -> bool: ...


class Worker:
    """A single worker thread with an ordered input queue and an output queue the main thread drains."""

    def __init__(self, name: str = "InteractiveAdapt worker") -> None:
        self._inbox: queue.Queue[Job | None] = queue.Queue()
        self._outbox: queue.Queue[JobResult] = queue.Queue()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[int, Job] = {}  # submitted, not yet finished (includes the running one)
        self._running: Job | None = None
        self._closed = False
        self._main_thread = threading.get_ident()  # the GUI thread: the one that creates the worker
        # Called (on the main thread) after a job is submitted there, e.g. to restart the GUI's timer
        # at once; never from the worker thread, where GUI objects must not be touched.
        self.wake: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- main thread API

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
        """Queue `fn(*args, **kwargs)`; with pass_cancel_event it also receives `cancel_event=`.

        `kind` says what the job is (code tells jobs apart by it); `description` is what the progress
        line shows while it runs (the kind's text unless given).

        `owner` tags the job (any object, e.g. the controller of a case) so that `cancel(owner=...)`
        stops only that owner's jobs.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("The worker has been shut down; no more jobs can be submitted.")
            job = Job.make(
                next(self._ids), fn, args, kwargs, kind, description, on_done, owner, pass_cancel_event
            )
            self._pending[job.id] = job
        self._inbox.put(job)
        if self.wake is not None and threading.get_ident() == self._main_thread:
            try:
                self.wake()
            except Exception:
                log.exception("Waking the main loop after job %d failed", job.id)
        return job

    def poll(self, max_results: int | None = None, wait_s: float = 0.0) -> list[JobResult]:
        """Take finished results (in order) and run their callbacks in the calling (GUI) thread.

        Args:
            max_results: stop after this many results (all that are there when None).
            wait_s: while jobs are pending, wait up to this long in total for their results, releasing
                the GIL meanwhile so that the worker runs even where the caller's event loop holds it
                (Slicer); callbacks run as results arrive and count against this time. 0 never waits.

        Returns:
            The results taken, in submission order.
        """
        deadline = time.monotonic() + wait_s
        results: list[JobResult] = []
        while max_results is None or len(results) < max_results:
            # Read before looking at the outbox: the worker queues a result before it forgets the job,
            # so with nothing pending here, every result is already in the outbox.
            pending = self.busy
            remaining = deadline - time.monotonic()
            try:
                if pending and remaining > 0:
                    result = self._outbox.get(timeout=remaining)  # releases the GIL while it waits
                else:
                    result = self._outbox.get_nowait()
            except queue.Empty:
                break
            results.append(result)
            _deliver(result)
        return results

    def tick(self, budget_s: float = TICK_BUDGET_S) -> int:
        """The GUI timer's callback: deliver results, waiting for them up to `budget_s` while jobs are
        pending (less during a background job); returns the interval in ms until the next tick."""
        background = self.current_kind in BACKGROUND_KINDS
        self.poll(wait_s=min(budget_s, BACKGROUND_BUDGET_S) if background else budget_s)
        if not (self.busy or not self._outbox.empty()):
            return IDLE_INTERVAL_MS
        return BACKGROUND_INTERVAL_MS if self.current_kind in BACKGROUND_KINDS else BUSY_INTERVAL_MS

    def cancel(self, *, job_ids: Iterable[int] | None = None, owner: Any = None) -> int:
        """Drop the matching jobs not started yet and ask the matching running one to stop; returns how
        many were touched. Without filters every job matches; with both, a job must match both.

        The filters are keyword-only: Qt's `clicked(bool)` signal connected to `cancel` must not pass
        its flag as a filter.
        """
        ids = None if job_ids is None else set(job_ids)
        with self._lock:
            jobs = [job for job in self._pending.values() if _matches(job, ids, owner)]
            for job in jobs:
                job.cancel_event.set()
        return len(jobs)

    @property
    def busy(self) -> bool:
        """True while a job is queued or running."""
        with self._lock:
            return bool(self._pending)

    @property
    def current_description(self) -> str:
        """What the worker is doing now ('' when idle)."""
        with self._lock:
            return self._running.description if self._running else ""

    @property
    def current_kind(self) -> JobKind | None:
        """The kind of the job running now (None when idle)."""
        with self._lock:
            return self._running.kind if self._running else None

    def drain(self, timeout: float = 60.0, tick: Callable[[], object] | None = None) -> bool:
        """Poll (running callbacks) until no job is left; `tick` runs between waits (e.g. processEvents)."""
        deadline = time.monotonic() + timeout
        while True:
            delivered = self.poll(wait_s=0.02)  # callbacks may submit follow-up jobs
            if tick is not None:
                tick()
            if not self.busy and not delivered and self._outbox.empty():
                return True
            if time.monotonic() >= deadline:
                return False

    def shutdown(self, cancel_pending: bool = True, timeout: float | None = 10.0) -> bool:
        """Stop accepting jobs, optionally cancel the queued ones, and join the thread; False if it hangs."""
        with self._lock:
            self._closed = True
        if cancel_pending:
            self.cancel()
        self._inbox.put(None)
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        if alive:
            log.warning("The worker thread did not stop within %s s (a job is still running).", timeout)
        return not alive

    @property
    def alive(self) -> bool:
        """True while the worker thread runs."""
        return self._thread.is_alive()

    # ---------------------------------------------------------------- worker thread

    def _run(self) -> None:
        while True:
            job = self._inbox.get()
            if job is None:
                return
            self._outbox.put(self._execute(job))
            with self._lock:
                self._pending.pop(job.id, None)
                self._running = None

    def _execute(self, job: Job) -> JobResult:
        result = JobResult(job.id, job.kind, job.description, job.owner, on_done=job.on_done)
        if job.cancel_requested:
            result.cancelled = True
            log.debug("Job %d (%s) cancelled before it started", job.id, job.description)
            return result
        with self._lock:
            self._running = job
        start = time.perf_counter()
        try:
            result.value = job.fn(*job.args, **job.kwargs)
        except JobCancelled:
            result.cancelled = True
        except BaseException as exc:  # delivered to the GUI, never lost in the thread
            result.error = exc
            result.traceback = traceback.format_exc()
            log.debug("Job %d (%s) failed: %s", job.id, job.description, exc)
        result.duration_s = time.perf_counter() - start
        # A job that was handed its cancel flag may have stopped early; one that was not ran to the end
        # (e.g. a rollback): it happened, whatever was pressed meanwhile.
        if job.cancel_requested and "cancel_event" in job.kwargs:
            result.cancelled = True
        return result
