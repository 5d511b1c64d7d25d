"""The engine's intensity normalisation (engine/normalization.py) on images with voxels that are not numbers
(NaN, infinite): they count as the image's darkest value, so a case on such an image gives the same
structure as on the image with those voxels set to its minimum; an image with no number is refused.

The images are real NIfTI files written by the test (the Colin27 T1 as float32 with a NaN slab outside
the reconstructed region and infinite voxels), read back with `read_volume`, and the case is a real one
(the shipped network, a click on the left thalamus of the AAL atlas, which lies on the same grid)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from InteractiveAdaptLib.engine.adaptation import AdaptationConfig
from InteractiveAdaptLib.engine.normalization import normalize_intensity
from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
from InteractiveAdaptLib.errors import ImageReadError, WeightsError
from InteractiveAdaptLib.interaction import Click
from InteractiveAdaptLib.io.volumes import Volume, read_volume, write_volume
from InteractiveAdaptLib.model.base_model import load_base_model
from InteractiveAdaptLib.model.location import find_base_model_dir

MRICRON = Path("/usr/share/mricron/templates")
COLIN27, AAL = MRICRON / "ch2.nii.gz", MRICRON / "aal.nii.gz"
THALAMUS_L = 77


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data file missing: {path}")
    return path


@pytest.fixture(scope="module")
def head() -> Volume:
    return read_volume(_need(COLIN27))


def _with_non_numbers(head: Volume) -> tuple[np.ndarray, int]:
    """The head as float32 with NaN in its first 8 axial slices and 5 infinite voxels (3 inside the head)."""
    array = head.array.astype(np.float32)
    array[:8] = np.nan
    for n, (k, j, i) in enumerate(
        [(90, 100, 90), (60, 120, 80), (100, 80, 100), (30, 5, 5), (170, 210, 175)]
    ):
        array[k, j, i] = np.inf if n % 2 else -np.inf
    return array, int(8 * array[0].size + 5)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd"])
def test_a_file_with_voxels_that_are_not_numbers_is_read_with_a_note(head, tmp_path, suffix):
    array, count = _with_non_numbers(head)
    write_volume(Volume(array, head.ijk_to_ras), tmp_path / f"nan head{suffix}")
    read = read_volume(tmp_path / f"nan head{suffix}")
    # Where they are (ITK's NIfTI reading alone would give 0 there, without a word).
    np.testing.assert_array_equal(~np.isfinite(read.array), ~np.isfinite(array))
    assert len(read.notes) == 1
    assert f"'nan head{suffix}' has {count:,} voxels that are not a number" in read.notes[0]
    assert "darkest value" in read.notes[0]
    assert read_volume(_need(COLIN27)).notes == ()  # a usual MRI gets no note


def test_an_image_with_no_number_is_refused(head, tmp_path):
    write_volume(Volume(np.full((4, 5, 6), np.nan, np.float32), head.ijk_to_ras), tmp_path / "empty.nii.gz")
    with pytest.raises(
        ImageReadError, match="'empty.nii.gz' holds no image: none of its 120 voxels is a number"
    ):
        read_volume(tmp_path / "empty.nii.gz")
    with pytest.raises(ImageReadError, match="none of its 120 voxels is a number"):
        normalize_intensity(np.full((4, 5, 6), np.nan, np.float32))


def test_non_numbers_count_as_the_darkest_value(head, caplog):
    array, count = _with_non_numbers(head)
    darkest = np.nanmin(array[np.isfinite(array)])
    filled = np.where(np.isfinite(array), array, darkest)
    with caplog.at_level(logging.WARNING, logger="InteractiveAdaptLib.engine.normalization"):
        normalised = normalize_intensity(array)
    assert np.isfinite(normalised).all()
    np.testing.assert_array_equal(normalised, normalize_intensity(filled))
    assert [r.getMessage() for r in caplog.records if f"{count:,} voxels" in r.getMessage()]
    assert np.isnan(array[0, 0, 0])  # the caller's image is left as it was


@pytest.mark.slow
def test_a_case_on_an_image_with_non_numbers_segments_as_on_the_filled_image(head, tmp_path):
    try:
        base = load_base_model(find_base_model_dir())
    except WeightsError as error:
        pytest.skip(f"No base model is shipped in this checkout yet. {error}")
    array, _ = _with_non_numbers(head)
    write_volume(Volume(array, head.ijk_to_ras), tmp_path / "nan head.nii.gz")
    volume = read_volume(tmp_path / "nan head.nii.gz")
    assert not np.isfinite(volume.array).all()  # the case gets them as the file holds them
    thalamus = read_volume(_need(AAL)).array == THALAMUS_L
    k = int(np.argmax(thalamus.sum(axis=(1, 2))))
    depth = ndimage.distance_transform_edt(thalamus[k])
    row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    masks = []
    darkest = np.min(volume.array, where=np.isfinite(volume.array), initial=np.inf)
    for image in (volume.array, np.where(np.isfinite(volume.array), volume.array, darkest)):
        session = InteractiveSession(
            base, SessionConfig(adaptation=AdaptationConfig(mid_interaction=False, post_interaction=False))
        )
        case = session.open_case(image, volume.spacing_kji, "thalamus")  # normalised by the engine
        case.click(Click(0, k, float(row), float(col), True))
        masks.append(case.mask.copy())
    nan_mask, filled_mask = masks
    assert nan_mask[k].sum() > 20 and nan_mask[k, row, col]
    assert (nan_mask & thalamus).sum() > 0.5 * nan_mask.sum()  # on the thalamus, not on the NaN slab
    np.testing.assert_array_equal(nan_mask, filled_mask)
