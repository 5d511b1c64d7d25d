"""Dependency check, install plan and install run for Slicer (the parts that need no slicer.app).

The runs start real Python processes (no network): `-c` commands, and pip installing a tiny wheel built
here from a local folder into a temporary target.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from InteractiveAdaptLib.app import dependencies as deps
from InteractiveAdaptLib.errors import InteractiveAdaptError

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "InteractiveAdapt" / "Resources" / "requirements.txt"
NVIDIA_SMI = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
"""
NVIDIA_SMI_12_6 = NVIDIA_SMI.replace("550.54.15", "560.35.03").replace("12.4 ", "12.6 ")


def _pyproject_specs() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    specs = {}
    for spec in data["project"]["dependencies"]:
        req = deps.requirement_from_spec(spec)
        specs[req.name.lower()] = spec.replace(" ", "")
    return specs


def _step(code: str, description: str = "a step") -> deps.InstallStep:
    """A step that runs `python -c code`."""
    return deps.InstallStep("check", (), description, ("-c", code))


def _plan(*steps: deps.InstallStep) -> deps.InstallPlan:
    return deps.InstallPlan(missing=[deps.requirement_from_spec("tiny")], steps=list(steps))


def _tiny_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel 'ia-tiny' 1.0 (module ia_tiny, VALUE = 42), built without network."""
    files = {
        "ia_tiny/__init__.py": b"VALUE = 42\n",
        "ia_tiny-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: ia-tiny\nVersion: 1.0\n",
        "ia_tiny-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("ia_tiny-1.0.dist-info/RECORD,,")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ia_tiny-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr("ia_tiny-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


# ---------------------------------------------------------------- requirements


def test_requirements_txt_matches_pyproject_and_leaves_torch_to_the_plan():
    requirements = deps.read_requirements(REQUIREMENTS)
    names = {r.name.lower() for r in requirements}
    assert "torch" not in names  # its build depends on the computer: the plan picks it
    assert "simpleitk" not in names and "numpy" not in names  # shipped with Slicer
    assert {"monai", "scipy", "filelock", "platformdirs"} <= names
    assert not {"tqdm", "matplotlib"} & names  # only the lab (developer tools) uses them
    pyproject = _pyproject_specs()
    for requirement in requirements:
        assert requirement.name.lower() in pyproject, (
            f"{requirement.name} is not a dependency in pyproject.toml"
        )
        assert requirement.spec.replace(" ", "") == pyproject[requirement.name.lower()], (
            f"requirements.txt has '{requirement.spec}' but pyproject.toml has "
            f"'{pyproject[requirement.name.lower()]}': keep the ranges the same"
        )


def test_requirement_parsing():
    req = deps.requirement_from_spec("scikit-image[data]>=0.22 ; python_version >= '3.11'")
    assert req.name == "scikit-image" and req.import_name == "skimage"
    assert deps.requirement_from_spec("SimpleITK>=2.3").import_name == "SimpleITK"
    assert deps.requirement_from_spec("typing-extensions").import_name == "typing_extensions"
    with pytest.raises(ValueError):
        deps.requirement_from_spec(">=1.0")


def test_read_requirements_skips_comments_and_options(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\n--index-url https://example.org\n\nmonai>=1.5,<1.7  # the networks\ntqdm\n")
    assert [r.spec for r in deps.read_requirements(path)] == ["monai>=1.5,<1.7", "tqdm"]


def test_can_import_and_distribution_records():
    assert deps.can_import("json")
    assert not deps.can_import("interactive_adapt_no_such_module")
    assert deps.is_distribution_installed("pytest")
    assert not deps.is_distribution_installed("interactive-adapt-no-such-distribution")


# ---------------------------------------------------------------- torch build


@pytest.mark.parametrize(
    ("system", "cuda", "label", "index"),
    [
        ("Linux", (12, 6), "cu126", "https://download.pytorch.org/whl/cu126"),
        ("Linux", (12, 7), "cu126", "https://download.pytorch.org/whl/cu126"),
        ("Windows", (12, 6), "cu126", "https://download.pytorch.org/whl/cu126"),
        ("Windows", (12, 9), "cu128", "https://download.pytorch.org/whl/cu128"),
        ("Linux", (13, 0), "cu128", "https://download.pytorch.org/whl/cu128"),
        # cu124 and cu118 carry no torch>=2.10: an older driver gets the CPU build and the reason.
        ("Linux", (12, 4), "cpu", "https://download.pytorch.org/whl/cpu"),
        ("Linux", (12, 2), "cpu", "https://download.pytorch.org/whl/cpu"),
        ("Windows", None, "cpu", "https://download.pytorch.org/whl/cpu"),
        ("Linux", None, "cpu", "https://download.pytorch.org/whl/cpu"),
        ("Linux", (11, 4), "cpu", "https://download.pytorch.org/whl/cpu"),
        ("Darwin", None, "pypi", None),
        ("Darwin", (12, 4), "pypi", None),
    ],
)
def test_torch_build_for_each_platform_and_driver(system, cuda, label, index):
    build = deps.choose_torch_build(system, cuda)
    assert (build.label, build.index_url) == (label, index)
    if label == "cpu":
        assert build.download_mb <= 300 and "processor only" in build.description
    if cuda is not None and label == "cpu":
        assert "driver is too old" in build.description
    if label.startswith("cu"):
        assert build.download_mb >= 2000 and "NVIDIA" in build.description


def test_cuda_version_is_read_from_nvidia_smi():
    assert deps.cuda_version_of_driver(NVIDIA_SMI) == (12, 4)
    assert deps.cuda_version_of_driver("NVIDIA-SMI has failed because it couldn't communicate") is None
    assert deps.cuda_version_of_driver(None) is None


def test_nvidia_smi_output_without_a_driver_or_when_it_fails():
    def missing(*args, **kwargs):
        raise FileNotFoundError("nvidia-smi")

    def failing(*args, **kwargs):
        return subprocess.CompletedProcess(args, 9, stdout="NVIDIA-SMI has failed", stderr="")

    def hanging(*args, **kwargs):
        raise subprocess.TimeoutExpired("nvidia-smi", 20)

    def working(*args, **kwargs):
        return subprocess.CompletedProcess(args, 0, stdout=NVIDIA_SMI, stderr="")

    assert deps.nvidia_smi_output(missing) is None
    assert deps.nvidia_smi_output(failing) is None
    assert deps.nvidia_smi_output(hanging) is None
    assert deps.nvidia_smi_output(working) == NVIDIA_SMI
    real = deps.nvidia_smi_output()  # the real command: None on a machine without an NVIDIA driver
    assert real is None or "NVIDIA" in real


def test_detect_torch_build_asks_the_driver_only_where_pytorch_has_cuda_builds():
    asked = []
    assert deps.detect_torch_build("Linux", lambda: asked.append(1) or NVIDIA_SMI_12_6).label == "cu126"
    assert deps.detect_torch_build("Windows", lambda: None).label == "cpu"
    assert deps.detect_torch_build("Darwin", lambda: 1 / 0).label == "pypi"
    assert asked == [1]


# ---------------------------------------------------------------- plan


def _plan_for(missing, **kwargs) -> deps.InstallPlan:
    kwargs.setdefault("installed", lambda name: False)
    kwargs.setdefault("version_of", lambda name: None)  # no pip record: every version is taken as it is
    return deps.build_install_plan(
        deps.read_requirements(REQUIREMENTS), lambda name: name not in missing, **kwargs
    )


def test_nothing_to_install_when_everything_imports():
    plan = deps.build_install_plan(
        deps.read_requirements(REQUIREMENTS), importable=lambda name: True, torch_build=lambda: 1 / 0
    )
    assert not plan.needed and plan.missing == [] and plan.download_mb == 0
    assert "All Python packages" in plan.confirmation_text()


def test_pip_plan_on_linux_with_a_gpu_installs_the_cuda_build_first_then_the_rest_then_checks():
    plan = _plan_for({"torch", "monai", "scipy"}, torch_build=deps.choose_torch_build("Linux", (12, 6)))
    assert [s.kind for s in plan.steps] == ["torch", "pip", "check"]
    torch, rest, check = plan.steps
    assert torch.command("PythonSlicer") == [
        "PythonSlicer", "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
        "--index-url", "https://download.pytorch.org/whl/cu126", "torch>=2.10",
    ]  # fmt: skip
    specs = {r.name: r.spec for r in deps.read_requirements(REQUIREMENTS)}
    assert rest.packages == (specs["monai"], specs["scipy"])
    assert rest.args[-2:] == rest.packages and "--index-url" not in rest.args  # the rest comes from PyPI
    assert check.args[0] == "-c" and check.args[1].startswith("import torch, monai, scipy; ")
    assert "torch>=2.10" in check.args[1]  # the check also refuses a torch below the floor
    text = plan.confirmation_text()
    for expected in ("torch, monai, scipy", "CUDA 12.6", "3.0 GB", specs["monai"], "cancel", "Install now?"):
        assert expected in text, expected
    assert "minutes" in text and plan.download_mb >= 3000


def test_pip_plan_without_gpu_uses_the_small_cpu_build_and_macos_uses_pypi():
    cpu = _plan_for({"torch"}, torch_build=deps.choose_torch_build("Windows", None))
    assert cpu.steps[0].args[-3:] == ("--index-url", "https://download.pytorch.org/whl/cpu", "torch>=2.10")
    assert "200 MB" in cpu.confirmation_text() and "no NVIDIA graphics card" in cpu.confirmation_text()
    mac = _plan_for({"torch"}, torch_build=deps.choose_torch_build("Darwin", None))
    assert "--index-url" not in mac.steps[0].args and mac.steps[0].args[-1] == "torch>=2.10"
    assert [s.kind for s in mac.steps] == ["torch", "check"]


def test_torch_build_is_detected_only_when_torch_is_missing():
    plan = _plan_for({"filelock"}, torch_build=lambda: 1 / 0)
    assert [(s.kind, s.packages) for s in plan.steps] == [("pip", ("filelock>=3.13,<5",)), ("check", ())]
    detected = _plan_for({"torch"}, torch_build=lambda: deps.choose_torch_build("Linux", (12, 6)))
    assert "https://download.pytorch.org/whl/cu126" in detected.steps[0].args


def test_with_the_pytorch_extension_torch_comes_through_its_installer_light_the_torch():
    plan = _plan_for({"torch", "light_the_torch", "monai"}, slicer_pytorch_available=True)
    assert [s.kind for s in plan.steps] == ["pip", "light-the-torch", "pip", "check"]
    assert plan.steps[0].packages == (deps.LIGHT_THE_TORCH_REQUIREMENT,)
    assert plan.steps[1].command("py") == ["py", "-m", "light_the_torch", "install", "torch>=2.10"]
    assert "PyTorch extension" in plan.confirmation_text()
    helper_there = _plan_for({"torch"}, slicer_pytorch_available=True)
    assert [s.kind for s in helper_there.steps] == ["light-the-torch", "check"]


def test_installed_but_damaged_packages_are_reinstalled_without_touching_their_dependencies():
    damaged = {"torch", "scipy"}
    plan = _plan_for(
        {"torch", "scipy", "monai"},
        torch_build=deps.choose_torch_build("Linux", None),
        installed=lambda name: name in damaged,
    )
    assert [s.kind for s in plan.steps] == ["torch", "pip", "pip", "check"]
    assert "--force-reinstall" in plan.steps[0].args and "--index-url" in plan.steps[0].args
    assert plan.steps[1].packages == ("monai>=1.5,<1.7",) and "--force-reinstall" not in plan.steps[1].args
    repair = plan.steps[2]
    assert repair.args[-3:] == ("--force-reinstall", "--no-deps", "scipy>=1.11,<2")
    assert "damaged" in repair.description


# ---------------------------------------------------------------- versions


def test_the_torch_floor_is_the_one_the_weights_loader_enforces():
    from InteractiveAdaptLib.model.checkpoint import MIN_TORCH

    assert deps.TORCH_REQUIREMENT == "torch>=" + ".".join(map(str, MIN_TORCH)) == "torch>=2.10"
    assert deps.TORCH.accepts("2.13.0+cpu") and deps.TORCH.accepts("2.10.0")
    assert not deps.TORCH.accepts("2.9.1") and not deps.TORCH.accepts("2.5.1+cu124")
    assert not deps.TORCH.accepts("not a version")


def test_installed_versions_come_from_pip_records():
    assert deps.installed_version("pytest") == __import__("pytest").__version__
    assert deps.installed_version("interactive-adapt-no-such-distribution") is None
    # The venv the tests run in is one the module accepts: nothing to install or update.
    plan = deps.build_install_plan(deps.read_requirements(REQUIREMENTS), torch_build=lambda: 1 / 0)
    assert not plan.needed and plan.outdated == {}


def test_an_old_torch_that_imports_is_updated_and_slicer_restarted():
    versions = {"torch": "2.5.1", "monai": "1.5.1", "scipy": "1.14.0"}
    plan = _plan_for(set(), torch_build=deps.choose_torch_build("Linux", None), version_of=versions.get)
    assert [s.kind for s in plan.steps] == ["torch", "check"] and plan.outdated == {"torch": "2.5.1"}
    torch_step = plan.steps[0]
    assert torch_step.args[-1] == "torch>=2.10" and "--force-reinstall" not in torch_step.args
    assert torch_step.description.startswith("Update PyTorch 2.5.1 to torch>=2.10")
    text = plan.confirmation_text()
    assert "too old" in text and "torch 2.5.1 (needs torch>=2.10)" in text and "weight file" in text
    assert "Restart Slicer" in text and plan.restart_needed
    assert "not installed yet" not in text  # nothing is missing, only old
    with_extension = _plan_for(set(), slicer_pytorch_available=True, version_of=versions.get)
    assert with_extension.steps[-2].command("py") == ["py", "-m", "light_the_torch", "install", "torch>=2.10"]
    assert "Update PyTorch 2.5.1" in with_extension.steps[-2].description


def test_other_packages_outside_their_range_are_updated_and_those_inside_left_alone():
    versions = {"torch": "2.13.0+cpu", "monai": "1.3.2", "scipy": "1.14.0", "filelock": "3.16.1"}
    plan = _plan_for(set(), version_of=versions.get)
    assert [(s.kind, s.packages) for s in plan.steps] == [("pip", ("monai>=1.5,<1.7",)), ("check", ())]
    assert "--force-reinstall" not in plan.steps[0].args and not plan.restart_needed
    assert plan.steps[1].args == ("-c", "import monai")  # torch is not checked: it was not touched
    assert not _plan_for(set(), version_of=dict(versions, monai="1.5.1").get).needed


def test_the_check_step_refuses_a_torch_below_the_floor_in_a_real_process(tmp_path):
    code = deps.version_check_code()
    ok = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr  # the torch of this environment
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("__version__ = '2.5.1+cu124'\n")
    old = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert (
        old.returncode == 1
        and "PyTorch 2.5.1+cu124 was installed" in old.stderr
        and "torch>=2.10" in old.stderr
    )


def test_find_slicer_python(monkeypatch):
    assert deps.find_slicer_python(lambda name: f"/slicer/bin/{name}") == "/slicer/bin/PythonSlicer"
    monkeypatch.delitem(sys.modules, "slicer", raising=False)
    assert deps.find_slicer_python(lambda name: None) == sys.executable
    monkeypatch.setitem(sys.modules, "slicer", object())  # inside Slicer, sys.executable is Slicer itself
    with pytest.raises(InteractiveAdaptError, match="PythonSlicer"):
        deps.find_slicer_python(lambda name: None)


# ---------------------------------------------------------------- one confirmation


def test_one_question_then_no_prompt_can_stop_the_run(tmp_path):
    questions: list[str] = []
    plan = _plan(
        _step("input('Proceed (y/n)? ')", "a step that would ask"),  # stdin is empty: it ends, never waits
        _step("print('after')"),
    )
    run = deps.start_install_if_confirmed(plan, lambda text: questions.append(text) or True, sys.executable)
    status = run.wait(timeout_s=60)
    assert len(questions) == 1 and "Install now?" in questions[0]
    assert status.state == "failed" and status.step == 1  # EOFError, not a hang on a hidden prompt


def test_declining_starts_nothing_and_an_empty_plan_asks_nothing(tmp_path):
    marker = tmp_path / "ran"
    plan = _plan(_step(f"open({str(marker)!r}, 'w')"))
    assert deps.start_install_if_confirmed(plan, lambda text: False, sys.executable) is None
    assert not marker.exists()
    nothing = deps.build_install_plan([], lambda name: True)
    run = deps.start_install_if_confirmed(nothing, lambda text: 1 / 0, "/no/such/python")
    assert run.poll().succeeded and run.status.fraction == 1.0


# ---------------------------------------------------------------- the run (real processes)


@pytest.mark.slow
def test_the_plan_installs_a_wheel_with_pip_and_checks_it(tmp_path, monkeypatch):
    wheels, target = tmp_path / "wheels", tmp_path / "target"
    _tiny_wheel(wheels)
    # The plan's own pip command, kept offline: pip reads these from the environment the run passes on.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_TARGET", str(target))
    monkeypatch.setenv("PYTHONPATH", str(target))  # for the check step
    plan = deps.build_install_plan(
        [deps.requirement_from_spec("ia-tiny>=1.0")],
        lambda name: name != "ia_tiny",
        installed=lambda n: False,
    )
    assert [s.kind for s in plan.steps] == ["pip", "check"]
    confirmations = []
    run = deps.start_install_if_confirmed(
        plan, lambda text: confirmations.append(text) or True, sys.executable, tmp_path / "install.log"
    )
    seen = {run.status.text}
    while not (status := run.poll()).done:
        seen.add(status.text)
        time.sleep(0.1)
    assert status.succeeded, status.message + "\n" + (tmp_path / "install.log").read_text()
    assert len(confirmations) == 1
    assert (target / "ia_tiny" / "__init__.py").read_text() == "VALUE = 42\n"
    assert any("step 1 of 2" in text for text in seen)
    log_text = (tmp_path / "install.log").read_text()
    assert "Successfully installed ia-tiny-1.0" in log_text and "=== succeeded" in log_text


def test_progress_text_shows_the_step_and_the_installer_latest_line(tmp_path):
    code = "import time; print('Downloading torch-2.6.0.whl (766.7 MB)', flush=True); time.sleep(30)"
    run = deps.InstallRun([_step(code, "Install PyTorch"), _step("pass")], sys.executable, tmp_path / "l.log")
    run.start()
    deadline = time.monotonic() + 30
    while "Downloading" not in run.poll().text and time.monotonic() < deadline:
        time.sleep(0.1)
    status = run.status
    assert status.state == "running" and (status.step, status.total) == (1, 2) and status.fraction == 0.0
    assert "step 1 of 2" in status.text and "Install PyTorch" in status.text
    assert "Downloading torch-2.6.0.whl (766.7 MB)" in status.text
    run.cancel()
    assert run.wait(timeout_s=30).state == "cancelled"


def test_cancel_stops_the_running_step_and_starts_no_other(tmp_path):
    marker = tmp_path / "second-step-ran"
    steps = [_step("import time; time.sleep(60)"), _step(f"open({str(marker)!r}, 'w')")]
    run = deps.InstallRun(steps, sys.executable, tmp_path / "install.log")
    run.start()
    started = time.monotonic()
    assert run.cancel().state == "cancelling" and not run.status.done
    status = run.wait(timeout_s=30)
    assert status.state == "cancelled" and time.monotonic() - started < 20
    assert "cancelled" in status.message and "Nothing was recorded" in status.message
    assert not marker.exists()
    assert run.poll() is status and run.cancel() is status  # an ended run stays ended


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be ignored on Windows")
def test_a_step_that_ignores_terminate_is_killed(tmp_path):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    run = deps.InstallRun([_step(code)], sys.executable, tmp_path / "install.log")
    run.TERMINATE_GRACE_S = 0.5
    run.start()
    deadline = time.monotonic() + 30
    while "ready" not in run.poll().text and time.monotonic() < deadline:
        time.sleep(0.05)
    run.cancel()
    assert run.wait(timeout_s=30).state == "cancelled"


def test_a_failed_step_ends_the_run_with_what_to_do(tmp_path):
    marker = tmp_path / "second-step-ran"
    error = "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device"
    steps = [
        _step("print('Collecting monai')", "first"),
        _step(f"import sys; print({error!r}); sys.exit(1)", "Install monai"),
        _step(f"open({str(marker)!r}, 'w')"),
    ]
    run = deps.InstallRun(steps, sys.executable, tmp_path / "install.log")
    run.start()
    status = run.wait(timeout_s=60)
    assert status.state == "failed" and status.step == 2 and not marker.exists()
    assert "step 2 of 3" in status.message and "Install monai" in status.message
    assert "disk is full" in status.message and "Nothing was recorded" in status.message
    assert "No space left on device" in status.message and str(tmp_path / "install.log") in status.message
    assert status.fraction == pytest.approx(1 / 3)


def test_network_failures_and_unknown_failures_have_their_own_advice(tmp_path):
    offline = (
        "ERROR: Could not find a version that satisfies the requirement torch>=2.10 (from versions: none)"
    )
    run = deps.InstallRun([_step(f"import sys; print({offline!r}); sys.exit(1)")], sys.executable)
    run.start()  # no log path given: a temporary file
    status = run.wait(timeout_s=60)
    assert status.state == "failed" and "internet connection" in status.message
    assert Path(status.log_path).is_file()
    Path(status.log_path).unlink()
    odd = deps.InstallRun([_step("import sys; sys.exit(3)")], sys.executable, tmp_path / "odd.log")
    odd.start()
    message = odd.wait(timeout_s=60).message
    assert "error code 3" in message and "IT support" in message


def test_a_missing_python_fails_with_a_message_instead_of_raising(tmp_path):
    run = deps.InstallRun([_step("pass")], str(tmp_path / "no-such-python"), tmp_path / "install.log")
    status = run.start()
    assert status.state == "failed" and "could not be started" in status.message
    with pytest.raises(RuntimeError, match="already started"):
        run.start()


# ---------------------------------------------------------------- the gate the module uses


def _gate(steps, questions, answer=True, python=sys.executable):
    plans = []

    def plan(requirements, slicer_pytorch_available):
        plans.append(slicer_pytorch_available)
        return _plan(*steps) if steps else deps.InstallPlan(missing=[])

    gate = deps.DependencyGate(
        confirm=lambda text: questions.append(text) or answer,
        slicer_pytorch_available=lambda: True,
        python=lambda: python,
        plan=plan,
    )
    return gate, plans


def _drive(gate, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while gate.busy and time.monotonic() < deadline:
        last = gate.poll()
        time.sleep(0.05)
    return last


def test_gate_reads_the_module_requirements_file():
    assert deps.MODULE_REQUIREMENTS == REQUIREMENTS
    assert deps.DependencyGate(confirm=lambda text: True).requirements_path == REQUIREMENTS


def test_gate_is_ready_at_once_when_nothing_is_missing():
    questions: list[str] = []
    gate, plans = _gate([], questions)
    assert gate.ensure() and gate.ready and not gate.busy and questions == [] and plans == [True]
    assert gate.poll() is None and not gate.cancel() and gate.description == ""


def test_gate_asks_once_installs_in_the_background_then_is_ready(tmp_path):
    questions: list[str] = []
    gate, _ = _gate([_step("import time; time.sleep(1)", "Install PyTorch"), _step("pass")], questions)
    assert not gate.ensure() and gate.busy and "Slicer stays usable" in gate.message
    assert gate.description == "Installing Python packages (step 1 of 2)"
    assert not gate.ensure() and "still being installed" in gate.message  # no second question
    final = _drive(gate)
    assert final.succeeded and gate.ready and not gate.busy and "ready to use" in gate.message
    assert gate.ensure() and len(questions) == 1


def test_gate_after_updating_a_loaded_torch_asks_for_a_restart_instead_of_using_it():
    questions: list[str] = []
    update = deps.InstallPlan(
        missing=[deps.TORCH], steps=[_step("pass", "Update PyTorch")], outdated={"torch": "2.5.1"}
    )
    gate = deps.DependencyGate(
        confirm=lambda text: questions.append(text) or True, python=lambda: sys.executable,
        plan=lambda requirements, slicer_pytorch_available: update,
    )  # fmt: skip
    assert not gate.ensure()
    assert _drive(gate).succeeded and not gate.ready and gate.restart_needed
    assert "Restart Slicer" in gate.message
    assert not gate.ensure() and "Restart Slicer" in gate.message and len(questions) == 1


def test_gate_after_a_no_a_failure_or_a_cancel_records_nothing_and_plans_again(tmp_path):
    questions: list[str] = []
    declined, _ = _gate([_step("pass")], questions, answer=False)
    assert not declined.ensure() and not declined.busy and "Nothing was installed" in declined.message
    failing, plans = _gate([_step("import sys; sys.exit(1)")], questions)
    assert not failing.ensure()
    assert _drive(failing).state == "failed" and not failing.ready and "failed" in failing.message
    cancelled, _ = _gate([_step("import time; time.sleep(60)")], questions)
    assert not cancelled.ensure() and cancelled.cancel()
    assert _drive(cancelled).state == "cancelled" and not cancelled.ready
    assert not failing.ensure() and len(plans) == 2  # planned (and asked) again
    unstartable, _ = _gate([_step("pass")], questions, python=str(tmp_path / "no-python"))
    assert not unstartable.ensure() and not unstartable.busy and "could not be started" in unstartable.message
