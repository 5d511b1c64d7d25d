"""Per-volume intensity normalisation: clipped percentiles, then z-score inside the head.

Voxels that are not numbers (NaN, infinite: e.g. outside a scanner's reconstructed region, or after a
division in another program) take the image's lowest finite value first, so that every statistic below
(percentiles, Otsu's histogram, mean and std) sees numbers only; a volume with no number is refused.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from InteractiveAdaptLib.errors import ImageReadError

log = logging.getLogger(__name__)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1D sample (maximises the between-class variance)."""
    hist, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    weight_lo = np.cumsum(hist)
    weight_hi = weight_lo[-1] - weight_lo
    mean_lo = np.cumsum(hist * centers) / np.maximum(weight_lo, 1)
    mean_hi = (np.sum(hist * centers) - np.cumsum(hist * centers)) / np.maximum(weight_hi, 1)
    between = weight_lo * weight_hi * (mean_lo - mean_hi) ** 2
    return float(centers[int(np.argmax(between))])


def head_mask(volume: np.ndarray) -> np.ndarray:
    """Foreground (head) of an MRI: above Otsu's threshold, holes filled slice-free in 3D."""
    sample = volume[:: max(1, volume.shape[0] // 64)].ravel()
    mask = volume > otsu_threshold(sample)
    if mask.ndim == 3 and min(mask.shape) > 2:
        mask = ndimage.binary_closing(mask, iterations=2)
    return ndimage.binary_fill_holes(mask)


def normalize_intensity(
    volume: np.ndarray, low_percentile: float = 0.5, high_percentile: float = 99.5
) -> np.ndarray:
    """float32 volume clipped to robust percentiles and z-scored with the head's mean and std.

    Raises:
        ImageReadError: no voxel is a number (all NaN or infinite).
    """
    v = finite_intensities(np.asarray(volume, dtype=np.float32))
    lo, hi = np.percentile(v, [low_percentile, high_percentile])
    v = np.clip(v, lo, hi)
    mask = head_mask(v)
    if mask.sum() < 10:  # a near-constant image: fall back to the whole volume
        mask = np.ones_like(v, dtype=bool)
    inside = v[mask]
    std = float(inside.std())
    return ((v - float(inside.mean())) / (std if std > 1e-6 else 1.0)).astype(np.float32)


def finite_intensities(volume: np.ndarray) -> np.ndarray:
    """`volume` with its NaN and infinite voxels set to its lowest finite value (the volume itself when
    all are numbers; otherwise a copy); logs how many there were.

    Raises:
        ImageReadError: no voxel is a number.
    """
    finite = np.isfinite(volume)
    if finite.all():
        return volume
    count = int(volume.size - np.count_nonzero(finite))
    if count == volume.size:
        raise ImageReadError(
            f"The image holds no intensities: none of its {volume.size:,} voxels is a number (all are NaN or "
            "infinite). Export the MRI again from the scanner or the program that made it."
        )
    lowest = np.min(volume, where=finite, initial=np.inf)
    log.warning(
        "%s voxel%s of the image %s not a number (NaN or infinite): the case treats %s as the image's "
        "darkest value (%g).",
        f"{count:,}",
        "s" if count != 1 else "",
        "are" if count != 1 else "is",
        "them" if count != 1 else "it",
        lowest,
    )
    return np.where(finite, volume, lowest)
