"""Volumes (volumes.py) on real files: NIfTI and NRRD reading and writing with their geometry, and the
errors `read_volume` gives for RGB, 4D, missing and corrupt images. DICOM has its own test files
(test_dicom_reading.py, test_dicom_writing.py); shared fixtures live in conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from dicom_samples import PYDICOM_DATA

from InteractiveAdaptLib.errors import ImageReadError
from InteractiveAdaptLib.io.volumes import (
    Volume,
    list_dicom_series,
    read_volume,
    volume_to_sitk,
    write_volume,
)

# --- NIfTI and NRRD -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_nifti_and_nrrd_round_trips_keep_geometry(
    colin: Volume,
    tmp_path: Path,
    suffix: str,
    reorient: Callable[..., Volume],
    rotation: Callable[[tuple[float, float, float]], np.ndarray],
    assert_same: Callable[[Volume, Volume], None],
) -> None:
    for volume in (colin, reorient(colin, (2, 0, 1), (True, False, True))):
        oblique = Volume(volume.array, volume.ijk_to_ras.copy())
        oblique.ijk_to_ras[:3, :3] = (
            rotation((10.0, 20.0, -5.0)) @ volume.ijk_to_ras[:3, :3] @ np.diag([0.7, 1, 3])
        )
        write_volume(oblique, tmp_path / f"v{suffix}")
        assert_same(read_volume(tmp_path / f"v{suffix}"), oblique)


# --- RGB, 4D, missing and corrupt files -----------------------------------------------------------


def test_rgb_image_is_refused(colin: Volume, tmp_path: Path) -> None:
    grey = volume_to_sitk(Volume(colin.array[80:84], colin.ijk_to_ras))
    sitk.WriteImage(sitk.Compose(grey, grey, grey), str(tmp_path / "rgb.nrrd"))
    with pytest.raises(ImageReadError, match="colour"):
        read_volume(tmp_path / "rgb.nrrd")


def test_4d_image_is_refused(colin: Volume, tmp_path: Path) -> None:
    frame = volume_to_sitk(Volume(colin.array[80:84], colin.ijk_to_ras))
    sitk.WriteImage(sitk.JoinSeries([frame, frame]), str(tmp_path / "fmri.nii.gz"))
    with pytest.raises(ImageReadError, match="4 dimensions"):
        read_volume(tmp_path / "fmri.nii.gz")


def test_missing_path_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="does not exist"):
        read_volume(tmp_path / "no_such_study")
    with pytest.raises(ImageReadError, match="does not exist"):
        list_dicom_series(tmp_path / "no_such_study")


@pytest.mark.parametrize(
    "kind", ["dicom_header_garbage", "truncated_dicom", "truncated_nifti_gz", "truncated_nifti", "text"]
)
def test_corrupt_files_give_image_read_error(
    colin: Volume, tmp_path: Path, kind: str, need: Callable[[Path], Path]
) -> None:
    if kind == "dicom_header_garbage":
        path = tmp_path / "broken.dcm"
        path.write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 8)
    elif kind == "truncated_dicom":
        path = tmp_path / "cut.dcm"
        path.write_bytes(need(PYDICOM_DATA / "emri_small.dcm").read_bytes()[:30000])
    elif kind.startswith("truncated_nifti"):
        suffix = ".nii.gz" if kind.endswith("gz") else ".nii"
        write_volume(colin, tmp_path / f"full{suffix}")
        path = tmp_path / f"cut{suffix}"
        path.write_bytes((tmp_path / f"full{suffix}").read_bytes()[:50000])  # ITK alone reads it, zero-filled
    else:
        path = tmp_path / "notes.txt"
        path.write_text("not an image")
    with pytest.raises(ImageReadError):
        read_volume(path)
