"""`interactive-adapt bench-slicer-loop`: what a user waits for inside Slicer, and how long the GUI freezes.

Slicer's main thread holds Python's GIL while its Qt loop idles, so the module's worker thread only runs
while the main thread is in Python (slicer_main_loop.py emulates that loop). This benchmark runs the
module's own path under that loop: a real MRML scene (slicer-core) holding the Colin27 T1, the shipped
network in a session opened as the module opens it, the module's Workflow (CaseManager ->
ClickController -> Worker), and the module's timer calling `Worker.tick()`. Points are added on the main
thread with AddControlPointWorld, as a left click in the Red view places them, where a simulated user
(centre of the largest error) would click, after a think time from the moment the last click's first
result (its slice) was shown, whatever the worker is still doing (queueing behind filling and learning
counts); each case ends with Finish case (post-interaction learning) and the next case starts on
another structure.

Figures: click (point defined) to mask written in the segment, as the controller reports it
(`ClickController.last_click`); the GUI's longest stall (one main-thread callback: a timer tick, the
click itself, the Finish button) from a click until the next one, which includes its mid-interaction
learning step, and from Finish case until its result is applied. Rendering is not included: there are
no views here. A few clicks under the design before the GIL-aware timer (a plain poll every 50 ms)
are measured as a baseline, each after the worker went idle.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interactive_adapt_lab.slicer_core import load_volume, make_core

log = logging.getLogger(__name__)

MRICRON = Path("/usr/share/mricron/templates")  # Debian package mricron-data
MRI_FILE = MRICRON / "ch2.nii.gz"  # Colin27 T1
ATLAS_FILE = MRICRON / "aal.nii.gz"  # AAL labels on the same grid
# (AAL structure, segment name): a case each, in turn; the segment name picks the learning profile.
STRUCTURES = [
    ("Temporal_Mid_R", "Middle temporal gyrus"),
    ("SupraMarginal_L", "Supramarginal gyrus"),
    ("Precentral_L", "Precentral gyrus"),
    ("Frontal_Sup_R", "Superior frontal gyrus"),
    ("Temporal_Sup_R", "Superior temporal gyrus"),
    ("Occipital_Inf_R", "Inferior occipital gyrus"),
]
# Between opening the module and choosing the first structure the clinician loads and opens the study;
# the module loads the network on the worker meanwhile (Workflow.preload_session, called from enter()).
STUDY_LOADING_S = 3.0
SECOND_SLICE_OFFSET = 6  # voxels below the largest cross-section: the case's second clicked slice
TARGET_P95_MS = 100.0
TARGET_STALL_MS = 150.0
DEFAULT_OUTPUT = Path("benchmarks/results/slicer_loop.json")


# ---------------------------------------------------------------- the scene


def _red_slice_node(scene: Any) -> Any:
    """An axial slice view node, as Slicer's Red view has."""
    node = scene.AddNewNodeByClass("vtkMRMLSliceNode", "Red")
    node.SetLayoutName("Red")
    node.SetOrientationToAxial()
    return node


# ---------------------------------------------------------------- one run


@dataclass
class RunFigures:
    """What one run measured (milliseconds)."""

    clicks: list[dict] = field(default_factory=list)
    finishes: list[dict] = field(default_factory=list)
    case_starts: list[dict] = field(default_factory=list)
    module_open: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class _LearningClock:
    """Wraps the session's learn_pending (run on the worker) to time each mid-interaction step."""

    def __init__(self, session: Any) -> None:
        self._learn_pending = session.learn_pending
        self.steps: list[tuple[float, float]] = []  # (start, end), perf_counter
        session.learn_pending = self  # the controller submits session.learn_pending

    def __call__(self) -> bool:
        started = time.perf_counter()
        ran = self._learn_pending()
        if ran:
            self.steps.append((started, time.perf_counter()))
        return ran


class _BenchmarkRun:
    """One scene, session and emulated main loop; cases are played on it one after the other."""

    def __init__(self, model_dir: Path, store: str, gil_aware: bool, timeout_s: float) -> None:
        from interactive_adapt_lab.data.datasets import aal_names
        from interactive_adapt_lab.evaluation.slicer_main_loop import SlicerMainLoop, attach_worker
        from InteractiveAdaptLib import mrml
        from InteractiveAdaptLib.app.settings import ModuleSettings
        from InteractiveAdaptLib.app.worker import Worker

        self.model_dir, self.store, self.timeout_s = model_dir, store, timeout_s
        self.core = make_core()
        self.volume = load_volume(self.core.scene, MRI_FILE, "Colin27 T1")
        atlas = load_volume(self.core.scene, ATLAS_FILE, "AAL atlas")
        self.atlas_labels = mrml.volume_array(atlas)
        self.core.scene.RemoveNode(atlas)  # the user's scene holds the MRI only
        self.red = _red_slice_node(self.core.scene)
        self.geometry = mrml.volume_geometry(self.volume)
        self.labels = {name: label for label, name in aal_names().items()}
        self.figures = RunFigures()
        self.clocks: list[_LearningClock] = []
        self.loop = SlicerMainLoop(hold_gil=True)
        self.worker = Worker()
        attach_worker(self.loop, self.worker, gil_aware=gil_aware)
        # The module's panel, without Qt: every question answered Yes, news to the log.
        self.workflow = mrml.Workflow(
            self.core.scene,
            self.worker,
            self._open_session,
            ModuleSettings(site="Benchmark site", device="cpu"),
            ask=lambda question: True,
            on_status=lambda text: log.debug("%s", text),
            on_error=self._on_error,
        )
        self.workflow.set_volume(self.volume)  # the user chose the patient

    def _open_session(self, settings: Any) -> Any:
        from InteractiveAdaptLib.app.settings import open_session

        session = open_session(settings, self.store, self.model_dir, cuda_available=False)
        self.clocks.append(_LearningClock(session))
        return session

    def _on_error(self, error: BaseException, traceback: str) -> None:
        self.figures.errors.append(str(error))

    def _run_until(self, done: Any) -> None:
        """Run the emulated loop until `done()`; an error the module reported ends the wait at once."""
        if not self.loop.run_until(lambda: bool(self.figures.errors) or done(), self.timeout_s):
            raise TimeoutError(f"The emulated main loop did not get there within {self.timeout_s} s.")
        if self.figures.errors:
            raise RuntimeError(f"The module reported errors: {self.figures.errors}")

    def open_module(self, loading_s: float) -> None:
        """The module opens (its enter() preloads the network on the worker) and the user spends
        `loading_s` loading the study: the GUI's longest stall meanwhile, and whether the network is in."""
        started = time.perf_counter()
        self.loop.call_later(0.0, self.workflow.preload_session, "module opened")
        self.loop.run_for(loading_s)
        if self.figures.errors:
            raise RuntimeError(f"The module reported errors: {self.figures.errors}")
        self.figures.module_open = {
            "loading_s": loading_s,
            "stall_ms": _ms(self.loop.longest_stall(since=started)),
            "network_loaded": self.workflow.session_ready,
        }

    def play_case(
        self, case: int, clicks: int, think_s: float, wait_idle_before_click: bool, finish: bool = True
    ) -> None:
        """Start a case on a new structure, click like the simulated user, then Finish case (if `finish`)."""
        from InteractiveAdaptLib import mrml

        structure, segment_name = STRUCTURES[case % len(STRUCTURES)]
        target = self.atlas_labels == self.labels[structure]
        started = time.perf_counter()
        previous = self.workflow.cases.controller
        self.loop.call_later(0.0, lambda: self._start_case(f"{segment_name} {case}"), "case start")
        self._run_until(lambda: self.workflow.cases.controller is not previous and not self.worker.busy)
        self.figures.case_starts.append(
            {
                "case": case,
                "stall_ms": _ms(self.loop.longest_stall(since=started)),
                "ready_ms": _ms(time.perf_counter() - started),
            }
        )
        controller = self.workflow.cases.controller
        axis = mrml.slice_axis(self.red, self.geometry)
        areas = np.moveaxis(target, axis, 0).reshape(target.shape[axis], -1).sum(axis=1)
        largest = int(np.argmax(areas))
        slices = [largest, max(0, largest - SECOND_SLICE_OFFSET)]
        rng = np.random.default_rng(case)
        shown_at = time.perf_counter()
        records: list[dict] = []
        for n in range(clicks):
            index = slices[0 if n < (clicks + 1) // 2 else 1]
            click = self._next_click(controller, target, axis, index, rng)
            if click is None:
                continue  # this slice is perfect: nothing to correct
            if wait_idle_before_click:
                self._run_until(lambda: not self.worker.busy)
                shown_at = time.perf_counter()
            clicked_at = shown_at + think_s
            self.loop.call_at(
                clicked_at, lambda click=click: self._mouse_click(controller, *click), "mouse click"
            )
            before = len(controller.records)
            controller.last_click = None
            self._run_until(
                lambda n=before: (
                    len(controller.records) > n
                    and controller.records[-1].applied
                    and controller.last_click is not None
                )
            )
            wait_ms = controller.last_click.slice_ms
            # The user thinks from the click's first result on, whatever the worker still does: the
            # next click may queue behind the filling and the learning, and that wait is counted.
            shown_at = time.perf_counter()
            self._run_until(lambda: controller.last_click.fill_ms is not None)
            records.append(
                {
                    "case": case,
                    "slice": [axis, index],
                    "positive": bool(click[1]),
                    "wait_ms": round(wait_ms, 1),
                    "fill_ms": round(controller.last_click.fill_ms, 1),
                    "clicked_at": clicked_at,
                }
            )
        if finish:
            end = self._finish(case, shown_at + think_s)
        else:
            self._run_until(lambda: not self.worker.busy)
            end = time.perf_counter()
        # Each click's window lasts until the next click (or the Finish button): its MI step is in it.
        ends = [r["clicked_at"] for r in records[1:]] + [end]
        for record, end in zip(records, ends, strict=True):
            clicked_at = record.pop("clicked_at")
            worst = self.loop.worst_stall(since=clicked_at, until=end)
            record["stall_ms"] = _ms(worst.duration_s) if worst else 0.0
            record["stall_in"] = worst.label if worst else ""
            steps = [e - s for s, e in self.clocks[-1].steps if clicked_at <= s < end]
            record["mi_ms"] = _ms(steps[0]) if steps else None
        self.figures.clicks += records

    def _finish(self, case: int, finish_at: float) -> float:
        """Press Finish case at `finish_at` (after a last look) and wait for its result; returns finish_at."""
        finished: list[Any] = []
        self.loop.call_at(
            finish_at, lambda: self.workflow.finish(learn=True, on_done=finished.append), "finish case"
        )
        self._run_until(lambda: bool(finished) and not self.worker.busy)
        if not finished[0].ok:
            self.figures.errors.append(finished[0].traceback or "Finish case was cancelled")
        worst = self.loop.worst_stall(since=finish_at)
        self.figures.finishes.append(
            {
                "case": case,
                "stall_ms": _ms(worst.duration_s) if worst else 0.0,
                "stall_in": worst.label if worst else "",
                "finish_ms": _ms(time.perf_counter() - finish_at),
                "slices_learned": getattr(finished[0].value, "slices_learned", 0),
            }
        )
        return finish_at

    def _start_case(self, structure_name: str) -> None:
        """What naming a structure (Add) and pressing a point button do: the case opens on it."""
        self.workflow.add_structure(structure_name)
        self.workflow.prepare_case()

    def _next_click(self, controller: Any, target: np.ndarray, axis: int, index: int, rng: Any) -> Any:
        """Where the simulated user clicks next on this slice, as RAS, and whether it is positive."""
        from InteractiveAdaptLib import mrml
        from InteractiveAdaptLib.engine.click_simulation import first_click, next_click

        slice_target = np.take(target, index, axis)
        shown = mrml.read_slice(
            controller.segmentation_node, controller.segment_id, self.geometry, axis, index
        )
        click = (
            next_click(shown, slice_target, "center", rng)
            if shown.any()
            else first_click(slice_target, "center", rng)
        )
        if click is None:
            return None
        row, col, positive = click
        ras = self.geometry.kji_to_world(np.insert(np.array([row, col], float), axis, index))
        self.red.JumpSliceByOffsetting(*ras)  # the user scrolled the Red view to this slice
        return ras, positive

    def _mouse_click(self, controller: Any, ras: np.ndarray, positive: bool) -> None:
        """The point a left click in the Red view defines, added on the main thread."""
        import vtk

        node = controller.positive_node if positive else controller.negative_node
        node.AddControlPointWorld(vtk.vtkVector3d(*ras))

    def close(self) -> None:
        """End the last case without learning and stop the worker (outside the emulated loop: at full
        speed, whatever the timer design)."""
        try:
            self.workflow.close()
            self.worker.drain(self.timeout_s)
        finally:
            self.worker.shutdown(timeout=60)


def run_cases(
    model_dir: Path,
    cases: int,
    clicks_per_case: int,
    think_s: float,
    gil_aware: bool = True,
    wait_idle_before_click: bool = False,
    finish: bool = True,
    timeout_s: float = 600.0,
    preload_s: float | None = STUDY_LOADING_S,
) -> RunFigures:
    """Segment `cases` structures of Colin27 in a fresh scene under the emulated Slicer main loop.

    Args:
        model_dir: the base model folder.
        cases: structures segmented one after the other (STRUCTURES, in turn).
        clicks_per_case: clicks of each case, half on the structure's largest axial cross-section, half
            SECOND_SLICE_OFFSET slices below.
        think_s: from a mask shown (or the case ready) to the next click, and to Finish case.
        gil_aware: the module's timer calls Worker.tick (True) or the old plain poll every 50 ms.
        wait_idle_before_click: think only once the worker is idle (no queueing behind learning).
        finish: end each case with Finish case (learning); else the case is dropped without learning.
        timeout_s: the longest any step may take.
        preload_s: the module opens this long before the first case (it loads the network on the
            worker meanwhile); None: no module opening, the first case opens the session itself.
    """
    with tempfile.TemporaryDirectory() as store:
        run = _BenchmarkRun(model_dir, store, gil_aware, timeout_s)
        try:
            if preload_s is not None:
                run.open_module(preload_s)
            for case in range(cases):
                run.play_case(case, clicks_per_case, think_s, wait_idle_before_click, finish)
        finally:
            run.close()
        return run.figures


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {
        "n": len(values),
        "p50": round(float(np.percentile(values, 50)), 1),
        "p95": round(float(np.percentile(values, 95)), 1),
        "max": round(float(max(values)), 1),
    }


def summarize(figures: RunFigures) -> dict:
    """Percentiles of a run. The run's first click (cold: first forward pass of the process) is apart."""
    waits = [c["wait_ms"] for c in figures.clicks]
    mi = [c["mi_ms"] for c in figures.clicks if c.get("mi_ms") is not None]
    return {
        "clicks": len(waits),
        "first_click_ms": waits[0] if waits else None,
        "click_to_mask_ms": _stats(waits[1:]),
        "click_to_filled_ms": _stats([c["fill_ms"] for c in figures.clicks][1:]),
        "click_stall_ms": _stats([c["stall_ms"] for c in figures.clicks]),
        "mi_step_ms": _stats(mi),
        "finish_stall_ms": _stats([f["stall_ms"] for f in figures.finishes]),
        "finish_ms": _stats([f["finish_ms"] for f in figures.finishes]),
        # The module loads the network on the worker when it opens; the first case start then only waits
        # for what is left of it (all of it when the module did not open first).
        "module_open": figures.module_open,
        "first_case_start_stall_ms": figures.case_starts[0]["stall_ms"] if figures.case_starts else None,
        "case_start_stall_ms": _stats([s["stall_ms"] for s in figures.case_starts[1:]]),
        "errors": figures.errors,
    }


# ---------------------------------------------------------------- the command


def register(subparsers) -> None:
    """Add the bench-slicer-loop command."""
    p = subparsers.add_parser(
        "bench-slicer-loop",
        help="click-to-mask latency and GUI stalls under an emulation of Slicer's GIL-holding main loop",
    )
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file; a .md beside it")
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    p.add_argument("--cases", type=int, default=5)
    p.add_argument("--clicks", type=int, default=8, help="clicks per case (on two slices)")
    p.add_argument("--think-s", type=float, default=1.0, help="from a mask shown to the next click")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument(
        "--baseline-clicks", type=int, default=3, help="clicks under the old plain 50 ms poll (0: none)"
    )
    p.add_argument("--quick", action="store_true", help="1 case of 3 clicks, short think time, no baseline")
    p.set_defaults(func=_command)


def _command(args) -> int:
    import torch

    from InteractiveAdaptLib.app.worker import BUSY_INTERVAL_MS, IDLE_INTERVAL_MS, TICK_BUDGET_S
    from InteractiveAdaptLib.model.location import find_base_model_dir

    if args.quick:
        args.cases, args.clicks, args.think_s, args.baseline_clicks = 1, 3, 0.05, 0
    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = Path(args.model or find_base_model_dir())
    model_card = json.loads((model_dir / "model.json").read_text())
    loading_s = 0.5 if args.quick else STUDY_LOADING_S
    figures = run_cases(model_dir, args.cases, args.clicks, args.think_s, preload_s=loading_s)
    result = {
        "command": _command_line(args),
        "quick": bool(args.quick),
        "machine": {
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "model": {"name": model_card.get("name", model_dir.name), "config": model_card.get("config", {})},
        "protocol": {
            "image": f"Colin27 T1 ({MRI_FILE.name}), {'x'.join(map(str, _image_shape()))} voxels",
            "cases": args.cases,
            "clicks_per_case": args.clicks,
            "structures": [STRUCTURES[case % len(STRUCTURES)][0] for case in range(args.cases)],
            "think_time_s": args.think_s,
            "main_loop": "GIL held while idle (usleep through ctypes.PyDLL); timer -> Worker.tick()",
            "tick_budget_ms": TICK_BUDGET_S * 1000,
            "busy_interval_ms": BUSY_INTERVAL_MS,
            "idle_interval_ms": IDLE_INTERVAL_MS,
            "clicks": "AddControlPointWorld on the main thread, simulated user (centre of the largest error)",
            "module_opened_s_before_first_case": loading_s,
            "not_included": "rendering (no views)",
        },
        "targets": {"click_to_mask_p95_ms": TARGET_P95_MS, "stall_ms": TARGET_STALL_MS},
        "results": summarize(figures),
    }
    r = result["results"]
    stalls = [r["click_stall_ms"]["max"], r["finish_stall_ms"]["max"]]
    result["meets_targets"] = {
        "click_to_mask_p95": r["click_to_mask_ms"]["p95"] is not None
        and r["click_to_mask_ms"]["p95"] <= TARGET_P95_MS,
        "stall": all(s is not None and s <= TARGET_STALL_MS for s in stalls),
    }
    if args.baseline_clicks > 0:
        baseline = run_cases(
            model_dir,
            1,
            args.baseline_clicks,
            args.think_s,
            gil_aware=False,
            wait_idle_before_click=True,
            finish=False,
            preload_s=None,  # the former module opened the session on the main thread at the first case
        )
        result["baseline_plain_poll"] = {
            "design": "the module's former design: a 50 ms timer calling Worker.poll() (never waits); each click after "
            "the worker went idle; no Finish case",
            "click_to_mask_ms": _stats([c["wait_ms"] for c in baseline.clicks]),
            "errors": baseline.errors,
        }
    result["per_click"] = figures.clicks
    result["per_finish"] = figures.finishes
    result["per_case_start"] = figures.case_starts
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    markdown = args.output.with_suffix(".md")
    markdown.write_text(report_markdown(result))
    print(report_markdown(result))
    print(f"written {args.output} and {markdown}")
    return 0


def _command_line(args) -> str:
    """The command that repeats this run, every choice spelled out (whatever defaults become)."""
    parts = ["interactive-adapt bench-slicer-loop"]
    if args.quick:
        parts.append("--quick")
    else:
        parts.append(
            f"--cases {args.cases} --clicks {args.clicks} --think-s {args.think_s} "
            f"--baseline-clicks {args.baseline_clicks}"
        )
    if args.threads:
        parts.append(f"--threads {args.threads}")
    if args.model:
        parts.append(f"--model {args.model}")
    if args.output != DEFAULT_OUTPUT:
        parts.append(f"--output {args.output}")
    return " ".join(parts)


def _image_shape() -> tuple[int, ...]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(MRI_FILE))
    reader.ReadImageInformation()
    return tuple(reader.GetSize())


def report_markdown(result: dict) -> str:
    """The figures as a short Markdown report."""
    r, p, m = result["results"], result["protocol"], result["machine"]

    def row(name: str, stats: dict, target: str = "") -> str:
        return f"| {name} | {stats['n']} | {stats['p50']} | {stats['p95']} | {stats['max']} | {target} |"

    lines = [
        "# Inside Slicer's main loop (emulated): click to mask, GUI stalls",
        "",
        f"Command: `{result['command']}`" + (" (quick: not a measurement)" if result["quick"] else ""),
        "",
        f"Machine: {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} threads, Python "
        f"{m['python']}. Model: {result['model']['name']}. {p['image']}; {p['cases']} cases of "
        f"{p['clicks_per_case']} clicks, think time {p['think_time_s']} s; main loop: {p['main_loop']} "
        f"(tick budget {p['tick_budget_ms']:.0f} ms, timer {p['busy_interval_ms']} ms busy / "
        f"{p['idle_interval_ms']} ms idle). Not included: {p['not_included']}.",
        "",
        "| figure (ms) | n | p50 | p95 | max | target |",
        "|---|---|---|---|---|---|",
        row(
            "click to mask on its slice (after the first click)",
            r["click_to_mask_ms"],
            f"p95 <= {TARGET_P95_MS:.0f}",
        ),
        row("click to the structure filled in 3D", r["click_to_filled_ms"]),
        row(
            "GUI stall, click until the next one (incl. MI)", r["click_stall_ms"], f"<= {TARGET_STALL_MS:.0f}"
        ),
        row("GUI stall, Finish case (PI)", r["finish_stall_ms"], f"<= {TARGET_STALL_MS:.0f}"),
        row("MI step on the worker", r["mi_step_ms"]),
        row("Finish case to result applied", r["finish_ms"]),
        row("GUI stall, case start (after the first)", r["case_start_stall_ms"]),
        "",
        f"First click of the run (cold): {r['first_click_ms']} ms. The module opened "
        f"{r['module_open'].get('loading_s')} s before the first case and loaded the network on the worker "
        f"(loaded in time: {r['module_open'].get('network_loaded')}), with a longest GUI stall of "
        f"{r['module_open'].get('stall_ms')} ms meanwhile; first case start: {r['first_case_start_stall_ms']} ms stall. "
        "Targets met: "
        f"{', '.join(f'{k} {v}' for k, v in result['meets_targets'].items())}.",
    ]
    if "baseline_plain_poll" in result:
        b = result["baseline_plain_poll"]
        lines += ["", f"Baseline, {b['design']}: click to mask {b['click_to_mask_ms']}."]
    if r["errors"]:
        lines += ["", f"Errors: {r['errors']}"]
    return "\n".join(lines) + "\n"
