import pytest
import torch

from faceattrs.models import multitask
from faceattrs.models.multitask import IMAGENET_SHA256, MultiTaskNet, imagenet_state_dict


@pytest.mark.parametrize("backbone", sorted(IMAGENET_SHA256))
def test_each_backbone_gives_the_three_heads(backbone):
    net = MultiTaskNet(image_size=64, pretrained=False, backbone=backbone).eval()
    with torch.no_grad():
        out = net(torch.zeros(3, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"age": (3, 117), "ethnicity": (3, 5), "gender": (3, 2)}


@pytest.mark.parametrize("backbone", sorted(IMAGENET_SHA256))
def test_imagenet_weights_come_from_the_wheel_and_fit_the_backbone(backbone):
    net = MultiTaskNet(image_size=64, pretrained=True, backbone=backbone)
    weights = imagenet_state_dict(backbone)
    name = "_conv_stem.weight"
    assert torch.equal(net.backbone.state_dict()[name], weights[name])


def test_weights_with_an_unexpected_sha256_are_refused(monkeypatch):
    monkeypatch.setitem(multitask.IMAGENET_SHA256, "lite1", "0" * 64)
    with pytest.raises(RuntimeError, match="refusing to load"):
        imagenet_state_dict("lite1")


def test_an_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backbone 'lite7'"):
        MultiTaskNet(pretrained=False, backbone="lite7")
