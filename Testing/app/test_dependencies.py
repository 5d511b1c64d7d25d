"""Dependency check and install plan for Slicer (the parts that need no slicer.app)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from InteractiveAdaptLib.app import dependencies as deps
from InteractiveAdaptLib.errors import InteractiveAdaptError

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "InteractiveAdapt" / "Resources" / "requirements.txt"


def _pyproject_specs() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    specs = {}
    for spec in data["project"]["dependencies"]:
        req = deps.requirement_from_spec(spec)
        specs[req.name.lower()] = spec.replace(" ", "")
    return specs


def test_requirements_txt_matches_pyproject_and_leaves_torch_to_slicer_pytorch():
    requirements = deps.read_requirements(REQUIREMENTS)
    names = {r.name.lower() for r in requirements}
    assert "torch" not in names  # SlicerPyTorch (or the first install step) provides it
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


def test_can_import_tells_present_from_missing_modules():
    assert deps.can_import("json")
    assert not deps.can_import("interactive_adapt_no_such_module")


def test_nothing_to_install_when_everything_imports():
    plan = deps.build_install_plan(deps.read_requirements(REQUIREMENTS), importable=lambda name: True)
    assert not plan.needed and plan.missing == []
    assert "All Python packages" in plan.confirmation_text()


def test_missing_torch_goes_through_slicer_pytorch_first_then_pip():
    requirements = deps.read_requirements(REQUIREMENTS)
    missing = {"torch", "monai"}
    plan = deps.build_install_plan(
        requirements, lambda name: name not in missing, slicer_pytorch_available=True
    )
    assert [s.kind for s in plan.steps] == ["slicer-pytorch", "pip"]
    assert plan.steps[1].packages == tuple(r.spec for r in requirements if r.import_name == "monai")
    text = plan.confirmation_text()
    assert "torch" in text and "monai" in text and "Install now?" in text


def test_missing_torch_without_slicer_pytorch_is_pip_installed_before_the_rest():
    requirements = deps.read_requirements(REQUIREMENTS)
    plan = deps.build_install_plan(
        requirements, lambda name: name in {"scipy"}, slicer_pytorch_available=False
    )
    assert [s.kind for s in plan.steps] == ["pip", "pip"]
    assert plan.steps[0].packages == (deps.TORCH_REQUIREMENT,)
    assert "Extensions Manager" in plan.steps[0].description
    assert "scipy" not in " ".join(plan.steps[1].packages)


def test_only_pip_when_torch_is_there():
    plan = deps.build_install_plan(deps.read_requirements(REQUIREMENTS), lambda name: name != "filelock")
    assert [(s.kind, s.packages) for s in plan.steps] == [("pip", ("filelock>=3.13,<5",))]


def test_run_install_plan_calls_the_installers_in_order_with_progress():
    plan = deps.build_install_plan(
        deps.read_requirements(REQUIREMENTS),
        lambda name: name not in {"torch", "filelock"},
        slicer_pytorch_available=True,
    )
    calls: list[tuple] = []
    deps.run_install_plan(
        plan,
        pip_install=lambda args: calls.append(("pip", args)),
        install_torch=lambda version: calls.append(("torch", version)) or object(),
        progress=lambda done, total, text: calls.append(("progress", done, total)),
    )
    assert calls == [
        ("progress", 0, 2),
        ("torch", ">=2.4"),
        ("progress", 1, 2),
        ("pip", ["filelock>=3.13,<5"]),
        ("progress", 2, 2),
    ]


def test_a_cancelled_torch_install_stops_with_a_clear_message():
    plan = deps.build_install_plan([], lambda name: False, slicer_pytorch_available=True)
    with pytest.raises(InteractiveAdaptError, match="PyTorch was not installed"):
        deps.run_install_plan(plan, pip_install=lambda args: None, install_torch=lambda version: None)
    with pytest.raises(ValueError, match="install_torch"):
        deps.run_install_plan(plan, pip_install=lambda args: None)


def test_install_only_after_the_user_says_yes():
    plan = deps.build_install_plan([deps.requirement_from_spec("tqdm>=4.66,<5")], lambda name: name != "tqdm")
    installed: list = []
    assert not deps.install_if_confirmed(plan, confirm=lambda text: False, pip_install=installed.append)
    assert installed == []
    questions: list[str] = []
    assert deps.install_if_confirmed(plan, lambda text: questions.append(text) or True, installed.append)
    assert installed == [["tqdm>=4.66,<5"]] and "tqdm" in questions[0]
    nothing = deps.build_install_plan([], lambda name: True)
    assert deps.install_if_confirmed(nothing, confirm=lambda text: 1 / 0, pip_install=lambda a: 1 / 0)
