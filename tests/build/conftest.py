"""Fixtures shared by the build tests."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest


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


def run_graph(model: onnx.ModelProto, images: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"images": images}
    )
