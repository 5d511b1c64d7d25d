"""Cases (one slice + one structure) and the deterministic splits of training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interactive_adapt_lab.data.datasets import Domain, aal_pair
from InteractiveAdaptLib.geometry import extract_slice

MIN_CASE_PIXELS = 100  # 1 cm^2 at 1 mm: smaller cross-sections are not worth a click session
AAL_PAIRS = 58
SPLIT_SEED = 2026


@dataclass(frozen=True)
class Case:
    """One 2D segmentation task: a structure on one slice of a domain's volume."""

    domain: str
    target: str
    axis: int
    index: int

    def image(self, domain: Domain) -> np.ndarray:
        return extract_slice(domain.image, self.axis, self.index)

    def mask(self, domain: Domain) -> np.ndarray:
        label_map, label = domain.targets[self.target]
        return extract_slice(domain.label_maps[label_map], self.axis, self.index) == label


def aal_pair_split(seed: int = SPLIT_SEED) -> dict[str, set[int]]:
    """Bilateral AAL pairs split 40 train / 6 validation / 12 test; never a single id."""
    pairs = np.random.default_rng(seed).permutation(np.arange(1, AAL_PAIRS + 1))
    return {
        "train": set(pairs[:40].tolist()),
        "val": set(pairs[40:46].tolist()),
        "test": set(pairs[46:].tolist()),
    }


def aal_targets_of_split(domain: Domain, split: str) -> list[str]:
    """AAL target names (both sides) whose pair belongs to `split`."""
    pairs = aal_pair_split()[split]
    return [t for t, (m, label) in domain.targets.items() if m == "aal" and aal_pair(label) in pairs]


def enumerate_cases(
    domain: Domain, targets: list[str], min_pixels: int = MIN_CASE_PIXELS, axes: tuple[int, ...] = (0, 1, 2)
) -> list[Case]:
    """Every (slice, target) of the given targets with at least `min_pixels` pixels, in all orientations."""
    by_map: dict[str, list[tuple[str, int]]] = {}
    for t in targets:
        label_map, label = domain.targets[t]
        by_map.setdefault(label_map, []).append((t, label))
    cases = []
    for label_map, wanted in by_map.items():
        labels = domain.label_maps[label_map].astype(np.int64)
        n_labels = int(labels.max()) + 1
        for axis in axes:
            moved = np.moveaxis(labels, axis, 0).reshape(labels.shape[axis], -1)
            offsets = np.arange(moved.shape[0])[:, None] * n_labels
            counts = np.bincount((moved + offsets).ravel(), minlength=moved.shape[0] * n_labels)
            counts = counts.reshape(moved.shape[0], n_labels)
            for target, label in wanted:
                for index in np.flatnonzero(counts[:, label] >= min_pixels):
                    cases.append(Case(domain.name, target, axis, int(index)))
    return cases


def spread_order(cases: list[Case], seed: int, count: int | None = None) -> list[Case]:
    """A random order of cases (no runs of neighbouring slices), optionally the first `count`."""
    order = np.random.default_rng(seed).permutation(len(cases))
    chosen = [cases[i] for i in order]
    return chosen[:count] if count else chosen
