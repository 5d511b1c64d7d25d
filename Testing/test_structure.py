"""Tests that hold the extension's structure in place: CMake lists exactly what Slicer must install,
the .ui files match the module, the engine stays free of Slicer/Qt, and the package installs with pip."""

from __future__ import annotations

import ast
import fnmatch
import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "InteractiveAdapt"
LIB_DIR = MODULE_DIR / "InteractiveAdaptLib"
LAB_DIR = REPO / "interactive_adapt_lab"
WEB_DIR = REPO / "interactive_adapt_web"
MODULE_FILE = MODULE_DIR / "InteractiveAdapt.py"
MODULE_CMAKE = MODULE_DIR / "CMakeLists.txt"
ROOT_CMAKE = REPO / "CMakeLists.txt"
MODELS_DIR = REPO / "models"
# Only the scene adapter package may use the Slicer scene (slicer/vtk); none may use the Qt GUI layer.
SCENE_PACKAGE_DIR = LIB_DIR / "mrml"
SCENE_PACKAGES = {"slicer", "vtk", "vtkmodules"}
GUI_PACKAGES = {"qt", "ctk", "PythonQt", "PySide6", "PyQt5", "PyQt6"}
# Packages the module may not import while Slicer loads it (they may be missing until the user agrees
# to install them): the ones of requirements.txt and torch.
INSTALLED_ON_DEMAND = {"torch", "monai", "scipy", "filelock", "platformdirs"}
# Only the developer package (and the web front end, for trame) may use these; Slicer never installs them.
LAB_ONLY = {"interactive_adapt_lab", "interactive_adapt_web", "trame", "trame_slicer", "tqdm", "matplotlib"}


# ---------------------------------------------------------------- helpers


def project_files(under: Path) -> list[Path]:
    """Files under `under` that belong to the project: tracked, or new and not ignored by git."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", str(under)],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.decode()
        files = [REPO / name for name in out.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (e.g. a source archive)
        skip = {"__pycache__", ".pytest_cache", ".ruff_cache"}
        files = [p for p in under.rglob("*") if not skip & set(p.parts) and not p.name.endswith(".pyc")]
        files = [p for p in files if ".egg-info" not in str(p)]
    return sorted(p for p in files if p.is_file())


def cmake_list(text: str, variable: str, module_name: str = "InteractiveAdapt") -> list[str]:
    """Items of `set(<variable> ...)` in a CMake file, with ${MODULE_NAME} substituted."""
    match = re.search(rf"set\(\s*{variable}\s+(.*?)\)", text, re.S)
    assert match, f"set({variable} ...) not found"
    items = [line.split("#", 1)[0].strip() for line in match.group(1).splitlines()]
    return [item.replace("${MODULE_NAME}", module_name) for item in items if item]


def model_glob_patterns(text: str) -> list[str]:
    match = re.search(r"file\(GLOB_RECURSE\s+MODEL_FILES\s+(.*?)\)", text, re.S)
    assert match, "file(GLOB_RECURSE MODEL_FILES ...) not found in InteractiveAdapt/CMakeLists.txt"
    return [p.rsplit("/", 1)[1] for p in match.group(1).split() if p.startswith("${MODELS_SOURCE_DIR}/")]


def imported_names(tree: ast.AST) -> list[tuple[str, int]]:
    """(top-level package, line) of every import anywhere in a module, dynamic imports included."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.module.split(".")[0], node.lineno))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = ast.unparse(node.func)
            if func in ("importlib.import_module", "import_module", "__import__") and isinstance(
                node.args[0].value, str
            ):
                names.append((node.args[0].value.split(".")[0], node.lineno))
    return names


def module_level_imports(path: Path) -> list[str]:
    """Dotted names imported when `path` is imported (top-level statements only, not inside functions)."""
    tree = ast.parse(path.read_text())
    package = path.parent.relative_to(MODULE_DIR).parts  # e.g. ("InteractiveAdaptLib", "mrml")
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .x import y / from ..x import y
                base = ".".join(package[: len(package) - node.level + 1])
                base += f".{node.module}" if node.module else ""
                names += [base] if node.module else [f"{base}.{alias.name}" for alias in node.names]
            elif node.module:
                names.append(node.module)
                if node.module == "InteractiveAdaptLib":
                    names += [f"InteractiveAdaptLib.{alias.name}" for alias in node.names]
    return names


# ---------------------------------------------------------------- (a) CMake names what Slicer installs


def test_module_cmake_lists_exactly_the_python_files():
    listed = cmake_list(MODULE_CMAKE.read_text(), "MODULE_PYTHON_SCRIPTS")
    present = [p.relative_to(MODULE_DIR).as_posix() for p in project_files(MODULE_DIR) if p.suffix == ".py"]
    missing = sorted(set(present) - set(listed))
    stale = sorted(set(listed) - set(present))
    hint = "edit MODULE_PYTHON_SCRIPTS in InteractiveAdapt/CMakeLists.txt"
    assert not missing, f"{hint}: add " + ", ".join(
        f"'${{MODULE_NAME}}{m[len('InteractiveAdapt') :]}'" for m in missing
    )
    assert not stale, f"{hint}: remove {stale} (no such file)"
    assert len(listed) == len(set(listed)), "a script is listed twice"


def test_module_cmake_lists_exactly_the_resources():
    listed = cmake_list(MODULE_CMAKE.read_text(), "MODULE_PYTHON_RESOURCES")
    present = [p.relative_to(MODULE_DIR).as_posix() for p in project_files(MODULE_DIR / "Resources")]
    assert sorted(set(present) - set(listed)) == [], "add these to MODULE_PYTHON_RESOURCES"
    assert sorted(set(listed) - set(present)) == [], (
        "remove these from MODULE_PYTHON_RESOURCES (no such file)"
    )
    assert {
        "Resources/Icons/InteractiveAdapt.png",
        "Resources/UI/InteractiveAdapt.ui",
        "Resources/requirements.txt",
    } <= set(listed)


def test_every_shipped_model_file_is_installed_beside_the_module():
    text = MODULE_CMAKE.read_text()
    patterns = model_glob_patterns(text)
    assert set(patterns) >= {"*.pt", "*.json", "*.md"}
    assert "DESTINATION ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}/models/${model_subdir}" in text
    files = [p.relative_to(MODELS_DIR).as_posix() for p in project_files(MODELS_DIR)]
    left_out = [f for f in files if not any(fnmatch.fnmatch(Path(f).name, p) for p in patterns)]
    assert not left_out, (
        f"models/ files CMake would not install (add their pattern to the GLOB_RECURSE): {left_out}"
    )
    for folder in {Path(f).parts[0] for f in files if len(Path(f).parts) > 1}:
        for required in ("weights.pt", "model.json"):
            assert f"{folder}/{required}" in files, f"models/{folder} lacks {required}"


def test_root_cmake_is_a_slicer_extension_with_urls_from_one_place():
    text = ROOT_CMAKE.read_text()
    for line in [
        "project(InteractiveAdapt)",
        'set(EXTENSION_CATEGORY "Segmentation")',
        "find_package(Slicer REQUIRED)",
        "include(${Slicer_USE_FILE})",
        "add_subdirectory(InteractiveAdapt)",
        "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
        "include(${Slicer_EXTENSION_CPACK})",
    ]:
        assert line in text, f"root CMakeLists.txt lacks {line}"
    order = [
        text.index(s)
        for s in ("find_package(Slicer", "add_subdirectory(", "EXTENSION_GENERATE_CONFIG", "EXTENSION_CPACK")
    ]
    assert order == sorted(order)
    urls = re.findall(r"https?://[^\s\"')]+", text)
    assert len(urls) == 1, f"the repository URL must be written once, found {urls}"
    for var in ("EXTENSION_HOMEPAGE", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        value = re.search(rf'set\({var}\s+"([^"]+)"\)', text).group(1)
        assert value.startswith("${EXTENSION_REPOSITORY"), (
            f"{var} must be built from EXTENSION_REPOSITORY_URL"
        )
    assert (
        "/Resources/InteractiveAdapt.png" in text and (REPO / "Resources" / "InteractiveAdapt.png").is_file()
    )
    assert "/Resources/Screenshot.png" in text
    for var in ("EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION", "EXTENSION_DEPENDS"):
        assert re.search(rf'set\({var}\s+"[^"]+"\)', text), f"{var} is not set"


def test_icons_are_real_128px_pngs():
    for path in (
        MODULE_DIR / "Resources/Icons/InteractiveAdapt.png",
        REPO / "Resources/InteractiveAdapt.png",
    ):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert (width, height) == (128, 128) and len(data) > 2000


FAKE_SLICER = r"""
# Stand-in for SlicerConfig.cmake: the macros the extension calls, with the real macros' checks and
# ctkMacroCompilePythonScript's install layout (no Slicer build needed).
set(Slicer_USE_FILE ${CMAKE_CURRENT_LIST_DIR}/UseSlicer.cmake)
set(Slicer_EXTENSION_GENERATE_CONFIG ${CMAKE_CURRENT_LIST_DIR}/GenerateConfig.cmake)
set(Slicer_EXTENSION_CPACK ${CMAKE_CURRENT_LIST_DIR}/CPack.cmake)
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR lib/Slicer-5.10/qt-scripted-modules)
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR lib/Slicer-5.10/qt-scripted-modules)
set(REPORT ${CMAKE_BINARY_DIR}/fake-slicer-report.txt)
file(WRITE ${REPORT} "")
macro(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(MY_SLICER "WITH_GENERIC_TESTS;WITH_SUBDIR;VERBOSE" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  if(MY_SLICER_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "Unknown keywords given to slicerMacroBuildScriptedModule(): ${MY_SLICER_UNPARSED_ARGUMENTS}")
  endif()
  foreach(f ${MY_SLICER_SCRIPTS} ${MY_SLICER_RESOURCES})
    if(NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${f})
      message(FATAL_ERROR "slicerMacroBuildScriptedModule given nonexistent file '${f}'")
    endif()
    get_filename_component(d ${f} DIRECTORY)
    install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/${f} DESTINATION ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}/${d})
  endforeach()
  file(APPEND ${REPORT} "MODULE=${MY_SLICER_NAME}\nGENERIC_TESTS=${MY_SLICER_WITH_GENERIC_TESTS}\n")
endmacro()
macro(slicer_add_python_unittest)
  cmake_parse_arguments(MY "" "SCRIPT;TESTNAME_PREFIX" "SLICER_ARGS" ${ARGN})
  file(APPEND ${REPORT} "UNITTEST=${MY_SCRIPT}\n")
endmacro()
"""
GENERATE_CONFIG = r"""
foreach(var EXTENSION_HOMEPAGE EXTENSION_CATEGORY EXTENSION_CONTRIBUTORS EXTENSION_DESCRIPTION
            EXTENSION_ICONURL EXTENSION_SCREENSHOTURLS EXTENSION_DEPENDS)
  if("${${var}}" STREQUAL "")
    message(FATAL_ERROR "${var} is not set")
  endif()
  file(APPEND ${REPORT} "${var}=${${var}}\n")
endforeach()
"""


@pytest.mark.slow
def test_cmake_configures_and_installs_module_resources_and_models(tmp_path):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    fake = tmp_path / "fake-slicer"
    fake.mkdir()
    (fake / "SlicerConfig.cmake").write_text(FAKE_SLICER)
    (fake / "UseSlicer.cmake").write_text("")
    (fake / "GenerateConfig.cmake").write_text(GENERATE_CONFIG)
    (fake / "CPack.cmake").write_text("")
    # Configure a copy of the project; it gets a stand-in model when models/ has none yet, so that the
    # install rule of the shipped weights always runs.
    source = tmp_path / "src"
    for path in (
        project_files(REPO / "CMakeLists.txt") + project_files(MODULE_DIR) + project_files(MODELS_DIR)
    ):
        target = source / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    if not list((source / "models").glob("*/model.json")):
        for name, data in [("weights.pt", b"weights"), ("model.json", b"{}"), ("README.md", b"# card")]:
            (source / "models" / "stand-in" / name).parent.mkdir(parents=True, exist_ok=True)
            (source / "models" / "stand-in" / name).write_bytes(data)
    build, install = tmp_path / "build", tmp_path / "install"
    configure = subprocess.run(
        [
            cmake,
            "-S",
            str(source),
            "-B",
            str(build),
            f"-DSlicer_DIR={fake}",
            "-DBUILD_TESTING=ON",
            "-G",
            "Unix Makefiles",
        ],
        capture_output=True,
        text=True,
    )
    assert configure.returncode == 0, configure.stdout + configure.stderr
    done = subprocess.run(
        [cmake, "--install", str(build), "--prefix", str(install)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr

    report = dict(line.split("=", 1) for line in (build / "fake-slicer-report.txt").read_text().splitlines())
    assert report["MODULE"] == "InteractiveAdapt" and report["GENERIC_TESTS"] == "TRUE"
    assert report["UNITTEST"] == "InteractiveAdapt.py"
    repository = "https://github.com/interactiveadapt/SlicerInteractiveAdapt"
    assert report["EXTENSION_HOMEPAGE"].startswith(repository)
    assert report["EXTENSION_ICONURL"] == f"{repository}/raw/main/Resources/InteractiveAdapt.png"
    assert report["EXTENSION_SCREENSHOTURLS"] == f"{repository}/raw/main/Resources/Screenshot.png"
    assert report["EXTENSION_DEPENDS"] in ("PyTorch", "NA")

    module_dir = install / "lib" / "Slicer-5.10" / "qt-scripted-modules"
    installed = sorted(p.relative_to(module_dir).as_posix() for p in module_dir.rglob("*") if p.is_file())
    copied = sorted(p for p in source.rglob("*") if p.is_file())
    expected = [
        p.relative_to(source / "InteractiveAdapt").as_posix()
        for p in copied
        if p.is_relative_to(source / "InteractiveAdapt")
    ]
    expected = [e for e in expected if e != "CMakeLists.txt"]
    expected += [p.relative_to(source).as_posix() for p in copied if p.is_relative_to(source / "models")]
    assert installed == sorted(expected)
    # the build tree holds the models beside the module as well (the self-test runs from there)
    built_models = build / "lib" / "Slicer-5.10" / "qt-scripted-modules" / "models"
    assert sorted(
        p.relative_to(built_models.parent).as_posix() for p in built_models.rglob("*") if p.is_file()
    ) == [e for e in sorted(expected) if e.startswith("models/")]
    # and the installed engine finds its shipped model beside itself
    found = subprocess.run(
        [sys.executable, "-c", "import sys; from InteractiveAdaptLib.model.location import find_base_model_dir as f; "
         "print(f.__code__.co_filename, f())", str(module_dir)],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(module_dir)},
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    code_file, model_dir = found.stdout.split()
    assert code_file.startswith(str(module_dir)) and model_dir.startswith(str(module_dir / "models"))


# ---------------------------------------------------------------- (b) .ui files and the module


def test_ui_files_are_well_formed_and_hold_every_widget_the_module_uses():
    ui_files = [p for p in project_files(MODULE_DIR) if p.suffix == ".ui"]
    assert ui_files
    names: set[str] = set()
    for path in ui_files:
        root = ET.parse(path).getroot()  # raises on malformed XML
        assert root.tag == "ui"
        widgets = [w.get("name") for w in root.iter("widget")]
        duplicates = {n for n in widgets if widgets.count(n) > 1}
        assert not duplicates, f"{path.name}: duplicate objectName {duplicates}"
        names |= set(widgets)
    tree = ast.parse(MODULE_FILE.read_text())
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "self.ui"
    }
    # names reached through tables and getattr(self.ui, name)
    widget_suffix = re.compile(
        r"^[a-z]\w*(Button|Selector|LineEdit|ComboBox|CheckBox|SpinBox|Label|Bar|Widget)$"
    )
    used |= {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and widget_suffix.match(n.value)
    }
    assert used, "found no widget names in the module"
    assert sorted(used - names) == [], (
        f"the module uses widgets that no .ui file defines: {sorted(used - names)}"
    )


def test_module_file_stays_thin_glue():
    lines = MODULE_FILE.read_text().splitlines()
    # About 35 widgets wired one line each and the self-test entry; behaviour (patient, structures,
    # cases, placing, installing, what the panel shows) lives in InteractiveAdaptLib where tests reach it.
    assert len(lines) < 300, (
        f"InteractiveAdapt.py has {len(lines)} lines; move behaviour into InteractiveAdaptLib"
    )
    tree = ast.parse("\n".join(lines))
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    assert {
        "InteractiveAdapt",
        "InteractiveAdaptWidget",
        "InteractiveAdaptLogic",
        "InteractiveAdaptTest",
    } <= classes
    source = "\n".join(lines)
    assert "module_help.HELP" in source and "module_help.ACKNOWLEDGEMENT" in source
    from InteractiveAdaptLib.app import module_help

    assert "You Point, I Learn" in module_help.HELP and "ICLR 2026" in module_help.ACKNOWLEDGEMENT
    assert 'self.parent.categories = ["Segmentation"]' in source
    assert 'loadUI(self.resourcePath("UI/InteractiveAdapt.ui"))' in source


# ---------------------------------------------------------------- (c) layers


def module_file(dotted: str) -> Path | None:
    """The file a dotted InteractiveAdaptLib name is loaded from (a module or a package), if any."""
    base = MODULE_DIR.joinpath(*dotted.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def scene_adapter_imports(tree: ast.AST) -> list[int]:
    """Lines that import InteractiveAdaptLib.mrml (absolute or relative, anywhere in the module)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            dotted = [module] + [f"{module}.{alias.name}" for alias in node.names]
            if any(d.split(".")[-1] == "mrml" or ".mrml." in f".{d}." for d in dotted):
                lines.append(node.lineno)
        elif isinstance(node, ast.Import) and any(".mrml" in alias.name for alias in node.names):
            lines.append(node.lineno)
    return lines


def test_only_the_mrml_package_touches_slicer_and_nothing_in_the_engine_touches_qt():
    problems = []
    assert list(SCENE_PACKAGE_DIR.glob("*.py")), "the scene adapter package is missing"
    for path in sorted(LIB_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text())
        in_scene_package = path.parent == SCENE_PACKAGE_DIR
        allowed = SCENE_PACKAGES if in_scene_package else set()
        for name, line in imported_names(tree):
            if name in GUI_PACKAGES or (name in SCENE_PACKAGES and name not in allowed):
                problems.append(f"{path.name}:{line} imports {name}")
        if not in_scene_package:
            problems += [
                f"{path.name}:{line} imports the scene adapter" for line in scene_adapter_imports(tree)
            ]
        if in_scene_package:
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and ast.unparse(node) in ("slicer.app", "slicer.modules"):
                    problems.append(
                        f"{path.name}:{node.lineno} uses {ast.unparse(node)} (needs the Slicer GUI)"
                    )
    assert not problems, (
        "layer rule broken (only mrml/ may use slicer/vtk, nothing may use Qt): " + "; ".join(problems)
    )


def test_nothing_slicer_installs_imports_the_developer_package():
    """Slicer installs InteractiveAdapt/ (CMake); training, benchmarks, the web front end and their
    tqdm/matplotlib/trame stay out."""
    assert (LAB_DIR / "__init__.py").is_file() and not (MODULE_DIR / LAB_DIR.name).exists()
    assert (WEB_DIR / "__init__.py").is_file() and not (MODULE_DIR / WEB_DIR.name).exists()
    problems = []
    for path in project_files(MODULE_DIR):
        if path.suffix == ".py":
            for name, line in imported_names(ast.parse(path.read_text())):
                if name in LAB_ONLY:
                    problems.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not problems, "the Slicer install would need the developer package: " + "; ".join(problems)


def test_slicer_can_load_the_module_before_the_engine_dependencies_are_installed():
    """Everything the module imports at load time avoids torch & co. (they are installed on first use)."""
    seen, todo, problems = set(), module_level_imports(MODULE_FILE), []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        top = name.split(".")[0]
        if top in INSTALLED_ON_DEMAND:
            problems.append(name)
        elif top == "InteractiveAdaptLib":
            path = module_file(name)
            if path is not None:
                todo += module_level_imports(path)
    assert not problems, (
        f"loading the module would import {problems}; import them inside the functions that need them"
    )


def package_imports(path: Path, text: str | None = None) -> list[tuple[str, int]]:
    """(dotted name, line) of every InteractiveAdaptLib name a file of the package imports, anywhere in it
    (inside functions too), relative and dynamic imports resolved; `from a.b import c` gives a.b and a.b.c.

    `text` stands for the file's contents when given (the file need not exist)."""
    package = path.parent.relative_to(MODULE_DIR).parts
    found = []
    for node in ast.walk(ast.parse(path.read_text() if text is None else text)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x / from ..x import y
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [node.module])])
            found += [(base, node.lineno)] + [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            dynamic = ast.unparse(node.func) in ("importlib.import_module", "import_module", "__import__")
            if dynamic and isinstance(node.args[0].value, str):
                found.append((node.args[0].value, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == "InteractiveAdaptLib"]


# Inside the package the arrows run one way: the engine builds on the model (the network, its weights);
# the image readers and the scene adapter pass plain arrays and geometry (InteractiveAdaptLib.geometry)
# and reach the engine only through the session the front ends hand them. None of these folders imports
# the engine, not even inside a function.
BELOW_THE_ENGINE = ("model", "io", "mrml")


@pytest.mark.parametrize("folder", BELOW_THE_ENGINE)
def test_folders_below_the_engine_never_import_it(folder):
    files = [p for p in project_files(LIB_DIR / folder) if p.suffix == ".py"]
    assert files, f"InteractiveAdaptLib/{folder} has no Python file"
    problems = {}  # one entry per import statement, naming the module it imports
    for path in files:
        for name, line in package_imports(path):
            if name == "InteractiveAdaptLib.engine" or name.startswith("InteractiveAdaptLib.engine."):
                problems.setdefault(f"{path.relative_to(REPO)}:{line}", f"imports {name}")
    assert not problems, (
        f"InteractiveAdaptLib/{folder} sits below the engine; move what it needs out of engine/ "
        "(the network into model/, torch-free geometry into InteractiveAdaptLib/geometry.py): "
        + "; ".join(f"{where} {what}" for where, what in problems.items())
    )


def test_package_imports_sees_every_way_of_importing_the_engine():
    """The check above is only as good as the import finder: each spelling of an engine import counts."""
    folder = LIB_DIR / "model"
    spellings = [
        "from InteractiveAdaptLib.engine.network import build_network",
        "from InteractiveAdaptLib import engine",
        "import InteractiveAdaptLib.engine.session",
        "from ..engine import network",
        "def f():\n    from ..engine.predictor import Predictor",
        "import importlib\nimportlib.import_module('InteractiveAdaptLib.engine.case')",
    ]
    for text in spellings:
        names = [name for name, _ in package_imports(folder / "probe.py", text)]  # relative to model/
        assert any(n.startswith("InteractiveAdaptLib.engine") for n in names), (text, names)
    clean = "from InteractiveAdaptLib.model.location import CARD_FILE\nfrom . import checkpoint"
    names = [name for name, _ in package_imports(folder / "probe.py", clean)]
    assert names and not any(".engine" in n for n in names)


# ---------------------------------------------------------------- (d) pip install into a throwaway venv


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv_gives_a_working_console_script(tmp_path):
    # A copy of the source tree, so that the build writes nothing into the working tree.
    source = tmp_path / "src"
    for path in (
        project_files(REPO / "pyproject.toml")
        + project_files(REPO / "README.md")
        + project_files(MODULE_DIR)
        + project_files(LAB_DIR)
        + project_files(WEB_DIR)
    ):
        target = source / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    # A fresh venv; a .pth line lends it the project venv's packages (torch, pip, setuptools, ...) as a
    # plain path, so the project's own editable install there is not active in it.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    lent = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (Path(site_packages) / "lent-project-venv.pth").write_text(lent + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--ignore-installed",
         "--no-input", "--disable-pip-version-check", str(source)],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    where = subprocess.run(
        [str(python), "-c", "import InteractiveAdaptLib; print(InteractiveAdaptLib.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(site_packages), f"imported from {where}, not from the fresh install"
    script = venv / "bin" / "interactive-adapt"
    assert script.is_file() and script.read_text().startswith(f"#!{python}")
    run = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "usage: interactive-adapt" in run.stdout
    from InteractiveAdaptLib.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert {"segment", "sites"} <= set(commands), "the user commands are missing"
    assert {"demo", "benchmark", "train"} <= set(commands), "the lab's commands did not register"
    for command in commands:
        assert command in run.stdout, f"'{command}' is missing from interactive-adapt --help"


def test_every_engine_name_the_module_uses_exists():
    """The module cannot be imported here, so check its `mrml.x`, `prefs.x`, ... against the real packages."""
    import importlib.util

    tree = ast.parse(MODULE_FILE.read_text())
    aliases, missing = {}, []
    for node in tree.body:  # from InteractiveAdaptLib[.x] import y [as z]
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "InteractiveAdaptLib":
            module = importlib.import_module(node.module)
            for a in node.names:
                is_package = hasattr(module, "__path__")
                if is_package and importlib.util.find_spec(f"{node.module}.{a.name}") is not None:
                    aliases[a.asname or a.name] = importlib.import_module(f"{node.module}.{a.name}")
                elif not hasattr(module, a.name):
                    missing.append(f"{node.module}.{a.name}")
    assert {"mrml", "prefs", "dependencies"} <= set(aliases)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if not hasattr(aliases[node.value.id], node.attr):
                missing.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    assert not missing, f"the module uses names the engine does not have: {missing}"


def test_readme_result_tables_are_the_generated_ones():
    """README figures are copied by scripts/sync_readme_results.py from the files the commands write."""
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "sync_readme_results.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def comments_and_docstrings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of the comments of a source file, and of the docstrings of a Python one."""
    text = path.read_text(errors="replace")
    if path.suffix != ".py":
        return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if "#" in line]
    found = [
        (tok.start[0], tok.string)
        for tok in tokenize.generate_tokens(io.StringIO(text).readline)
        if tok.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                found.append((node.body[0].lineno, doc))
    return found


def test_code_names_only_documents_of_this_repository():
    """A comment pointing at notes outside the repository leaves the reader with nothing to open."""
    files = project_files(REPO)
    paths = {p.relative_to(REPO).as_posix() for p in files}
    mention = re.compile(r"[\w./-]*[\w-]+\.md\b")
    sources = [p for p in files if p.suffix in (".py", ".sh", ".txt", ".cmake") or p.name == "CMakeLists.txt"]
    missing = []
    for path in sources:
        for line, text in comments_and_docstrings(path):
            for name in mention.findall(text):
                name = name.lstrip("./")
                if not any(p == name or p.endswith("/" + name) for p in paths):
                    missing.append(f"{path.relative_to(REPO)}:{line} names {name}")
    assert sources and not missing, (
        "restate what the reader needs in the repository (e.g. docs/method.md): " + "; ".join(missing)
    )


def _product_sources() -> list[Path]:
    """The Python files of what users run (the module and its package) and of the web front end."""
    return [p for p in project_files(MODULE_DIR) + project_files(WEB_DIR) if p.suffix == ".py"]


def test_no_file_of_the_product_grows_past_400_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p in _product_sources()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long, f"split these by concept (one file per concept): {long}"


def _outside_the_engine() -> list[Path]:
    engine = LIB_DIR / "engine"
    files = _product_sources() + [
        p for p in project_files(LAB_DIR) + project_files(REPO / "scripts") if p.suffix == ".py"
    ]
    return [p for p in files if engine not in p.parents]


def test_nothing_outside_the_engine_calls_a_session_s_predictor():
    """A case's prediction goes through the engine's case (or the session's predict_slice); only code that
    builds its own Predictor (training, the 2D paper reproduction) calls one."""
    found = []
    for path in _outside_the_engine():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        own = any(
            isinstance(n, ast.ImportFrom) and any(a.name == "Predictor" for a in n.names)
            for n in ast.walk(tree)
        )
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "predictor":
                found.append(f"{path.relative_to(REPO)}:{node.lineno} reaches .predictor")
            elif (
                not own
                and isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("logits", "to_native")
            ):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} calls .{node.func.attr}()")
    assert not found, found


DISPLAY_TEXT = {"description", "current_description", "status", "busy_text"}


def _is_display_text(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr in DISPLAY_TEXT) or (
        isinstance(node, ast.Name) and node.id in DISPLAY_TEXT
    )


def test_no_code_tells_jobs_or_news_apart_by_their_display_text():
    """Jobs have a kind (interaction.JobKind) and a click's news typed timings (ClickTimes): comparing or
    parsing the words shown to the user breaks as soon as the words change."""
    found = []
    for path in _outside_the_engine() + [p for p in project_files(LIB_DIR / "engine") if p.suffix == ".py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(
                _is_display_text(side) for side in [node.left, *node.comparators]
            ):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} compares display text")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in ("startswith", "endswith") and _is_display_text(node.func.value):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} matches display text")
                if node.func.attr in ("search", "match", "findall") and any(map(_is_display_text, node.args)):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} parses display text")
    assert not found, found
