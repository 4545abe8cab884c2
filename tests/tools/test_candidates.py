"""The candidate builders in tools/candidates on a tiny random model."""

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "candidates"))
from degrade import DEGRADATIONS, degrade
from self_distill import OnnxModule, as_float
from single_pass import single_pass_graph


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny exported multitask model whose outputs depend on the image.

    A freshly initialised network's outputs barely do (they vary by 1e-9 across faces), so its
    convolution weights are redrawn at He scale.
    """
    from onnx import numpy_helper

    from tests.conftest import ship_random_model

    root = tmp_path_factory.mktemp("candidates")
    model_dir, _, faces = ship_random_model(root, n_faces=8, image_size=64, backbone="lite1")
    model = onnx.load(str(model_dir / "model.onnx"))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        if len(init.dims) == 4:
            fan_in = int(np.prod(init.dims[1:]))
            weights = rng.normal(0, np.sqrt(2 / fan_in), tuple(init.dims)).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(weights, init.name))
    onnx.save(model, model_dir / "model.onnx")
    return model_dir, faces


def run(model: onnx.ModelProto, images: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"images": images}
    )


def test_the_single_pass_equals_the_flip_average_on_mirror_symmetric_faces(tiny):
    model_dir, faces = tiny
    half = faces.images[:4, :, :32]
    symmetric = np.ascontiguousarray(np.concatenate([half, half[:, :, ::-1]], axis=2))
    single = run(single_pass_graph(model_dir / "model.onnx"), symmetric)
    averaged = run(onnx.load(str(model_dir / "model.onnx")), symmetric)
    for a, b in zip(single, averaged, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    single = run(single_pass_graph(model_dir / "model.onnx"), faces.images[:4])[0]
    averaged = run(onnx.load(str(model_dir / "model.onnx")), faces.images[:4])[0]
    assert np.abs(single - averaged).max() > 100 * 1e-4  # on ordinary faces the two differ


def test_the_graph_as_a_module_computes_what_onnxruntime_does_and_writes_its_weights_back(tiny, tmp_path):
    from onnxruntime.quantization import quant_pre_process

    model_dir, faces = tiny
    onnx.save(single_pass_graph(model_dir / "model.onnx"), tmp_path / "single.onnx")
    quant_pre_process(str(tmp_path / "single.onnx"), str(tmp_path / "folded.onnx"))
    module = OnnxModule(onnx.load(str(tmp_path / "folded.onnx"))).eval()
    with torch.no_grad():
        ours = [o.numpy() for o in module(as_float(faces.images))]
    for a, b in zip(ours, run(module.model, faces.images), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    with torch.no_grad():  # a change to the module's weights reaches the graph it writes
        next(iter(module.weights.values())).mul_(0.5)
        changed = [o.numpy() for o in module(as_float(faces.images))]
    written = run(module.to_onnx(), faces.images)
    assert not np.allclose(written[0], ours[0], atol=1e-4)
    np.testing.assert_allclose(written[0], changed[0], atol=1e-4)


def test_each_degradation_changes_a_face_but_keeps_its_shape_and_type():
    rng = np.random.default_rng(0)
    face = np.asarray(rng.integers(40, 220, (64, 64, 3)), np.uint8)
    for degradation in DEGRADATIONS:
        out = degradation(face.astype(np.float32), np.random.default_rng(1))
        assert out.shape == face.shape, degradation.__name__
        assert np.abs(out - face).mean() > 1, degradation.__name__
    assert degrade(face, rng).dtype == np.uint8


def test_a_tight_crop_keeps_the_middle_and_stretches_its_border():
    face = np.arange(100 * 100 * 3, dtype=np.float32).reshape(100, 100, 3)
    tight = DEGRADATIONS[-1](face, np.random.default_rng(0))
    assert np.array_equal(tight[50, 50], face[50, 50])  # kept pixels stay where they were
    assert np.array_equal(tight[0, 50], tight[4, 50])  # rows above the kept part repeat its first row
