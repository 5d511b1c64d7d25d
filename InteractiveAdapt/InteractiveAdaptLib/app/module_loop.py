"""The module's timer and its error dialogs, without Qt: what runs on Slicer's main thread between the
worker and the panel.

Inside Slicer the main thread holds Python's lock while its Qt event loop is idle, so the timer lends it
to the worker in short waits (`Worker.tick`) while work is pending. Three rules keep the GUI sound:
- never re-entrant: a dialog opened by a result runs its own event loop, which fires the timer again;
  a tick inside a tick would apply results out of order, so the inner one does nothing;
- dialogs never open inside the timer: an unexpected failure goes to the status line at once, and its
  dialog opens from the event loop afterwards, one at a time (later failures while one is open are
  only written to the status line and the log);
- the timer rests while the module is hidden and the worker idle; a submitted job wakes it.
And the developer's Reload, which must read the library afresh.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from InteractiveAdaptLib.app.worker import IDLE_INTERVAL_MS
from InteractiveAdaptLib.errors import InteractiveAdaptError

log = logging.getLogger(__name__)
LIBRARY = "InteractiveAdaptLib"


class ModuleLoop:
    """The module timer's callback and the module's error feedback.

    Args:
        timer: the module's QTimer (start, stop, setInterval, isActive).
        worker: the module's Worker.
        gate: the dependency install (poll, busy, description).
        panel: the panel's actions (set_status, show_progress).
        dialog: shows a message in a modal dialog (Slicer's warning or error display).
        later: runs a function from the event loop, after the current callback (QTimer.singleShot(0, f)).
    """

    def __init__(
        self,
        timer: Any,
        worker: Any,
        gate: Any,
        panel: Any,
        dialog: Callable[[str], Any],
        later: Callable[[Callable[[], None]], None],
    ) -> None:
        self.timer, self.worker, self.gate, self.panel = timer, worker, gate, panel
        self._dialog, self._later = dialog, later
        self.shown = False  # the module is entered
        self._ticking = False
        self._dialog_open = False
        worker.wake = self.wake

    def wake(self) -> None:
        """A job was submitted: tick at once (also while the module is hidden)."""
        self.timer.start(0)

    def show(self, shown: bool) -> None:
        """The module was entered (True) or left (False)."""
        self.shown = shown
        if shown and not self.timer.isActive():
            self.timer.start(IDLE_INTERVAL_MS)

    def tick(self) -> None:
        """The timer's callback: deliver the worker's results, follow an install, show progress."""
        if self._ticking:
            return  # a dialog's event loop fired the timer inside a tick: the outer tick goes on
        self._ticking = True
        try:
            interval = self.worker.tick()  # waits (lock released) up to 35 ms; applies results here
            install = self.gate.poll()  # never blocks: pip runs in its own process
            if install is not None:
                self.panel.set_status(install.text)
                if install.state == "failed":  # after minutes of waiting: a dialog as well
                    self.dialog(install.message)
            busy = self.worker.busy or self.gate.busy
            self.panel.show_progress(busy, self.gate.description or self.worker.current_description)
            if busy or self.shown:
                self.timer.setInterval(interval)  # 5 ms while work is pending, 50 ms idle
            else:
                self.timer.stop()  # hidden and idle: the next submitted job wakes it
        finally:
            self._ticking = False

    def error(self, error: BaseException, traceback: str = "") -> None:
        """A clinician's error to the status line; an unexpected failure also to the log and a dialog."""
        if isinstance(error, InteractiveAdaptError):
            self.panel.set_status(str(error))  # written for the clinician: what happened, what to do
            return
        log.error("InteractiveAdapt: %r\n%s", error, traceback, exc_info=None if traceback else error)
        message = f"Something unexpected went wrong ({type(error).__name__}); see the error log."
        self.panel.set_status(message)
        self.dialog(message)

    def dialog(self, message: str) -> None:
        """Open a dialog from the event loop, never inside the current callback; one at a time."""
        if self._dialog_open:
            return
        self._dialog_open = True

        def show() -> None:
            try:
                self._dialog(message)
            finally:
                self._dialog_open = False

        self._later(show)


def drop_library_modules() -> list[str]:
    """Developer-mode Reload: Slicer runs the module file again but keeps the library imported; forget
    every module of the library (not the engine's dependencies) so that the file's imports read it afresh.

    Returns:
        The names of the modules forgotten.
    """
    names = [name for name in sys.modules if name == LIBRARY or name.startswith(LIBRARY + ".")]
    for name in names:
        del sys.modules[name]
    return names
