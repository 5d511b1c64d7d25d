"""Left and right of one structure learn together: a learning profile is named without the side.

Both sides look alike in the image (mirror anatomy), so one profile learns from twice as many cases;
the benchmark measured this (benchmarks/results/adaptation.md: the default against one profile per side).
"""

from __future__ import annotations

import re

# A side word: a whole token between separators (space, '_', '-', '.', ':') or the ends of the name.
_SIDE = re.compile(r"(?i)(?:^|[\s_\-.:])(?:left|right|l|r|lh|rh|lt|rt)(?=$|[\s_\-.:])")


def without_side(name: str) -> str:
    """'Hippocampus Left', 'Left hippocampus' and 'Hippocampus_L' -> 'Hippocampus'. A name that is
    only a side word, or has none, comes back unchanged (outer spaces removed)."""
    name = name.strip()
    stripped = _SIDE.sub("", name).strip(" _-.:")
    if not stripped or stripped == name:
        return name
    # 'Left hippocampus' names the same profile as 'Hippocampus left'.
    return stripped[0].upper() + stripped[1:] if _SIDE.match(name) else stripped
