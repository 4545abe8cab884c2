"""Metrics of the evaluation protocol, built on scikit-learn and numpy.

Age: MAE, RMSE, CS@5 (share of faces within 5 years), mean signed error
(prediction minus truth), the percentile table of the course project's stopping
rule, and MAE per age bucket, ethnicity and gender. Classification: accuracy,
macro-F1, per-class recall and the confusion matrix. Two group tables give every
task's figure per ethnicity x gender cell and per age bucket.

>>> import numpy as np
>>> m = age_metrics(np.array([10, 20, 30]), np.array([12, 20, 37]))
>>> m["mae"], m["cs5"], m["mean_signed_error"]
(3.0, 0.6666666666666666, 3.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    recall_score,
    root_mean_squared_error,
)

from faceattrs.data.labels import ETHNICITIES, GENDERS

AGE_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("0-12", 0, 12),
    ("13-19", 13, 19),
    ("20-29", 20, 29),
    ("30-39", 30, 39),
    ("40-59", 40, 59),
    ("60+", 60, 10_000),
)
#: bucket names, youngest first: the order every per-bucket table uses
AGE_BUCKET_NAMES: tuple[str, ...] = tuple(name for name, _, _ in AGE_BUCKETS)
PERCENTILES: tuple[int, ...] = (25, 50, 75, 95)


@dataclass
class Predictions:
    """What a model predicted for N faces; a task the model lacks is ``None``."""

    age: np.ndarray | None = None  # (N,) float years
    ethnicity_proba: np.ndarray | None = None  # (N, 5)
    gender_proba: np.ndarray | None = None  # (N, 2)
    # raw network outputs, kept for calibration (multitask model only)
    age_logits: np.ndarray | None = None  # (N, 117)
    ethnicity_logits: np.ndarray | None = None
    gender_logits: np.ndarray | None = None

    def __len__(self) -> int:
        for value in (self.age, self.ethnicity_proba, self.gender_proba):
            if value is not None:
                return len(value)
        return 0

    def subset(self, mask: np.ndarray) -> Predictions:
        """The predictions of the faces in ``mask`` (a boolean array or indices)."""
        return Predictions(**{k: None if v is None else v[mask] for k, v in vars(self).items()})


def age_bucket(age: np.ndarray) -> np.ndarray:
    """Bucket name of each age."""
    age = np.asarray(age)
    out = np.empty(len(age), dtype=object)
    for name, low, high in AGE_BUCKETS:
        out[(age >= low) & (age <= high)] = name
    return out


def percentile_table(true: np.ndarray, pred: np.ndarray) -> list[dict[str, float]]:
    """The 25/50/75/95th percentiles of true and predicted ages, side by side."""
    t = np.percentile(np.asarray(true, float), PERCENTILES)
    p = np.percentile(np.asarray(pred, float), PERCENTILES)
    return [
        {"percentile": q, "true": float(a), "pred": float(b), "abs_diff": float(abs(a - b))}
        for q, a, b in zip(PERCENTILES, t, p, strict=True)
    ]


def age_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    true = np.asarray(true, float)
    pred = np.asarray(pred, float)
    error = pred - true
    return {
        "n": len(true),
        "mae": float(mean_absolute_error(true, pred)),
        "rmse": float(root_mean_squared_error(true, pred)),
        "mse": float(np.mean(error**2)),
        "cs5": float(np.mean(np.abs(error) <= 5)),
        "mean_signed_error": float(np.mean(error)),
        "percentiles": percentile_table(true, pred),
        "percentile_distance": float(sum(r["abs_diff"] for r in percentile_table(true, pred))),
    }


def mae_by_group(true: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> dict[str, dict[str, float]]:
    """Age MAE and count for each distinct value of ``groups``."""
    out = {}
    err = np.abs(np.asarray(pred, float) - np.asarray(true, float))
    for g in dict.fromkeys(groups.tolist()):
        mask = groups == g
        out[str(g)] = {"n": int(mask.sum()), "mae": float(err[mask].mean())}
    return out


def classification_metrics(true: np.ndarray, proba: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class recall and confusion matrix (rows = truth)."""
    labels = list(range(len(classes)))
    pred = np.asarray(proba).argmax(1)
    recall = recall_score(true, pred, labels=labels, average=None, zero_division=0)
    return {
        "n": len(true),
        "accuracy": float(accuracy_score(true, pred)),
        "macro_f1": float(f1_score(true, pred, labels=labels, average="macro", zero_division=0)),
        "recall": {c: float(r) for c, r in zip(classes, recall, strict=True)},
        "confusion": confusion_matrix(true, pred, labels=labels).tolist(),
    }


def evaluate_predictions(preds: Predictions, age: np.ndarray, gender: np.ndarray, race: np.ndarray) -> dict[str, Any]:
    """Every metric of the protocol for whichever tasks ``preds`` covers.

    Faces without a race label (``race == -1``) are left out of ethnicity
    metrics and of per-ethnicity tables.
    """
    result: dict[str, Any] = {"n": len(age)}
    known = race >= 0
    ethnicity_name = np.array([ETHNICITIES[r] if r >= 0 else "unknown" for r in race])
    gender_name = np.array([GENDERS[g] for g in gender])
    if preds.age is not None:
        result["age"] = age_metrics(age, preds.age)
        by_bucket = mae_by_group(age, preds.age, age_bucket(age))
        result["age"]["by_bucket"] = {b: by_bucket[b] for b in AGE_BUCKET_NAMES if b in by_bucket}
        result["age"]["by_ethnicity"] = mae_by_group(age[known], preds.age[known], ethnicity_name[known])
        result["age"]["by_gender"] = mae_by_group(age, preds.age, gender_name)
    if preds.ethnicity_proba is not None:
        result["ethnicity"] = classification_metrics(race[known], preds.ethnicity_proba[known], ETHNICITIES)
    if preds.gender_proba is not None:
        result["gender"] = classification_metrics(gender, preds.gender_proba, GENDERS)
    result["by_ethnicity_gender"] = _race_gender_table(preds, age, gender, race)
    result["by_age_bucket"] = _age_bucket_table(preds, age, gender, race)
    return result


def _group_row(
    preds: Predictions, age: np.ndarray, gender: np.ndarray, race: np.ndarray, mask: np.ndarray
) -> dict[str, Any]:
    """Count and each covered task's figure over the faces in ``mask`` (ethnicity: labelled faces only)."""
    row: dict[str, Any] = {"n": int(mask.sum())}
    if not mask.any():
        return row
    if preds.age is not None:
        row["age_mae"] = float(np.abs(preds.age[mask] - age[mask]).mean())
    labelled = mask & (race >= 0)
    if preds.ethnicity_proba is not None and labelled.any():
        row["ethnicity_accuracy"] = float((preds.ethnicity_proba[labelled].argmax(1) == race[labelled]).mean())
    if preds.gender_proba is not None:
        row["gender_accuracy"] = float((preds.gender_proba[mask].argmax(1) == gender[mask]).mean())
    return row


def _race_gender_table(
    preds: Predictions, age: np.ndarray, gender: np.ndarray, race: np.ndarray
) -> list[dict[str, Any]]:
    return [
        {
            "ethnicity": ethnicity,
            "gender": gender_label,
            **_group_row(preds, age, gender, race, (race == r) & (gender == g)),
        }
        for r, ethnicity in enumerate(ETHNICITIES)
        for g, gender_label in enumerate(GENDERS)
    ]


def _age_bucket_table(
    preds: Predictions, age: np.ndarray, gender: np.ndarray, race: np.ndarray
) -> list[dict[str, Any]]:
    """One row per age bucket, youngest first: where gender and ethnicity are hardest to read."""
    buckets = age_bucket(age)
    return [{"age_bucket": name, **_group_row(preds, age, gender, race, buckets == name)} for name in AGE_BUCKET_NAMES]


def evaluate_group_predictions(
    preds: Predictions, age_low: np.ndarray, age_high: np.ndarray, gender: np.ndarray, race: np.ndarray
) -> dict[str, Any]:
    """The metrics of faces labelled with an age *group* (FairFace): the share of predicted ages inside the group,
    overall and per group, and gender and ethnicity as :func:`evaluate_predictions` gives them, per group too.

    >>> preds = Predictions(age=np.array([1.0, 25.0, 45.0]), gender_proba=np.array([[0.9, 0.1]] * 3))
    >>> m = evaluate_group_predictions(preds, np.array([0, 20, 30]), np.array([2, 29, 39]), np.zeros(3, int),
    ...                                np.full(3, -1))
    >>> m["age"]["group_accuracy"], m["by_age_group"][0]
    (0.6666666666666666, {'age_group': '0-2', 'n': 1, 'age_accuracy': 1.0, 'gender_accuracy': 1.0})
    """
    result: dict[str, Any] = {"n": len(age_low)}
    names = np.array([f"{lo}-{hi}" if hi < 116 else f"{lo}+" for lo, hi in zip(age_low, age_high, strict=True)])
    groups = sorted(set(names.tolist()), key=lambda name: int(name.split("-")[0].rstrip("+")))
    inside = None
    if preds.age is not None:
        inside = (preds.age >= age_low) & (preds.age <= age_high)
        result["age"] = {"group_accuracy": float(inside.mean())}
    known = race >= 0
    if preds.ethnicity_proba is not None and known.any():
        result["ethnicity"] = classification_metrics(race[known], preds.ethnicity_proba[known], ETHNICITIES)
    if preds.gender_proba is not None:
        result["gender"] = classification_metrics(gender, preds.gender_proba, GENDERS)
    rows = []
    for name in groups:
        mask = names == name
        row: dict[str, Any] = {"age_group": name, "n": int(mask.sum())}
        if inside is not None:
            row["age_accuracy"] = float(inside[mask].mean())
        row |= {k: v for k, v in _group_row(preds, age_low, gender, race, mask).items() if k not in ("n", "age_mae")}
        rows.append(row)
    result["by_age_group"] = rows
    result["by_ethnicity_gender"] = [
        {k: v for k, v in row.items() if k != "age_mae"} for row in _race_gender_table(preds, age_low, gender, race)
    ]
    return result
