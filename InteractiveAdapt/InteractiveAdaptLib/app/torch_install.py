"""Which PyTorch the module installs inside Slicer: a floor below which weight files are not read
safely, the build that fits the computer (CUDA for the NVIDIA driver, else CPU), and the install
steps for it (pip, or light-the-torch as the PyTorch extension does). Imports neither Slicer nor torch."""

from __future__ import annotations

import logging
import platform
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from InteractiveAdaptLib.app.install_run import PIP_INSTALL, InstallStep, hidden_console_window, size_text
from InteractiveAdaptLib.app.packages import requirement_from_spec

log = logging.getLogger(__name__)

# torch is not in requirements.txt: its build depends on the computer (see choose_torch_build). The
# floor is model/checkpoint.py's MIN_TORCH: torch.load(weights_only=True) is bypassable before 2.6
# (GHSA-53q9-r3pm-6pq6, CVE-2025-32434) and later weights-only advisories are treated as fixed from
# 2.10, so an older torch would let a weight file (an imported site) run code.
TORCH_REQUIREMENT = "torch>=2.10"
TORCH = requirement_from_spec(TORCH_REQUIREMENT)
SLICER_PYTORCH_EXTENSION = "PyTorch"
# What the PyTorch extension installs to pick the torch build; the same range it asks for.
LIGHT_THE_TORCH_REQUIREMENT = "light-the-torch>=0.5"
PYTORCH_INDEX = "https://download.pytorch.org/whl"
# PyTorch's CUDA builds that carry torch>=2.10, newest first, with the CUDA version the driver must
# support (nvidia-smi's "CUDA Version"); cu124 and cu118 stop before 2.10. cu128 is the newest kept:
# CUDA 13 builds dropped older GPUs. Add a row when a newer build is needed.
CUDA_BUILDS = (((12, 8), "cu128"), ((12, 6), "cu126"))
# Rough download sizes (MB) for the confirmation; pip pulls in dependencies too.
_TORCH_DOWNLOAD_MB = {"cuda-Linux": 3000, "cuda-Windows": 2500, "cpu": 200, "pypi-Darwin": 100}


def version_check_code() -> str:
    """Python for the install's last step: fail unless the torch now installed reaches the floor."""
    floor = tuple(int(n) for n in re.findall(r"\d+", TORCH.spec))
    return (
        "import re, sys, torch; v = re.match(r'(\\d+)\\.(\\d+)', torch.__version__); "
        f"sys.exit(None if v and tuple(map(int, v.groups())) >= {floor} else "
        f"'PyTorch ' + torch.__version__ + ' was installed, but InteractiveAdapt needs {TORCH.spec}')"
    )


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
        result = run(["nvidia-smi"], capture_output=True, text=True, timeout=20, **hidden_console_window())
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


def pip_torch_step(
    build: TorchBuild, reinstall: tuple[str, ...], installed: str | None = None
) -> InstallStep:
    """The pip step that installs (or updates, from `installed`) torch from `build`'s index."""
    # --index-url, not --extra-index-url: pip would otherwise prefer a newer PyPI torch of another build.
    index = ("--index-url", build.index_url) if build.index_url else ()
    args = (*PIP_INSTALL, *reinstall, *index, TORCH.spec)
    what = f"Update PyTorch {installed} to {TORCH.spec}" if installed else f"Install PyTorch ({TORCH.spec})"
    text = f"{what} {build.description}, about {size_text(build.download_mb)}."
    return InstallStep("torch", (TORCH.spec,), text, args, build.download_mb)


def light_the_torch_steps(
    importable: Callable[[str], bool], reinstall: tuple[str, ...], installed: str | None = None
) -> list[InstallStep]:
    """The steps that install (or update) torch as the PyTorch extension does, with light-the-torch."""
    steps = []
    if not importable("light_the_torch"):
        spec = LIGHT_THE_TORCH_REQUIREMENT
        text = f"Install {spec}, the helper the {SLICER_PYTORCH_EXTENSION} extension uses (small)."
        steps.append(InstallStep("pip", (spec,), text, (*PIP_INSTALL, spec), 1))
    size = _TORCH_DOWNLOAD_MB["cuda-Linux"]
    what = f"Update PyTorch {installed} to {TORCH.spec}" if installed else f"Install PyTorch ({TORCH.spec})"
    text = (
        f"{what} as the {SLICER_PYTORCH_EXTENSION} extension does: it picks the build for your graphics "
        f"card (up to about {size_text(size)})."
    )
    args = ("-m", "light_the_torch", "install", *reinstall, TORCH.spec)
    steps.append(InstallStep("light-the-torch", (TORCH.spec,), text, args, size))
    return steps
