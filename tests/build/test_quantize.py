import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from faceattrs.build.quantize import MAX_INT8_WEIGHT, METHODS, quantize_model_dir
from faceattrs.inference.attribute_model import AttributeModel


@pytest.fixture(scope="module")
def quantised(tmp_path_factory):
    """A tiny exported multitask model and its int8 copy."""
    from tests.conftest import ship_random_model

    root = tmp_path_factory.mktemp("quantize")
    base, _, faces = ship_random_model(root, n_faces=40, image_size=64, backbone="lite1")
    parts = {"train": faces, "val": faces, "test": faces}
    calibration = quantize_model_dir(base, root / "int8", parts, version="int8-test", n_faces=16)
    return root, faces, calibration


def test_the_int8_copy_is_quantised_and_close_to_the_float_model(quantised):
    root, faces, _ = quantised
    ops = {node.op_type for node in onnx.load(str(root / "int8" / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert (root / "int8" / "model.onnx").stat().st_size < (root / "model" / "model.onnx").stat().st_size / 2
    fp, int8 = AttributeModel(root / "model").raw(faces.images), AttributeModel(root / "int8").raw(faces.images)
    for name, logits in fp.items():
        scale = np.abs(logits).max()
        assert np.abs(int8[name] - logits).max() < 0.15 * scale, name


def int8_weights(model_file) -> list[np.ndarray]:
    graph = onnx.load(str(model_file)).graph
    return [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]


def largest(weights: np.ndarray) -> int:
    return int(np.abs(weights.astype(int)).max())


def seven_bit(weights: list[np.ndarray]) -> bool:
    return all(largest(w) <= MAX_INT8_WEIGHT for w in weights)


def test_int8_weights_use_seven_bits_so_every_x86_cpu_gives_the_same_outputs(quantised):
    root, _, _ = quantised
    weights = int8_weights(root / "int8" / "model.onnx")
    assert weights and seven_bit(weights)
    assert any(largest(w) == MAX_INT8_WEIGHT for w in weights)  # the range is used, not shrunk further


def test_the_shipped_models_int8_weights_use_seven_bits():
    from tests.conftest import SHIPPED

    weights = int8_weights(SHIPPED / "model.onnx")
    assert weights, "the shipped model has int8 parts"
    assert seven_bit(weights), "an int8 weight of the shipped model needs 8 bits: rebuild it with faceattrs build"


def test_metadata_names_the_base_and_refits_the_calibration_on_validation(quantised):
    root, _, calibration = quantised
    base = json.loads((root / "model" / "metadata.json").read_text())
    meta = json.loads((root / "int8" / "metadata.json").read_text())
    assert meta["version"] == "int8-test" and "metrics" not in meta
    assert meta["training"]["quantization"]["base_model_sha256"] == base["sha256"]
    assert "16 random train faces (percentile" in meta["training"]["quantization"]["activations"]
    assert meta["calibration"] == calibration
    assert 0 < calibration["age_interval"]["level"] < 0.5
    assert calibration["ethnicity_temperature"] != base["calibration"]["ethnicity_temperature"]
    AttributeModel(root / "int8")  # the sha256 in the metadata is the file's


def test_descriptor_heads_on_an_int8_model_say_both_networks_are_int8(quantised, tmp_path):
    from faceattrs.build.descriptor_heads import add_descriptor_heads
    from tests.models.test_dlib_resnet import write_tiny_net

    root, faces, _ = quantised
    write_tiny_net(tmp_path / "net.xml", outputs=16)
    parts = {"train": faces, "val": faces, "test": faces}
    add_descriptor_heads(root / "int8", tmp_path / "net.xml", tmp_path / "blend", parts, version="b", int8=True)
    storage = json.loads((tmp_path / "blend" / "metadata.json").read_text())["training"]["descriptor_heads"]
    expected = "first network int8 (training.quantization); descriptor network int8"
    assert storage["weights_stored_as"].startswith(expected)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_any_number_of_calibration_faces_works_with_every_method(quantised, method):
    from faceattrs.build.quantize import quantize_int8

    root, faces, _ = quantised
    # 37 faces cannot be cut into equal batches of 32; onnxruntime's histogram (percentile) calibrator
    # fails on a short last batch, so the batches must come out equal
    int8 = quantize_int8(root / "model" / "model.onnx", faces.images[:37], method)
    assert any(node.op_type == "QuantizeLinear" for node in int8.graph.node)
