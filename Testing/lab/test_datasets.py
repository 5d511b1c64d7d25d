"""Real MRI domains from the installed packages, the derived cache, normalisation, cases and splits."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from interactive_adapt_lab.data.cases import (
    AAL_PAIRS,
    MIN_CASE_PIXELS,
    aal_pair_split,
    aal_targets_of_split,
    enumerate_cases,
)
from interactive_adapt_lab.data.datasets import (
    CACHE_VERSION,
    LOADERS,
    MRICRON,
    aal_names,
    aal_pair,
    default_cache_dir,
    load_domain,
    structure_of,
    synthesize_contrast,
)
from InteractiveAdaptLib.engine.normalization import head_mask, normalize_intensity
from InteractiveAdaptLib.errors import ImageReadError, InvalidClickError
from InteractiveAdaptLib.geometry import extract_slice, in_plane_spacing


def twin(label: int) -> int:
    return label + 1 if label % 2 else label - 1


# ---------------------------------------------------------------------------------------- loaders
def test_colin27_is_the_1mm_source_volume_with_aal_and_brain(engine_domain):
    colin = engine_domain("colin27")
    assert colin.kind == "source"
    assert colin.image.shape == (181, 217, 181) and colin.image.dtype == np.float32
    assert colin.spacing_kji == (1.0, 1.0, 1.0)
    aal, brain = colin.label_maps["aal"], colin.label_maps["brain"]
    assert aal.shape == brain.shape == colin.image.shape
    assert set(np.unique(aal).tolist()) == {0, *aal_names()} == set(range(117))
    assert set(np.unique(brain).tolist()) == {0, 1}
    assert 1.0e6 < brain.sum() < 2.0e6  # an adult brain, ~1.1-1.7 litres at 1 mm
    assert (brain[aal > 0] == 1).mean() > 0.85  # the atlas lies on the (tight, BET) brain mask
    assert np.array_equal(colin.target_mask("aal:Precentral_L"), aal == 1)
    assert np.array_equal(colin.target_mask("brain"), brain == 1)


def test_aal_ids_come_in_left_right_pairs():
    names = aal_names()
    assert len(names) == 116
    for left in range(1, 109, 2):  # cerebrum and cerebellum; 109-116 are midline vermis parts
        assert names[left].endswith("_L") and names[left + 1] == names[left][:-2] + "_R"
        assert aal_pair(left) == aal_pair(left + 1) == (left + 1) // 2
    assert {aal_pair(label) for label in names} == set(range(1, AAL_PAIRS + 1))


def test_left_and_right_aal_regions_are_one_structure_and_other_regions_are_not():
    names = aal_names()
    for left in range(1, 109, 2):
        assert structure_of(f"aal:{names[left]}") == structure_of(f"aal:{names[left + 1]}")
    # 54 bilateral pairs plus the 8 midline vermis parts, each its own structure.
    assert len({structure_of(f"aal:{name}") for name in names.values()}) == 54 + 8
    assert structure_of("grey matter") == "grey matter" and structure_of("brain") == "brain"


def test_neuromaps_structure_n_and_n_plus_1000_are_mirror_images(engine_domain):
    inia = engine_domain("inia19")
    labels = inia.label_maps["neuromaps"]
    assert structure_of("neuromaps:55") == structure_of("neuromaps:1055") != structure_of("neuromaps:56")
    left, right = (np.argwhere(labels == v).mean(0) for v in (55, 1055))
    width = labels.shape[2]
    # Same height and depth; across the midline along the last (left-right) axis.
    assert np.allclose(left[:2], right[:2], atol=2) and abs(left[2] + right[2] - width) < 4


def test_mni152_has_all_tissue_classes_on_its_grid(engine_domain):
    mni = engine_domain("mni152")
    assert mni.kind == "real" and mni.spacing_kji == (1.0, 1.0, 1.0)
    tissue, brain = mni.label_maps["tissue"], mni.label_maps["brain"]
    assert tissue.shape == mni.label_maps["aal"].shape == mni.image.shape == (189, 233, 197)
    counts = np.bincount(tissue.ravel(), minlength=4)
    assert len(counts) == 4 and (counts[1:] > 1e5).all()
    assert np.array_equal(tissue > 0, brain == 1)
    assert (brain[mni.label_maps["aal"] > 0] == 1).mean() > 0.9  # AAL lines up with the MNI brain
    # In a T1, white matter is brighter than grey matter, which is brighter than CSF.
    means = [mni.image[tissue == k].mean() for k in (1, 2, 3)]
    assert means[1] > means[0] > means[2]
    assert {"tissue:grey matter", "tissue:white matter", "tissue:CSF"} <= set(mni.targets)


def test_inia19_is_a_half_millimetre_macaque_volume(engine_domain):
    inia = engine_domain("inia19")
    assert inia.spacing_kji == (0.5, 0.5, 0.5) and inia.kind == "real"
    labels = inia.label_maps["neuromaps"]
    assert labels.shape == inia.image.shape and len(np.unique(labels)) > 100
    assert inia.target_mask("brain").sum() > 1e5
    assert np.isfinite(inia.image).all()


def test_robex_is_a_1p5mm_head_with_a_brain_mask(engine_domain):
    robex = engine_domain("robex")
    assert robex.spacing_kji == (1.5, 1.5, 1.5)
    brain = robex.target_mask("brain")
    assert brain.shape == robex.image.shape
    # ~1.0-1.8 litres of brain in 3.375 mm^3 voxels
    assert 1.0e6 / 3.375 < brain.sum() < 1.8e6 / 3.375
    assert set(robex.targets) == {"brain"}


@pytest.mark.slow
def test_synthetic_contrast_is_deterministic_and_not_the_t1(engine_domain):
    first = synthesize_contrast("t2", seed=3)
    second = synthesize_contrast("t2", seed=3)
    np.testing.assert_array_equal(first.image, second.image)
    assert first.kind == "synthetic" and "synthetic" in first.shift
    mni = engine_domain("mni152")
    np.testing.assert_array_equal(first.label_maps["tissue"], mni.label_maps["tissue"])
    assert np.corrcoef(first.image.ravel(), mni.image.ravel())[0, 1] < 0.9
    # T2-like: CSF brighter than white matter, the opposite of the T1.
    tissue = first.label_maps["tissue"]
    assert first.image[tissue == 3].mean() > first.image[tissue == 2].mean()
    assert mni.image[tissue == 3].mean() < mni.image[tissue == 2].mean()


# ---------------------------------------------------------------------------------------- cache
def test_cache_dir_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERACTIVE_ADAPT_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path


def test_cached_load_equals_a_fresh_build(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERACTIVE_ADAPT_CACHE", str(tmp_path))
    fresh = load_domain("colin27")  # nothing cached yet: built from the package files
    cache_file = tmp_path / f"colin27-v{CACHE_VERSION}.npz"
    assert cache_file.is_file()
    written = cache_file.stat().st_mtime_ns
    cached = load_domain("colin27")
    assert cache_file.stat().st_mtime_ns == written  # read, not rebuilt
    assert (cached.name, cached.kind, cached.shift, cached.spacing_kji) == (
        fresh.name,
        fresh.kind,
        fresh.shift,
        fresh.spacing_kji,
    )
    assert cached.image.dtype == fresh.image.dtype and np.array_equal(cached.image, fresh.image)
    assert cached.label_maps.keys() == fresh.label_maps.keys()
    for key, labels in fresh.label_maps.items():
        assert cached.label_maps[key].dtype == labels.dtype and np.array_equal(cached.label_maps[key], labels)
    assert cached.targets == fresh.targets


def test_unknown_domain_is_a_clear_error(tmp_path):
    with pytest.raises(ImageReadError, match="Known domains: colin27"):
        load_domain("no-such-domain", tmp_path)
    assert set(LOADERS) >= {"colin27", "mni152", "mni152-t2", "inia19", "robex"}


# ---------------------------------------------------------------------------------------- normalisation
def test_colin27_is_z_scored_inside_the_head(engine_domain):
    colin = engine_domain("colin27")
    head = head_mask(colin.image)
    inside = colin.image[head].astype(np.float64)
    assert abs(inside.mean()) < 1e-3 and abs(inside.std() - 1) < 1e-3
    assert (head[colin.label_maps["brain"] == 1]).mean() > 0.99  # the head contains the brain
    assert 0.2 < head.mean() < 0.8 and not head[0, 0, 0] and not head[-1, -1, -1]
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(MRICRON / "ch2.nii.gz")))
    np.testing.assert_array_equal(normalize_intensity(raw), colin.image)


def test_outliers_are_clipped_to_the_robust_percentiles():
    rng = np.random.default_rng(0)
    volume = rng.normal(10, 2, size=(24, 24, 24))
    volume[4:20, 4:20, 4:20] += 100  # the "head"
    volume[12, 12, 12] = 1e6  # a hot pixel
    volume[5, 5, 5] = -1e6
    z = normalize_intensity(volume)
    lo, hi = np.percentile(volume, [0.5, 99.5])
    clipped = np.clip(volume, lo, hi)
    # An increasing affine map of the clipped volume: outliers land on the percentile values.
    slope, offset = np.polyfit(clipped.ravel(), z.ravel(), 1)
    assert slope > 0
    np.testing.assert_allclose(z, slope * clipped + offset, atol=1e-4)
    assert z[12, 12, 12] == z.max() < 5 and z[5, 5, 5] == z.min()


@pytest.mark.parametrize("value", [0.0, 7.0])
def test_constant_image_normalises_to_zeros(value):
    z = normalize_intensity(np.full((10, 12, 8), value))
    assert z.dtype == np.float32 and np.isfinite(z).all() and not z.any()


# ---------------------------------------------------------------------------------------- splits and cases
def test_aal_pair_split_is_deterministic_disjoint_and_complete():
    split = aal_pair_split()
    assert split == aal_pair_split()
    assert [len(split[k]) for k in ("train", "val", "test")] == [40, 6, 12]
    assert split["train"] | split["val"] | split["test"] == set(range(1, AAL_PAIRS + 1))
    assert not (
        split["train"] & split["val"] or split["train"] & split["test"] or split["val"] & split["test"]
    )
    assert aal_pair_split(seed=1) != split


def test_aal_pairs_are_never_split_between_train_val_and_test(engine_domain):
    colin = engine_domain("colin27")
    labels = {
        s: {colin.targets[t][1] for t in aal_targets_of_split(colin, s)} for s in ("train", "val", "test")
    }
    assert labels["train"] | labels["val"] | labels["test"] == set(range(1, 117))
    for split, ids in labels.items():
        assert all(twin(label) in ids for label in ids), split
    assert not (labels["train"] & (labels["val"] | labels["test"]))


def test_tissue_targets_are_never_training_targets(engine_domain):
    mni = engine_domain("mni152")
    train = aal_targets_of_split(mni, "train")
    assert train and all(t.startswith("aal:") for t in train)
    assert not any(mni.targets[t][0] == "tissue" for t in train)


def test_cases_cover_every_slice_with_enough_target_pixels_in_all_three_axes(engine_domain):
    colin = engine_domain("colin27")
    targets = ["aal:Precentral_L", "aal:Hippocampus_R", "brain"]
    cases = enumerate_cases(colin, targets)
    assert {c.axis for c in cases} == {0, 1, 2}
    for target in targets:
        mask = colin.target_mask(target)
        for axis in range(3):
            other = tuple(a for a in range(3) if a != axis)
            expected = np.flatnonzero(mask.sum(axis=other) >= MIN_CASE_PIXELS).tolist()
            found = sorted(c.index for c in cases if c.target == target and c.axis == axis)
            assert found == expected and found, (target, axis)
    for case in cases[:: max(1, len(cases) // 50)]:
        assert case.mask(colin).sum() >= MIN_CASE_PIXELS
        assert case.image(colin).shape == case.mask(colin).shape


def test_min_pixels_keeps_slices_with_exactly_that_many_pixels(engine_domain):
    colin = engine_domain("colin27")
    counts = colin.target_mask("aal:Hippocampus_L").sum(axis=(1, 2))
    nonzero = np.sort(counts[counts > 0])
    threshold = int(nonzero[len(nonzero) // 2])  # a count that some slice has exactly
    cases = enumerate_cases(colin, ["aal:Hippocampus_L"], min_pixels=threshold, axes=(0,))
    assert sorted(c.index for c in cases) == np.flatnonzero(counts >= threshold).tolist()
    assert threshold in {int(c.mask(colin).sum()) for c in cases}
    assert len(cases) < len(enumerate_cases(colin, ["aal:Hippocampus_L"], min_pixels=1, axes=(0,)))


def test_slices_and_in_plane_spacing():
    volume = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert extract_slice(volume, 1, 2).shape == (2, 4)
    assert [in_plane_spacing((0.5, 1.0, 2.0), a) for a in range(3)] == [(1.0, 2.0), (0.5, 2.0), (0.5, 1.0)]
    with pytest.raises(InvalidClickError, match="outside the volume"):
        extract_slice(volume, 0, 2)
