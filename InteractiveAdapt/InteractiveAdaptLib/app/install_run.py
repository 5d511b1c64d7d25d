"""Running an install: each step a Python process whose output goes to a log file, polled from the GUI
timer (never blocking), cancellable, and explained in the clinician's words when it fails."""

from __future__ import annotations

import collections
import importlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# pip never prompts when it has no terminal, but a stray prompt must not hang a hidden process.
PIP_INSTALL = ("-m", "pip", "install", "--no-input", "--disable-pip-version-check")
_LOG_LINES_KEPT = 30


@dataclass(frozen=True)
class InstallStep:
    """One installation process: Slicer's Python run with `args` ('-m', 'pip', 'install', ...)."""

    kind: str  # "torch", "light-the-torch", "pip" or "check"
    packages: tuple[str, ...]
    description: str
    args: tuple[str, ...]
    download_mb: int = 0

    def command(self, python: str) -> list[str]:
        """The command line, for subprocess (a list: '<' and '>' in specs need no quoting)."""
        return [python, *self.args]


def size_text(megabytes: int) -> str:
    """'3.0 GB' or '200 MB': a download size for the confirmation."""
    return f"{megabytes / 1000:.1f} GB" if megabytes >= 1000 else f"{max(megabytes, 1)} MB"


def hidden_console_window() -> dict:
    """Popen arguments that keep a process started from Slicer on Windows from flashing a console."""
    return {"creationflags": subprocess.CREATE_NO_WINDOW} if sys.platform == "win32" else {}


@dataclass(frozen=True)
class InstallStatus:
    """What poll() reports: `text` for the progress line, `message` for the user once it has ended."""

    state: str  # "running", "cancelling", "succeeded", "failed" or "cancelled"
    step: int  # 1-based number of the step running (or last run)
    total: int
    text: str
    message: str = ""
    log_path: str = ""

    @property
    def done(self) -> bool:
        """True once nothing runs any more."""
        return self.state in ("succeeded", "failed", "cancelled")

    @property
    def succeeded(self) -> bool:
        """True if every step finished without error."""
        return self.state == "succeeded"

    @property
    def fraction(self) -> float:
        """Share of the steps finished, for a progress bar."""
        finished = self.total if self.succeeded else self.step - 1
        return finished / self.total if self.total else 1.0


# (what pip or the system printed, what the clinician should do)
_FAILURE_HINTS = (
    (
        re.compile(r"no space left|not enough space|disk quota|errno 28", re.I),
        "The disk is full. Free some space (about the download size shown before), then try again.",
    ),
    (
        re.compile(r"permission denied|access is denied|errno 13|winerror 5", re.I),
        "Slicer may not change its own files here. Close other Slicer windows and try again; if it "
        "still fails, ask your IT support (Slicer may need to be installed in your user folder).",
    ),
    (
        re.compile(
            r"connection|name resolution|getaddrinfo|timed out|proxy|ssl|certificate|no matching "
            r"distribution|could not find a version",
            re.I,
        ),
        "The packages could not be downloaded. Check the internet connection (a hospital network may "
        "need a proxy set up by IT), then try again.",
    ),
)
_FALLBACK_HINT = "Try again later; if it keeps failing, send the installation log to your IT support."


class InstallRun:
    """Runs an InstallPlan's steps one after the other, each as a Python process; poll it from a timer.

    Output of every step goes to one log file (no pipe to drain, no reader thread), read anew on each
    poll(). Nothing is recorded as installed here: the caller marks the dependencies as checked only
    when poll() says 'succeeded'.
    """

    TERMINATE_GRACE_S = 5.0

    def __init__(
        self,
        steps: Sequence[InstallStep],
        python: str,
        log_path: str | Path | None = None,
        popen: Callable[..., subprocess.Popen] = subprocess.Popen,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.steps = list(steps)
        self.python = python
        self.log_path = Path(log_path) if log_path is not None else None
        self._popen, self._clock = popen, clock
        self._process: subprocess.Popen | None = None
        self._log_file = None
        self._read_offset = 0
        self._partial_line = ""
        self._last_lines: collections.deque[str] = collections.deque(maxlen=_LOG_LINES_KEPT)
        self._index = -1
        self._started_at = self._cancel_at = None
        self._status = InstallStatus("running", 0, len(self.steps), "Waiting to start")

    @property
    def status(self) -> InstallStatus:
        """The status of the last poll() (no process is checked)."""
        return self._status

    def start(self) -> InstallStatus:
        """Start the first step (returns at once)."""
        if self._index >= 0:
            raise RuntimeError("This installation was already started.")
        self._started_at = self._clock()
        if not self.steps:
            self._end("succeeded", "All Python packages that InteractiveAdapt needs are installed.")
            return self._status
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="InteractiveAdapt-install-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self.log_path.write_text("", encoding="utf-8")
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed when the run ends)
        self._start_next()
        return self._status

    def poll(self) -> InstallStatus:
        """Check the running step (never blocks): start the next one, or end the run."""
        if self._status.done or self._process is None:
            return self._status
        self._read_new_output()
        code = self._process.poll()
        if self._status.state == "cancelling":
            if code is None and self._clock() >= self._cancel_at:
                self._process.kill()
            elif code is not None:
                self._end(
                    "cancelled",
                    "Installation cancelled. Nothing was recorded as installed; InteractiveAdapt offers "
                    "to install again the next time you use it (files already downloaded are reused).",
                )
            return self._status
        if code is None:
            self._set_running()
        elif code != 0:
            self._fail(f"it stopped with error code {code}")
        elif self._index + 1 < len(self.steps):
            self._start_next()
        else:
            importlib.invalidate_caches()  # so that this Python finds the packages installed just now
            self._end("succeeded", "The Python packages are installed; InteractiveAdapt is ready to use.")
        return self._status

    def cancel(self) -> InstallStatus:
        """Stop the running step; poll() reports 'cancelled' once the process has ended."""
        if self._status.done:
            return self._status
        if self._process is None:
            self._end("cancelled", "Installation cancelled before it started.")
            return self._status
        log.info("Cancelling the installation (step %d of %d)", self._index + 1, len(self.steps))
        self._process.terminate()
        self._cancel_at = self._clock() + self.TERMINATE_GRACE_S
        self._status = InstallStatus(
            "cancelling", self._index + 1, len(self.steps), "Cancelling the installation...",
            log_path=str(self.log_path),
        )  # fmt: skip
        return self._status

    def wait(self, interval_s: float = 0.2, timeout_s: float | None = None) -> InstallStatus:
        """Poll until the run ends (for scripts and tests; the GUI polls from its timer instead)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.poll().done:
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                deadline = None
            time.sleep(interval_s)
        return self._status

    # -------------------------------------------------------- internals

    def _start_next(self) -> None:
        self._index += 1
        step = self.steps[self._index]
        command = step.command(self.python)
        log.info("Installing (step %d of %d): %s", self._index + 1, len(self.steps), " ".join(command))
        self._write_log(
            f"\n=== Step {self._index + 1} of {len(self.steps)}: {step.description}\n$ {command}\n"
        )
        env = dict(os.environ, PYTHONUNBUFFERED="1")  # lines reach the log as they are printed
        try:
            self._process = self._popen(
                command, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
                env=env, **hidden_console_window(),
            )  # fmt: skip
        except OSError as exc:
            self._last_lines.append(str(exc))
            self._fail(f"the installer could not be started ({exc})")
            return
        self._set_running()

    def _set_running(self) -> None:
        step = self.steps[self._index]
        minutes = int((self._clock() - self._started_at) // 60)
        latest = self._last_lines[-1] if self._last_lines else ""
        text = f"Installing, step {self._index + 1} of {len(self.steps)} ({minutes} min): {step.description}"
        if latest:
            text += f"\n{latest[:200]}"
        self._status = InstallStatus(
            "running", self._index + 1, len(self.steps), text, log_path=str(self.log_path)
        )

    def _fail(self, reason: str) -> None:
        self._read_new_output()
        output = "\n".join(self._last_lines)
        hint = next((text for pattern, text in _FAILURE_HINTS if pattern.search(output)), _FALLBACK_HINT)
        step = self.steps[self._index]
        last = next((line for line in reversed(self._last_lines) if line.strip()), "")
        message = (
            f"Installing the Python packages failed at step {self._index + 1} of {len(self.steps)} "
            f"({step.description}): {reason}. Nothing was recorded as installed. {hint}"
        )
        if last:
            message += f"\n\nLast message of the installer: {last[:300]}"
        message += f"\nInstallation log: {self.log_path}"
        log.warning("%s\n%s", message, output)
        self._end("failed", message)

    def _end(self, state: str, message: str) -> None:
        if self._log_file is not None:
            self._write_log(f"\n=== {state}\n")
            self._log_file.close()
            self._log_file = None
        step = max(self._index + 1, 1) if self.steps else 0
        self._status = InstallStatus(state, step, len(self.steps), message, message, str(self.log_path or ""))

    def _write_log(self, text: str) -> None:
        self._log_file.write(text.encode("utf-8"))
        self._log_file.flush()

    def _read_new_output(self) -> None:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._read_offset)
                data = f.read()
        except OSError:
            return
        self._read_offset += len(data)
        text = self._partial_line + data.decode("utf-8", errors="replace").replace("\r", "\n")
        *lines, self._partial_line = text.split("\n")
        self._last_lines.extend(line.rstrip() for line in lines if line.strip())
