"""How the shipped network's age distribution becomes one age and a 90% range (validation only).

The network gives a probability for every whole age 0..116. This compares, on the shipped
model's validation outputs (through onnxruntime):

* **the age shown**: the distribution's mean (models up to version 10), its median in whole years
  (shipped since version 11), and two controls that separate the read-out from the granularity:
  the mean rounded to whole years and the median interpolated between whole years. Differences
  from the mean come with paired bootstrap 95% intervals.
* **the 90% range**: the symmetric normalised range ``mu ± q(sigma + 0.5)`` (up to version 11),
  conformalised quantiles ``[Q05 - delta, Q95 + delta]`` in whole years (versions 12-16), the same
  with interpolated quantiles, and ``[Q_level, Q_1-level]`` with the level fitted (shipped since
  version 17; ``faceattrs.calibration.QuantileAgeInterval``). Each is fitted on one random half of validation and
  scored on the other, over many halvings, so no coverage is measured on the faces it was fitted on.

Usage::

    python benchmarks/age_readout.py [--halvings 20] [--resamples 2000]

Writes ``benchmarks/results/age_readout.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from faceattrs.build.export import onnx_predictions
from faceattrs.calibration import (
    AgeInterval,
    QuantileAgeInterval,
    age_mean_sigma,
    age_median,
    age_quantiles,
    conformal_quantile,
    softmax,
)
from faceattrs.data.cache import load_faces
from faceattrs.data.labels import ETHNICITIES, GENDERS
from faceattrs.evaluation.metrics import AGE_BUCKET_NAMES, age_bucket
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.model_folder import model_identity
from faceattrs.training.protocols import project_protocol
from results_io import save_results

DATA = Path("../shared/datasets/utkface/UTKFace")
COVERAGE = 0.9
LEVEL = 0.05


def interpolated_quantile(age_logits: np.ndarray, level: float) -> np.ndarray:
    """The ``level`` quantile with each whole age's probability spread evenly over [age - 0.5, age + 0.5]."""
    p = softmax(age_logits)
    cumulative = p.cumsum(axis=1)
    k = (cumulative >= level).argmax(axis=1)
    rows = np.arange(len(k))
    before = np.where(k > 0, cumulative[rows, np.maximum(k - 1, 0)], 0.0)
    return k - 0.5 + (level - before) / np.maximum(p[rows, k], 1e-12)


def point_rules(logits: np.ndarray) -> dict[str, np.ndarray]:
    mean, _ = age_mean_sigma(logits)
    return {
        "mean (up to version 10)": mean,
        "median, whole years (shipped)": age_median(logits),
        "control: mean rounded to whole years": np.round(mean),
        "control: median interpolated between whole years": interpolated_quantile(logits, 0.5),
    }


def paired_interval(diff: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[float, float]:
    means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(resamples)]
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def point_table(logits: np.ndarray, age: np.ndarray, resamples: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(0)
    signed = {name: pred - age for name, pred in point_rules(logits).items()}
    errors = {name: np.abs(s) for name, s in signed.items()}
    base = errors["mean (up to version 10)"]
    rows = {}
    for name, e in errors.items():
        rows[name] = {
            "mae": float(e.mean()),
            "cs5": float((e <= 5).mean()),
            "mean_signed_error": float(signed[name].mean()),
            "mae_diff_ci": paired_interval(e - base, resamples, rng),
            "cs5_diff_ci": paired_interval((e <= 5).astype(float) - (base <= 5), resamples, rng),
        }
    return rows


# A range rule: fitted on (logits, ages) of one half, it returns the bounds for other logits.
RangeRule = Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]


def symmetric(logits: np.ndarray, age: np.ndarray):
    mean, sigma = age_mean_sigma(logits)
    return AgeInterval.fit(mean, sigma, age, coverage=COVERAGE).bounds_for


def quantiles_whole_years(logits: np.ndarray, age: np.ndarray):
    low, high = age_quantiles(logits, LEVEL)
    delta = conformal_quantile(np.maximum(low - age, age - high), COVERAGE)
    return QuantileAgeInterval(delta, COVERAGE, LEVEL).bounds_for


def fitted_level(logits: np.ndarray, age: np.ndarray):
    return QuantileAgeInterval.fit(logits, age, coverage=COVERAGE).bounds_for


def quantiles_interpolated(logits: np.ndarray, age: np.ndarray):
    def quantiles(z):
        return interpolated_quantile(z, LEVEL), interpolated_quantile(z, 1 - LEVEL)

    low, high = quantiles(logits)
    delta = conformal_quantile(np.maximum(low - age, age - high), COVERAGE)

    def bounds(z):
        lo, hi = quantiles(z)
        return np.clip(lo - delta, 0, None), hi + delta

    return bounds


RANGE_RULES: dict[str, RangeRule] = {
    "symmetric: mean ± q(σ + 0.5) (up to version 11)": symmetric,
    "quantiles: [Q05 − δ, Q95 + δ], whole years (versions 12-16)": quantiles_whole_years,
    "quantiles, interpolated between whole years": quantiles_interpolated,
    "quantiles: [Q_level, Q_1−level], level fitted, whole years (shipped)": fitted_level,
}


def range_table(logits: np.ndarray, faces, halvings: int) -> dict[str, dict]:
    age = faces.age.astype(float)
    groups = [faces.race == r for r in range(len(ETHNICITIES))] + [faces.gender == g for g in range(len(GENDERS))]
    buckets = age_bucket(faces.age)
    rows = {}
    for name, rule in RANGE_RULES.items():
        rng = np.random.default_rng(0)
        coverage, width, worst_group, by_bucket = [], [], [], []
        for _ in range(halvings):
            order = rng.permutation(len(age))
            fit, score = order[: len(age) // 2], order[len(age) // 2 :]
            low, high = rule(logits[fit], age[fit])(logits[score])
            inside = (age[score] >= low) & (age[score] <= high)
            coverage.append(inside.mean())
            width.append((high - low).mean())
            worst_group.append(min(inside[g[score]].mean() for g in groups))
            by_bucket.append([inside[buckets[score] == b].mean() for b in AGE_BUCKET_NAMES])
        rows[name] = {
            "coverage": float(np.mean(coverage)),
            "coverage_sd": float(np.std(coverage)),
            "mean_width": float(np.mean(width)),
            "worst_ethnicity_or_gender": float(np.mean(worst_group)),
            "by_age_bucket": dict(zip(AGE_BUCKET_NAMES, np.mean(by_bucket, axis=0).tolist(), strict=True)),
        }
    return rows


def markdown(summary: dict) -> str:
    def ci(pair, scale=1.0, digits=3):
        return f"{scale * pair[0]:+.{digits}f} to {scale * pair[1]:+.{digits}f}"

    lines = [
        "| age shown (validation) | age MAE | CS@5 | mean signed error | MAE − mean's (95% CI) | "
        "CS@5 − mean's, points (95% CI) |",
        "|---|---|---|---|---|---|",
    ]
    for i, (name, r) in enumerate(summary["age_shown"].items()):
        diffs = "— | —" if i == 0 else f"{ci(r['mae_diff_ci'])} | {ci(r['cs5_diff_ci'], 100, 1)}"
        lines.append(f"| {name} | {r['mae']:.3f} | {100 * r['cs5']:.1f}% | {r['mean_signed_error']:+.2f} | {diffs} |")
    lines += [
        "",
        "| 90% range (validation, fitted on the other half) | coverage | mean width (years) | worst ethnicity or "
        "gender group | " + " | ".join(f"ages {b}" for b in AGE_BUCKET_NAMES) + " |",
        "|---|---|---|---|" + "---|" * len(AGE_BUCKET_NAMES),
    ]
    for name, r in summary["age_range"].items():
        lines.append(
            f"| {name} | {100 * r['coverage']:.1f}% ± {100 * r['coverage_sd']:.1f} | {r['mean_width']:.2f} | "
            f"{100 * r['worst_ethnicity_or_gender']:.1f}% | "
            + " | ".join(f"{100 * v:.0f}%" for v in r["by_age_bucket"].values())
            + " |"
        )
    lines.append(
        f"\n{summary['faces']} validation faces, the shipped model's age outputs through onnxruntime. Age shown: "
        f"paired bootstrap ({summary['resamples']} resamples). Ranges: {summary['halvings']} random halvings, "
        "fitted on one half and scored on the other (mean ± standard deviation)."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--halvings", type=int, default=20)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()

    model = AttributeModel()
    val = project_protocol(load_faces(DATA, model.input_size, progress=False))["val"]
    logits = onnx_predictions(model, val.images)[0]["age_logits"]
    summary = {
        "model": model_identity(),
        "faces": len(val),
        "halvings": args.halvings,
        "resamples": args.resamples,
        "age_shown": point_table(logits, val.age.astype(float), args.resamples),
        "age_range": range_table(logits, val, args.halvings),
    }
    save_results("age_readout", summary, markdown(summary))


if __name__ == "__main__":
    main()
