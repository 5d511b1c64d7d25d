r"""Render the README / Extensions Index screenshot for real: a Slicer Red slice view of one patient's
real MRI with several structures segmented by the shipped model from simulated clicks, each structure its
own segment (and its own learning profile), and the last structure's clicks (green positive, red negative).

Nothing is drawn by hand: Colin27 (a real T1 MRI) is loaded with Slicer's own volume reader into an
offscreen trame-slicer Red (axial) view, the clicks are real left mouse clicks in that view, and the
module's path (Workflow -> PointPlacer -> ClickController -> Worker -> InteractiveSession) writes the
segments, exactly as in Slicer. The clicks go where the simulated user of engine/click_simulation.py
(centre mode) puts them: the first in the middle of the structure, each next one in the middle of the
largest error. Each structure but the last is finished (learned) as a clinician would; learning goes to a
temporary site store, so the screenshot changes no site weights.

    .venv/bin/python scripts/render_screenshot.py \
        --model models/colin27-unet-default --output Resources/Screenshot.png
"""

from __future__ import annotations

import os

# Before VTK creates its first render window: offscreen Mesa EGL, no X server.
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "InteractiveAdapt"))  # a source checkout without `pip install -e .`

TEMPLATES = Path("/usr/share/mricron/templates")  # Debian package mricron-data
MRI_FILE = TEMPLATES / "ch2.nii.gz"  # Colin27 T1
ATLAS_FILE = TEMPLATES / "aal.nii.gz"  # AAL labels on the same grid: the "known structure"
# (AAL structure, segment name, colour) of one patient, all on one axial slice: the deep grey matter of
# the right hemisphere (the patient's right is on the screen's left in Slicer's radiological views).
STRUCTURES = [
    ("Caudate_R", "Caudate (R)", (0.96, 0.72, 0.0)),  # amber, as in the icon
    ("Putamen_R", "Putamen (R)", (0.2, 0.6, 1.0)),  # blue
    ("Thalamus_R", "Thalamus (R)", (0.85, 0.3, 0.95)),  # violet
]
CLICKS = 3
SIZE_PX = (800, 600)
ZOOM = 1.25  # the head fills the view; the slice's empty border is cut
PNG_COLOURS = 192  # palette PNG: a third of the size of a true-colour one, no visible banding


def _mouse_click_at(view, ras) -> tuple[int, int]:
    """A real left click through the view's interactor at the screen pixel that shows a RAS point."""
    import vtk

    ras_to_xy = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Invert(view.get_view_node().GetXYToRAS(), ras_to_xy)
    x, y, _, _ = ras_to_xy.MultiplyPoint([*ras, 1.0])
    xy = (round(x), round(y))
    interactor = view.interactor()
    interactor.SetEventInformation(*xy, 0, 0, "\0", 0)
    interactor.MouseMoveEvent()
    interactor.LeftButtonPressEvent()
    interactor.LeftButtonReleaseEvent()
    return xy


def _capture(view) -> np.ndarray:
    """The view's pixels as (height, width, 3) uint8, top row first (as the screen shows them)."""
    import vtk
    from vtkmodules.util import numpy_support

    view.render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(view.render_window())
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    width, height, _ = grab.GetOutput().GetDimensions()
    pixels = numpy_support.vtk_to_numpy(grab.GetOutput().GetPointData().GetScalars())
    return np.ascontiguousarray(pixels.reshape(height, width, 3)[::-1])  # VTK rows run bottom-up


def render_structures(
    model_dir: str | Path, structures=STRUCTURES, size: tuple[int, int] = SIZE_PX
) -> tuple[np.ndarray, dict]:
    """Load the MRI into a Red view, segment each structure like the simulated user, capture the view.

    Returns the RGB pixels (top row first) and what was done: the slice (axis, index), per structure its
    clicks (row, col, positive) and Dice after each click, and the view pixels (x, y) of the last
    structure's clicks (the ones still shown).
    """
    from trame_slicer.core import SlicerApp
    from trame_slicer.views import DirectViewFactory, ViewLayoutDefinition

    from interactive_adapt_lab.data.datasets import aal_names
    from interactive_adapt_lab.slicer_core import load_volume
    from InteractiveAdaptLib import mrml
    from InteractiveAdaptLib.app.settings import ModuleSettings, open_session
    from InteractiveAdaptLib.app.worker import Worker
    from InteractiveAdaptLib.engine.click_simulation import first_click, next_click
    from InteractiveAdaptLib.engine.predictor import dice

    app = SlicerApp()
    app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
    red = app.view_manager.create_view(ViewLayoutDefinition.axial_view())
    red.render_window().SetSize(*size)
    volume = load_volume(app.scene, MRI_FILE, "Colin27 T1")
    atlas = load_volume(app.scene, ATLAS_FILE, "AAL atlas", show=False)
    geometry, atlas_grid = mrml.volume_geometry(volume), mrml.volume_geometry(atlas)
    if geometry.shape_kji != atlas_grid.shape_kji or not np.allclose(
        geometry.ijk_to_ras, atlas_grid.ijk_to_ras
    ):
        raise RuntimeError(f"{ATLAS_FILE} is not on the grid of {MRI_FILE}.")
    labels = mrml.volume_array(atlas)  # (K, J, I), voxel for voxel with the MRI
    names = {name: n for n, name in aal_names().items()}
    masks = [labels == names[structure] for structure, _, _ in structures]
    app.scene.RemoveNode(atlas)  # the user's scene holds the MRI only
    red.set_background_volume_id(volume.GetID())
    red.fit_view_to_content()
    red.zoom(ZOOM)
    axis = mrml.slice_axis(red.get_view_node(), geometry)
    # The slice where every structure shows best: the largest smallest cross-section.
    areas = np.stack([np.moveaxis(m, axis, 0).reshape(m.shape[axis], -1).sum(axis=1) for m in masks])
    index = int(np.argmax(areas.min(axis=0)))
    red.get_view_node().JumpSliceByOffsetting(*geometry.kji_to_world(np.insert(np.zeros(2), axis, index)))
    views = [(red.get_view_node(), red.interactor())]

    errors: list = []
    done: dict = {"slice": (axis, index), "structures": {}, "view_xy": []}
    worker = Worker()
    with tempfile.TemporaryDirectory() as store:
        try:
            workflow = mrml.Workflow(
                app.scene,
                worker,
                lambda settings: open_session(settings, store, model_dir, cuda_available=False),
                ModuleSettings(site="Screenshot", device="cpu"),
                ask=lambda question: True,
                on_status=lambda text: None,
                on_error=lambda error, tb: errors.append(error),
            )
            workflow.set_volume(volume)
            for n, ((_, segment_name, colour), mask) in enumerate(zip(structures, masks, strict=True)):
                workflow.add_structure(segment_name)
                segment = workflow.segmentation.GetSegmentation().GetSegment(workflow.segment_id)
                segment.SetColor(*colour)
                target = np.take(mask, index, axis)
                rng = np.random.default_rng(0)
                clicks, dices, click = [], [], first_click(target, "center", rng)
                for _ in range(CLICKS):
                    if click is None:
                        break  # nothing left to correct
                    row, col, positive = click
                    workflow.start_placing(positive, views)
                    ras = geometry.kji_to_world(np.insert(np.array([row, col], float), axis, index))
                    xy = _mouse_click_at(red, ras)
                    if not worker.drain(120) or errors:
                        raise RuntimeError(f"The click was not processed: {errors or 'timeout'}")
                    shown = mrml.read_slice(workflow.segmentation, workflow.segment_id, geometry, axis, index)
                    clicks.append(click)
                    dices.append(round(dice(shown, target), 3))
                    if n == len(structures) - 1:
                        done["view_xy"].append(xy)
                    click = next_click(shown, target, "center", rng)
                workflow.stop_placing()
                done["structures"][segment_name] = {"clicks": clicks, "dice": dices}
                if n < len(structures) - 1:  # finished like a clinician would; the last keeps its clicks
                    workflow.finish(learn=True)
                    if not worker.drain(120) or errors:
                        raise RuntimeError(f"The case did not finish: {errors or 'timeout'}")
            pixels = _capture(red)
            workflow.close()
        finally:
            worker.shutdown(timeout=30)
    return pixels, done


def save_png(pixels: np.ndarray, path: str | Path, colours: int = PNG_COLOURS) -> Path:
    """A compact palette PNG (the README and the Extensions Index download it)."""
    from PIL import Image  # Pillow comes with matplotlib, a dependency of the engine

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels, "RGB").quantize(colours, method=Image.Quantize.MEDIANCUT, dither=0)
    image.save(path, optimize=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="models/<name> folder (default: the one the module finds)")
    parser.add_argument("--output", type=Path, default=REPO / "Resources" / "Screenshot.png")
    parser.add_argument("--size", type=int, nargs=2, default=SIZE_PX, metavar=("WIDTH", "HEIGHT"))
    args = parser.parse_args(argv)
    if args.model is None:
        from InteractiveAdaptLib.model.location import find_base_model_dir

        args.model = find_base_model_dir()
    pixels, done = render_structures(args.model, size=tuple(args.size))
    path = save_png(pixels, args.output)
    print(
        f"{path}: {pixels.shape[1]} x {pixels.shape[0]} px, {path.stat().st_size // 1024} KB; slice {done['slice']}"
    )
    for name, what in done["structures"].items():
        print(f"  {name}: clicks (row, col, positive) {what['clicks']}, Dice after each click {what['dice']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
