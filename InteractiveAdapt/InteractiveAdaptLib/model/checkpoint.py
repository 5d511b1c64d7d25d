"""Weight files on disk: state dicts only, written atomically, read without running pickle code."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from InteractiveAdaptLib.errors import WeightsError


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
    """Load a dict saved by `save_state`; never unpickles arbitrary objects (weights_only=True)."""
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
