"""Self-distillation: the graph as a trainable module, the degradations, a tiny end-to-end run."""

import json
from dataclasses import replace

import numpy as np
import torch

from faceattrs.build.onnx_graphs import folded, single_pass_graph
from faceattrs.build.self_distill import OnnxModule, SelfDistillConfig, as_float, self_distill_model_dir
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.training.degrade import DEGRADATIONS, degrade
from tests.build.conftest import run_graph


def test_the_graph_as_a_module_computes_what_onnxruntime_does_and_writes_its_weights_back(tiny, tmp_path):
    model_dir, faces = tiny
    module = OnnxModule(folded(single_pass_graph(model_dir / "model.onnx"))).eval()
    with torch.no_grad():
        ours = [o.numpy() for o in module(as_float(faces.images))]
    for a, b in zip(ours, run_graph(module.model, faces.images), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    with torch.no_grad():  # a change to the module's weights reaches the graph it writes
        next(iter(module.weights.values())).mul_(0.5)
        changed = [o.numpy() for o in module(as_float(faces.images))]
    written = run_graph(module.to_onnx(), faces.images)
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


def test_self_distillation_writes_a_loadable_recalibrated_model_that_records_how_it_was_made(tmp_path):
    from tests.conftest import ship_random_model

    base, _, faces = ship_random_model(tmp_path, n_faces=8, image_size=64, backbone="lite1")
    parts = {"train": faces, "val": faces, "test": faces}
    config = SelfDistillConfig(epochs=1, batch_size=4, lr=1e-2)
    self_distill_model_dir(base, tmp_path / "out", parts, "sd-test", config)
    model = AttributeModel(tmp_path / "out")  # the sha256 in the metadata matches the file
    metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert metadata["version"] == "sd-test" and "metrics" not in metadata  # test not scored
    assert metadata["input"]["flip_tta_in_graph"]
    assert metadata["training"]["self_distillation"]["degrade"] == 0.5
    assert metadata["training"]["self_distillation"]["teacher_sha256"] == AttributeModel(base).metadata["sha256"]
    before, after = AttributeModel(base).raw(faces.images), model.raw(faces.images)
    assert not np.allclose(before["age_logits"], after["age_logits"])  # the weights were trained


def test_the_gender_label_term_sees_each_batchs_gender_logits_labels_and_ages(tmp_path, monkeypatch):
    import faceattrs.build.self_distill as self_distill_module
    from tests.conftest import ship_random_model

    base, _, faces = ship_random_model(tmp_path, n_faces=8, image_size=64, backbone="lite1")
    calls = []

    def recording(logits, gender, age, config):
        calls.append((logits.shape, gender.tolist(), age.tolist()))
        return self_distill_module.F.cross_entropy(logits, gender) * 0  # keeps the step finite and label-free

    monkeypatch.setattr(self_distill_module, "gender_label_loss", recording)
    pairs = {(int(g), int(a)) for g, a in zip(faces.gender, faces.age, strict=True)}
    config = SelfDistillConfig(epochs=1, batch_size=4, degrade=0.0)
    self_distill_module.self_distill(base, faces, faces, config, log=lambda _: None)
    assert len(calls) == 2  # 8 faces, batches of 4
    for shape, gender, age in calls:
        assert tuple(shape) == (4, 2) and {*zip(gender, age, strict=True)} <= pairs
    calls.clear()
    self_distill_module.self_distill(base, faces, faces, replace(config, gender_label_weight=0.0), log=lambda _: None)
    assert calls == []  # weight 0: the thirteenth to sixteenth models' step, outputs only
