"""Real offscreen Slicer slice views (trame-slicer) and a real mouse, shared by the tests that click.

Importable by name (Testing/ is on pytest's pythonpath). Views render with software EGL; Testing/conftest.py
sets the environment before VTK starts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import vtk

from InteractiveAdaptLib.io.volumes import volume_from_sitk

VIEW_SIZE_PX = 400


def restacked(path: Path, orientation: str = "PIL", step: int = 2):
    """An MRI file stored in another orientation with every `step`-th slice of its last axis kept: an
    engine Volume (array + IJK->RAS) whose axes are permuted and flipped against RAS."""
    import SimpleITK as sitk

    # DICOMOrient and slicing keep every voxel where it is in the patient; only the storage changes.
    image = sitk.DICOMOrient(sitk.ReadImage(str(path)), orientation)
    return volume_from_sitk(image[:, :, ::step])


def add_volume_node(scene, volume, name: str):
    """A scalar volume node holding the engine Volume, as Slicer would after loading the file."""
    from InteractiveAdaptLib.mrml.volume import add_volume_node as add_node

    return add_node(scene, volume.array, volume.ijk_to_ras, name)


def offscreen_app(*orientations: str):
    """A trame-slicer app with one offscreen slice view per orientation ('axial', 'sagittal', 'coronal'):
    (app, {orientation: view})."""
    from trame_slicer.core import SlicerApp
    from trame_slicer.views import DirectViewFactory, ViewLayoutDefinition

    app = SlicerApp()
    app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
    views = {}
    for orientation in orientations:
        view = app.view_manager.create_view(getattr(ViewLayoutDefinition, f"{orientation}_view")())
        view.render_window().SetSize(VIEW_SIZE_PX, VIEW_SIZE_PX)
        views[orientation] = view
    return app, views


def show_in_views(views, volume_node) -> None:
    """Each view shows the volume, zoomed to fit, as Slicer does when a volume is chosen."""
    for view in views:
        view.set_background_volume_id(volume_node.GetID())
        view.fit_view_to_content()


def largest_cross_section(mask: np.ndarray, axis: int) -> int:
    """The slice (along an array axis) where the structure is largest: where a clinician would start."""
    return int(np.argmax(np.moveaxis(mask, axis, 0).reshape(mask.shape[axis], -1).sum(axis=1)))


def ras_to_view_xy(view, ras) -> tuple[int, int]:
    """The pixel of a slice view that shows a world (RAS) point."""
    ras_to_xy = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Invert(view.get_view_node().GetXYToRAS(), ras_to_xy)
    x, y, _, _ = ras_to_xy.MultiplyPoint([*ras, 1.0])
    width, height = view.render_window().GetSize()
    assert 0 <= x < width and 0 <= y < height, "the point is not on screen"
    return round(x), round(y)


def mouse_click(view, xy: tuple[int, int]) -> None:
    """A left click through the view's interactor, as the mouse would make it."""
    interactor = view.interactor()
    interactor.SetEventInformation(int(xy[0]), int(xy[1]), 0, 0, "\0", 0)
    interactor.MouseMoveEvent()
    interactor.LeftButtonPressEvent()
    interactor.LeftButtonReleaseEvent()
