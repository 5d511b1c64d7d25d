"""Read and write 3D MRI volumes (NIfTI, NRRD, DICOM) with their geometry, through SimpleITK."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import ImageReadError

log = logging.getLogger(__name__)

# ITK geometry is LPS, Slicer's is RAS: flip the sign of the first two world axes.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class Volume:
    """A scalar 3D volume. `array` is indexed (K, J, I) like Slicer's and SimpleITK's numpy views."""

    array: np.ndarray
    ijk_to_ras: np.ndarray  # 4x4; columns 0..2 are the RAS steps of one voxel along I, J, K

    @property
    def spacing_kji(self) -> tuple[float, float, float]:
        """Voxel size in mm, in array axis order (K, J, I)."""
        i, j, k = np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)
        return (float(k), float(j), float(i))


def volume_from_sitk(image: sitk.Image) -> Volume:
    """Convert a 3D scalar SimpleITK image to a Volume (RAS geometry)."""
    if image.GetDimension() != 3:
        raise ImageReadError(
            f"The image has {image.GetDimension()} dimensions; InteractiveAdapt needs one 3D volume. "
            "Choose a single 3D series (not a 2D image or a 4D/time series)."
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError(
            "The image is in colour (RGB) or has several components per voxel; "
            "InteractiveAdapt needs a grey-scale MRI volume."
        )
    direction = np.array(image.GetDirection(), float).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    m[:3, 3] = _LPS_TO_RAS @ np.array(image.GetOrigin(), float)
    return Volume(array=sitk.GetArrayFromImage(image), ijk_to_ras=m)


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """Convert a Volume back to a SimpleITK image (LPS geometry)."""
    image = sitk.GetImageFromArray(volume.array)
    steps = volume.ijk_to_ras[:3, :3]
    spacing = np.linalg.norm(steps, axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (_LPS_TO_RAS @ steps / spacing).ravel()])
    image.SetOrigin([float(v) for v in _LPS_TO_RAS @ volume.ijk_to_ras[:3, 3]])
    return image


def read_volume(path: str | Path) -> Volume:
    """Read a NIfTI or NRRD file as a Volume."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"The image '{path}' does not exist. Check the path and try again.")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ImageReadError(
            f"'{path.name}' could not be read as an image ({str(exc).strip().splitlines()[-1]}). "
            "Use a NIfTI (.nii/.nii.gz), NRRD (.nrrd) file or a DICOM folder."
        ) from exc
    return volume_from_sitk(image)


def write_volume(volume: Volume, path: str | Path) -> None:
    """Write a Volume to a NIfTI or NRRD file (format from the extension)."""
    sitk.WriteImage(volume_to_sitk(volume), str(path), useCompression=True)
