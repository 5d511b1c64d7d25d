"""Draw the module icon and the extension icon (128 x 128 PNG) with matplotlib.

The picture: an axial MRI-like slice, a segmented structure in it, one green (positive) and one red
(negative) click, and a circular arrow for "learns as you go". Deterministic output.

    .venv/bin/python scripts/make_icons.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGETS = [
    REPO / "InteractiveAdapt" / "Resources" / "Icons" / "InteractiveAdapt.png",  # module icon
    REPO / "Resources" / "InteractiveAdapt.png",  # extension icon (Extensions Index)
]
SIZE_PX = 128
GREEN, RED, SEGMENT = "#27c24c", "#e53935", "#f5b700"


def _slice_image(n: int = 256) -> np.ndarray:
    """A smooth synthetic brain-like slice: skull ring, grey tissue, darker ventricles."""
    y, x = np.mgrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j]
    head = (x / 0.78) ** 2 + (y / 0.92) ** 2
    image = np.where(head < 1, 0.55, 0.0)
    image = np.where((head < 1) & (head > 0.84), 0.95, image)  # skull / scalp
    folds = 0.08 * np.sin(9 * np.arctan2(y, x)) * np.exp(-((np.sqrt(head) - 0.7) ** 2) / 0.02)
    image = np.where(head < 0.84, image + folds, image)
    ventricles = ((x - 0.12) / 0.1) ** 2 + (y / 0.28) ** 2 < 1
    ventricles |= ((x + 0.12) / 0.1) ** 2 + (y / 0.28) ** 2 < 1
    return np.clip(np.where(ventricles, 0.18, image), 0, 1)


def draw(path: Path) -> None:
    """Write one icon."""
    fig = plt.figure(figsize=(1, 1), dpi=SIZE_PX)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.add_patch(
        FancyBboxPatch(
            (0.03, 0.03), 0.94, 0.94, boxstyle="round,pad=0,rounding_size=0.16", fc="#1d2633", ec="none"
        )
    )
    ax.imshow(_slice_image(), cmap="gray", extent=(0.1, 0.9, 0.1, 0.9), zorder=2, interpolation="bilinear")
    y, x = np.mgrid[0.1:0.9:200j, 0.1:0.9:200j]
    structure = ((x - 0.43) / 0.17) ** 2 + ((y - 0.56) / 0.21) ** 2 < 1
    overlay = np.zeros((*structure.shape, 4))
    overlay[structure] = matplotlib.colors.to_rgba(SEGMENT, 0.55)
    ax.imshow(overlay, extent=(0.1, 0.9, 0.1, 0.9), origin="lower", zorder=3)
    ax.contour(x, y, structure.astype(float), levels=[0.5], colors=[SEGMENT], linewidths=1.4, zorder=4)
    for (cx, cy), color in (((0.42, 0.57), GREEN), ((0.66, 0.36), RED)):
        ax.add_patch(Circle((cx, cy), 0.055, fc=color, ec="white", lw=1.3, zorder=5))
    ax.add_patch(
        FancyArrowPatch(
            (0.86, 0.62),
            (0.62, 0.88),
            connectionstyle="arc3,rad=0.45",
            arrowstyle="-|>,head_length=5,head_width=4",
            color="#7fd3ff",
            lw=2.4,
            zorder=6,
        )  # fmt: skip
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=SIZE_PX, transparent=True, metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    for path in TARGETS:
        draw(path)
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
