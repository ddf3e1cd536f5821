"""Distribution shifts of test images: Gaussian noise, rotation and translation.

Shifts act in pixel space scaled to [0, 1] (0 = background), so a severity means the
same on every dataset: noise is the standard deviation in units of the full pixel
range, rotation is in degrees (about the centre), translation in pixels (right and
down). Pixels moved in from outside the image are background, as in the corruption
benchmarks of Hendrycks & Dietterich (2019), whose Gaussian-noise severities for
MNIST-like data this follows in spirit. The noise is drawn from a fixed generator, so
every method is scored on the same corrupted images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_noise(images: Tensor, std: float, generator: torch.Generator) -> Tensor:
    noise = torch.randn(images.shape, generator=generator) * std
    return (images + noise).clamp_(0.0, 1.0)


def rotate(images: Tensor, degrees: float) -> Tensor:
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=images.dtype).expand(len(images), 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)


def translate(images: Tensor, pixels: int) -> Tensor:
    shifted = torch.zeros_like(images)
    if pixels == 0:
        return images.clone()
    shifted[..., pixels:, pixels:] = images[..., :-pixels, :-pixels]
    return shifted


def shifted_sets(images01: Tensor, noise: tuple[float, ...], rotation: tuple[float, ...],
                 translation: tuple[int, ...], seed: int) -> dict[str, Tensor]:
    """Every configured shift of `images01` (pixels in [0, 1]), keyed "kind@severity"."""
    generator = torch.Generator().manual_seed(seed)
    out = {f"noise@{s:g}": gaussian_noise(images01, s, generator) for s in noise}
    out.update({f"rotation@{d:g}": rotate(images01, d) for d in rotation})
    out.update({f"translation@{p}": translate(images01, p) for p in translation})
    return out
