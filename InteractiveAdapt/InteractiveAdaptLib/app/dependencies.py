"""Which Python packages the engine still needs inside Slicer, and the plan to install them.

Plain data and functions: nothing here imports Slicer or installs at import time. The module checks
`missing_requirements()`, shows `InstallPlan.confirmation_text()` to the user, and only after a yes
runs `run_install_plan()` with Slicer's installers passed in (SlicerPyTorch's
`PyTorchUtilsLogic().installTorch` and `slicer.util.pip_install`).
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from InteractiveAdaptLib.errors import InteractiveAdaptError

log = logging.getLogger(__name__)

# torch is not in requirements.txt: SlicerPyTorch picks the build that fits the GPU driver.
TORCH_REQUIREMENT = "torch>=2.4"
SLICER_PYTORCH_EXTENSION = "PyTorch"
# pip distribution name -> import name, where they differ
_IMPORT_NAMES = {"simpleitk": "SimpleITK", "pyyaml": "yaml", "scikit-image": "skimage"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


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


def missing_requirements(
    requirements: Iterable[Requirement], importable: Callable[[str], bool] = can_import
) -> list[Requirement]:
    """The requirements whose module does not import, in the given order."""
    return [r for r in requirements if not importable(r.import_name)]


@dataclass(frozen=True)
class InstallStep:
    """One installation action: 'slicer-pytorch' (installTorch) or 'pip' (pip install of `packages`)."""

    kind: str
    packages: tuple[str, ...]
    description: str


@dataclass
class InstallPlan:
    """The ordered steps that make the engine importable; empty when nothing is missing."""

    missing: list[Requirement]
    steps: list[InstallStep] = field(default_factory=list)

    @property
    def needed(self) -> bool:
        """True if anything must be installed."""
        return bool(self.steps)

    def confirmation_text(self) -> str:
        """What the module asks the user before installing (plain text)."""
        if not self.needed:
            return "All Python packages that InteractiveAdapt needs are installed."
        names = ", ".join(r.name for r in self.missing)
        lines = [f"InteractiveAdapt needs these Python packages, which are not installed yet: {names}.", ""]
        lines += [f"{n}. {step.description}" for n, step in enumerate(self.steps, 1)]
        lines += ["", "This downloads from the internet and can take several minutes. Install now?"]
        return "\n".join(lines)


def build_install_plan(
    requirements: Iterable[Requirement],
    importable: Callable[[str], bool] = can_import,
    slicer_pytorch_available: bool = False,
) -> InstallPlan:
    """Plan the install: torch first (SlicerPyTorch when present, else pip), then the rest with pip."""
    requirements = list(requirements)
    missing = missing_requirements([TORCH, *requirements], importable)
    plan = InstallPlan(missing=missing)
    torch_missing = any(r.import_name == TORCH.import_name for r in missing)
    others = [r for r in missing if r.import_name != TORCH.import_name]
    if torch_missing and slicer_pytorch_available:
        plan.steps.append(
            InstallStep(
                "slicer-pytorch",
                (TORCH.spec,),
                "Install PyTorch with the PyTorch extension (it chooses the build that fits your graphics card).",
            )
        )
    elif torch_missing:
        plan.steps.append(
            InstallStep(
                "pip",
                (TORCH.spec,),
                f"Install PyTorch with pip ({TORCH.spec}). For GPU support, cancel and install the "
                f"'{SLICER_PYTORCH_EXTENSION}' extension from the Extensions Manager first.",
            )
        )
    if others:
        specs = tuple(r.spec for r in others)
        plan.steps.append(InstallStep("pip", specs, "Install with pip: " + " ".join(specs)))
    return plan


def pip_arguments(step: InstallStep) -> list[str]:
    """Arguments for slicer.util.pip_install: a list, so that it quotes each spec ('<' and '>' survive)."""
    return list(step.packages)


def run_install_plan(
    plan: InstallPlan,
    pip_install: Callable[[list[str]], object],
    install_torch: Callable[[str], object] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> None:
    """Run the steps in order; `install_torch(version_requirement)` serves the 'slicer-pytorch' step."""
    total = len(plan.steps)
    for n, step in enumerate(plan.steps):
        if progress is not None:
            progress(n, total, step.description)
        log.info("Installing: %s", step.description)
        if step.kind == "slicer-pytorch":
            if install_torch is None:
                raise ValueError(
                    "The plan uses the PyTorch extension but no install_torch function was given."
                )
            result = install_torch(TORCH.spec[len(TORCH.name) :])
            if result is None:
                raise InteractiveAdaptError(
                    "PyTorch was not installed (the installation was cancelled or failed). "
                    "Open the PyTorch Utils module to install it, or restart Slicer and try again."
                )
        elif step.kind == "pip":
            pip_install(pip_arguments(step))
        else:
            raise ValueError(f"Unknown install step kind {step.kind!r}")
    if progress is not None:
        progress(total, total, "Done")


def install_if_confirmed(
    plan: InstallPlan,
    confirm: Callable[[str], bool],
    pip_install: Callable[[list[str]], object],
    install_torch: Callable[[str], object] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> bool:
    """True when everything is installed: at once if nothing is missing, else after the user said yes."""
    if not plan.needed:
        return True
    if not confirm(plan.confirmation_text()):
        log.info("The user declined installing: %s", ", ".join(r.name for r in plan.missing))
        return False
    run_install_plan(plan, pip_install, install_torch, progress)
    return True
