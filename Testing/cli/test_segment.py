"""`interactive-adapt segment` end to end, on real data with a tiny real network: NIfTI and DICOM in,
the mask out (the structure in 3D, through the engine's case as in the module), learning into the site
store, clear errors; and the 3D mask of a real structure with the shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from interactive_adapt_lab.data.datasets import MRICRON, aal_names
from InteractiveAdaptLib.cli import main as cli
from InteractiveAdaptLib.errors import WeightsError
from InteractiveAdaptLib.io.volumes import Volume, read_volume, write_dicom_series, write_volume
from InteractiveAdaptLib.model.base_model import save_base_model
from InteractiveAdaptLib.model.location import find_base_model_dir
from InteractiveAdaptLib.model.network import VOLUME_IN_CHANNELS, NetworkConfig, build_network
from InteractiveAdaptLib.store.site_store import SiteStore

TINY = NetworkConfig("tiny", (8, 16, 32), 0)


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch):
    """The command asks torch for two threads; the tests keep one (as conftest_engine does): on a busy
    machine two threads make the forward passes several times slower."""
    torch.set_num_threads(1)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    return save_base_model(build_network(TINY), tmp_path_factory.mktemp("models") / "tiny", {"name": "tiny"})


@pytest.fixture(scope="module")
def colin_crop(tmp_path_factory):
    """A real Colin27 block with its real geometry, as a NIfTI file."""
    full = read_volume(MRICRON / "ch2.nii.gz")
    origin_shift = np.eye(4)
    origin_shift[:3, 3] = full.ijk_to_ras[:3, :3] @ np.array([40, 60, 70])  # I, J, K of the block's corner
    volume = Volume(full.array[70:110, 60:160, 40:140].copy(), origin_shift @ full.ijk_to_ras)
    path = tmp_path_factory.mktemp("images") / "colin_block.nii.gz"
    write_volume(volume, path)
    return path, volume


def segment_and_learn(image, clicks, model_dir, tmp_path) -> Volume:
    """`segment --learn` into the site "Hospital A" of a store under tmp_path: the mask it wrote."""
    out = tmp_path / "mask.nii.gz"
    code = cli.main(["segment", str(image), "--clicks", str(clicks), "--output", str(out),
                     "--model", str(model_dir), "--learn", "--root", str(tmp_path / "sites"),
                     "--site", "Hospital A"])  # fmt: skip
    assert code == 0
    return read_volume(out)


def write_clicks(path, clicks, profile="Brain"):
    path.write_text(json.dumps({"profile": profile, "clicks": clicks}))
    return path


def test_segment_writes_the_mask_around_the_clicked_slice_and_learns(
    tiny_model, colin_crop, tmp_path, capsys
):
    image, volume = colin_crop
    clicks = write_clicks(
        tmp_path / "clicks.json",
        [
            {"voxel": [50, 50, 20], "plane": "K", "positive": True},
            {"voxel": [5, 5, 20], "plane": "K", "positive": False},
        ],
    )
    mask = segment_and_learn(image, clicks, tiny_model.directory, tmp_path)
    np.testing.assert_allclose(mask.ijk_to_ras, volume.ijk_to_ras, atol=1e-4)
    assert mask.array.shape == volume.array.shape
    per_slice = mask.array.reshape(mask.array.shape[0], -1).sum(1)
    assert per_slice[20] > 0  # the clicked K slice, and whatever the case filled around it
    assert "version 1" in capsys.readouterr().out
    versions = SiteStore(tmp_path / "sites").profile("Hospital A", "Brain").versions()
    assert [v.version for v in versions] == [1] and versions[0].clicks_learned == 2


def test_segment_learns_both_sides_of_a_structure_in_one_profile(tiny_model, colin_crop, tmp_path):
    image, _ = colin_crop
    root = tmp_path / "sites"
    for side in ("Hippocampus_L", "Right hippocampus"):
        clicks = write_clicks(tmp_path / "clicks.json", [{"voxel": [40, 30, 20], "positive": True}], side)
        code = cli.main(["segment", str(image), "--clicks", str(clicks), "--output", str(tmp_path / "m.nrrd"),
                         "--model", str(tiny_model.directory), "--learn", "--root", str(root),
                         "--site", "Hospital A"])  # fmt: skip
        assert code == 0
    versions = SiteStore(root).profile("Hospital A", "Hippocampus").versions()
    assert [v.version for v in versions] == [1, 2]  # the right side built on the left side's version


def test_segment_reads_a_dicom_folder(tiny_model, colin_crop, tmp_path):
    _, volume = colin_crop
    write_dicom_series(volume, tmp_path / "dicom")
    clicks = write_clicks(tmp_path / "clicks.json", [{"voxel": [50, 20, 30], "plane": "J", "positive": True}])
    out = tmp_path / "mask.nrrd"
    code = cli.main(["segment", str(tmp_path / "dicom"), "--clicks", str(clicks), "--output", str(out),
                     "--model", str(tiny_model.directory)])  # fmt: skip
    assert code == 0
    assert read_volume(out).array.shape == volume.array.shape


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"clicks": []}', "non-empty list"),
        ('{"clicks": [{"voxel": [1, 2]}]}', "Click 1"),
        ('{"clicks": [{"voxel": [1, 2, 3], "plane": "oblique"}]}', "Click 1"),
        ('{"clicks": [{"voxel": [999, 2, 3], "plane": "K"}]}', "outside the image"),
    ],
)
def test_segment_bad_clicks_give_a_clear_error(tiny_model, colin_crop, tmp_path, capsys, content, message):
    clicks = tmp_path / "clicks.json"
    clicks.write_text(content)
    code = cli.main(["segment", str(colin_crop[0]), "--clicks", str(clicks), "--output", str(tmp_path / "m.nii.gz"),
                     "--model", str(tiny_model.directory)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "m.nii.gz").exists()


def test_segment_at_a_finer_working_resolution(tiny_model, colin_crop, tmp_path, capsys):
    image, _ = colin_crop
    clicks = write_clicks(tmp_path / "clicks.json", [{"voxel": [50, 50, 20], "plane": "K", "positive": True}])
    masks = {}
    for spacing in ("1", "0.5"):
        out = tmp_path / f"mask-{spacing}.nii.gz"
        code = cli.main(["segment", str(image), "--clicks", str(clicks), "--output", str(out),
                         "--model", str(tiny_model.directory), "--working-spacing", spacing,
                         ])  # fmt: skip
        assert code == 0
        masks[spacing] = read_volume(out).array
    assert masks["1"].shape == masks["0.5"].shape and not np.array_equal(masks["1"], masks["0.5"])
    with pytest.raises(SystemExit):
        cli.main(["segment", str(image), "--clicks", str(clicks), "--output", str(tmp_path / "m.nii.gz"),
                  "--model", str(tiny_model.directory), "--working-spacing", "5"])  # fmt: skip
    assert "between 0.25 and 2 mm" in capsys.readouterr().err


def test_segment_missing_image_is_a_clear_error(tiny_model, tmp_path, capsys):
    clicks = write_clicks(tmp_path / "c.json", [{"voxel": [1, 2, 3]}])
    code = cli.main(["segment", str(tmp_path / "nope.nii.gz"), "--clicks", str(clicks), "--output",
                     str(tmp_path / "m.nii.gz"), "--model", str(tiny_model.directory)])  # fmt: skip
    assert code == 1 and "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_segment_fills_the_structure_in_3d_between_and_beyond_the_clicked_slices(colin_crop, tmp_path):
    """The shipped model, two clicks on the left thalamus 10 axial slices apart: the mask fills every
    slice between them and goes on beyond them, and covers far more of the structure than the two
    clicked slices alone."""
    try:
        model_dir = find_base_model_dir()
    except WeightsError as error:
        pytest.skip(f"No base model is shipped in this checkout yet. {error}")
    image, volume = colin_crop
    label = next(n for n, name in aal_names().items() if name == "Thalamus_L")
    truth = read_volume(MRICRON / "aal.nii.gz").array[70:110, 60:160, 40:140] == label
    clicks = []
    for k in (6, 16):
        depth = ndimage.distance_transform_edt(truth[k])
        j, i = np.unravel_index(int(np.argmax(depth)), depth.shape)
        clicks.append({"voxel": [int(i), int(j), k], "plane": "K", "positive": True})
    clicks_file = write_clicks(tmp_path / "clicks.json", clicks, "Thalamus_L")
    out = tmp_path / "thalamus.nii.gz"
    code = cli.main(["segment", str(image), "--clicks", str(clicks_file), "--output", str(out),
                     "--model", str(model_dir)])  # fmt: skip
    assert code == 0
    mask = read_volume(out).array > 0
    filled = np.flatnonzero(mask.any(axis=(1, 2)))
    assert set(range(6, 17)) <= set(filled)  # every slice between the clicked ones
    assert filled.min() < 6 and filled.max() > 16  # and beyond them
    pieces, _ = ndimage.label(mask[6:17])
    assert np.bincount(pieces.ravel())[1:].max() > 0.9 * mask[6:17].sum()  # essentially one piece
    clicked_only = np.zeros_like(mask)
    clicked_only[[6, 16]] = mask[[6, 16]]
    dice = {
        name: 2 * (m & truth).sum() / (m.sum() + truth.sum())
        for name, m in (("3d", mask), ("clicked slices", clicked_only))
    }
    assert dice["3d"] > dice["clicked slices"] + 0.25, dice  # far more of the structure, not leaking out


def test_segment_refuses_an_atlas_given_as_the_mri(tiny_model, tmp_path, capsys):
    """mricron's AAL atlas is a label map: segmenting it would teach the site nonsense."""
    atlas = Path("/usr/share/mricron/templates/aal.nii.gz")
    clicks = write_clicks(
        tmp_path / "clicks.json", [{"voxel": [90, 108, 90], "plane": "K", "positive": True}]
    )
    code = cli.main(["segment", str(atlas), "--clicks", str(clicks), "--output", str(tmp_path / "m.nii.gz"),
                     "--model", str(tiny_model.directory)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "label" in err.lower() and "Traceback" not in err
    assert not (tmp_path / "m.nii.gz").exists()


def test_segment_with_a_3d_model_answers_with_the_whole_structure_and_learns_from_it(
    colin_crop, tmp_path, capsys
):
    """A 3D base model: the command's case is the 3D network's (engine/volume_network.py); a click in a
    coronal slice counts, and --learn saves the profile's first version."""
    image, volume = colin_crop
    torch.manual_seed(0)
    config = NetworkConfig("tiny-3d", (8, 16, 32), 0, spatial_dims=3, in_channels=VOLUME_IN_CHANNELS)
    model = save_base_model(build_network(config), tmp_path / "models" / "tiny-3d", {"name": "tiny-3d"})
    clicks = write_clicks(
        tmp_path / "clicks.json",
        [
            {"voxel": [50, 50, 20], "plane": "K", "positive": True},
            {"voxel": [50, 30, 25], "plane": "J", "positive": False},
        ],
    )
    mask = segment_and_learn(image, clicks, model.directory, tmp_path)
    np.testing.assert_allclose(mask.ijk_to_ras, volume.ijk_to_ras, atol=1e-4)
    assert mask.array.shape == volume.array.shape
    assert "version 1" in capsys.readouterr().out
    assert SiteStore(tmp_path / "sites").profile("Hospital A", "Brain").versions()
