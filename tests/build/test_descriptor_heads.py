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
    descriptor = FaceDescriptor(DlibResNet(read_layers(root / "net.xml"))).eval()
    with torch.no_grad():
        descriptors = descriptor(torch.from_numpy(images))
        model_logits = (torch.from_numpy(before[f"{t}_logits"]) for t in ("ethnicity", "gender", "age"))
        eth, gender, age = blend(descriptors, *model_logits)
    # up to the float16 storage of the weights
    np.testing.assert_allclose(after["ethnicity_logits"], eth.numpy(), atol=2e-2)
    np.testing.assert_allclose(after["gender_logits"], gender.numpy(), atol=2e-2)
    np.testing.assert_allclose(after["age_logits"], age.numpy(), atol=2e-2)
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


def test_a_head_keeps_a_row_for_each_class_no_face_carries():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (200, 4))
    y = np.where(x[:, 0] > 0, 3, 1)  # classes 0, 2 and 4 absent
    head = fit_head(x, y, n_classes=5)
    proba = softmax(head.logits(x))
    assert proba.shape == (200, 5) and proba[:, [0, 2, 4]].max() < 1e-9
    np.testing.assert_allclose(proba[:, [1, 3]], softmax(fit_head(x, y).logits(x)), atol=1e-6)


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
        for t, k in (("ethnicity", 5), ("gender", 2), ("age", 9))
    }
    images, eth, gender = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8), torch.randn(3, 5), torch.randn(3, 2)
    age = torch.randn(3, 117)
    temperatures = {"ethnicity": 2.0, "gender": 0.5}
    descriptors = net(images)
    none = {"ethnicity": 0.0, "gender": 0.0, "age": 0.0}
    keep_model = BlendGraph(heads, temperatures, none)(descriptors, eth, gender, age)
    torch.testing.assert_close(keep_model[0], torch.log_softmax(eth / 2.0, 1))
    torch.testing.assert_close(keep_model[2], age)
    keep_head = BlendGraph(heads, temperatures, {"ethnicity": 1.0, "gender": 1.0, "age": 0.5})(
        descriptors, eth, gender, age
    )
    torch.testing.assert_close(keep_head[1], torch.log_softmax(descriptors @ torch.ones(4, 2) + torch.arange(2.0), 1))
    # every age gets half its group's log-probability: 0-2 the first group's, 70+ the last's
    group_logp = torch.log_softmax(descriptors @ torch.ones(4, 9) + torch.arange(9.0), 1)
    torch.testing.assert_close(keep_head[2][:, [0, 2, 3, 70, 116]] - age[:, [0, 2, 3, 70, 116]],
                               0.5 * group_logp[:, [0, 0, 1, 8, 8]])  # fmt: skip


def test_the_age_weight_follows_the_labels_likelihood():
    from faceattrs.build.descriptor_heads import N_AGES, blend_age_logits, fit_age_weight, interval_nll

    rng = np.random.default_rng(0)
    ages = rng.integers(20, 30, 200)  # every face in the group 20-29
    flat = np.zeros((200, N_AGES))
    right = np.log(np.full((200, 9), 0.02))
    right[:, 3] = np.log(0.84)
    wrong = right[:, ::-1].copy()
    assert fit_age_weight(flat, right, ages, ages) == 1.0
    assert fit_age_weight(flat, wrong, ages, ages) == 0.0
    # FairFace's interval labels: the blend puts more mass inside the group
    low, high = np.full(200, 20), np.full(200, 29)
    assert interval_nll(blend_age_logits(flat, right, 1.0), low, high) < interval_nll(flat, low, high)


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
    np.testing.assert_allclose(int8["age_logits"], fp["age_logits"], atol=0.3)
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
