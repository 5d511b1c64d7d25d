"""A site's stream of 3D cases under a shift, learning (MI after each click, PI on the accepted 3D result,
one profile per structure) and not learning (the same cases: the control).

A site sends one kind of image (a synthetic T2-like or PD-like MNI152, the INIA19 macaque); each case is
one structure of the shifted head, seen as another patient would be: the head under a seeded small
rotation, scaling and shift, with its own bias field. The structures repeat (both sides share a profile),
so a profile meets its structure again and again. After the stream, each profile is measured on its own
structure in the source domain (Colin27), against the shipped weights: what learning the site cost it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from interactive_adapt_lab.data.datasets import Domain, load_domain, structure_of
from interactive_adapt_lab.evaluation.volumetric_methods import (
    MAX_CLICKS,
    ProductCase,
    make_session,
    noc,
    play_case,
)
from interactive_adapt_lab.evaluation.volumetric_structures import COMPACT
from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
from InteractiveAdaptLib.engine.normalization import normalize_intensity

CASES = 40
SHIFTS = ("mni152-t2", "mni152-pd", "inia19")
INIA19_STRUCTURES = (55, 193, 54, 147, 196)  # the five largest NeuroMaps structures of both hemispheres
FORGETTING_CLICKS = 5


def stream_pool(domain_name: str) -> list[str]:
    """The structures a site of this shift segments (both sides)."""
    if domain_name == "inia19":
        return [f"neuromaps:{n + side}" for n in INIA19_STRUCTURES for side in (0, 1000)]
    return [f"aal:{name}_{side}" for name in COMPACT for side in ("L", "R")]


def stream_cases(domain_name: str, order: int, count: int = CASES) -> list[str]:
    """The targets of a stream in a seeded order: every structure equally often, shuffled in rounds."""
    pool, rng, cases = stream_pool(domain_name), np.random.default_rng(2000 + order), []
    while len(cases) < count:
        cases += [pool[i] for i in rng.permutation(len(pool))]
    return cases[:count]


def patient(domain: Domain, target: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The head as another patient of the site: rotated up to 8 degrees, scaled 0.95-1.05, shifted up to
    4 mm, with a smooth bias field; (normalised image, target mask)."""
    rng = np.random.default_rng(seed)
    rotation = Rotation.from_rotvec(
        rng.normal(size=3) / np.sqrt(3) * np.radians(rng.uniform(0, 8))
    ).as_matrix()
    spacing = np.asarray(domain.spacing_kji)
    matrix = np.diag(1 / spacing) @ (rotation * rng.uniform(0.95, 1.05)) @ np.diag(spacing)
    centre = (np.asarray(domain.image.shape) - 1) / 2
    offset = centre - matrix @ centre + rng.uniform(-4, 4, 3) / spacing
    image = ndimage.affine_transform(domain.image, matrix, offset, order=1, mode="nearest")
    mask = ndimage.affine_transform(domain.target_mask(target).astype(np.uint8), matrix, offset, order=0) > 0
    coarse = rng.normal(size=(3, 3, 3))
    bias = ndimage.zoom(coarse, np.asarray(image.shape) / 3, order=1)[tuple(slice(0, n) for n in image.shape)]
    image = (image - image.min()) * np.exp(0.2 * bias / max(np.abs(bias).max(), 1e-6))
    return normalize_intensity(image), mask


def run_stream(
    model_dir: Path,
    domain_name: str,
    order: int,
    learn: bool,
    partial: Path,
    count: int = CASES,
    max_clicks: int = MAX_CLICKS,
) -> dict:
    """One order of one shift's stream, learning or not (resumable: a finished run is kept in `partial`)."""
    path = partial / ("learning" if learn else "control") / f"{domain_name}-order{order}.json"
    if path.is_file():
        return json.loads(path.read_text())
    domain = load_domain(domain_name)
    session = make_session(model_dir, learn=learn)
    method = ProductCase(session, "volume-network", interpolate=None)
    cases = []
    targets = stream_cases(domain_name, order, count)
    for n, target in enumerate(targets):
        image, mask = patient(domain, target, seed=10_000 * order + n)
        curve, seconds = play_case(
            method, image, domain.spacing_kji, mask, order, structure_of(target), learn
        )
        summary = method.last_summary
        cases.append({"case": target, "curve": curve, "seconds": seconds, "learn_ms": summary.learn_ms})
    result = {"cases": cases}
    if learn:
        result["forgetting"] = forgetting(session, model_dir, sorted({structure_of(t) for t in targets}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return result


def forgetting(session, model_dir: Path, profiles: list[str]) -> dict[str, float | None]:
    """Per profile: 3D Dice after FORGETTING_CLICKS clicks on its own structure (left side) in Colin27
    with the shipped weights minus with the profile's learned weights (None where Colin27 has no such
    structure, e.g. a macaque's)."""
    colin = load_domain("colin27")
    base = ProductCase(make_session(model_dir), "volume-network", interpolate=None)
    session.config.adaptation = AdaptationConfig(mid_interaction=False, post_interaction=False)
    learned = ProductCase(session, "volume-network", interpolate=None)
    out: dict[str, float | None] = {}
    for profile in profiles:
        target = f"{profile}_L"
        if target not in colin.targets:
            out[profile] = None
            continue
        mask = colin.target_mask(target)
        scores = []
        for method in (base, learned):
            curve, _ = play_case(
                method, colin.image, colin.spacing_kji, mask, 0, profile, max_clicks=FORGETTING_CLICKS
            )
            scores.append(curve[FORGETTING_CLICKS - 1])
        out[profile] = round(scores[0] - scores[1], 4)
    return out


def summarize_streams(
    model_dir: Path,
    orders: int,
    partial: Path,
    shifts=SHIFTS,
    count: int = CASES,
    max_clicks: int = MAX_CLICKS,
) -> dict:
    """Per shift: NoC3D@80 over the first and second half of the stream, learning and control (the same
    cases), and the largest forgetting of a profile."""
    out = {}
    for shift in shifts:
        rows = {}
        for learn in (False, True):
            runs = [
                run_stream(model_dir, shift, order, learn, partial, count, max_clicks)
                for order in range(orders)
            ]
            nocs = [[noc(c["curve"], 0.80) for c in run["cases"]] for run in runs]
            half = len(nocs[0]) // 2
            rows["learning" if learn else "control"] = {
                "cases_per_order": len(nocs[0]),
                "noc@80_first_half": round(float(np.mean([n[:half] for n in nocs])), 2),
                "noc@80_second_half": round(float(np.mean([n[half:] for n in nocs])), 2),
                "dice@10": round(float(np.mean([c["curve"][9] for run in runs for c in run["cases"]])), 4),
                "learn_seconds_per_case": round(
                    float(np.mean([c["learn_ms"] for run in runs for c in run["cases"]])) / 1000, 2
                ),
            }
            if learn:
                drops = [v for run in runs for v in run["forgetting"].values() if v is not None]
                rows["learning"]["max_forgetting"] = round(max(drops), 4) if drops else None
        out[shift] = rows
    return out
