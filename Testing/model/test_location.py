"""Where the shipped base model is found: beside the installed module, or in a source checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from InteractiveAdaptLib.errors import WeightsError
from InteractiveAdaptLib.model.location import MODULE_DIR, find_base_model_dir, model_search_roots


def _fake_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.json").write_text("{}")
    (folder / "weights.pt").write_bytes(b"x")
    return folder


def test_base_model_found_beside_the_installed_module(tmp_path):
    module_dir = tmp_path / "lib" / "Slicer-5.10" / "qt-scripted-modules"
    installed = _fake_model(module_dir / "models" / "unet-small")
    assert find_base_model_dir(module_dir=module_dir) == installed
    assert find_base_model_dir("unet-small", module_dir) == installed


def test_base_model_found_in_a_source_checkout(tmp_path):
    repo = tmp_path / "SlicerInteractiveAdapt"
    module_dir = repo / "InteractiveAdapt"
    module_dir.mkdir(parents=True)
    _fake_model(repo / "models" / "b-model")
    first = _fake_model(repo / "models" / "a-model")
    (repo / "models" / "notes").mkdir()  # not a model folder
    assert find_base_model_dir(module_dir=module_dir) == first
    assert find_base_model_dir("b-model", module_dir) == repo / "models" / "b-model"


def test_missing_base_model_says_what_to_do(tmp_path):
    with pytest.raises(WeightsError, match="Reinstall the InteractiveAdapt extension"):
        find_base_model_dir(module_dir=tmp_path / "InteractiveAdapt")
    _fake_model(tmp_path / "models" / "other")
    with pytest.raises(WeightsError, match="the model 'wanted'"):
        find_base_model_dir("wanted", tmp_path / "InteractiveAdapt")


def test_repository_models_folder_is_found_from_the_module_folder():
    repo = Path(__file__).resolve().parents[2]
    assert MODULE_DIR == repo / "InteractiveAdapt"
    assert repo / "models" in model_search_roots()
    assert find_base_model_dir().parent == repo / "models"
