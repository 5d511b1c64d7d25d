"""Which Python packages the engine still needs inside Slicer, the plan to install them, and the gate
the module asks before torch work.

Plain data, functions and subprocesses: nothing here imports Slicer or Qt, and nothing installs at
import time. The module holds a `DependencyGate`: its ensure() plans (`build_install_plan()`), asks
the user once (`InstallPlan.confirmation_text()`) and starts an `InstallRun` (install_run.py), which
the GUI timer polls: every step is a `PythonSlicer -m ...` process, so Slicer stays responsive and the
user can cancel. A package that imports but is older than its range (torch below the floor of
torch_install.py, for one) is updated like a missing one.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

# The names callers import from here (the module, its tests): the parts now live beside this file.
from InteractiveAdaptLib.app.install_run import (  # noqa: F401
    PIP_INSTALL,
    InstallRun,
    InstallStatus,
    InstallStep,
    size_text,
)
from InteractiveAdaptLib.app.packages import (  # noqa: F401
    Requirement,
    can_import,
    installed_version,
    is_distribution_installed,
    missing_requirements,
    outdated_requirements,
    read_requirements,
    requirement_from_spec,
)
from InteractiveAdaptLib.app.torch_install import (  # noqa: F401
    CUDA_BUILDS,
    LIGHT_THE_TORCH_REQUIREMENT,
    PYTORCH_INDEX,
    SLICER_PYTORCH_EXTENSION,
    TORCH,
    TORCH_REQUIREMENT,
    TorchBuild,
    choose_torch_build,
    cuda_version_of_driver,
    detect_torch_build,
    light_the_torch_steps,
    nvidia_smi_output,
    pip_torch_step,
    version_check_code,
)
from InteractiveAdaptLib.errors import InteractiveAdaptError

log = logging.getLogger(__name__)

_PACKAGE_DOWNLOAD_MB = {"monai": 5, "scipy": 40, "filelock": 1, "platformdirs": 1}
_UNKNOWN_PACKAGE_MB = 20
# The module's requirements file: Slicer installs Resources/ beside this package, as in the source tree.
MODULE_REQUIREMENTS = Path(__file__).resolve().parents[2] / "Resources" / "requirements.txt"
RESTART_TEXT = "Restart Slicer to use the updated PyTorch: the one loaded now is the old one."


@dataclass
class InstallPlan:
    """The ordered steps that make the engine importable; empty when nothing is missing."""

    missing: list[Requirement]  # what the steps install: not importable, or outdated
    steps: list[InstallStep] = field(default_factory=list)
    outdated: dict[str, str] = field(default_factory=dict)  # name -> the version installed now

    @property
    def needed(self) -> bool:
        """True if anything must be installed."""
        return bool(self.steps)

    @property
    def restart_needed(self) -> bool:
        """True if the plan updates a torch this Python has loaded already (checking imported it)."""
        return TORCH.name in self.outdated

    @property
    def download_mb(self) -> int:
        """Rough total download in MB."""
        return sum(step.download_mb for step in self.steps)

    def confirmation_text(self) -> str:
        """The one question the module asks before installing (plain text): what, how big, how long."""
        if not self.needed:
            return "All Python packages that InteractiveAdapt needs are installed."
        lines = []
        absent = ", ".join(r.name for r in self.missing if r.name not in self.outdated)
        if absent:
            lines.append(
                f"InteractiveAdapt needs these Python packages, which are not installed yet: {absent}."
            )
        old = [r for r in self.missing if r.name in self.outdated]
        if old:
            found = ", ".join(f"{r.name} {self.outdated[r.name]} (needs {r.spec})" for r in old)
            why = (
                " (older PyTorch can be made to run code hidden in a weight file)"
                if self.restart_needed
                else ""
            )
            lines.append(f"These Python packages are too old and will be updated: {found}{why}.")
        lines.append("")
        lines += [f"{n}. {step.description}" for n, step in enumerate(self.steps, 1)]
        fastest, slowest = _minutes(self.download_mb, 10), _minutes(self.download_mb, 2)
        restart = " Restart Slicer once it is done." if self.restart_needed else ""
        lines += [
            "",
            f"Download: about {size_text(self.download_mb)} from the internet; allow {fastest}-{slowest} "
            f"minutes. Slicer stays usable meanwhile, and you can cancel.{restart} Install now?",
        ]
        return "\n".join(lines)


def _minutes(megabytes: int, megabytes_per_second: float) -> int:
    return max(1, round(megabytes / megabytes_per_second / 60 + 0.5))


def build_install_plan(
    requirements: Iterable[Requirement],
    importable: Callable[[str], bool] = can_import,
    slicer_pytorch_available: bool = False,
    torch_build: TorchBuild | Callable[[], TorchBuild] = detect_torch_build,
    installed: Callable[[str], bool] = is_distribution_installed,
    version_of: Callable[[str], str | None] = installed_version,
) -> InstallPlan:
    """Plan the install: torch first (so no later step pulls PyPI's torch), then the rest, then a check.

    With the PyTorch extension, torch comes through light-the-torch (the extension's own installer,
    which picks the build for the graphics card); without it, pip uses `torch_build` (detected
    only when torch is to be installed). A package pip knows but that does not import is reinstalled;
    one that imports but whose version (`version_of`) is outside its range is updated, torch below
    TORCH_REQUIREMENT included. The check step imports what was installed and checks torch's version.
    """
    requirements = [TORCH, *requirements]
    absent = missing_requirements(requirements, importable)
    outdated = outdated_requirements([r for r in requirements if r not in absent], version_of)
    missing = [r for r in requirements if r in absent or r.name in outdated]
    plan = InstallPlan(missing=missing, outdated=outdated)
    if not missing:
        return plan
    broken = {r.name for r in absent if installed(r.name)}
    if any(r.name == TORCH.name for r in missing):
        reinstall = ("--force-reinstall",) if TORCH.name in broken else ()
        old = outdated.get(TORCH.name)
        if slicer_pytorch_available:
            plan.steps += light_the_torch_steps(importable, reinstall, old)
        else:
            build = torch_build() if callable(torch_build) else torch_build
            plan.steps.append(pip_torch_step(build, reinstall, old))
    others = [r for r in missing if r.name != TORCH.name]
    fresh = [r for r in others if r.name not in broken]
    if fresh:
        specs, size = tuple(r.spec for r in fresh), _download_mb(fresh)
        text = f"Install {', '.join(specs)} (about {size_text(size)})."
        plan.steps.append(InstallStep("pip", specs, text, (*PIP_INSTALL, *specs), size))
    repair = [r for r in others if r.name in broken]
    if repair:
        specs = tuple(r.spec for r in repair)
        # --no-deps: a forced reinstall of dependencies would replace Slicer's numpy and the torch build.
        args = (*PIP_INSTALL, "--force-reinstall", "--no-deps", *specs)
        text = f"Reinstall {', '.join(specs)}, which are installed but damaged."
        plan.steps.append(InstallStep("pip", specs, text, args, _download_mb(repair)))
    check = "import " + ", ".join(r.import_name for r in missing)
    if any(r.name == TORCH.name for r in missing):
        check += "; " + version_check_code()
    plan.steps.append(InstallStep("check", (), "Check that the new packages load.", ("-c", check)))
    return plan


def _download_mb(requirements: Iterable[Requirement]) -> int:
    return sum(_PACKAGE_DOWNLOAD_MB.get(r.name.lower(), _UNKNOWN_PACKAGE_MB) for r in requirements)


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
    failed or cancelled install leaves nothing recorded and the next ensure() plans again. A run that
    updated a torch this Slicer has loaded leaves `restart_needed`: ensure() then says to restart.
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
        self.restart_needed = False
        self.run: InstallRun | None = None
        self.message = ""
        self._updates_loaded_torch = False

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

    def installed(self) -> bool:
        """True when every package the engine needs is installed at a version it accepts (PyTorch and
        MONAI both: PyTorch from another extension is not enough). Asks nothing, installs nothing,
        imports nothing (cheap enough for every panel refresh)."""
        if self.ready:
            return True
        if self.run is not None or self.restart_needed:
            return False
        requirements = [TORCH, *read_requirements(self.requirements_path)]
        if not all(is_distribution_installed(r.name) for r in requirements):
            return False
        return not outdated_requirements(requirements, installed_version)

    def ensure(self) -> bool:
        """True if the packages are usable; else asks once, starts the install and says why in `message`."""
        if self.ready:
            return True
        if self.restart_needed:
            self.message = RESTART_TEXT
            return False
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
        self._updates_loaded_torch = plan.restart_needed
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
            self.restart_needed = status.succeeded and self._updates_loaded_torch
            self.ready = status.succeeded and not self.restart_needed
            self.message = f"{status.message} {RESTART_TEXT}" if self.restart_needed else status.message
        return status

    def cancel(self) -> bool:
        """Stop a running install; False if none runs."""
        if self.run is None:
            return False
        self.run.cancel()
        return True
