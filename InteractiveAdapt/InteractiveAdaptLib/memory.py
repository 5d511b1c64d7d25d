"""Give the memory a finished case no longer needs back to the operating system.

A case keeps up to `undo_depth` snapshots of the weights and the Adam state for undo. When the case
ends they are freed, but glibc keeps the freed heap pages mapped, so the process's memory drifts up
and down by hundreds of MB with the paper-size network although nothing leaks (bench-speed's soak:
270 MB "growth" over 500 clicks, flat at the first case's size with a trim after every case).
"""

from __future__ import annotations

import ctypes
import functools
import sys


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None  # other allocators return memory on their own terms
    try:
        return getattr(ctypes.CDLL("libc.so.6"), "malloc_trim", None)  # None on musl
    except OSError:
        return None


def release_freed_memory() -> None:
    """Return freed heap pages to the OS (glibc's malloc_trim); does nothing where there is none."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
