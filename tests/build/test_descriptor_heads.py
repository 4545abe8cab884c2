import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from faceattrs.build.descriptor_heads import (
    BlendGraph,
    LinearHead,
    add_descriptor_heads,
    fit_head,
    store_float16,
    to_onnx,
)
from faceattrs.calibration import softmax
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.models.dlib_resnet import DlibResNet, FaceDescriptor, read_layers
from tests.models.test_dlib_resnet import write_tiny_net


@pytest.fixture(scope="module")
def blended(tmp_path_factory):
    """A tiny exported multitask model, and the same model with descriptor heads of a tiny dlib-format net."""
    from tests.conftest import ship_random_model

    root = tmp_path_factory.mktemp("descriptor_heads")
    base, _, faces = ship_random_model(root, n_faces=40, image_size=64, backbone="lite1")
    parts = {"train": faces, "val": faces, "test": faces}
    write_tiny_net(root / "net.xml", outputs=16)
    blend = add_descriptor_heads(base, root / "net.xml", root / "blend", parts, version="test")
    return root, faces, blend


def test_the_blended_model_is_the_base_model_plus_the_blend_graph(blended):
    root, faces, blend = blended
    base, model = AttributeModel(root / "model"), AttributeModel(root / "blend")
    images = faces.images[:8]
    before, after = base.raw(images), model.raw(images)
    # the age output is untouched, up to the float16 storage of the weights
    np.testing.assert_allclose(after["age_logits"], before["age_logits"], atol=2e-2)
    descriptor = FaceDescriptor(DlibResNet(read_layers(root / "net.xml"))).eval()
    with torch.no_grad():
        descriptors = descriptor(torch.from_numpy(images))
        eth, gender = blend(descriptors, *(torch.from_numpy(before[f"{t}_logits"]) for t in ("ethnicity", "gender")))
    np.testing.assert_allclose(after["ethnicity_logits"], eth.numpy(), atol=2e-2)
    np.testing.assert_allclose(after["gender_logits"], gender.numpy(), atol=2e-2)
    assert model.metadata["training"]["descriptor_heads"]["head_weight"] == blend.weights


def test_metadata_records_the_blend_and_its_refitted_temperatures(blended):
    root, _, blend = blended
    meta = json.loads((root / "blend" / "metadata.json").read_text())
    base = json.loads((root / "model" / "metadata.json").read_text())
    assert meta["version"] == "test"
    assert meta["sha256"] != base["sha256"]
    assert meta["calibration"]["age_interval"]["level"] > 0  # refitted through the merged file
    assert meta["calibration"]["age_interval"]["coverage"] == base["calibration"]["age_interval"]["coverage"]
    assert meta["training"]["descriptor_heads"]["base_model_sha256"] == base["sha256"]
    assert "metrics" not in meta  # the base model's test figures do not describe this one
    assert blend.temperatures["ethnicity"] == base["calibration"]["ethnicity_temperature"]
    assert AttributeModel(root / "blend").predict(np.zeros((1, 200, 200, 3), np.uint8)).ethnicity_proba.shape == (1, 5)


def test_a_model_with_heads_is_refused_as_a_base(blended, tmp_path):
    from faceattrs.build.descriptor_heads import add_descriptor_heads

    root, faces, _ = blended
    parts = {"train": faces, "val": faces, "test": faces}
    with pytest.raises(ValueError, match="descriptor heads already"):
        add_descriptor_heads(root / "blend", root / "net.xml", tmp_path / "again", parts, version="again")


def test_fit_head_folds_the_standardisation_into_the_weights():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = rng.normal(3, 2, (300, 6))
    for y in (rng.integers(0, 2, 300), rng.integers(0, 4, 300)):
        head = fit_head(x, y)
        scaler = StandardScaler().fit(x)
        sklearn = LogisticRegression(C=0.1, max_iter=3000).fit(scaler.transform(x), y)
        ours = np.log(softmax(head.logits(x)))
        np.testing.assert_allclose(ours, sklearn.predict_log_proba(scaler.transform(x)), atol=1e-4)


def test_float16_storage_halves_the_file_and_keeps_the_outputs():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
    model = to_onnx(module, (torch.zeros(2, 64),), ["x"], ["y"])
    size = len(model.SerializeToString())
    x = np.random.default_rng(0).normal(size=(5, 64)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    half = store_float16(model).SerializeToString()
    assert len(half) < 0.6 * size
    np.testing.assert_allclose(ort.InferenceSession(half).run(None, {"x": x})[0], expected, atol=1e-2)


def test_blend_graph_weight_zero_keeps_the_model_and_one_keeps_the_head(tmp_path):
    write_tiny_net(tmp_path / "net.xml", outputs=4)
    net = FaceDescriptor(DlibResNet(read_layers(tmp_path / "net.xml")))
    heads = {
        t: LinearHead(np.ones((k, 4), np.float32), np.arange(k, dtype=np.float32))
        for t, k in (("ethnicity", 5), ("gender", 2))
    }
    images, eth, gender = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8), torch.randn(3, 5), torch.randn(3, 2)
    temperatures = {"ethnicity": 2.0, "gender": 0.5}
    descriptors = net(images)
    keep_model = BlendGraph(heads, temperatures, {"ethnicity": 0.0, "gender": 0.0})(descriptors, eth, gender)
    torch.testing.assert_close(keep_model[0], torch.log_softmax(eth / 2.0, 1))
    keep_head = BlendGraph(heads, temperatures, {"ethnicity": 1.0, "gender": 1.0})(descriptors, eth, gender)
    torch.testing.assert_close(keep_head[1], torch.log_softmax(descriptors @ torch.ones(4, 2) + torch.arange(2.0), 1))


def test_int8_descriptors_ship_a_quantised_network_close_to_the_float_one(blended, tmp_path):
    import onnx

    root, faces, _ = blended
    parts = {"train": faces, "val": faces, "test": faces}
    add_descriptor_heads(root / "model", root / "net.xml", tmp_path / "int8", parts, version="test", int8=True)
    ops = {node.op_type for node in onnx.load(str(tmp_path / "int8" / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta = json.loads((tmp_path / "int8" / "metadata.json").read_text())
    assert meta["training"]["descriptor_heads"]["weights_stored_as"].startswith("descriptor network int8")
    images = faces.images[:8]
    int8, fp = AttributeModel(tmp_path / "int8").raw(images), AttributeModel(root / "blend").raw(images)
    np.testing.assert_array_equal(int8["age_logits"], fp["age_logits"])  # the first network is not quantised
    np.testing.assert_allclose(int8["gender_logits"], fp["gender_logits"], atol=0.3)


def test_descriptor_graph_sets_the_activation_ranges_with_the_method_asked_for(tmp_path):
    from onnx import numpy_helper

    from faceattrs.build.descriptor_heads import descriptor_graph

    write_tiny_net(tmp_path / "net.xml", outputs=16)
    net = DlibResNet(read_layers(tmp_path / "net.xml"))
    faces = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)

    def activation_scales(method: str) -> dict[str, float]:
        graph = descriptor_graph(net, 32, faces, method)
        quantize = [n for n in graph.graph.node if n.op_type == "QuantizeLinear"]
        values = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
        return {n.input[0]: float(values[n.input[1]]) for n in quantize if values[n.input[1]].ndim == 0}

    minmax, percentile = activation_scales("minmax"), activation_scales("percentile")
    assert minmax.keys() == percentile.keys() and len(minmax) > 2
    # percentile ranges drop the rarest extremes, so no range is wider than minmax's and some are narrower
    assert all(percentile[name] <= minmax[name] * (1 + 1e-6) for name in minmax)
    assert any(percentile[name] < minmax[name] * 0.999 for name in minmax)


def test_attach_feeds_the_second_graph_from_the_first():
    from faceattrs.build.descriptor_heads import attach

    class First(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(4, 3)

        def forward(self, images):
            return self.a(images)

    class Second(torch.nn.Module):  # exported alone, its names ("a.weight", "/a/Gemm"...) clash with First's
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 5), torch.nn.Linear(2, 5)

        def forward(self, descriptors, extra):
            return self.a(descriptors) * self.b(extra)

    torch.manual_seed(0)
    first, second = First(), Second()
    g1 = to_onnx(first, (torch.zeros(2, 4),), ["images"], ["descriptors"])
    g2 = to_onnx(second, (torch.zeros(2, 3), torch.zeros(2, 2)), ["descriptors", "extra"], ["out"])
    both = attach(g1, g2, "second/")
    assert [v.name for v in both.graph.input] == ["images", "extra"]
    assert [v.name for v in both.graph.output] == ["out"]  # "descriptors" is consumed inside
    x, extra = torch.randn(3, 4), torch.randn(3, 2)
    got = ort.InferenceSession(both.SerializeToString()).run(None, {"images": x.numpy(), "extra": extra.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, second(first(x), extra).numpy(), rtol=1e-5, atol=1e-5)
