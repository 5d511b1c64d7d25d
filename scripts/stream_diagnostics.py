"""What the benchmark streams' targets look like to the network, beside how far clicks get on them.

Explains why some streams plateau: for every stream of benchmarks/results/adaptation-*.json it reads
the cases of each case order (the benchmark's own order seeds) and measures, per case, the target's
area in pixels at the stream's working resolution, its connected components, and its border contrast
(|mean inside - mean outside| over 3-pixel bands either side of the border, divided by their pooled
standard deviation). Beside them: Dice after 20 clicks without adaptation and with the default, from
the committed partial runs. Writes benchmarks/results/stream-diagnostics.md.

    .venv/bin/python scripts/stream_diagnostics.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "InteractiveAdapt"))

from interactive_adapt_lab.data.datasets import load_domain  # noqa: E402
from interactive_adapt_lab.data.streams import STREAMS  # noqa: E402
from interactive_adapt_lab.evaluation.adaptation_benchmark import run_curves  # noqa: E402
from InteractiveAdaptLib.geometry import in_plane_spacing  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
BAND_PX = 3


def border_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    inside = mask & ~ndimage.binary_erosion(mask, iterations=BAND_PX)
    outside = ndimage.binary_dilation(mask, iterations=BAND_PX) & ~mask
    pooled = image[inside | outside].std()
    return float(abs(image[inside].mean() - image[outside].mean()) / max(pooled, 1e-6))


def stream_row(name: str, result: dict) -> str:
    stream = STREAMS[name]
    domain = load_domain(stream.domain)
    areas, components, contrasts = [], [], []
    for order in range(result["orders"]):
        for case in stream.cases(domain, result["cases"], seed=1000 + order):
            mask, image = case.mask(domain), case.image(domain)
            pixel_mm2 = np.prod(in_plane_spacing(domain.spacing_kji, case.axis))
            areas.append(mask.sum() * pixel_mm2 / stream.working_spacing_mm**2)
            components.append(ndimage.label(mask)[1])
            contrasts.append(border_contrast(image, mask))
    at_20 = {}
    for method in ("none", "default"):
        runs = sorted((RESULTS / "partial" / name).glob(f"{method}-order*-n{result['cases']}.json"))
        at_20[method] = np.concatenate([run_curves(json.loads(p.read_text())) for p in runs])[:, -1].mean()
    return (
        f"| {name} | {result['kind']} | {stream.working_spacing_mm:g} mm | {np.median(areas):.0f} "
        f"| {np.median(components):.0f} | {np.mean(contrasts):.2f} | {at_20['none']:.3f} | {at_20['default']:.3f} |"
    )


def main() -> int:
    rows = [
        "| stream | kind | working resolution | target area, median (px) | components, median "
        "| border contrast, mean | Dice@20 none | Dice@20 default |",
        "|---" * 8 + "|",
    ]
    for path in sorted(RESULTS.glob("adaptation-*.json")):
        result = json.loads(path.read_text())
        rows.append(stream_row(result["stream_name"], result))
        print(rows[-1])
    text = (
        "# What the stream targets look like to the network\n\n"
        "Written by `.venv/bin/python scripts/stream_diagnostics.py` (see its docstring for the measures), "
        "over every case of every order of each stream.\n\n" + "\n".join(rows) + "\n"
    )
    (RESULTS / "stream-diagnostics.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
