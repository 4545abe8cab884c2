"""The course project's two networks, rebuilt layer for layer.

They are kept as measured baselines, not as models to ship: every claim of
improvement in this project is a side-by-side figure against them.

* :class:`SeedEthnicityNet` -- 80x80 RGB in [0, 1] -> 5 ethnicity logits.
  The original has batch norm but no activation function anywhere, so apart
  from the max-pools it is close to a linear classifier; that is reproduced
  on purpose.
* :class:`SeedAgeNet` -- a LeNet-style regressor, 80x80 RGB in [0, 1] -> age.

>>> import torch
>>> SeedEthnicityNet()(torch.zeros(2, 3, 80, 80)).shape
torch.Size([2, 5])
>>> SeedAgeNet()(torch.zeros(2, 3, 80, 80)).shape
torch.Size([2])
"""

from __future__ import annotations

import torch
from torch import nn

SEED_INPUT_SIZE = 80


class SeedEthnicityNet(nn.Module):
    def __init__(self, n_classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16),
            nn.Conv2d(16, 16, 3), nn.BatchNorm2d(16),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3), nn.BatchNorm2d(16),
            nn.Conv2d(16, 16, 3), nn.BatchNorm2d(16),
            nn.Conv2d(16, 8, 3), nn.BatchNorm2d(8),
            nn.MaxPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(2048, 512),
            nn.Linear(512, 128),
            nn.Linear(128, 64),
            nn.Linear(64, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SeedAgeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
        )  # fmt: skip
        self.regressor = nn.Sequential(
            nn.Flatten(),
            nn.Linear(5184, 512), nn.ReLU(),
            nn.Linear(512, 128), nn.ReLU(),
            nn.Linear(128, 84), nn.ReLU(),
            nn.Linear(84, 32), nn.ReLU(),
            nn.Linear(32, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regressor(self.features(x)).squeeze(1)
