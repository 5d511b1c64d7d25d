"""Evaluation streams: how a site works, one kind of structure case after case (or mixed targets).

One place defines which domain and targets each stream and each model-card entry uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from interactive_adapt_lab.data.cases import Case, aal_targets_of_split, enumerate_cases, spread_order
from interactive_adapt_lab.data.datasets import Domain, aal_names


@dataclass(frozen=True)
class Stream:
    name: str
    domain: str
    targets: tuple[str, ...]  # target names; empty = the held-out (test-split) AAL pairs
    stream: str  # "single" (one target type) or "mixed" (the target changes from case to case)
    description: str
    # The site's working resolution: the network sees each slice resampled to this in-plane spacing.
    working_spacing_mm: float = 1.0

    def cases(self, domain: Domain, count: int, seed: int) -> list[Case]:
        """`count` cases in a seeded random order (across slices and orientations)."""
        return spread_order(enumerate_cases(domain, self.target_list(domain)), seed=seed, count=count)

    def target_list(self, domain: Domain) -> list[str]:
        targets = list(self.targets)
        if not targets or "aal:test" in targets:
            targets = [t for t in targets if t != "aal:test"] + aal_targets_of_split(domain, "test")
        return targets


def _aal_pair_targets(left_name: str) -> tuple[str, ...]:
    """Both sides of a held-out AAL pair, named by its left structure (e.g. Temporal_Mid_L)."""
    names = aal_names()
    ids = [label for label, name in names.items() if name == left_name]
    return (f"aal:{names[ids[0]]}", f"aal:{names[ids[0] + 1]}")


STREAMS: dict[str, Stream] = {
    s.name: s
    for s in [
        Stream("mni152-grey-matter", "mni152", ("tissue:grey matter",), "single", "MNI152 T1, grey matter"),
        Stream(
            "mni152-white-matter", "mni152", ("tissue:white matter",), "single", "MNI152 T1, white matter"
        ),
        Stream(
            "mni152-temporal-mid",
            "mni152",
            _aal_pair_targets("Temporal_Mid_L"),
            "single",
            "MNI152 T1, middle temporal gyrus (held-out AAL pair)",
        ),
        Stream(
            "inia19-structure",
            "inia19",
            ("neuromaps:55", "neuromaps:1055"),
            "single",
            "macaque T1, NeuroMaps structure 55 (both hemispheres)",
        ),
        # The same cases with the working resolution a site sets for small anatomy: the macaque brain
        # is about half the size of a human one, so 0.5 mm shows it to the network at a human scale.
        Stream(
            "inia19-structure-0.5mm",
            "inia19",
            ("neuromaps:55", "neuromaps:1055"),
            "single",
            "macaque T1, NeuroMaps structure 55, working resolution 0.5 mm",
            working_spacing_mm=0.5,
        ),
        Stream("robex-brain", "robex", ("brain",), "single", "ROBEX T1 head at 1.5 mm, brain"),
        Stream(
            "mni152-t2-grey-matter",
            "mni152-t2",
            ("tissue:grey matter",),
            "single",
            "synthetic T2-like contrast, grey matter",
        ),
        Stream(
            "mni152-pd-white-matter",
            "mni152-pd",
            ("tissue:white matter",),
            "single",
            "synthetic PD-like contrast, white matter",
        ),
        Stream("colin27-mixed", "colin27", (), "mixed", "Colin27 (in-domain), held-out AAL pairs, mixed"),
        Stream(
            "mni152-mixed",
            "mni152",
            ("tissue:grey matter", "tissue:white matter", "aal:test"),
            "mixed",
            "MNI152 T1, tissue classes and held-out AAL pairs, mixed",
        ),
    ]
}
