"""Graph surgery on a tiny exported model whose outputs depend on the image."""

import numpy as np
import onnx

from faceattrs.build.onnx_graphs import flip_averaged_graph, single_pass_graph
from tests.build.conftest import run_graph


def test_the_single_pass_equals_the_flip_average_on_mirror_symmetric_faces(tiny):
    model_dir, faces = tiny
    half = faces.images[:4, :, :32]
    symmetric = np.ascontiguousarray(np.concatenate([half, half[:, :, ::-1]], axis=2))
    single = run_graph(single_pass_graph(model_dir / "model.onnx"), symmetric)
    averaged = run_graph(onnx.load(str(model_dir / "model.onnx")), symmetric)
    for a, b in zip(single, averaged, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    single = run_graph(single_pass_graph(model_dir / "model.onnx"), faces.images[:4])[0]
    averaged = run_graph(onnx.load(str(model_dir / "model.onnx")), faces.images[:4])[0]
    assert np.abs(single - averaged).max() > 100 * 1e-4  # on ordinary faces the two differ


def test_flip_averaging_the_single_pass_gives_back_the_exported_flip_averaged_graph(tiny):
    model_dir, faces = tiny
    single = single_pass_graph(model_dir / "model.onnx")
    rewrapped = run_graph(flip_averaged_graph(single), faces.images)
    for a, b in zip(rewrapped, run_graph(onnx.load(str(model_dir / "model.onnx")), faces.images), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    mirrored = run_graph(single, np.ascontiguousarray(faces.images[:, :, ::-1]))[0]
    np.testing.assert_allclose(rewrapped[0], (run_graph(single, faces.images)[0] + mirrored) / 2, atol=1e-5)
