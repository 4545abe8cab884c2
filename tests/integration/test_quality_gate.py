"""Quality gate: the shipped model, run through onnxruntime on the committed test split, must still
reach the figures its metadata claims (minus a small tolerance for numerical differences between
onnxruntime builds). Skipped, with the reason, when UTKFace or the shipped model is absent."""

import pytest

from faceattrs.build.export import onnx_predictions
from faceattrs.data.cache import load_faces
from faceattrs.evaluation.metrics import evaluate_predictions
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.training.protocols import project_protocol
from tests.conftest import SHIPPED

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def measured(shared_utkface):
    if not (SHIPPED / "model.onnx").exists():
        pytest.skip("no shipped model in src/faceattrs/assets")
    model = AttributeModel(SHIPPED)
    test = project_protocol(load_faces(shared_utkface, model.input_size, progress=False))["test"]
    _, calibrated, preds = onnx_predictions(model, test.images)
    metrics = evaluate_predictions(preds, test.age, test.gender, test.race)
    inside = (test.age >= calibrated.age_low) & (test.age <= calibrated.age_high)
    return model.metadata["metrics"], metrics, float(inside.mean())


def test_age_mae_and_cs5_hold(measured):
    claimed, metrics, _ = measured
    assert metrics["age"]["mae"] <= claimed["age_mae"] + 0.05
    assert metrics["age"]["cs5"] >= claimed["age_cs5"] - 0.005


def test_ethnicity_and_gender_accuracy_hold(measured):
    claimed, metrics, _ = measured
    assert metrics["ethnicity"]["accuracy"] >= claimed["ethnicity_accuracy"] - 0.005
    assert metrics["gender"]["accuracy"] >= claimed["gender_accuracy"] - 0.005


def test_age_range_coverage_holds(measured):
    claimed, _, coverage = measured
    assert abs(coverage - claimed["age_interval_coverage"]) <= 0.005
    assert 0.87 <= coverage <= 0.93
