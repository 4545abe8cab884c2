"""Ship a trained run: fit calibration on validation, export ONNX, score the test part once.

``faceattrs export RUN --out src/faceattrs/assets`` writes ``model.onnx``,
``metadata.json`` (classes, input geometry, normalisation, calibration,
training data, split, metrics, sha256) and a report folder with the test
figures, measured through the exported ONNX file with onnxruntime, which is
what users run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from faceattrs.calibration import (
    QuantileAgeInterval,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from faceattrs.data.labels import ETHNICITIES, GENDERS
from faceattrs.evaluation.calibration_report import interval_coverage
from faceattrs.evaluation.metrics import (
    AGE_BUCKET_NAMES,
    Predictions,
    age_bucket,
    evaluate_group_predictions,
    evaluate_predictions,
)
from faceattrs.evaluation.model_card import render_model_card
from faceattrs.evaluation.report import write_report
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.model_folder import read_metadata, write_metadata, write_model_folder
from faceattrs.models.multitask import describe_backbone
from faceattrs.training.recipes import Recipe

AGE_LOGITS_OUTPUT = "(batch, 117): logits over ages 0..116; the age shown is their distribution's median"
#: what metadata.json says of each output of an exported multitask model
MULTITASK_OUTPUTS = {
    "age_logits": AGE_LOGITS_OUTPUT,
    "ethnicity_logits": "(batch, 5): divide by ethnicity_temperature before softmax",
    "gender_logits": "(batch, 2): divide by gender_temperature before softmax",
}

OUTPUT_NAMES = {
    "multitask": ["age_logits", "ethnicity_logits", "gender_logits"],
    "age": ["age"],
    "ethnicity": ["ethnicity_logits"],
}


class OnnxGraph(nn.Module):
    """uint8 NHWC RGB at the model size -> raw outputs; scaling (and flip averaging) inside."""

    def __init__(self, model: nn.Module, recipe: Recipe, tta_flip: bool) -> None:
        super().__init__()
        self.model, self.recipe, self.tta_flip = model.eval(), recipe, tta_flip

    def _run(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.model(x)
        return [out["age"], out["ethnicity"], out["gender"]] if isinstance(out, dict) else [out]

    def forward(self, images: torch.Tensor):
        x = self.recipe.normalize(images.permute(0, 3, 1, 2).float() / 255.0).contiguous()
        out = self._run(x)
        if self.tta_flip:
            out = [(a + b) / 2 for a, b in zip(out, self._run(x.flip(3)), strict=True)]
        return tuple(out)


def export_onnx(model: nn.Module, recipe: Recipe, tta_flip: bool, opset: int = 17) -> bytes:
    """The ONNX bytes of ``model`` with a dynamic batch axis."""
    graph = OnnxGraph(model, recipe, tta_flip)
    names = OUTPUT_NAMES[recipe.task]
    example = torch.zeros(2, recipe.input_size, recipe.input_size, 3, dtype=torch.uint8)
    buffer = io.BytesIO()
    # The legacy (TorchScript) exporter, despite its deprecation warning: the torch.export-based one
    # needs onnxscript, writes a larger file with the same outputs and was no faster in onnxruntime
    # (measured once, docs/history.md).
    torch.onnx.export(
        graph,
        (example,),
        buffer,
        dynamo=False,
        opset_version=opset,
        input_names=["images"],
        output_names=names,
        dynamic_axes={"images": {0: "batch"}, **{n: {0: "batch"} for n in names}},
    )
    return buffer.getvalue()


def fit_age_range(age_logits: np.ndarray, faces, coverage: float) -> QuantileAgeInterval:
    """The conformal age range that holds ``coverage`` of each kind of label in ``faces`` on its own.

    Exact ages (UTKFace) must fall inside the range; an age group (FairFace) counts as held when the
    range overlaps it. Pooled into one fit, the groups, overlapped easily, made up for the exact ages:
    version 20's range held 87.3% of UTKFace's validation ages and overlapped 92.9% of FairFace's groups
    (session 28). The range is the narrowest that holds both: the smaller level of the two fits.

    >>> from faceattrs.data.cache import FaceArrays
    >>> rng = np.random.default_rng(0)
    >>> centre = rng.integers(20, 80, 2000)
    >>> logits = -0.5 * ((np.arange(117) - centre[:, None]) / 3.0) ** 2
    >>> age = np.round(centre + rng.normal(0, 6, 2000)).astype(np.int16)  # errors wider than the network believes
    >>> grouped = np.arange(2000) >= 1000  # half the faces labelled with their decade only
    >>> low, high = np.where(grouped, age // 10 * 10, age), np.where(grouped, age // 10 * 10 + 9, age)
    >>> n = np.zeros(2000, np.int8)
    >>> faces = FaceArrays(age.astype(str), np.zeros((2000, 1, 1, 3), np.uint8), age, n, n, low, high)
    >>> pooled = QuantileAgeInterval.fit(logits, low, coverage=0.9, age_high=high)
    >>> fit_age_range(logits, faces, 0.9).level < pooled.level  # wider: the exact ages decide
    True
    """
    low, high = faces.age_interval()
    exact = low == high
    levels = [
        QuantileAgeInterval.fit(age_logits[kind], low[kind], coverage=coverage, age_high=high[kind]).level
        for kind in (exact, ~exact)
        if kind.any()
    ]
    return QuantileAgeInterval(coverage, min(levels))


def fit_calibration(val: Predictions, faces, coverage: float) -> dict[str, Any]:
    """Temperatures and the conformal age range (:func:`fit_age_range`), fitted on the validation ``faces``."""
    known = faces.race >= 0
    return {
        "ethnicity_temperature": fit_temperature(val.ethnicity_logits[known], faces.race[known]),
        "gender_temperature": fit_temperature(val.gender_logits, faces.gender),
        "age_interval": asdict(fit_age_range(val.age_logits, faces, coverage)),
    }


FITTED_ON = "validation part of the project split"


def recalibrate(model_dir: Path, val) -> dict[str, Any]:
    """Refit the temperatures and the age range of the model in ``model_dir`` on ``val``, through its ONNX file.

    For a model whose logits changed after export (quantised, merged with another network, cut to
    one pass): rewrites the calibration in its ``metadata.json`` (same coverage) and returns it.
    """
    logits, _, _ = onnx_predictions(AttributeModel(model_dir), val.images)
    metadata = read_metadata(model_dir)
    predictions = Predictions(**{k: logits[k] for k in ("age_logits", "ethnicity_logits", "gender_logits")})
    coverage = metadata["calibration"]["age_interval"]["coverage"]
    calibration = fit_calibration(predictions, val, coverage)
    metadata["calibration"] = calibration | {"fitted_on": FITTED_ON}
    write_metadata(model_dir, metadata)
    return metadata["calibration"]


def calibration_figures(logits: dict[str, np.ndarray], faces, calibration: dict[str, Any]) -> dict[str, Any]:
    """ECE before/after and interval coverage of raw ONNX outputs on ``faces``."""
    known = faces.race >= 0
    out: dict[str, Any] = {}
    for task, labels, mask in (("ethnicity", faces.race, known), ("gender", faces.gender, slice(None))):
        t = calibration[f"{task}_temperature"]
        z = logits[f"{task}_logits"][mask]
        out[f"{task}_ece_before"] = expected_calibration_error(softmax(z), labels[mask])
        out[f"{task}_ece_after"] = expected_calibration_error(softmax(z, t), labels[mask])
    low, high = QuantileAgeInterval.from_metadata(calibration["age_interval"]).bounds_for(logits["age_logits"])
    eth = np.array([ETHNICITIES[r] if r >= 0 else "unknown" for r in faces.race])
    coverage = interval_coverage(
        faces.age.astype(float),
        low,
        high,
        {
            "all": np.array(["all"] * len(faces)),
            "ethnicity": eth,
            "gender": np.array([GENDERS[g] for g in faces.gender]),
            "age bucket": age_bucket(faces.age),
        },
    )
    # Tables read best in the labels' own order (youngest bucket first), not in order of appearance.
    order = {"ethnicity": ETHNICITIES, "gender": GENDERS, "age bucket": AGE_BUCKET_NAMES}
    out["age_interval"] = {
        grouping: {g: groups[g] for g in order.get(grouping, groups) if g in groups} | groups
        for grouping, groups in coverage.items()
    }
    return out


def onnx_predictions(model: AttributeModel, images: np.ndarray, batch_size: int = 64):
    raws = [model.raw(np.ascontiguousarray(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    logits = {k: np.concatenate([r[k] for r in raws]) for k in raws[0]}
    calibrated = model.calibrate(logits)
    preds = Predictions(
        age=calibrated.age, ethnicity_proba=calibrated.ethnicity_proba, gender_proba=calibrated.gender_proba
    )
    return logits, calibrated, preds


def ship(
    model: nn.Module,
    recipe: Recipe,
    parts: dict,
    run_config: dict[str, Any],
    out_dir: Path,
    *,
    split_file: Path,
    coverage: float = 0.9,
) -> dict[str, Any]:
    """Calibrate on val, export to ``out_dir`` (``model.onnx``, ``metadata.json``) and check ONNX == torch.

    Returns the largest difference of the age logits between ONNX and PyTorch on validation faces, and
    the file's sha256. The test part is not read (``score_shipped`` scores a finished model).
    """
    from faceattrs.training.engine import predict

    out_dir.mkdir(parents=True, exist_ok=True)
    val = parts["val"]
    val_torch = predict(model, recipe, val)
    calibration = fit_calibration(val_torch, val, coverage)
    onnx_bytes = export_onnx(model, recipe, recipe.tta_flip)
    metadata: dict[str, Any] = {
        "name": "faceattrs-multitask",
        "version": run_config.get("version", "1"),
        "created": dt.date.today().isoformat(),
        "classes": {"ethnicity": list(ETHNICITIES), "gender": list(GENDERS)},
        "input": {
            "aligned_crop": "RGB face crop in UTKFace geometry (the data set's 200x200 aligned crops)",
            "model_size": recipe.input_size,
            "tensor": f"uint8, NHWC, (batch, {recipe.input_size}, {recipe.input_size}, 3), RGB",
            "resize": "faceattrs.preprocessing.to_model_input (Pillow bilinear, antialiased)",
            "normalisation": "inside the graph: (x - 127) / 128 per channel",
            "flip_tta_in_graph": recipe.tta_flip,
        },
        "outputs": dict(MULTITASK_OUTPUTS),
        "calibration": {**calibration, "fitted_on": FITTED_ON},
        "training": {
            "data": "UTKFace aligned & cropped (non-commercial research licence)"
            + (
                "; FairFace training images (CC BY 4.0; Kärkkäinen & Joo, WACV 2021), aligned by the serving pipeline"
                if recipe.settings.get("fairface")
                else ""
            ),
            "split": str(split_file),
            "split_sha256": hashlib.sha256(Path(split_file).read_bytes()).hexdigest(),
            "backbone": describe_backbone(recipe.settings["backbone"]),
            **{k: run_config.get(k) for k in ("recipe", "settings", "seed", "epochs_run", "train_seconds")},
            "n_train": len(parts["train"]),
            "n_val": len(val),
        },
    }
    sha = write_model_folder(out_dir, onnx_bytes, metadata)["sha256"]

    check = val.images[:64]
    onnx_raw = AttributeModel(out_dir).raw(np.ascontiguousarray(check))
    max_diff = float(np.abs(onnx_raw["age_logits"] - val_torch.age_logits[: len(check)]).max())
    return {"onnx_torch_max_abs_diff_age_logits": max_diff, "sha256": sha}


def score_part(model: AttributeModel, faces, calibration: dict[str, Any]) -> tuple[dict[str, Any], Predictions]:
    """Metrics (with calibration figures) and predictions of an exported model on one part, through ONNX.

    The metrics are those of the faces with exact ages (UTKFace); faces labelled with age groups
    (FairFace) are scored apart under ``"fairface"``, with the share of their 90% ranges that overlap
    their group. The predictions returned are the exact-age faces'.
    """
    logits, _, predictions = onnx_predictions(model, faces.images)
    exact = faces.exact_age
    utkface = faces.subset(exact)
    metrics = evaluate_predictions(predictions.subset(exact), utkface.age, utkface.gender, utkface.race)
    metrics["calibration"] = calibration_figures({k: v[exact] for k, v in logits.items()}, utkface, calibration)
    if not exact.all():
        groups = faces.subset(~exact)
        low, high = groups.age_interval()
        metrics["fairface"] = evaluate_group_predictions(
            predictions.subset(~exact), low, high, groups.gender, groups.race
        )
        interval = QuantileAgeInterval.from_metadata(calibration["age_interval"])
        range_low, range_high = interval.bounds_for(logits["age_logits"][~exact])
        metrics["fairface"]["age"]["range_overlap"] = float(((range_low <= high) & (range_high >= low)).mean())
    return metrics, predictions.subset(exact)


def score_validation(model_dir: Path, val) -> dict[str, Any]:
    """Score a candidate model folder on validation only, into its ``validation.json`` (the test part is not read)."""
    model = AttributeModel(model_dir)
    metrics, _ = score_part(model, val, model.metadata["calibration"])
    (Path(model_dir) / "validation.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def score_shipped(out_dir: Path, parts: dict, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score the model shipped in ``out_dir`` on val and test through ONNX; write its reports and card.

    Writes ``report.json``, ``report/`` and ``MODEL_CARD.md`` and the test metrics into
    ``metadata.json``; ``model.onnx`` and the calibration are left as they are, so re-running this
    on a shipped model (e.g. for a new report table) gives the same figures.
    """
    shipped = AttributeModel(out_dir)  # checks the ONNX file against the metadata's sha256
    metadata = shipped.metadata
    calibration = metadata["calibration"]
    report: dict[str, Any] = dict(extra or {})
    predictions = {}
    for name in ("val", "test"):
        report[name], predictions[name] = score_part(shipped, parts[name], calibration)
    test_utkface = parts["test"].subset(parts["test"].exact_age)
    title = "Shipped model, test part (ONNX)"
    write_report(report["test"], predictions["test"], test_utkface.age, out_dir / "report", title)
    t = report["test"]
    metadata["metrics"] = {
        "part": "test (project split, natural class balance, all ages), measured through ONNX",
        "n": t["n"],
        "age_mae": t["age"]["mae"],
        "age_rmse": t["age"]["rmse"],
        "age_cs5": t["age"]["cs5"],
        "ethnicity_accuracy": t["ethnicity"]["accuracy"],
        "ethnicity_macro_f1": t["ethnicity"]["macro_f1"],
        "ethnicity_recall": t["ethnicity"]["recall"],
        "gender_accuracy": t["gender"]["accuracy"],
        "age_interval_coverage": t["calibration"]["age_interval"]["all"]["all"]["coverage"],
        "age_interval_mean_width": t["calibration"]["age_interval"]["all"]["all"]["mean_width"],
    }
    if "fairface" in t:
        f = t["fairface"]
        metadata["metrics"] |= {
            "fairface_n": f["n"],
            "fairface_age_group_accuracy": f["age"]["group_accuracy"],
            "fairface_age_range_overlap": f["age"]["range_overlap"],
            "fairface_ethnicity_accuracy": f["ethnicity"]["accuracy"],
            "fairface_gender_accuracy": f["gender"]["accuracy"],
        }
    write_metadata(out_dir, metadata)
    report["sha256"] = metadata["sha256"]
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    (out_dir / "MODEL_CARD.md").write_text(render_model_card(metadata, report))
    return report
