"""An emulation of Slicer's main loop, which holds Python's GIL while its Qt event loop is idle.

Inside Slicer (PythonQt in CTK) a Python thread runs only while the main thread executes Python and
lets go of the GIL; plain Python (pytest, PySide6) releases the GIL while idle, which hides the
problem. `SlicerMainLoop` idles through `usleep` called through `ctypes.PyDLL`, which keeps the GIL as
Slicer's idle loop does, and between idles runs what Qt would: timer callbacks (`EmulatedTimer`, with
QTimer's start / setInterval / stop) and events posted at given times (e.g. mouse clicks).

Every main-thread callback is timed: its duration is how long the GUI could not repaint or react
(a stall). `attach_worker` wires a `Worker` to a timer the way the module does, or the way it did
before the GIL-aware design (plain `poll()` every 50 ms), for comparisons.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from InteractiveAdaptLib.app.worker import IDLE_INTERVAL_MS

_GIL_HOLDING_LIBC = ctypes.PyDLL(None)  # PyDLL calls do not release the GIL
_GIL_HOLDING_LIBC.usleep.argtypes = [ctypes.c_uint]
OLD_POLL_INTERVAL_MS = 50  # the module's fixed timer before the GIL-aware design


@dataclass
class Stall:
    """One main-thread callback: the GUI was blocked for `duration_s` from `started` (perf_counter)."""

    label: str
    started: float
    duration_s: float


class EmulatedTimer:
    """A repeating timer with the QTimer calls the module uses (start, setInterval, stop)."""

    def __init__(self, loop: SlicerMainLoop, callback: Callable[[], Any], interval_ms: float, label: str):
        self._loop = loop
        self.callback = callback
        self.label = label
        self.interval_ms = float(interval_ms)
        self.due: float | None = None  # perf_counter time of the next timeout; None while stopped

    def start(self, interval_ms: float | None = None) -> None:
        """(Re)start from now, as QTimer.start does, optionally with a new interval."""
        if interval_ms is not None:
            self.interval_ms = float(interval_ms)
        self.due = time.perf_counter() + self.interval_ms / 1000

    def setInterval(self, interval_ms: float) -> None:  # noqa: N802 (QTimer's name)
        """Change the interval; like QTimer, an active timer restarts from now."""
        self.interval_ms = float(interval_ms)
        if self.due is not None:
            self.start()

    def stop(self) -> None:
        """No more timeouts until the next start."""
        self.due = None

    @property
    def active(self) -> bool:
        """True while started."""
        return self.due is not None


class SlicerMainLoop:
    """A main loop that keeps the GIL while idle (hold_gil=True, like Slicer) or releases it (plain Python).

    Args:
        hold_gil: idle in a call that keeps the GIL (Slicer) rather than in time.sleep.
    """

    def __init__(self, hold_gil: bool = True) -> None:
        self.hold_gil = hold_gil
        self.stalls: list[Stall] = []
        self._timers: list[EmulatedTimer] = []
        self._posted: list[tuple[float, int, Callable[[], Any], str, bool]] = []
        self._order = itertools.count()

    # ------------------------------------------------------------ what the application schedules

    def add_timer(
        self, callback: Callable[[], Any], interval_ms: float, label: str = "timer"
    ) -> EmulatedTimer:
        """A started repeating timer calling `callback` on the main thread."""
        timer = EmulatedTimer(self, callback, interval_ms, label)
        self._timers.append(timer)
        timer.start()
        return timer

    def call_at(self, when: float, fn: Callable[[], Any], label: str, measured: bool = True) -> None:
        """Run `fn` on the main thread at perf_counter time `when` (an event such as a mouse click).
        Unmeasured calls (e.g. a simulated user's thinking) are not GUI work and leave no stall."""
        heapq.heappush(self._posted, (when, next(self._order), fn, label, measured))

    def call_later(self, delay_s: float, fn: Callable[[], Any], label: str, measured: bool = True) -> None:
        """Run `fn` on the main thread `delay_s` from now."""
        self.call_at(time.perf_counter() + delay_s, fn, label, measured)

    # ------------------------------------------------------------ running

    def run_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Idle and dispatch until `done()` is true (checked after each callback); False on timeout."""
        deadline = time.perf_counter() + timeout_s
        while not done():
            now = time.perf_counter()
            if now >= deadline:
                return False
            due = self._next_due()
            if due is None or due > now:
                self._idle(min(deadline, due if due is not None else deadline) - now)
                continue
            self._dispatch_one(now)
        return True

    def run_for(self, seconds: float) -> None:
        """Idle and dispatch for `seconds`."""
        self.run_until(lambda: False, seconds)

    def longest_stall(
        self, since: float = float("-inf"), until: float = float("inf"), labels: set[str] | None = None
    ) -> float:
        """The longest callback (seconds) that started within [since, until], optionally of some labels."""
        worst = self.worst_stall(since, until, labels)
        return worst.duration_s if worst is not None else 0.0

    def worst_stall(
        self, since: float = float("-inf"), until: float = float("inf"), labels: set[str] | None = None
    ) -> Stall | None:
        """The longest callback that started within [since, until] (None if there was none)."""
        stalls = [
            s for s in self.stalls if since <= s.started <= until and (labels is None or s.label in labels)
        ]
        return max(stalls, key=lambda s: s.duration_s, default=None)

    # ------------------------------------------------------------ internals

    def _idle(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.hold_gil:
            _GIL_HOLDING_LIBC.usleep(max(1, int(seconds * 1e6)))
        else:
            time.sleep(seconds)

    def _next_due(self) -> float | None:
        dues = [t.due for t in self._timers if t.due is not None]
        if self._posted:
            dues.append(self._posted[0][0])
        return min(dues, default=None)

    def _dispatch_one(self, now: float) -> None:
        """Run the earliest due callback (posted events before timers due at the same time)."""
        timer = min((t for t in self._timers if t.due is not None), key=lambda t: t.due, default=None)
        if self._posted and self._posted[0][0] <= now and (timer is None or self._posted[0][0] <= timer.due):
            _, _, fn, label, measured = heapq.heappop(self._posted)
            self._timed(fn, label, measured)
            return
        assert timer is not None and timer.due is not None and timer.due <= now
        fired_at = timer.due
        timer.due = fired_at + timer.interval_ms / 1000  # a repeating timer; the callback may restart it
        self._timed(timer.callback, timer.label, True)
        if timer.due is not None and timer.due < time.perf_counter():
            timer.due = time.perf_counter()  # like Qt, missed timeouts are not made up

    def _timed(self, fn: Callable[[], Any], label: str, measured: bool) -> None:
        started = time.perf_counter()
        fn()
        if measured:
            self.stalls.append(Stall(label, started, time.perf_counter() - started))


def attach_worker(loop: SlicerMainLoop, worker: Any, gil_aware: bool = True) -> EmulatedTimer:
    """Drive `worker` from a timer of `loop` as the module does.

    gil_aware=True: the timer calls `worker.tick()` and takes its interval, and a submit from the main
    thread restarts the timer at once (`worker.wake`). False: the design before it, a fixed 50 ms timer
    calling `worker.poll()`, which never waits.
    """
    if not gil_aware:
        return loop.add_timer(worker.poll, OLD_POLL_INTERVAL_MS, "worker poll")

    def on_timeout() -> None:
        timer.setInterval(worker.tick())

    timer = loop.add_timer(on_timeout, IDLE_INTERVAL_MS, "worker tick")
    worker.wake = lambda: timer.start(0)
    return timer
