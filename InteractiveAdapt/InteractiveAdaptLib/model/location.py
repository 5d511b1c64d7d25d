"""Where the shipped base model is and what its folder holds; torch-free, so the module can ask early.

A model is a folder models/<name>/ with the weights (a state dict) and the model card (config,
sha256, provenance). Installed in Slicer, CMake puts models/ beside the module file; in a source
checkout it is the repository's top-level models/.
"""

from __future__ import annotations

from pathlib import Path

from InteractiveAdaptLib.errors import WeightsError

WEIGHTS_FILE = "weights.pt"
CARD_FILE = "model.json"
MODELS_FOLDER = "models"
# The folder of the module file InteractiveAdapt.py (this file is InteractiveAdaptLib/model/location.py).
MODULE_DIR = Path(__file__).resolve().parents[2]


def is_model_dir(path: Path) -> bool:
    """True when `path` holds a model card and weights."""
    return (path / CARD_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def model_search_roots(module_dir: str | Path = MODULE_DIR) -> list[Path]:
    """Where shipped models are looked for: beside the installed module, then <checkout>/models."""
    module_dir = Path(module_dir)
    return [module_dir / MODELS_FOLDER, module_dir.parent / MODELS_FOLDER]


def find_base_model_dir(name: str | None = None, module_dir: str | Path = MODULE_DIR) -> Path:
    """The folder of the shipped base model `name` (or the first one by name when None).

    Args:
        name: a model folder name such as "colin27-unet-default"; None takes the first one found.
        module_dir: the folder of the module file; the default is this installation's.

    Returns:
        The model folder, holding the weights and the model card.

    Raises:
        WeightsError: no such model is installed (the message says where it looked and what to do).
    """
    roots = model_search_roots(module_dir)
    for root in roots:
        if not root.is_dir():
            continue
        if name is not None:
            if is_model_dir(root / name):
                return root / name
            continue
        candidates = sorted(p for p in root.iterdir() if p.is_dir() and is_model_dir(p))
        if candidates:
            return candidates[0]
    wanted = f"the model '{name}'" if name else "a shipped model"
    raise WeightsError(
        f"InteractiveAdapt cannot find {wanted} (looked in {', '.join(str(r) for r in roots)}). "
        "Reinstall the InteractiveAdapt extension, or in a source checkout run the set-up so that "
        f"models/<name>/{WEIGHTS_FILE} and {CARD_FILE} exist."
    )
