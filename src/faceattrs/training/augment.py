"""Batch augmentation on float images in [0, 1] (N, 3, H, W), with torch only.

Flip, a small random similarity transform (rotation, scale, shift) and
colour jitter (brightness, contrast, saturation), each drawn per image.

>>> import torch
>>> torch.manual_seed(0) and None
>>> Augment()(torch.rand(4, 3, 32, 32)).shape
torch.Size([4, 3, 32, 32])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class Augment:
    flip: bool = True
    rotate_deg: float = 10.0
    scale: float = 0.10
    shift: float = 0.05
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if self.flip:
            flip = torch.rand(n) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if self.rotate_deg or self.scale or self.shift:
            x = self._affine(x)
        if self.brightness or self.contrast or self.saturation:
            x = self._colour(x)
        return x

    def _affine(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        angle = (torch.rand(n) * 2 - 1) * math.radians(self.rotate_deg)
        scale = 1 + (torch.rand(n) * 2 - 1) * self.scale
        shift = (torch.rand(n, 2) * 2 - 1) * self.shift * 2  # grid units span [-1, 1]
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]

        def factor(strength: float) -> torch.Tensor:
            return (1 + (torch.rand(n) * 2 - 1) * strength)[:, None, None, None]

        x = x * factor(self.brightness)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * factor(self.contrast) + mean
        grey = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
        x = (x - grey) * factor(self.saturation) + grey
        return x.clamp(0, 1)
