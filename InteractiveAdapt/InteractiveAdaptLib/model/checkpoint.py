"""Weight files on disk: state dicts only, written atomically, read without running pickle code."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from InteractiveAdaptLib.errors import TorchTooOldError, WeightsError

# torch.load(weights_only=True) is bypassable before 2.6 (GHSA-53q9-r3pm-6pq6, CVE-2025-32434), and
# later weights-only advisories are treated as fixed from 2.10: below it, a weight file (an imported
# site, say) could run code. The Slicer installer asks for the same floor (app/torch_install.py).
MIN_TORCH = (2, 10)


def torch_version(text: str) -> tuple[int, int] | None:
    """(major, minor) of a torch version string ('2.13.0+cpu' -> (2, 13)); None when unreadable."""
    match = re.match(r"\s*(\d+)\.(\d+)", str(text))
    return (int(match.group(1)), int(match.group(2))) if match else None


def require_safe_torch(version: str | None = None) -> None:
    """Refuse to read weights with a torch whose weights-only loading is known to be bypassable.

    Args:
        version: the torch version to judge; None = the one in use (torch.__version__).

    Raises:
        TorchTooOldError: the version is older than MIN_TORCH (or cannot be read).
    """
    version = str(torch.__version__ if version is None else version)
    found = torch_version(version)
    if found is not None and found >= MIN_TORCH:
        return
    floor = ".".join(map(str, MIN_TORCH))
    raise TorchTooOldError(
        f"PyTorch {version} is in use, but InteractiveAdapt reads weight files only with PyTorch {floor} "
        "or newer: older versions can be made to run code hidden in a weight file (an imported site, "
        "for example). Update PyTorch (in Slicer, InteractiveAdapt offers to when you next use it; "
        f"elsewhere: pip install 'torch>={floor}'), then restart. No weight file was read."
    )


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically save a (nested) dict of tensors and plain values with torch.save."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: str | Path) -> dict[str, Any]:
    """Load a dict saved by `save_state`; never unpickles arbitrary objects (weights_only=True).

    Raises:
        TorchTooOldError: the torch in use is older than MIN_TORCH (its weights-only loading is bypassable).
        WeightsError: the file is missing, damaged or holds no state dict.
    """
    require_safe_torch()
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"The weight file '{path}' is missing.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/foreign files
        raise WeightsError(
            f"The weight file '{path.name}' is damaged or is not an InteractiveAdapt weight file "
            f"({type(exc).__name__}). Roll back to an earlier version or reinstall the model."
        ) from exc
    if not isinstance(state, dict):
        raise WeightsError(f"The weight file '{path.name}' does not hold a state dict.")
    return state
