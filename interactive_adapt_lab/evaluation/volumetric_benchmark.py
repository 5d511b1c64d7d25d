"""`interactive-adapt bench-volumetric`: whole structures in 3D, clicked by a simulated user.

A case is one structure in one real volume. The simulated user looks at the 3D result, takes the slice
(along the acquisition's axial axis) with the most wrong voxels, and clicks the centre of the largest
error component there (positive on a miss, negative on a spill), as the 2D benchmark's user does on
one slice; the first click goes to the centre of the structure's largest cross-section. Up to
MAX_CLICKS clicks; after each one the 3D Dice of what the method shows is recorded.

Methods (each a way of turning clicks into a 3D mask, with the shipped network and no learning):
- `per-slice`: the module before 3D: a click segments its own slice only.
- `fill-between-k<K>`: the user clicks only every K-th slice (the largest-error one among them) and
  ITK's morphological contour interpolation (the filter behind Slicer's "Fill between slices") fills the
  slices between the clicked ones; the report names the best K.

Figures per method and structure: Dice3D after 1, 3, 5 and 10 clicks, NoC3D@80/85/90 (MAX_CLICKS when
never reached) and seconds of compute per case; several case orders (click-position seeds) are averaged.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from interactive_adapt_lab.data.cases import aal_pair_split
from interactive_adapt_lab.data.datasets import Domain, aal_pair, load_domain
from InteractiveAdaptLib.engine.click_simulation import first_click, next_click
from InteractiveAdaptLib.interaction import Click

log = logging.getLogger(__name__)

# ITK's pool threader crashes the process at exit once it has run (seen with Slicer's ITK here); the
# platform threader does the same work without the pool. ITK reads this when it first threads.
os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Platform")

MAX_CLICKS = 30
DICE_AT = (1, 3, 5, 10)
NOC_LEVELS = (0.80, 0.85, 0.90)
AXIS = 0  # the volumes' K axis: axial slices for Colin27 and MNI152 as stored
FILL_STEPS = (2, 3, 5)
DEFAULT_OUTPUT = Path("benchmarks/results/volumetric.json")
# (domain, target, kind): compact structures with visible borders, and cortical parcels.
STRUCTURES = [
    ("colin27", "aal:Caudate_L", "compact"),
    ("colin27", "aal:Putamen_R", "compact"),
    ("colin27", "aal:Thalamus_L", "compact"),
    ("colin27", "aal:Hippocampus_R", "compact"),
    ("colin27", "aal:Amygdala_L", "compact"),
    ("colin27", "brain", "compact"),
    ("colin27", "aal:Frontal_Mid_Orb_L", "cortical"),
    ("colin27", "aal:Temporal_Mid_R", "cortical"),
    ("mni152", "aal:Caudate_R", "compact"),
    ("mni152", "aal:Putamen_L", "compact"),
    ("mni152", "aal:Thalamus_R", "compact"),
    ("mni152", "aal:Hippocampus_L", "compact"),
    ("mni152", "aal:Amygdala_R", "compact"),
    ("mni152", "brain", "compact"),
    ("mni152", "aal:Frontal_Mid_Orb_R", "cortical"),
    ("mni152", "aal:Temporal_Mid_L", "cortical"),
]

Interpolate = Callable[[np.ndarray, int], np.ndarray]


def dice3d(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two 3D masks (1.0 when both are empty)."""
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def trained_on(domain: Domain, target: str) -> str:
    """Whether the shipped model learned this structure: 'yes' (training split), 'no' (validation or
    test split of the AAL pairs), for the brain 'yes'."""
    if target == "brain":
        return "yes"
    _, label = domain.targets[target]
    return "yes" if aal_pair(label) in aal_pair_split()["train"] else "no"


def contour_interpolation(mask: np.ndarray, axis: int) -> np.ndarray:
    """Fill the slices between the labelled slices of `mask` (along `axis`) with ITK's morphological
    contour interpolation, through Slicer's vtkITK wrapper (the Slicer core of the test tier). Only the
    box around the labelled voxels (one voxel of margin) is handed to ITK: the result is the same."""
    filled = np.zeros(mask.shape, bool)
    if not mask.any():
        return filled
    box = tuple(
        slice(max(int(ix.min()) - 1, 0), int(ix.max()) + 2)
        for ix in (np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != d))) for d in range(3))
    )
    filled[box] = _itk_interpolation(mask[box], axis)
    return filled


def _itk_interpolation(mask: np.ndarray, axis: int) -> np.ndarray:
    import slicer
    import vtk
    from vtkmodules.util import numpy_support

    image = vtk.vtkImageData()
    image.SetDimensions(mask.shape[2], mask.shape[1], mask.shape[0])
    values = np.ascontiguousarray(mask.astype(np.uint8)).ravel()
    image.GetPointData().SetScalars(
        numpy_support.numpy_to_vtk(values, deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
    )
    interpolator = slicer.vtkITKMorphologicalContourInterpolator()
    interpolator.SetInputData(image)
    interpolator.SetAxis(2 - axis)  # VTK counts x (I), y (J), z (K)
    interpolator.Update()
    out = numpy_support.vtk_to_numpy(interpolator.GetOutput().GetPointData().GetScalars())
    return out.reshape(mask.shape) > 0


class PerSlice:
    """Each click segments its own slice (every click of that slice counts); nothing else changes."""

    name = "per-slice"

    def __init__(self, session) -> None:
        self.session = session

    def reset(self) -> None:
        """A new case."""

    def allowed(self, target: np.ndarray) -> np.ndarray:
        """The slices the user may click (all)."""
        return np.ones(target.shape[AXIS], bool)

    def click(self, click: Click, shown: np.ndarray) -> np.ndarray:
        prediction = self.session.add_click(click)
        shown = shown.copy()
        np.moveaxis(shown, prediction.axis, 0)[prediction.index] = prediction.mask > 0
        return shown


class FillBetween(PerSlice):
    """The user clicks every k-th slice; contour interpolation fills the slices between clicked ones.

    After a click only the gaps next to its slice are interpolated again (ITK fills each gap from the
    two labelled slices around it): the same result as interpolating the whole stack, in a fraction of
    the time for large structures such as the brain.
    """

    def __init__(self, session, step: int, interpolate: Interpolate = contour_interpolation) -> None:
        super().__init__(session)
        self.step, self.interpolate = step, interpolate
        self.name = f"fill-between-k{step}"
        self._clicked: np.ndarray | None = None  # the clicked slices' masks (empty elsewhere)
        self._filled: np.ndarray | None = None

    def reset(self) -> None:
        self._clicked = self._filled = None

    def allowed(self, target: np.ndarray) -> np.ndarray:
        """Every k-th slice, counted from the structure's largest cross-section (where the user starts)."""
        areas = np.moveaxis(target, AXIS, 0).reshape(target.shape[AXIS], -1).sum(axis=1)
        start = int(np.argmax(areas))
        return (np.arange(target.shape[AXIS]) - start) % self.step == 0

    def click(self, click: Click, shown: np.ndarray) -> np.ndarray:
        if self._clicked is None or self._clicked.shape != shown.shape:
            self._clicked, self._filled = np.zeros(shown.shape, bool), np.zeros(shown.shape, bool)
        prediction = self.session.add_click(click)
        index = prediction.index
        clicked = np.moveaxis(self._clicked, AXIS, 0)
        clicked[index] = prediction.mask > 0
        labelled = np.flatnonzero(clicked.any(axis=(1, 2)))
        low = max((int(n) for n in labelled if n < index), default=index)
        high = min((int(n) for n in labelled if n > index), default=index)
        filled = np.moveaxis(self._filled, AXIS, 0)
        filled[low : high + 1] = np.moveaxis(
            self.interpolate(np.moveaxis(clicked[low : high + 1], 0, AXIS), AXIS), AXIS, 0
        )
        return self._filled.copy()


class Propagate(PerSlice):
    """A click segments its slice; the slices around it are then filled by propagation along the axis.

    Every clicked slice is a source. Between two clicked slices, each one's result travels towards the
    other until the stop rule ends it, and a slice takes the result of the nearer source that reached
    it (slices reached by neither stay empty); beyond the outermost clicked slices the result travels
    outwards until it stops. A click re-propagates only the gaps next to its slice. An empty clicked
    slice (e.g. a negative click that removed a spill) is a border, never a source.

    Each next slice is predicted from one positive pseudo-click at the deepest point of the previous
    slice's mask and kept within `grow_mm` of it. Propagation stops when: the new mask keeps less than
    `min_area_ratio` of the previous area; fewer than `intensity_fraction` of its voxels lie within the
    5th-95th percentile of the source slice's intensities inside its mask (the network, given a positive
    click, always finds something: the image must agree); or it is `extent` source diameters away from
    the source (a structure's extent along the axis is like its size across). With
    `interpolate_between`, a gap between two non-empty clicked slices is filled by contour interpolation
    instead.

    Under study, not among the benchmark's methods yet: in first runs on Colin27 it beat both baselines
    after one click on the thalamus, hippocampus and an orbitofrontal parcel, but stalled on the caudate
    below per-slice clicking.
    """

    def __init__(
        self,
        session,
        grow_mm: float = 3.0,
        min_area_ratio: float = 0.3,
        intensity_fraction: float = 0.8,
        extent: float = 1.0,
        interpolate_between: bool = False,
        keep_pseudo_click: bool = True,
        negative_ring: bool = False,
        name: str = "propagate",
    ) -> None:
        super().__init__(session)
        self.grow_mm, self.min_area_ratio = grow_mm, min_area_ratio
        self.intensity_fraction, self.extent = intensity_fraction, extent
        self.interpolate_between, self.name = interpolate_between, name
        self.keep_pseudo_click, self.negative_ring = keep_pseudo_click, negative_ring
        self.confirmed: dict[int, np.ndarray] = {}
        self.pseudo: dict[int, list[tuple[float, float, bool]]] = {}  # propagated slice -> its pseudo-clicks

    def reset(self) -> None:
        self.confirmed, self.pseudo = {}, {}

    def click(self, click: Click, shown: np.ndarray) -> np.ndarray:
        prediction = self.session.add_click(click)
        index = prediction.index
        mask = prediction.mask > 0
        if self.keep_pseudo_click and index in self.pseudo:
            # A click on a propagated slice corrects it: the propagation's click stays with the user's.
            key = (AXIS, index)
            prepared = self.session.prepared_slice(key)
            clicks = self.pseudo[index] + self.session.slice_clicks(key)
            mask = (
                self.session.predictor.to_native(self.session.predictor.logits(prepared, clicks), prepared)
                > 0
            )
        self.confirmed[index] = mask
        shown = shown.copy()
        shown[index] = self.confirmed[index]
        clicked = sorted(self.confirmed)
        position = clicked.index(index)
        below = clicked[position - 1] if position > 0 else None
        above = clicked[position + 1] if position + 1 < len(clicked) else None
        self._fill_gap(shown, below, index)
        self._fill_gap(shown, index, above)
        return shown

    def _fill_gap(self, shown: np.ndarray, low: int | None, high: int | None) -> None:
        """Fill the slices strictly between `low` and `high` (None: the volume's end)."""
        first = 0 if low is None else low + 1
        last = shown.shape[0] - 1 if high is None else high - 1
        if first > last:
            return
        shown[first : last + 1] = False
        sources = [s for s in (low, high) if s is not None and self.confirmed[s].any()]
        if self.interpolate_between and len(sources) == 2:
            sparse = np.zeros((high - low + 1, *shown.shape[1:]), bool)
            sparse[0], sparse[-1] = self.confirmed[low], self.confirmed[high]
            shown[low : high + 1] = contour_interpolation(sparse, 0)
            return
        reached: dict[int, tuple[int, np.ndarray, list]] = {}  # slice -> (distance, mask, pseudo-clicks)
        for source in sources:
            direction = 1 if source == low else -1
            for n, mask, pseudo in self._travel(source, direction, first, last):
                distance = abs(n - source)
                if n not in reached or distance < reached[n][0]:
                    reached[n] = (distance, mask, pseudo)
        for n in range(first, last + 1):
            self.pseudo.pop(n, None)
        for n, (_, mask, pseudo) in reached.items():
            shown[n], self.pseudo[n] = mask, pseudo

    def _travel(self, source: int, direction: int, first: int, last: int):
        """(slice, mask) from the source outwards until the stop rule, within [first, last]."""
        from scipy import ndimage

        image, spacing = self.session._volume, self.session._spacing
        mask = self.confirmed[source]
        low, high = np.percentile(image[source][mask], (5, 95))
        area_mm2 = mask.sum() * spacing[1] * spacing[2]
        max_steps = max(2, int(self.extent * 2 * np.sqrt(area_mm2 / np.pi) / spacing[0]))
        grow = max(1, round(self.grow_mm / min(spacing[1], spacing[2])))
        n, previous = source + direction, mask
        while first <= n <= last and abs(n - source) <= max_steps:
            pseudo = self._pseudo_clicks(previous, grow)
            prepared = self.session.prepared_slice((AXIS, n))
            logits = self.session.predictor.logits(prepared, pseudo)
            new = (self.session.predictor.to_native(logits, prepared) > 0) & ndimage.binary_dilation(
                previous, iterations=grow
            )
            if new.sum() < self.min_area_ratio * previous.sum():
                return
            values = image[n][new]
            if np.mean((values >= low) & (values <= high)) < self.intensity_fraction:
                return
            yield n, new, pseudo
            n, previous = n + direction, new

    def _pseudo_clicks(self, previous: np.ndarray, grow: int) -> list[tuple[float, float, bool]]:
        """A positive click at the previous mask's deepest point; with `negative_ring`, also one negative
        click in each of 8 directions on a ring just outside the reach of `grow` pixels."""
        from scipy import ndimage

        depth = ndimage.distance_transform_edt(np.pad(previous, 1))[1:-1, 1:-1]
        row, col = np.unravel_index(int(np.argmax(depth)), previous.shape)
        clicks = [(float(row), float(col), True)]
        if self.negative_ring:
            reach = ndimage.binary_dilation(previous, iterations=grow)
            ring = ndimage.binary_dilation(reach, iterations=2) & ~reach
            rows, cols = np.nonzero(ring)
            if len(rows):
                centre = np.argwhere(previous).mean(axis=0)
                angles = np.arctan2(rows - centre[0], cols - centre[1])
                bins = ((angles + np.pi) / (2 * np.pi) * 8).astype(int) % 8
                distance = np.hypot(rows - centre[0], cols - centre[1])
                for b in range(8):
                    members = np.flatnonzero(bins == b)
                    if len(members):
                        nearest = members[np.argmin(distance[members])]
                        clicks.append((float(rows[nearest]), float(cols[nearest]), False))
        return clicks


def play_case(
    method, image: np.ndarray, spacing_kji, target: np.ndarray, seed: int
) -> tuple[list[float], float]:
    """One case: (3D Dice after each click, up to MAX_CLICKS; seconds of compute)."""
    rng = np.random.default_rng(seed)
    allowed = method.allowed(target)
    shown = np.zeros(target.shape, bool)
    method.session.start_case(image, spacing_kji, "benchmark", normalized=True)
    method.reset()
    curve, compute = [], 0.0
    areas = np.moveaxis(target, AXIS, 0).reshape(target.shape[AXIS], -1).sum(axis=1)
    index = int(np.argmax(areas))
    click = first_click(np.take(target, index, AXIS), "center", rng)
    while click is not None and len(curve) < MAX_CLICKS:
        row, col, positive = click
        started = time.perf_counter()
        shown = method.click(Click(AXIS, index, row, col, positive), shown)
        compute += time.perf_counter() - started
        curve.append(dice3d(shown, target))
        errors = np.moveaxis(shown != target, AXIS, 0).reshape(target.shape[AXIS], -1).sum(axis=1)
        errors[~allowed] = 0
        if not errors.any():
            break
        index = int(np.argmax(errors))
        click = next_click(np.take(shown, index, AXIS), np.take(target, index, AXIS), "center", rng)
    method.session.finish_case(learn=False)
    curve += [curve[-1] if curve else 0.0] * (MAX_CLICKS - len(curve))  # nothing left to click: it stays
    return curve, compute


def noc(curve: list[float], level: float) -> int:
    """Clicks to reach `level` 3D Dice (MAX_CLICKS when never reached)."""
    hit = np.flatnonzero(np.asarray(curve) >= level)
    return int(hit[0]) + 1 if len(hit) else MAX_CLICKS


def summarize(curves: list[list[float]], seconds: list[float]) -> dict:
    """The figures of one method on one structure, averaged over the orders."""
    mean = np.mean(np.asarray(curves), axis=0)
    out = {f"dice@{n}": round(float(mean[n - 1]), 4) for n in DICE_AT}
    for level in NOC_LEVELS:
        out[f"noc@{round(level * 100)}"] = round(float(np.mean([noc(c, level) for c in curves])), 2)
    out["seconds_per_case"] = round(float(np.mean(seconds)), 2)
    return out


def make_session(model_dir: Path):
    """The shipped network in a session that does not learn (the baselines' clicks only)."""
    from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
    from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
    from InteractiveAdaptLib.model.base_model import load_base_model

    config = SessionConfig(adaptation=AdaptationConfig(mid_interaction=False, post_interaction=False))
    return InteractiveSession(load_base_model(model_dir), config)


def run_benchmark(
    model_dir: Path,
    structures=STRUCTURES,
    orders: int = 3,
    steps=FILL_STEPS,
    cache_dir: Path | None = None,
) -> dict:
    """Every method on every structure, `orders` click seeds each."""
    session = make_session(model_dir)
    methods = [PerSlice(session)] + [FillBetween(session, k) for k in steps]
    results: dict = {m.name: {"structures": {}} for m in methods}
    domains: dict[str, Domain] = {}
    for domain_name, target, kind in structures:
        domain = domains.setdefault(domain_name, load_domain(domain_name, cache_dir))
        mask = domain.target_mask(target)
        name = f"{domain_name}:{target}"
        for method in methods:
            curves, seconds = [], []
            for order in range(orders):
                curve, compute = play_case(method, domain.image, domain.spacing_kji, mask, seed=order)
                curves.append(curve)
                seconds.append(compute)
            figures = summarize(curves, seconds)
            figures.update(kind=kind, domain=domain_name, trained=trained_on(domain, target))
            results[method.name]["structures"][name] = figures
            log.info("%s %s: %s", method.name, name, figures)
    fill = [m.name for m in methods if m.name.startswith("fill-between")]
    # Fewest clicks to 80 % (median over structures); most 3D Dice after 10 clicks where that ties.
    best = (
        min(fill, key=lambda n: (_median(results[n], "noc@80"), -_median(results[n], "dice@10")))
        if fill
        else None
    )
    if best is not None:
        results["fill-between"] = {"structures": results[best]["structures"], "best_of": fill, "step": best}
    return results


def _median(method: dict, key: str, kind: str | None = None) -> float:
    values = [s[key] for s in method["structures"].values() if kind is None or s["kind"] == kind]
    return float(np.median(values)) if values else float("nan")


def report_markdown(result: dict) -> str:
    """Tables: medians per method and kind, then every structure."""
    lines = [
        "# Whole structures in 3D: simulated user, 3D Dice and clicks",
        "",
        f"Command: `{result['command']}`" + (" (quick: not a measurement)" if result["quick"] else ""),
        "",
        f"{result['protocol']}",
        "",
        "| method | kind | median Dice3D@1 | @3 | @5 | @10 | median NoC3D@80 | @85 | @90 | s per case |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, method in result["methods"].items():
        for kind in ("compact", "cortical"):
            cells = [f"{_median(method, f'dice@{n}', kind):.3f}" for n in DICE_AT]
            cells += [f"{_median(method, f'noc@{round(v * 100)}', kind):g}" for v in NOC_LEVELS]
            cells.append(f"{_median(method, 'seconds_per_case', kind):.1f}")
            lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| method | structure | trained on | Dice3D@1 | @10 | NoC3D@80 |",
        "|---|---|---|---|---|---|",
    ]
    for name, method in result["methods"].items():
        for structure, s in method["structures"].items():
            lines.append(
                f"| {name} | {structure} | {s['trained']} | {s['dice@1']:.3f} | {s['dice@10']:.3f} | {s['noc@80']:g} |"
            )
    return "\n".join(lines) + "\n"


def register(subparsers) -> None:
    p = subparsers.add_parser("bench-volumetric", help="3D Dice and clicks per structure (simulated user)")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file; a .md beside it")
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    p.add_argument("--orders", type=int, default=3, help="click-position seeds per structure")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="two structures, one order (CI; never the results)")
    p.set_defaults(func=_command)


def _command(args) -> int:
    import torch

    from InteractiveAdaptLib.model.location import find_base_model_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    structures = STRUCTURES[:1] + STRUCTURES[6:7] if args.quick else STRUCTURES
    orders = 1 if args.quick else args.orders
    steps = FILL_STEPS[:1] if args.quick else FILL_STEPS
    model_dir = Path(args.model or find_base_model_dir())
    methods = run_benchmark(model_dir, structures, orders, steps)
    options = f"--orders {orders}" + (" --quick" if args.quick else "")
    result = {
        "command": f"interactive-adapt bench-volumetric {options}",
        "quick": bool(args.quick),
        "machine": {
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
        "model": model_dir.name,
        "protocol": (
            f"Simulated user: first click at the centre of the largest axial cross-section, then the centre of "
            f"the largest error component on the axial slice with the most wrong voxels; {MAX_CLICKS} clicks "
            f"at most; {orders} click seed(s) per structure; shipped network without learning."
        ),
        "methods": methods,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    args.output.with_suffix(".md").write_text(report_markdown(result))
    print(report_markdown(result), file=sys.stdout)
    return 0
