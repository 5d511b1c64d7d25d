"""A finished case gives its freed memory back to the operating system (real heap, real RSS)."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import numpy as np
from InteractiveAdaptLib.engine.memory import release_freed_memory

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))

blocks = [np.ones(25_000, np.float32) for _ in range(4000)]  # 400 MB of 100 kB heap blocks
del blocks[:-1]  # the last one stays, so the heap cannot simply shrink from its top
before = rss_mb()
release_freed_memory()
print(before - rss_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim is Linux only")
def test_freed_heap_memory_goes_back_to_the_os():
    released = float(subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                                    check=True).stdout)  # fmt: skip
    assert released > 200  # MB of the 400 freed
