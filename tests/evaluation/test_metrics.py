import numpy as np
import pytest

from faceattrs.evaluation.metrics import (
    Predictions,
    age_bucket,
    age_metrics,
    classification_metrics,
    evaluate_predictions,
    percentile_table,
)


def test_age_metrics_hand_computed():
    true = np.array([10, 20, 30, 40])
    pred = np.array([13, 20, 24, 50])  # errors +3, 0, -6, +10
    m = age_metrics(true, pred)
    assert m["mae"] == pytest.approx(19 / 4)
    assert m["mse"] == pytest.approx((9 + 0 + 36 + 100) / 4)
    assert m["rmse"] == pytest.approx(np.sqrt(145 / 4))
    assert m["cs5"] == pytest.approx(0.5)
    assert m["mean_signed_error"] == pytest.approx(7 / 4)


def test_percentile_table_matches_numpy_linear_interpolation():
    rows = percentile_table(np.array([0, 10, 20, 30, 40]), np.array([0, 0, 0, 0, 100]))
    assert [r["true"] for r in rows] == pytest.approx([10, 20, 30, 38])
    assert [r["pred"] for r in rows] == pytest.approx([0, 0, 0, 80])


def test_age_buckets_edges():
    assert age_bucket(np.array([0, 12, 13, 19, 20, 39, 40, 59, 60, 116])).tolist() == [
        "0-12",
        "0-12",
        "13-19",
        "13-19",
        "20-29",
        "30-39",
        "40-59",
        "40-59",
        "60+",
        "60+",
    ]


def test_classification_metrics_hand_computed():
    true = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    m = classification_metrics(true, np.eye(3)[pred], ("a", "b", "c"))
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx({"a": 0.5, "b": 1.0, "c": 0.0})
    # F1: a: p=1/2 r=1/2 -> .5 ; b: p=2/3 r=1 -> .8 ; c: 0
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_evaluate_predictions_groups_and_unknown_race():
    age = np.array([5, 25, 45, 70, 30])
    gender = np.array([0, 1, 0, 1, 0])
    race = np.array([0, 1, 2, 3, -1])
    proba = np.eye(5)[[0, 1, 2, 0, 4]]
    m = evaluate_predictions(Predictions(age=age + 2.0, ethnicity_proba=proba), age, gender, race)
    assert m["ethnicity"]["n"] == 4 and m["ethnicity"]["accuracy"] == pytest.approx(0.75)
    assert m["age"]["by_gender"]["female"] == {"n": 2, "mae": 2.0}
    assert "unknown" not in m["age"]["by_ethnicity"]
    white_male = next(r for r in m["by_ethnicity_gender"] if r["ethnicity"] == "white" and r["gender"] == "male")
    assert white_male == {
        "ethnicity": "white",
        "gender": "male",
        "n": 1,
        "age_mae": 2.0,
        "ethnicity_accuracy": 1.0,
    }


def test_age_bucket_table_gives_every_task_per_bucket_youngest_first():
    age = np.array([3, 5, 25, 70])
    gender = np.array([0, 1, 0, 1])
    race = np.array([0, -1, 2, 3])
    preds = Predictions(
        age=age + 1.0,
        ethnicity_proba=np.eye(5)[[1, 0, 2, 3]],  # the first child is misread; the second has no race label
        gender_proba=np.eye(2)[[1, 1, 0, 1]],  # the first child's gender is misread
    )
    m = evaluate_predictions(preds, age, gender, race)
    table = m["by_age_bucket"]
    assert [r["age_bucket"] for r in table] == ["0-12", "13-19", "20-29", "30-39", "40-59", "60+"]
    children = table[0]
    assert children == {"age_bucket": "0-12", "n": 2, "age_mae": 1.0, "ethnicity_accuracy": 0.0, "gender_accuracy": 0.5}
    assert table[1] == {"age_bucket": "13-19", "n": 0}
    assert list(m["age"]["by_bucket"]) == ["0-12", "20-29", "60+"]
