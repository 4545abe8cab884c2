import json

import numpy as np
import pytest

from faceattrs.build.export import score_shipped
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.model_folder import ModelIntegrityError


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    from tests.conftest import ship_random_model

    return ship_random_model(tmp_path_factory.mktemp("ship"), n_faces=40, image_size=64, backbone="lite1")


def test_onnx_and_torch_agree(shipped):
    _, report, _ = shipped
    assert report["onnx_torch_max_abs_diff_age_logits"] < 1e-3


def test_metadata_describes_the_model(shipped):
    model_dir, report, _ = shipped
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert meta["sha256"] == report["sha256"]
    assert meta["classes"]["ethnicity"] == ["white", "black", "asian", "indian", "others"]
    assert meta["input"]["model_size"] == 64
    assert meta["training"]["backbone"].startswith("EfficientNet-Lite1, ImageNet weights")
    assert {"ethnicity_temperature", "gender_temperature", "age_interval"} <= set(meta["calibration"])
    assert 0 <= meta["metrics"]["age_interval_coverage"] <= 1


def test_shipped_model_predicts_calibrated_outputs(shipped):
    model_dir, _, _ = shipped
    model = AttributeModel(model_dir)
    out = model.predict(np.zeros((3, 200, 200, 3), np.uint8))
    assert out.age.shape == (3,) and np.all(out.age_low <= out.age) and np.all(out.age <= out.age_high)
    np.testing.assert_allclose(out.ethnicity_proba.sum(1), 1, rtol=1e-6)
    assert len(model.predict(np.zeros((0, 200, 200, 3), np.uint8))) == 0


def test_models_show_the_median_age(shipped):
    from faceattrs.calibration import age_median

    model_dir, _, _ = shipped
    images = np.random.default_rng(0).integers(0, 256, (8, 200, 200, 3), dtype=np.uint8)
    model = AttributeModel(model_dir)
    logits = model.raw(model.prepare(images))["age_logits"]
    np.testing.assert_array_equal(model.predict(images).age, age_median(logits))


def test_corrupted_or_swapped_model_fails_loudly(shipped, tmp_path):
    model_dir, _, _ = shipped
    for name in ("model.onnx", "metadata.json"):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    data = bytearray((tmp_path / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        AttributeModel(tmp_path)
    with pytest.raises(FileNotFoundError, match="no model"):
        AttributeModel(tmp_path / "empty")


def test_model_card_is_rendered_from_measured_figures(shipped):
    from faceattrs.evaluation.model_card import render_model_card

    model_dir, report, _ = shipped
    meta = json.loads((model_dir / "metadata.json").read_text())
    card = render_model_card(meta, report)
    assert "## Out of scope" in card and "non-commercial research only" in card
    assert f"{report['test']['age']['mae']:.2f}" in card
    assert "| all | all |" in card  # overall coverage row
    assert "the age shown is its median" in card


def test_rescoring_a_shipped_model_gives_the_same_figures_and_leaves_it_alone(shipped, tmp_path):
    model_dir, report, faces = shipped
    for name in ("model.onnx", "metadata.json"):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    onnx_before = (tmp_path / "model.onnx").read_bytes()
    again = score_shipped(tmp_path, {"val": faces, "test": faces})
    assert (tmp_path / "model.onnx").read_bytes() == onnx_before
    assert again["sha256"] == report["sha256"]
    assert again["test"]["age"]["mae"] == pytest.approx(report["test"]["age"]["mae"])
    assert again["test"]["by_age_bucket"] == report["test"]["by_age_bucket"]
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "| age bucket | n | age MAE | ethnicity acc. | gender acc. |" in card


def test_the_packaged_model_card_is_the_one_its_metadata_and_report_render():
    from faceattrs.evaluation.model_card import render_model_card
    from faceattrs.model_folder import default_model_dir

    assets = default_model_dir()
    metadata = json.loads((assets / "metadata.json").read_text())
    report = json.loads((assets / "report.json").read_text())
    assert (assets / "MODEL_CARD.md").read_text() == render_model_card(metadata, report), (
        "MODEL_CARD.md is stale: render it again from metadata.json and report.json"
    )


def test_an_int8_models_card_says_how_it_was_quantised(shipped):
    from faceattrs.evaluation.model_card import render_model_card

    model_dir, report, _ = shipped
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert "stored as int8" not in render_model_card(meta, report)
    meta["training"]["quantization"] = {
        "weights": "int8 in 7 bits",
        "activations": "uint8, ranges from 128 random train faces (percentile calibration)",
        "format": "onnxruntime static quantisation, QDQ",
    }
    card = render_model_card(meta, report)
    assert "- Then stored as int8 (`faceattrs build`, step 3): weights int8 in 7 bits; activations uint8" in card
    assert "onnxruntime static quantisation, QDQ. Temperatures and the age range were refitted" in card


def test_descriptor_heads_are_said_so_on_the_card(shipped):
    from faceattrs.evaluation.model_card import render_model_card

    model_dir, report, _ = shipped
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert "Descriptor heads" not in render_model_card(meta, report)
    meta["training"]["descriptor_heads"] = {
        "network": "dlib's face-recognition ResNet",
        "input": "the model's input, upscaled",
        "heads": "logistic regression",
        "head_weight": {"ethnicity": 0.5, "gender": 0.45},
        "weights_stored_as": "float16",
    }
    card = render_model_card(meta, report)
    assert "dlib's face-recognition ResNet, never trained on age, gender or ethnicity labels." in card
    assert "(descriptor weight 0.50 for ethnicity, 0.45 for gender, chosen on validation)" in card
    assert "Age comes from the first network alone." in card
    meta["training"]["descriptor_heads"]["head_weight"]["age"] = 0.5
    assert "age's group to the power 0.50 (chosen on validation" in render_model_card(meta, report)


def test_a_candidate_exported_without_test_scores_never_reads_the_test_part(tmp_path):
    from faceattrs.build.export import ship
    from faceattrs.data.cache import load_faces
    from faceattrs.training.recipes import build_recipe
    from tests.conftest import make_face_folder

    make_face_folder(tmp_path / "UTKFace", n=12)
    recipe = build_recipe("multitask", pretrained=False, image_size=64)
    faces = load_faces(tmp_path / "UTKFace", 64, cache_dir=tmp_path / "cache", progress=False)
    (tmp_path / "split.csv").write_text("file,sha256,part\n")
    parts = {"train": faces, "val": faces}  # no test part: reading it would fail
    model = recipe.build_model().eval()
    report = ship(
        model,
        recipe,
        parts,
        {"recipe": "multitask", "seed": 0},
        tmp_path / "m",
        split_file=tmp_path / "split.csv",
    )
    assert set(report) == {"onnx_torch_max_abs_diff_age_logits", "sha256"}
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["metadata.json", "model.onnx"]
    assert "metrics" not in json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert AttributeModel(tmp_path / "m").metadata["sha256"] == report["sha256"]


def test_faces_with_age_groups_are_scored_apart_from_exact_ages(shipped):
    from faceattrs.build.export import fit_calibration, score_part
    from faceattrs.data.cache import FaceArrays, concat_faces
    from faceattrs.evaluation.metrics import Predictions

    model_dir, _, faces = shipped
    model = AttributeModel(model_dir)
    low = (faces.age // 10 * 10).astype(np.int16)
    groups = FaceArrays(faces.names, faces.images, faces.age, faces.gender, faces.race, low, low + 9)
    both = concat_faces(faces.subset(np.arange(20)), groups.subset(np.arange(20, 40)))
    metrics, preds = score_part(model, both, model.metadata["calibration"])
    alone, _ = score_part(model, faces.subset(np.arange(20)), model.metadata["calibration"])
    assert metrics["n"] == 20 and len(preds) == 20 and metrics["age"]["mae"] == alone["age"]["mae"]
    fairface = metrics["fairface"]
    inside = (model.predict(faces.images[20:]).age >= low[20:]) & (model.predict(faces.images[20:]).age <= low[20:] + 9)
    assert fairface["n"] == 20 and fairface["age"]["group_accuracy"] == pytest.approx(inside.mean())
    assert 0 <= fairface["age"]["range_overlap"] <= 1 and "accuracy" in fairface["gender"]
    # the age range holds each kind of label on its own (exact ages inside it, groups overlapped): the wider fit wins
    from faceattrs.calibration import QuantileAgeInterval

    raw = model.raw(model.prepare(both.images))
    logits = Predictions(**{k: raw[k] for k in ("age_logits", "ethnicity_logits", "gender_logits")})
    level = fit_calibration(logits, both, coverage=0.9)["age_interval"]["level"]
    low_both, high_both = both.age_interval()
    by_kind = [
        QuantileAgeInterval.fit(raw["age_logits"][rows], low_both[rows], coverage=0.9, age_high=high_both[rows]).level
        for rows in (slice(0, 20), slice(20, 40))
    ]
    assert level == min(by_kind)
