"""Which structures the volumetric benchmark measures, in groups that each answer one question.

- `validation`: the validation-split AAL pairs on Colin27 and MNI152 (both sides): the only structures
  that choose anything (a design, fill-between's step).
- `compact`: caudate, putamen, thalamus, hippocampus, amygdala (training pairs: Colin27 is in-sample,
  MNI152, a head never trained on with AAL resampled onto it, is the real test).
- `test`: the test-split pairs, never trained on or chosen with.
- `cortical`: two cortical parcels per head (atlas borders, not image edges).
- `large`: the brain (both heads) and white matter (MNI152's real tissue map; Colin27 has only a
  threshold stand-in).
"""

from __future__ import annotations

from interactive_adapt_lab.data.cases import aal_pair_split
from interactive_adapt_lab.data.datasets import Domain, aal_pair

HEADS = ("colin27", "mni152")
COMPACT = ("Caudate", "Putamen", "Thalamus", "Hippocampus", "Amygdala")
CORTICAL = ("Frontal_Mid_Orb", "Temporal_Mid")
LARGE = {"colin27": ("brain",), "mni152": ("brain", "tissue:white matter")}
GROUPS = ("validation", "compact", "test", "cortical", "large")
MIN_VOXELS = 200  # an AAL structure resampled onto a head with fewer voxels is left out


def structures(domains: dict[str, Domain], groups=GROUPS) -> list[tuple[str, str, str]]:
    """(head, target, group) of every benchmark structure of the given groups, on both heads."""
    split = aal_pair_split()
    out = []
    for head in HEADS:
        domain = domains[head]
        aal = {t: label for t, (m, label) in domain.targets.items() if m == "aal"}
        by_group = {
            "validation": sorted(t for t, label in aal.items() if aal_pair(label) in split["val"]),
            "compact": [f"aal:{name}_{side}" for name in COMPACT for side in ("L", "R")],
            "test": sorted(t for t, label in aal.items() if aal_pair(label) in split["test"]),
            "cortical": [f"aal:{name}_{side}" for name in CORTICAL for side in ("L", "R")],
            "large": list(LARGE[head]),
        }
        for group in groups:
            for target in by_group[group]:
                if int(domain.target_mask(target).sum()) >= MIN_VOXELS:
                    out.append((head, target, group))
    return out
