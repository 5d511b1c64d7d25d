"""User preferences of the Slicer module, where site weights live, and the session they open.

Pure Python: the module maps `ModuleSettings` to `qt.QSettings` (every value comes back as a string
there), so `from_dict` accepts strings as well as typed values. Site and user names follow the store's
rule (`store.names.check_name`), so that a name the store would refuse is never saved.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from InteractiveAdaptLib.errors import InteractiveAdaptError
from InteractiveAdaptLib.store.names import check_name

log = logging.getLogger(__name__)

SETTINGS_GROUP = "InteractiveAdapt"
STORE_FOLDER_NAME = "InteractiveAdapt"
DEVICES = ("auto", "cpu", "cuda")
LEARNING_RATE_RANGE = (1e-7, 1e-2)
WORKING_SPACING_RANGE_MM = (0.25, 2.0)


@dataclass
class ModuleSettings:
    """What the module remembers between Slicer sessions (not per scene)."""

    site: str = "default"
    user: str = ""
    device: str = "auto"
    learning_rate: float = 5e-5
    mid_interaction: bool = True
    post_interaction: bool = True
    # The pixel size the network sees: 1 mm for human anatomy; finer for small anatomy (animals,
    # newborns), where the benchmark's macaque stream needs 0.5 mm.
    working_spacing_mm: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain values, one key per field (the module writes them under SETTINGS_GROUP)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, strict: bool = False) -> ModuleSettings:
        """Read settings saved by `to_dict` (or by QSettings as strings), or typed into the panel.

        Args:
            strict: refuse a bad value (what the user just typed: the panel shows the error and saves
                nothing) instead of falling back to its default with a warning (values saved earlier,
                e.g. by an older version, must never keep the module from loading).

        Raises:
            InteractiveAdaptError: (strict only) a site or user name the site store would refuse; the
                message says what is wrong and what to type instead.
            ValueError: (strict only) another value that is not valid (e.g. a learning rate out of range).
        """
        settings = cls()
        for field in fields(cls):
            if field.name not in values or values[field.name] is None:
                continue
            raw = values[field.name]
            try:
                value = _PARSERS[field.name](raw)
            except (TypeError, ValueError, InteractiveAdaptError) as exc:
                if strict:
                    raise
                log.warning(
                    "Ignoring saved setting %s=%r (%s); using %r",
                    field.name,
                    raw,
                    exc,
                    getattr(settings, field.name),
                )
                continue
            setattr(settings, field.name, value)
        return settings


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a yes/no value")


def _parse_device(raw: Any) -> str:
    device = str(raw).strip().lower()
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}")
    return device


def _number_in(limits: tuple[float, float], what: str, unit: str = ""):
    """A parser of a number within `limits` (ends included)."""

    def parse(raw: Any) -> float:
        value = float(raw)
        low, high = limits
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"{what} must be between {low:g} and {high:g}{unit}")
        return value

    return parse


# Shared with `interactive-adapt segment --working-spacing`.
parse_working_spacing = _number_in(WORKING_SPACING_RANGE_MM, "working resolution", " mm")


def _parse_site(raw: Any) -> str:
    """A site name the store accepts (cleaned as the store cleans it); raises SiteStoreError otherwise."""
    return check_name(str(raw), "site")


def _parse_user(raw: Any) -> str:
    """A user name the store accepts, or '' (no user: the site's shared weights)."""
    user = str(raw).strip()
    return check_name(user, "user") if user else ""


_PARSERS = {
    "site": _parse_site,
    "user": _parse_user,
    "device": _parse_device,
    "learning_rate": _number_in(LEARNING_RATE_RANGE, "learning rate"),
    "mid_interaction": _parse_bool,
    "post_interaction": _parse_bool,
    "working_spacing_mm": parse_working_spacing,
}


def site_store_root(user_settings_file: str | Path) -> Path:
    """Folder of all site weights: <folder of Slicer's user settings file>/InteractiveAdapt."""
    return Path(user_settings_file).expanduser().resolve().parent / STORE_FOLDER_NAME


def resolve_device(choice: str, cuda_available: bool) -> str:
    """The torch device to use for a user choice of auto / cpu / cuda."""
    choice = _parse_device(choice)
    if choice == "cuda" and not cuda_available:
        raise InteractiveAdaptError(
            "CUDA was selected but no NVIDIA GPU is usable on this computer. "
            "Choose 'Auto' or 'CPU' under Advanced."
        )
    if choice == "auto":
        return "cuda" if cuda_available else "cpu"
    return choice


# ---------------------------------------------------------------- the session the module drives


def open_session(
    settings: ModuleSettings,
    store_root: str | Path,
    model_dir: str | Path,
    cuda_available: bool | None = None,
) -> Any:
    """The engine session for these settings: shipped base model, site store, the user's preferences."""
    import torch  # the engine's imports wait until the dependencies are known to be installed

    from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
    from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
    from InteractiveAdaptLib.model.base_model import load_base_model
    from InteractiveAdaptLib.store.site_store import SiteStore

    cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    adaptation = AdaptationConfig(
        lr=settings.learning_rate,
        mid_interaction=settings.mid_interaction,
        post_interaction=settings.post_interaction,
    )
    config = SessionConfig(
        adaptation=adaptation,
        device=resolve_device(settings.device, cuda),
        target_spacing_mm=settings.working_spacing_mm,
    )
    log.info(
        "Opening a session: site %r, user %r, device %s, model %s",
        settings.site,
        settings.user,
        config.device,
        model_dir,
    )
    return InteractiveSession(
        load_base_model(model_dir),
        config,
        store=SiteStore(store_root),
        site=settings.site,
        user=settings.user or None,
    )
