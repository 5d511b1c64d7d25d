"""One background thread for torch work, so the Slicer GUI never freezes.

Jobs run one at a time in submission order. Every job ends as exactly one `JobResult` in the output
queue (value, error or cancelled), which the GUI drains from its main thread with `poll()` (the
module calls it from a qt.QTimer); callbacks given at submission run there, never on the worker.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

ResultCallback = Callable[["JobResult"], None]


class JobCancelled(Exception):
    """Raised by a job that noticed its cancel flag; delivered as a cancelled result, not as an error."""


@dataclass
class Job:
    """A unit of work waiting for, or running on, the worker thread."""

    id: int
    description: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    on_done: ResultCallback | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def cancel_requested(self) -> bool:
        """True once `Worker.cancel()` asked this job to stop."""
        return self.cancel_event.is_set()


@dataclass
class JobResult:
    """How a job ended. Exactly one of value / error is meaningful; `cancelled` jobs may carry neither."""

    job_id: int
    description: str
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


class Worker:
    """A single worker thread with an ordered input queue and a polled output queue."""

    def __init__(self, name: str = "InteractiveAdapt worker") -> None:
        self._inbox: queue.Queue[Job | None] = queue.Queue()
        self._outbox: queue.Queue[JobResult] = queue.Queue()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[int, Job] = {}  # submitted, not yet finished (includes the running one)
        self._running: Job | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- main thread API

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        description: str = "",
        on_done: ResultCallback | None = None,
        pass_cancel_event: bool = False,
        **kwargs: Any,
    ) -> Job:
        """Queue `fn(*args, **kwargs)`; with pass_cancel_event it also receives `cancel_event=`."""
        with self._lock:
            if self._closed:
                raise RuntimeError("The worker has been shut down; no more jobs can be submitted.")
            job = Job(
                next(self._ids), description or getattr(fn, "__name__", "job"), fn, args, kwargs, on_done
            )
            if pass_cancel_event:
                job.kwargs["cancel_event"] = job.cancel_event
            self._pending[job.id] = job
        self._inbox.put(job)
        return job

    def poll(self, max_results: int | None = None) -> list[JobResult]:
        """Take finished results (in order) and run their callbacks in the calling (GUI) thread."""
        results: list[JobResult] = []
        while max_results is None or len(results) < max_results:
            try:
                result = self._outbox.get_nowait()
            except queue.Empty:
                break
            results.append(result)
            if result.on_done is not None:
                try:
                    result.on_done(result)
                except Exception:
                    log.exception("The callback of job %d (%s) failed", result.job_id, result.description)
        return results

    def cancel(self) -> int:
        """Drop every job not started yet and ask the running one to stop; returns how many were touched."""
        with self._lock:
            jobs = list(self._pending.values())
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

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every submitted job has a result in the output queue; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.busy:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def drain(self, timeout: float = 60.0, tick: Callable[[], object] | None = None) -> bool:
        """Poll (running callbacks) until no job is left; `tick` runs between waits (e.g. processEvents)."""
        deadline = time.monotonic() + timeout
        while True:
            self.wait_idle(0.02)
            delivered = self.poll()  # callbacks may submit follow-up jobs
            if tick is not None:
                tick()
            if not self.busy and not delivered:
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
        result = JobResult(job.id, job.description, on_done=job.on_done)
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
        if job.cancel_requested:
            result.cancelled = True
        return result


class InlineExecutor:
    """Runs each job at once in the caller's thread, with the same interface (tests, CLI, self-test)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        description: str = "",
        on_done: ResultCallback | None = None,
        pass_cancel_event: bool = False,
        **kwargs: Any,
    ) -> Job:
        """Run `fn` now and call `on_done` with its result before returning."""
        job = Job(next(self._ids), description or getattr(fn, "__name__", "job"), fn, args, kwargs, on_done)
        if pass_cancel_event:
            job.kwargs["cancel_event"] = job.cancel_event
        result = JobResult(job.id, job.description)
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

    def poll(self, max_results: int | None = None) -> list[JobResult]:
        """Nothing is ever waiting."""
        return []

    def cancel(self) -> int:
        """Nothing can be pending."""
        return 0

    @property
    def busy(self) -> bool:
        """Never busy between calls."""
        return False
