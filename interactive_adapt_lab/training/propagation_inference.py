"""Design B of the 2D-versus-3D comparison (lab only): a 2.5D network that segments a structure axial slice
by axial slice, each slice seeded by the previous slice's mask.

The network (model/network.py's 2D ClickUNet, 6 input channels) sees one axial slice (array axis 0 of the
(K, J, I) volume) in a 96 x 96 px window at 1.5 mm: the slice, its two neighbours (context), positive and
negative click disks, and a prior mask. A clicked slice is predicted from its clicks with the current 3D
result on it as prior; from each clicked slice the answer is carried outwards, one slice at a time with no
clicks and the neighbour's new mask as prior, until the mask vanishes. Every click re-derives all the
unclicked slices, so the whole structure follows the clicks. Validated with the 3D design's simulated user
(evaluation/volume_user.py) so that the two designs are compared on the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from interactive_adapt_lab.data.datasets import Domain
from interactive_adapt_lab.evaluation.volume_user import validate
from InteractiveAdaptLib.engine.volume_crop import part_inside
from InteractiveAdaptLib.engine.volume_predictor import mask_corners
from InteractiveAdaptLib.model.network import NetworkConfig

WINDOW_PX = 96
WINDOW_MM = 1.5  # the window's pixel: 96 px cover 144 mm, a large AAL structure with context
DISK_RADIUS = 2  # click disks, in window pixels
MIN_PIXELS = 5  # a propagated mask smaller than this (native pixels) is noise: the structure has ended

PROPAGATION_NETWORK = NetworkConfig(
    name="propagation",
    channels=(16, 32, 64, 128, 256),
    num_res_units=0,
    spatial_dims=2,
    in_channels=6,  # image k, image k-1, image k+1, positive disks, negative disks, prior mask
)


@dataclass(frozen=True)
class Window:
    """A box of native in-plane pixels [start, start + extent) (rows J, columns I), seen as size x size."""

    start: tuple[int, int]
    extent: tuple[int, int]
    size: int = WINDOW_PX

    def to_window(self, points: np.ndarray) -> np.ndarray:
        """Native (j, i) pixel coordinates (n, 2) -> window coordinates (pixel centres line up)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        scale = self.size / np.asarray(self.extent, dtype=np.float64)
        return (points - np.asarray(self.start) + 0.5) * scale - 0.5

    def inside(self, shape: tuple[int, int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """(native slices, box slices) of the part of the window that lies inside a slice of `shape`."""
        return part_inside(self.start, self.extent, shape)


def make_window(center: np.ndarray, spacing_ji: tuple[float, float], size: int = WINDOW_PX) -> Window:
    """The window centred (to the nearest pixel) on native (j, i) coordinates `center`."""
    extent = tuple(max(1, round(size * WINDOW_MM / s)) for s in spacing_ji)
    start = tuple(int(np.floor(c + 0.5 - e / 2)) for c, e in zip(center, extent, strict=True))
    return Window(start, extent, size)


def window_around(points: np.ndarray, prior: np.ndarray, spacing_ji: tuple[float, float]) -> Window:
    """The window centred on the bounding box of native clicks (n, 2) and of the prior mask (J, I)."""
    corners = np.vstack([np.asarray(points, dtype=np.float64).reshape(-1, 2), mask_corners(prior)])
    return make_window((corners.min(axis=0) + corners.max(axis=0)) / 2, spacing_ji)


def sample_window(planes: torch.Tensor, window: Window, edge: bool) -> torch.Tensor:
    """The window of (C, J, I) planes as (C, size, size). Past the slice's edge: its edge values (`edge`,
    for images) or zeros (masks). Antialiased, so a 1 mm image does not alias into 1.5 mm pixels."""
    native, box = window.inside(tuple(planes.shape[1:]))
    part = planes[(slice(None), *native)][None].float()
    pads = [(b.start, extent - b.stop) for b, extent in zip(box, window.extent, strict=True)]
    flat = [v for p in reversed(pads) for v in p]
    if any(flat):
        if edge and min(part.shape[2:]) > 0:
            part = F.pad(part, flat, mode="replicate")
        else:
            part = F.pad(part, flat, mode="constant", value=0.0)
    size = (window.size, window.size)
    return F.interpolate(part, size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def paste_window(values: torch.Tensor, window: Window, shape: tuple[int, int]) -> np.ndarray:
    """The window's (size, size) logit margin resized back onto its native box: bool (J, I), empty
    outside the window."""
    native, box = window.inside(shape)
    resized = F.interpolate(values[None, None], size=window.extent, mode="bilinear", align_corners=False)
    mask = np.zeros(shape, bool)
    mask[native] = (resized[(0, 0, *box)] > 0).cpu().numpy()
    return mask


def click_disks(points: np.ndarray, positive: np.ndarray, size: int = WINDOW_PX) -> torch.Tensor:
    """(2, size, size): 1 within DISK_RADIUS pixels of each positive click (channel 0) and each negative
    one (channel 1); `points` (n, 2) in window coordinates."""
    disks = torch.zeros(2, size, size)
    rows = torch.arange(size, dtype=torch.float32)[:, None]
    cols = torch.arange(size, dtype=torch.float32)[None, :]
    for (row, col), is_positive in zip(
        np.asarray(points).reshape(-1, 2), np.asarray(positive).reshape(-1), strict=True
    ):
        inside = (rows - float(row)) ** 2 + (cols - float(col)) ** 2 <= DISK_RADIUS**2
        disks[0 if is_positive else 1][inside] = 1.0
    return disks


def network_input(images: torch.Tensor, disks: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """(1, 6, S, S) from the window's images (3, S, S: slice k, k-1, k+1), its click disks (2, S, S) and
    the prior mask (S, S); the same in training and inference. The three images are z-scored together
    over the window (a site's intensity scale does not matter, the change between slices is kept)."""
    mean, std = images.mean(), images.std()
    normalized = (images - mean) / torch.clamp(std, min=1e-6)
    return torch.cat([normalized, disks, prior[None]])[None]


def answer_of(logits: torch.Tensor) -> torch.Tensor:
    """The (S, S) logit margin (target minus background) of a (1, 2, S, S) answer: > 0 is the structure."""
    return (logits[0, 1] - logits[0, 0]).float()


class PropagationPredictor:
    """Runs the 2.5D network over a volume's axial slices, from the clicked slices outwards."""

    def __init__(self, network: torch.nn.Module, device: torch.device | str = "cpu") -> None:
        self.network = network
        self.device = torch.device(device)

    def prepare(self, volume: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A normalised (K, J, I) volume as a float tensor on the predictor's device."""
        if isinstance(volume, torch.Tensor):
            return volume.to(self.device, torch.float32)
        return torch.as_tensor(np.ascontiguousarray(volume, dtype=np.float32), device=self.device)

    def slice_input(
        self,
        image: torch.Tensor,
        k: int,
        spacing: tuple[float, float, float],
        points: np.ndarray,
        positive: np.ndarray,
        prior: np.ndarray,
    ) -> tuple[torch.Tensor, Window]:
        """The network's input on axial slice k for native clicks (n, 2) (j, i) on it and a prior (J, I)."""
        last = image.shape[0] - 1
        planes = image[[k, max(k - 1, 0), min(k + 1, last)]]
        window = window_around(points, prior, spacing[1:])
        images = sample_window(planes, window, edge=True)
        prior_in = sample_window(torch.from_numpy(prior)[None].to(self.device), window, edge=False)[0]
        disks = click_disks(window.to_window(points), positive).to(self.device)
        return network_input(images, disks, prior_in), window

    def predict_slice(self, image, k, spacing, points, positive, prior) -> np.ndarray:
        """The structure on axial slice k, bool (J, I) (arguments as `slice_input`)."""
        inputs, window = self.slice_input(image, k, spacing, points, positive, prior)
        with torch.inference_mode():
            logits = self.network(inputs)
        return paste_window(answer_of(logits), window, tuple(image.shape[1:]))

    def propagate(
        self,
        volume: np.ndarray | torch.Tensor,
        spacing: tuple[float, float, float],
        points: np.ndarray,
        positive: np.ndarray,
        previous: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The structure for native clicks (n, 3) (k, j, i) with their signs, given the current 3D result.

        Returns:
            (bool (K, J, I) mask, int (K,) source: the clicked slice each slice's answer was carried
            from, -1 where no answer reached).
        """
        image = self.prepare(volume)
        depth, plane = image.shape[0], tuple(image.shape[1:])
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        positive = np.asarray(positive, bool).reshape(-1)
        on_slice = np.clip(np.rint(points[:, 0]).astype(int), 0, depth - 1)
        mask = np.zeros((depth, *plane), bool)
        source = np.full(depth, -1)
        distance = np.full(depth, np.inf)
        clicked = sorted({int(k) for k in on_slice})
        for k in clicked:
            prior = previous[k] if previous is not None else np.zeros(plane, bool)
            here = on_slice == k
            mask[k] = self.predict_slice(image, k, spacing, points[here, 1:], positive[here], prior)
            source[k], distance[k] = k, 0
        no_clicks, no_signs = np.empty((0, 2)), np.empty(0, bool)
        for start in clicked:
            for step in (-1, 1):
                # Outwards until the mask vanishes, the volume ends or the next clicked slice (it has its
                # own answer). Slices between two clicked slices are reached from both: the nearer source
                # wins (on a tie the lower one, carried first).
                prior, k = mask[start], start + step
                while 0 <= k < depth and distance[k] > 0 and prior.sum() >= MIN_PIXELS:
                    answer = self.predict_slice(image, k, spacing, no_clicks, no_signs, prior)
                    if answer.sum() < MIN_PIXELS:
                        break
                    if abs(k - start) < distance[k]:
                        mask[k], source[k], distance[k] = answer, start, abs(k - start)
                    prior, k = answer, k + step
        return mask, source

    def predict(self, volume, spacing, points, positive, previous=None) -> np.ndarray:
        """The structure as bool (K, J, I) (arguments as `propagate`)."""
        return self.propagate(volume, spacing, points, positive, previous)[0]


class VolumeUserAdapter:
    """The predictor as evaluation/volume_user.py plays a 3D predictor: prepare(volume) and
    predict(...).mask; a click (k, j, i) is a click on axial slice k at row j, column i."""

    def __init__(self, propagation: PropagationPredictor) -> None:
        self.propagation = propagation

    def prepare(self, volume: np.ndarray) -> torch.Tensor:
        return self.propagation.prepare(volume)

    def predict(self, image, spacing, points, positive, previous=None) -> SimpleNamespace:
        return SimpleNamespace(mask=self.propagation.predict(image, spacing, points, positive, previous))


def validate_propagation(
    network: torch.nn.Module, domains: list[Domain], clicks: int = 5
) -> dict[str, list[float]]:
    """Mean 3D Dice after 1..`clicks` clicks over the validation pairs, per head: the 3D design's protocol."""
    network.eval()
    return validate(VolumeUserAdapter(PropagationPredictor(network)), domains, clicks)
