"""`interactive-adapt segment`: a volume file or DICOM folder + clicks from a JSON file -> a mask file.

The mask is the structure in 3D, as the Slicer module fills it: each clicked slice of the volume's K axis
shows its prediction, and the structure is propagated slice by slice beyond the clicked slices (until it
ends) and between them from both sides. The command runs without Slicer, so it fills between clicked
slices by propagation, not by the contour interpolation the module uses there. A click on a J or I slice
shows that slice's prediction on top.

clicks.json:
    {"profile": "Grey matter",
     "clicks": [{"voxel": [i, j, k], "plane": "axial", "positive": true}, ...]}
`voxel` is the (I, J, K) voxel index (as shown by Slicer's data probe); `plane` names the array axis the
slice holds fixed: "K", "J" or "I" (aliases: for an axially stored volume "axial" = "K").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from InteractiveAdaptLib.engine.session import InteractiveSession, SessionConfig
from InteractiveAdaptLib.errors import InvalidClickError
from InteractiveAdaptLib.interaction import Click
from InteractiveAdaptLib.io.volume_checks import check_not_label_map
from InteractiveAdaptLib.io.volumes import Volume, read_volume, write_volume
from InteractiveAdaptLib.model.base_model import load_base_model
from InteractiveAdaptLib.store.names import profile_name
from InteractiveAdaptLib.store.site_store import SiteStore, default_store_root

PLANE_AXES = {"K": 0, "J": 1, "I": 2, "axial": 0, "coronal": 1, "sagittal": 2}


def parse_clicks(path: Path) -> tuple[str, list[Click]]:
    """Read and check a clicks JSON file; errors name the click and what is wrong."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise InvalidClickError(f"The clicks file '{path}' does not exist.") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidClickError(f"The clicks file '{path}' is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict) or not isinstance(data.get("clicks"), list) or not data["clicks"]:
        raise InvalidClickError(f"The clicks file '{path}' needs a non-empty list \"clicks\" (see --help).")
    clicks = []
    for n, item in enumerate(data["clicks"], start=1):
        try:
            i, j, k = (int(v) for v in item["voxel"])
            axis = PLANE_AXES[str(item.get("plane", "K"))]
            positive = bool(item.get("positive", True))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidClickError(
                f'Click {n} in \'{path}\' is not valid: it needs "voxel": [i, j, k], "plane": one of '
                f'{", ".join(PLANE_AXES)}, and "positive": true or false.'
            ) from exc
        kji = (k, j, i)
        row, col = (v for a, v in enumerate(kji) if a != axis)
        clicks.append(Click(axis, kji[axis], row, col, positive))
    # The same profile as the Slicer module would pick: left and right of a structure learn together.
    return profile_name(str(data.get("profile", "default"))), clicks


def segment(
    image: Path,
    clicks_file: Path,
    output: Path,
    model_dir: Path,
    learn: bool,
    store: SiteStore | None,
    site: str,
    user: str | None,
    series_uid: str | None = None,
    working_spacing_mm: float = 1.0,
) -> tuple[int, int | None]:
    """Run the clicks through the engine's case and write the mask volume: the structure filled in 3D
    along the K axis (propagation from both sides between clicked slices: no Slicer needed). Returns
    (voxels, saved version); learning takes the same slices as the module does."""
    volume = read_volume(image, series_uid=series_uid)
    check_not_label_map(volume.array, f"'{Path(image).name}'", image)  # an atlas given as the MRI
    profile, clicks = parse_clicks(clicks_file)
    config = SessionConfig(autosave=learn, target_spacing_mm=working_spacing_mm)
    session = InteractiveSession(load_base_model(model_dir), config, store, site, user)
    case = session.open_case(volume.array, volume.spacing_kji, profile)
    for click in clicks:
        case.click(click)
        case.learn_pending()
    mask = case.mask.astype(np.uint8)
    summary = case.finish(mask, learn=learn)
    write_volume(Volume(mask, volume.ijk_to_ras), output)
    return int(mask.sum()), summary.version


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "segment",
        help="segment a volume from clicks in a JSON file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", type=Path, help="NIfTI/NRRD file or DICOM folder")
    p.add_argument("--clicks", type=Path, required=True, help="clicks JSON file")
    p.add_argument("--output", type=Path, required=True, help="mask file to write (.nii.gz or .nrrd)")
    p.add_argument(
        "--model", type=Path, default=None, help="models/<name> folder (default: the shipped model)"
    )
    p.add_argument("--series-uid", default=None, help="DICOM series to read when the folder has several")
    p.add_argument("--learn", action="store_true", help="learn from this case and save a site version")
    p.add_argument(
        "--root", type=Path, default=None, help="site store folder (default: the user data folder)"
    )
    p.add_argument("--site", default="default")
    p.add_argument("--user", default=None)
    p.add_argument(
        "--working-spacing",
        type=_working_spacing,
        default=1.0,
        metavar="MM",
        help="pixel size the network sees (1 mm for human anatomy, 0.5 for small anatomy such as animals)",
    )
    p.set_defaults(func=_segment_command)


def _working_spacing(text: str) -> float:
    from InteractiveAdaptLib.app.settings import WORKING_SPACING_RANGE_MM, parse_working_spacing

    try:
        return parse_working_spacing(text)
    except ValueError:
        low, high = WORKING_SPACING_RANGE_MM
        raise argparse.ArgumentTypeError(
            f"give a pixel size between {low:g} and {high:g} mm (got {text!r})"
        ) from None


def _segment_command(args) -> int:
    from InteractiveAdaptLib.model.location import find_base_model_dir

    torch.set_num_threads(2)
    store = SiteStore(args.root or default_store_root()) if args.learn else None
    voxels, version = segment(
        args.image,
        args.clicks,
        args.output,
        args.model or find_base_model_dir(),
        args.learn,
        store,
        args.site,
        args.user,
        args.series_uid,
        args.working_spacing,
    )
    print(f"wrote {args.output} ({voxels} voxels segmented)")
    if version is not None:
        print(f"learned from this case: site '{args.site}' version {version} saved in {store.root}")
    return 0
