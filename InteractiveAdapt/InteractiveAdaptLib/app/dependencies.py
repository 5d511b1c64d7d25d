"""Which Python packages the engine still needs inside Slicer, the plan to install them, and the run.

Plain data, functions and subprocesses: nothing here imports Slicer or Qt, and nothing installs at
import time. The module holds a `DependencyGate`: its ensure() plans (`build_install_plan()`), asks
the user once (`InstallPlan.confirmation_text()`) and starts an `InstallRun`, which the GUI timer
polls: every step is a `PythonSlicer -m ...` process, so Slicer stays responsive and the user can
cancel.
"""

from __future__ import annotations

import collections
import importlib
import importlib.metadata
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from InteractiveAdaptLib.errors import InteractiveAdaptError

log = logging.getLogger(__name__)

# torch is not in requirements.txt: its build depends on the computer (see choose_torch_build).
TORCH_REQUIREMENT = "torch>=2.4"
SLICER_PYTORCH_EXTENSION = "PyTorch"
# What the PyTorch extension installs to pick the torch build; the same range it asks for.
LIGHT_THE_TORCH_REQUIREMENT = "light-the-torch>=0.5"
PYTORCH_INDEX = "https://download.pytorch.org/whl"
# PyTorch's CUDA builds that carry torch>=2.4, newest first, with the CUDA version the driver must
# support (nvidia-smi's "CUDA Version"). cu128 is the newest kept: it still runs on older GPUs that
# CUDA 13 builds dropped. Add a row when a newer build is needed.
CUDA_BUILDS = (((12, 8), "cu128"), ((12, 6), "cu126"), ((12, 4), "cu124"), ((11, 8), "cu118"))
# Rough download sizes (MB) for the confirmation; pip pulls in dependencies too.
_TORCH_DOWNLOAD_MB = {"cuda-Linux": 3000, "cuda-Windows": 2500, "cpu": 200, "pypi-Darwin": 100}
_PACKAGE_DOWNLOAD_MB = {"monai": 5, "scipy": 40, "filelock": 1, "platformdirs": 1}
_UNKNOWN_PACKAGE_MB = 20
# pip distribution name -> import name, where they differ
_IMPORT_NAMES = {"simpleitk": "SimpleITK", "pyyaml": "yaml", "scikit-image": "skimage"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# pip never prompts when it has no terminal, but a stray prompt must not hang a hidden process.
_PIP_INSTALL = ("-m", "pip", "install", "--no-input", "--disable-pip-version-check")
_LOG_LINES_KEPT = 30
# The module's requirements file: Slicer installs Resources/ beside this package, as in the source tree.
MODULE_REQUIREMENTS = Path(__file__).resolve().parents[2] / "Resources" / "requirements.txt"


@dataclass(frozen=True)
class Requirement:
    """One pip requirement line and the module name that proves it is installed."""

    spec: str
    import_name: str

    @property
    def name(self) -> str:
        """The distribution name ('monai' for 'monai>=1.5,<1.7')."""
        match = _NAME.match(self.spec)
        return match.group(1) if match else self.spec


def requirement_from_spec(spec: str) -> Requirement:
    """Parse 'monai>=1.5,<1.7' (extras and markers allowed) into a Requirement."""
    match = _NAME.match(spec)
    if not match:
        raise ValueError(f"Not a requirement: {spec!r}")
    dist = match.group(1)
    import_name = _IMPORT_NAMES.get(dist.lower(), dist.replace("-", "_"))
    return Requirement(spec.strip(), import_name)


def read_requirements(path: str | Path) -> list[Requirement]:
    """Requirements of a requirements.txt (comments, blank lines and pip options skipped)."""
    requirements = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirements.append(requirement_from_spec(line))
    return requirements


TORCH = requirement_from_spec(TORCH_REQUIREMENT)


def can_import(module_name: str) -> bool:
    """True if `module_name` imports (a broken install that raises on import counts as missing)."""
    try:
        importlib.import_module(module_name)
    except Exception as exc:  # ImportError, OSError for broken shared libraries, ...
        log.info("Python package %s is not usable: %s", module_name, exc)
        return False
    return True


def is_distribution_installed(name: str) -> bool:
    """True if pip has a record of distribution `name` (even when it no longer imports)."""
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def missing_requirements(
    requirements: Iterable[Requirement], importable: Callable[[str], bool] = can_import
) -> list[Requirement]:
    """The requirements whose module does not import, in the given order."""
    return [r for r in requirements if not importable(r.import_name)]


# ---------------------------------------------------------------- which torch build


@dataclass(frozen=True)
class TorchBuild:
    """Where pip gets torch from: a download.pytorch.org index (`index_url`) or PyPI (None)."""

    label: str
    index_url: str | None
    download_mb: int
    description: str


def nvidia_smi_output(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> str | None:
    """What `nvidia-smi` prints, or None when there is no NVIDIA driver (or it does not answer)."""
    try:
        result = run(["nvidia-smi"], capture_output=True, text=True, timeout=20, **_hidden_console_window())
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("No NVIDIA driver found (nvidia-smi: %s)", exc)
        return None
    return result.stdout if result.returncode == 0 else None


def cuda_version_of_driver(nvidia_smi_text: str | None) -> tuple[int, int] | None:
    """The newest CUDA version the driver supports, read from nvidia-smi's 'CUDA Version: 12.4'."""
    match = re.search(r"CUDA Version\s*:\s*(\d+)\.(\d+)", nvidia_smi_text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def choose_torch_build(system: str, cuda_version: tuple[int, int] | None) -> TorchBuild:
    """The torch build for pip: CUDA build the driver supports, else the small CPU build; PyPI on macOS.

    PyPI's torch is CPU-only on Windows and a large CUDA build on Linux, so both get an explicit
    download.pytorch.org index.
    """
    if system not in ("Linux", "Windows"):
        return TorchBuild("pypi", None, _TORCH_DOWNLOAD_MB["pypi-Darwin"], "for this computer")
    cpu = TorchBuild("cpu", f"{PYTORCH_INDEX}/cpu", _TORCH_DOWNLOAD_MB["cpu"], "")
    if cuda_version is None:
        return _described(cpu, "for the processor only (no NVIDIA graphics card was found)")
    for needed, label in CUDA_BUILDS:
        if cuda_version >= needed:
            size = _TORCH_DOWNLOAD_MB[f"cuda-{system}"]
            text = f"with NVIDIA graphics card support (CUDA {needed[0]}.{needed[1]} build)"
            return TorchBuild(label, f"{PYTORCH_INDEX}/{label}", size, text)
    return _described(
        cpu,
        "for the processor only: the NVIDIA driver is too old for PyTorch's GPU builds "
        "(update the graphics driver and reinstall PyTorch to use the graphics card)",
    )


def _described(build: TorchBuild, description: str) -> TorchBuild:
    return TorchBuild(build.label, build.index_url, build.download_mb, description)


def detect_torch_build(
    system: str | None = None, nvidia_smi: Callable[[], str | None] = nvidia_smi_output
) -> TorchBuild:
    """The torch build that fits this computer (its system and NVIDIA driver)."""
    system = system or platform.system()
    cuda = cuda_version_of_driver(nvidia_smi()) if system in ("Linux", "Windows") else None
    return choose_torch_build(system, cuda)


# ---------------------------------------------------------------- the plan


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


@dataclass
class InstallPlan:
    """The ordered steps that make the engine importable; empty when nothing is missing."""

    missing: list[Requirement]
    steps: list[InstallStep] = field(default_factory=list)

    @property
    def needed(self) -> bool:
        """True if anything must be installed."""
        return bool(self.steps)

    @property
    def download_mb(self) -> int:
        """Rough total download in MB."""
        return sum(step.download_mb for step in self.steps)

    def confirmation_text(self) -> str:
        """The one question the module asks before installing (plain text): what, how big, how long."""
        if not self.needed:
            return "All Python packages that InteractiveAdapt needs are installed."
        names = ", ".join(r.name for r in self.missing)
        lines = [f"InteractiveAdapt needs these Python packages, which are not installed yet: {names}.", ""]
        lines += [f"{n}. {step.description}" for n, step in enumerate(self.steps, 1)]
        fastest, slowest = _minutes(self.download_mb, 10), _minutes(self.download_mb, 2)
        lines += [
            "",
            f"Download: about {_size_text(self.download_mb)} from the internet; allow {fastest}-{slowest} "
            "minutes. Slicer stays usable meanwhile, and you can cancel. Install now?",
        ]
        return "\n".join(lines)


def _minutes(megabytes: int, megabytes_per_second: float) -> int:
    return max(1, round(megabytes / megabytes_per_second / 60 + 0.5))


def _size_text(megabytes: int) -> str:
    return f"{megabytes / 1000:.1f} GB" if megabytes >= 1000 else f"{max(megabytes, 1)} MB"


def build_install_plan(
    requirements: Iterable[Requirement],
    importable: Callable[[str], bool] = can_import,
    slicer_pytorch_available: bool = False,
    torch_build: TorchBuild | Callable[[], TorchBuild] = detect_torch_build,
    installed: Callable[[str], bool] = is_distribution_installed,
) -> InstallPlan:
    """Plan the install: torch first (so no later step pulls PyPI's torch), then the rest, then a check.

    With the PyTorch extension, torch comes through light-the-torch (the extension's own installer,
    which picks the build for the graphics card); without it, pip uses `torch_build` (detected
    only when torch is missing). A package pip knows but that does not import is reinstalled.
    """
    requirements = list(requirements)
    missing = missing_requirements([TORCH, *requirements], importable)
    plan = InstallPlan(missing=missing)
    if not missing:
        return plan
    broken = {r.name for r in missing if installed(r.name)}
    if any(r.name == TORCH.name for r in missing):
        reinstall = ("--force-reinstall",) if TORCH.name in broken else ()
        if slicer_pytorch_available:
            plan.steps += _light_the_torch_steps(importable, reinstall)
        else:
            build = torch_build() if callable(torch_build) else torch_build
            plan.steps.append(_pip_torch_step(build, reinstall))
    others = [r for r in missing if r.name != TORCH.name]
    fresh = [r for r in others if r.name not in broken]
    if fresh:
        specs, size = tuple(r.spec for r in fresh), _download_mb(fresh)
        text = f"Install {', '.join(specs)} (about {_size_text(size)})."
        plan.steps.append(InstallStep("pip", specs, text, (*_PIP_INSTALL, *specs), size))
    repair = [r for r in others if r.name in broken]
    if repair:
        specs = tuple(r.spec for r in repair)
        # --no-deps: a forced reinstall of dependencies would replace Slicer's numpy and the torch build.
        args = (*_PIP_INSTALL, "--force-reinstall", "--no-deps", *specs)
        text = f"Reinstall {', '.join(specs)}, which are installed but damaged."
        plan.steps.append(InstallStep("pip", specs, text, args, _download_mb(repair)))
    check = "import " + ", ".join(r.import_name for r in missing)
    plan.steps.append(InstallStep("check", (), "Check that the new packages load.", ("-c", check)))
    return plan


def _download_mb(requirements: Iterable[Requirement]) -> int:
    return sum(_PACKAGE_DOWNLOAD_MB.get(r.name.lower(), _UNKNOWN_PACKAGE_MB) for r in requirements)


def _pip_torch_step(build: TorchBuild, reinstall: tuple[str, ...]) -> InstallStep:
    # --index-url, not --extra-index-url: pip would otherwise prefer a newer PyPI torch of another build.
    index = ("--index-url", build.index_url) if build.index_url else ()
    args = (*_PIP_INSTALL, *reinstall, *index, TORCH.spec)
    text = f"Install PyTorch ({TORCH.spec}) {build.description}, about {_size_text(build.download_mb)}."
    return InstallStep("torch", (TORCH.spec,), text, args, build.download_mb)


def _light_the_torch_steps(
    importable: Callable[[str], bool], reinstall: tuple[str, ...]
) -> list[InstallStep]:
    steps = []
    if not importable("light_the_torch"):
        spec = LIGHT_THE_TORCH_REQUIREMENT
        text = f"Install {spec}, the helper the {SLICER_PYTORCH_EXTENSION} extension uses (small)."
        steps.append(InstallStep("pip", (spec,), text, (*_PIP_INSTALL, spec), 1))
    size = _TORCH_DOWNLOAD_MB["cuda-Linux"]
    text = (
        f"Install PyTorch ({TORCH.spec}) as the {SLICER_PYTORCH_EXTENSION} extension does: it picks the "
        f"build for your graphics card (up to about {_size_text(size)})."
    )
    args = ("-m", "light_the_torch", "install", *reinstall, TORCH.spec)
    steps.append(InstallStep("light-the-torch", (TORCH.spec,), text, args, size))
    return steps


# ---------------------------------------------------------------- the run


def find_slicer_python(which: Callable[[str], str | None] = shutil.which) -> str:
    """Slicer's command-line Python (PythonSlicer, on Slicer's PATH); the running Python outside Slicer."""
    found = which("PythonSlicer")
    if found:
        return found
    if "slicer" in sys.modules:  # inside Slicer, sys.executable is the application itself
        raise InteractiveAdaptError(
            "Slicer's own Python (PythonSlicer) was not found, so packages cannot be installed. "
            "Reinstall 3D Slicer, or ask your IT support to check the installation."
        )
    return sys.executable


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
                env=env, **_hidden_console_window(),
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


def _hidden_console_window() -> dict:
    # Without it, every process started from Slicer on Windows flashes a console window.
    return {"creationflags": subprocess.CREATE_NO_WINDOW} if sys.platform == "win32" else {}


def start_install_if_confirmed(
    plan: InstallPlan,
    confirm: Callable[[str], bool],
    python: str,
    log_path: str | Path | None = None,
) -> InstallRun | None:
    """Ask once (`confirm(plan.confirmation_text())`) and start the run; None if the user said no.

    Nothing else asks again: every step runs without prompts. An empty plan is never asked about and
    gives a run that has already succeeded.
    """
    if plan.needed and not confirm(plan.confirmation_text()):
        log.info("The user declined installing: %s", ", ".join(r.name for r in plan.missing))
        return None
    run = InstallRun(plan.steps, python, log_path)
    run.start()
    return run


class DependencyGate:
    """What the module asks before torch work: ensure() answers at once, the install runs in the background.

    The GUI calls ensure() before anything that needs the engine, poll() from its timer, and cancel()
    from its Cancel button. `ready` turns True only when a run succeeded (or nothing was missing), so a
    failed or cancelled install leaves nothing recorded and the next ensure() plans again.
    """

    def __init__(
        self,
        confirm: Callable[[str], bool],
        requirements_path: str | Path = MODULE_REQUIREMENTS,
        slicer_pytorch_available: Callable[[], bool] = lambda: False,
        python: Callable[[], str] = find_slicer_python,
        plan: Callable[..., InstallPlan] = build_install_plan,
    ):
        self.requirements_path = Path(requirements_path)
        self._confirm, self._slicer_pytorch, self._python, self._plan = (
            confirm, slicer_pytorch_available, python, plan,
        )  # fmt: skip
        self.ready = False
        self.run: InstallRun | None = None
        self.message = ""

    @property
    def busy(self) -> bool:
        """True while an install runs."""
        return self.run is not None

    @property
    def description(self) -> str:
        """Short progress text for a progress bar ('' when nothing runs)."""
        if self.run is None:
            return ""
        status = self.run.status
        return f"Installing Python packages (step {max(status.step, 1)} of {status.total})"

    def ensure(self) -> bool:
        """True if the packages are usable; else asks once, starts the install and says why in `message`."""
        if self.ready:
            return True
        if self.run is not None:
            self.message = (
                "The Python packages are still being installed. Try again when it is done, or cancel."
            )
            return False
        requirements = read_requirements(self.requirements_path)
        plan = self._plan(requirements, slicer_pytorch_available=self._slicer_pytorch())
        if not plan.needed:
            self.ready = True
            return True
        self.run = start_install_if_confirmed(plan, self._confirm, self._python())
        if self.run is None:
            self.message = (
                "Nothing was installed; InteractiveAdapt needs these packages. Try again to install them."
            )
        else:
            self.message = "Installing the Python packages; Slicer stays usable. Try again when it is done."
            self.poll()  # a run that could not start ends at once
        return False

    def poll(self) -> InstallStatus | None:
        """Drive the running install (never blocks): its status, the final one once, then None."""
        if self.run is None:
            return None
        status = self.run.poll()
        if status.done:
            self.run = None
            self.ready = status.succeeded
            self.message = status.message
        return status

    def cancel(self) -> bool:
        """Stop a running install; False if none runs."""
        if self.run is None:
            return False
        self.run.cancel()
        return True
