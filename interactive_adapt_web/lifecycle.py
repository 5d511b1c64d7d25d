"""The server's life after start: the pump that hands the worker's results to the page, what it does when
something in it fails, and how the server ends (its lifetime, Ctrl+C) without dropping a case unasked.

- A failure inside a result's callback (`PageWorker`) or inside the pump itself (`ServerLife.run`) is
  logged with its traceback; the page's status line says "Something unexpected went wrong (...); the
  server's log has the details." (never the traceback), and the page goes on being updated.
- Ctrl+C (SIGINT) while the open case has clicks only warns, in the terminal and on the page; a second
  Ctrl+C stops the server. Without clicks to lose, the first one stops it.
- The lifetime (`--exit-after`) is announced on the page `LIFETIME_WARNING_S` before its end (at once
  when it is shorter).

Test hook (hidden option `--test-fault WHERE`, for the browser tests only): the study listings after
the first one (each press of Refresh) fail on purpose, one per WHERE given, in order: `callback` raises
in the listing result's callback, `pump` in the pump's body once it took that result.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from interactive_adapt_web.study_list import LIST_JOB
from InteractiveAdaptLib.app.worker import Job, Worker
from InteractiveAdaptLib.interaction import JobKind

log = logging.getLogger(__name__)

BUSY_POLL_S = 0.005  # while the worker has jobs: a result reaches the page within this
IDLE_POLL_S = 0.05
LIFETIME_WARNING_S = 30.0


class TestFault(RuntimeError):
    """Raised on purpose by the hidden --test-fault option."""


def unexpected_text(error: BaseException) -> str:
    """What the page says about a failure that is no user's doing."""
    return f"Something unexpected went wrong ({type(error).__name__}); the server's log has the details."


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class PageWorker(Worker):
    """The worker, whose results' callbacks cannot fail unseen: a failure is logged and `on_failure(error)`
    tells the page."""

    def __init__(self, on_failure: Callable[[BaseException], None], faults: Sequence[str] = ()) -> None:
        super().__init__()
        self._on_failure = on_failure
        self._faults = list(faults)
        self._listings = 0
        self.pump_faults: set[int] = set()  # ids of the jobs whose results make the pump fail (test hook)

    def submit(self, fn: Callable[..., Any], *args: Any, on_done: Any = None, **kwargs: Any) -> Job:
        fault = ""
        if kwargs.get("description") == LIST_JOB:
            self._listings += 1
            if self._listings > 1 and self._faults:
                fault = self._faults.pop(0)
        job = super().submit(fn, *args, on_done=self._guarded(on_done, fault == "callback"), **kwargs)
        if fault == "pump":
            self.pump_faults.add(job.id)
        return job

    def _guarded(self, on_done: Any, fail: bool) -> Callable[[Any], None]:
        def deliver(result: Any) -> None:
            try:
                if fail:
                    raise TestFault(
                        "a failure made on purpose in a result's callback (--test-fault callback)"
                    )
                if on_done is not None:
                    on_done(result)
            except Exception as error:
                log.exception("The callback of job %d (%s) failed", result.job_id, result.description)
                self._on_failure(error)

        return deliver


class ServerLife:
    """Runs the pump of `app` (a WebApp) until the server stops: at the end of `exit_after_s`, or on a
    second Ctrl+C while a case has clicks (the first one when it has none)."""

    def __init__(self, app: Any, exit_after_s: float | None) -> None:
        self.app = app
        self._deadline = time.monotonic() + exit_after_s if exit_after_s else None
        self._lifetime_warned = False
        self._interrupted = False
        self._stop_reason = ""
        self._last_failure = ""  # the pump's failure in its last round, if any

    def start(self) -> None:
        """On the server's event loop, once it serves: the pump, and Ctrl+C's handler."""
        loop = asyncio.get_event_loop()
        try:  # replaces aiohttp's handler, which would stop the server at once
            loop.add_signal_handler(signal.SIGINT, self.interrupt)
        except (NotImplementedError, RuntimeError):  # Windows' event loops: Ctrl+C stops at once
            pass
        loop.create_task(self.run())

    def interrupt(self) -> None:
        """Ctrl+C: stop, unless this is the first one while the open case has clicks (then warn)."""
        clicks = self.app.workflow.clicks
        if self._interrupted or not clicks:
            log.warning("Stopping (Ctrl+C).")
            self._stop_reason = "interrupted"
            return
        self._interrupted = True
        message = (
            f"The server was asked to stop (Ctrl+C), but the open case has {plural(clicks, 'click')} not "
            "finished. Finish the case on the page (what is saved stays saved), or press Ctrl+C again to "
            "stop and drop it."
        )
        log.warning(message)
        self.app.emit("interrupt", clicks=clicks)
        self._tell(message, stopping=True)

    async def run(self) -> None:
        """Take the worker's results on this loop (their callbacks write segments and page state)."""
        while True:
            failure = ""
            for step in (self._take_results, self._watch_lifetime):
                try:
                    with self.app.state:
                        step()
                except Exception as error:  # the page must go on being updated
                    failure = repr(error)
                    if failure != self._last_failure:  # said once while it repeats
                        log.exception("The page's update loop failed")
                        self._tell(unexpected_text(error))
            self._last_failure = failure
            if self._stop_reason:
                await self._stop()
                return
            await asyncio.sleep(BUSY_POLL_S if self.app.worker.busy else IDLE_POLL_S)

    def _take_results(self) -> None:
        app = self.app
        results = app.worker.poll()
        for result in results if app.priority else ():  # the clicked view first, others after
            if result.kind is JobKind.SLICE and result.ok:
                app.priority.slice_written()
            else:
                app.priority.release()
        if results and app.log.on:
            for result in results:
                app.emit("job", what=result.kind.name, ms=round(result.duration_s * 1000, 1))
            app.log.segment(app.workflow)
        app.refresh_busy()
        faults = getattr(app.worker, "pump_faults", set())
        if any(result.job_id in faults for result in results):
            faults.clear()
            raise TestFault("a failure made on purpose in the pump (--test-fault pump)")

    def _watch_lifetime(self) -> None:
        if self._deadline is None:
            return
        left = self._deadline - time.monotonic()
        if left <= 0:
            self._stop_reason = "lifetime"
        elif not self._lifetime_warned and left <= LIFETIME_WARNING_S:
            self._lifetime_warned = True
            clicks = self.app.workflow.clicks
            lost = (
                f" The open case has {plural(clicks, 'click')} not finished: finish it before then, or "
                f"{'they are' if clicks > 1 else 'it is'} lost (what is saved stays saved)."
                if clicks
                else ""
            )
            self._tell(
                f"This server stops in {max(1, round(left))} s (its lifetime, set at its start).{lost}",
                stopping=True,
            )

    def _tell(self, text: str, stopping: bool = False) -> None:
        """The status line says `text` (and, when the server is `stopping`, the warning above it, which
        later news does not replace); if even that fails, the log says why."""
        try:
            with self.app.state:
                if stopping:
                    self.app.state.server_notice = text
                self.app.set_status(text)
        except Exception:
            log.exception("The page could not be told: %s", text)

    async def _stop(self) -> None:
        self.app.emit("exit", reason=self._stop_reason)
        self.app.close()
        await self.app.server.stop()
