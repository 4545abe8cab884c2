import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from faceattrs.build.descriptor_finetune import (
    DescriptorFinetuneConfig,
    FinetunedMismatch,
    finetune,
    load_finetuned_network,
    save_finetuned,
)
from faceattrs.build.descriptor_heads import add_descriptor_heads
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.models.dlib_resnet import DlibResNet, read_layers
from tests.models.test_dlib_resnet import write_tiny_net


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A tiny exported model, a tiny dlib-format net, and that net fine-tuned for one epoch on the model's faces."""
    from tests.conftest import ship_random_model

    root = tmp_path_factory.mktemp("descriptor_finetune")
    base, _, faces = ship_random_model(root, n_faces=24, image_size=64, backbone="lite1")
    write_tiny_net(root / "net.xml", outputs=16)
    config = DescriptorFinetuneConfig(epochs=1, batch_size=8, lr=1e-2)
    model = finetune(root / "net.xml", faces, config)
    sha = save_finetuned(model, root / "tuned.safetensors", config, root / "net.xml", input_size=64)
    return root, base, faces, model, sha


def test_a_trainable_network_has_the_frozen_ones_weights_as_parameters(tmp_path):
    write_tiny_net(tmp_path / "net.xml")
    layers = read_layers(tmp_path / "net.xml")
    frozen, trainable = DlibResNet(layers), DlibResNet(layers, trainable=True)
    assert not list(frozen.parameters()) and len(list(trainable.parameters())) == 5  # con w, b; affine s, t; fc
    assert frozen.state_dict().keys() == trainable.state_dict().keys()
    x = torch.rand(2, 3, 20, 20) * 255
    assert torch.equal(frozen(x), trainable(x))


def test_finetuning_changes_the_network_and_the_saved_weights_reload(tuned):
    root, _, faces, model, sha = tuned
    before = DlibResNet(read_layers(root / "net.xml"))
    net, header = load_finetuned_network(root / "net.xml", root / "tuned.safetensors")
    assert header["sha256"] == sha and json.loads(header["config"])["epochs"] == 1 and header["input_size"] == "64"
    x = torch.rand(3, 3, 150, 150) * 255
    with torch.no_grad():
        assert not torch.allclose(before(x), net(x), atol=1e-4)  # trained
        assert torch.allclose(model.descriptor.net(x), net(x), atol=1e-5)  # reloaded as saved
    ethnicity, gender = model(torch.from_numpy(faces.images[:2]))
    assert ethnicity.shape == (2, 5) and gender.shape == (2, 2)


def test_weights_of_another_network_are_refused(tuned, tmp_path):
    root = tuned[0]
    write_tiny_net(tmp_path / "other.xml", seed=1, outputs=16)
    with pytest.raises(FinetunedMismatch, match="not fine-tuned from"):
        load_finetuned_network(tmp_path / "other.xml", root / "tuned.safetensors")


def test_the_blended_model_carries_the_finetuned_network(tuned):
    root, base, faces, _, sha = tuned
    parts = {"train": faces, "val": faces, "test": faces}
    add_descriptor_heads(
        base, root / "net.xml", root / "blend", parts, version="t", finetuned=root / "tuned.safetensors"
    )
    model = AttributeModel(root / "blend")
    fine_tuning = model.metadata["training"]["descriptor_heads"]["network_fine_tuning"]
    assert fine_tuning["weights_sha256"] == sha and fine_tuning["config"]["epochs"] == 1
    # the tiny net's convolution (108 weights: small enough to stay float32) is the fine-tuned one, not the original
    weights = [numpy_helper.to_array(i) for i in onnx.load(str(root / "blend" / "model.onnx")).graph.initializer]
    tuned_conv = load_finetuned_network(root / "net.xml", root / "tuned.safetensors")[0].p3.numpy()
    original_conv = DlibResNet(read_layers(root / "net.xml")).p3.numpy()
    assert not np.allclose(tuned_conv, original_conv, atol=1e-3)
    assert any(w.shape == tuned_conv.shape and np.allclose(w, tuned_conv) for w in weights)
    assert not any(w.shape == original_conv.shape and np.allclose(w, original_conv) for w in weights)
    assert model.raw(faces.images[:4])["gender_logits"].shape == (4, 2)


def test_weights_tuned_at_another_input_size_are_refused(tuned, tmp_path):
    root, base, faces, model, _ = tuned
    save_finetuned(model, tmp_path / "at96.safetensors", DescriptorFinetuneConfig(), root / "net.xml", input_size=96)
    parts = {"train": faces, "val": faces, "test": faces}
    with pytest.raises(FinetunedMismatch, match="96 px"):
        add_descriptor_heads(
            base, root / "net.xml", tmp_path / "out", parts, version="x", finetuned=tmp_path / "at96.safetensors"
        )


def test_the_default_gender_loss_is_plain_cross_entropy_and_a_child_weight_weighs_children():
    from faceattrs.training.losses import child_weighted_gender_loss

    logits, gender, age = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1]), torch.tensor([3, 30, 8, 50, 12, 13])
    plain = torch.nn.functional.cross_entropy(logits, gender)
    default = DescriptorFinetuneConfig().child_gender_weight
    torch.testing.assert_close(child_weighted_gender_loss(logits, gender, age, default, label_smoothing=0.0), plain)
    each = torch.nn.functional.cross_entropy(logits, gender, reduction="none")
    weighted = child_weighted_gender_loss(logits, gender, age, 4.0, label_smoothing=0.0)
    torch.testing.assert_close(weighted, (each * torch.tensor([4.0, 1, 4, 1, 4, 1])).mean())
