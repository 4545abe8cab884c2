"""Cheap ablations of a trained multitask run, on the validation part only.

* flip test-time augmentation on/off (same weights);
* the weight average (EMA) against the last step's raw weights of the same run, when the run kept one;
* other runs given with ``--compare`` (e.g. an earlier recipe at another resolution), on the same faces;
* what the course project's percentile stopping rule (threshold 11) would have done: the epoch
  where it fires and the validation figures there, against the full schedule's last epoch
  (the engine logs the percentile statistic for every age model).

Usage::

    python benchmarks/multitask_ablations.py runs/multitask_v2 [--compare runs/multitask_v1]

Writes ``benchmarks/results/multitask_ablations.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from faceattrs.data.cache import load_faces
from faceattrs.evaluation.metrics import evaluate_predictions
from faceattrs.training.checkpoint import load_weights
from faceattrs.training.engine import predict
from faceattrs.training.protocols import project_protocol
from faceattrs.training.recipes import build_recipe, run_settings
from results_io import save_results

DATA = Path("../shared/datasets/utkface/UTKFace")


#: header cells of the figures :func:`score_cells` writes
SCORE_HEADER = "age MAE | CS@5 | ethnicity acc. | macro-F1 | gender acc."


def score_cells(r: dict[str, float]) -> str:
    """The five figures of :func:`scores` as Markdown table cells, in :data:`SCORE_HEADER` order."""
    return (
        f"{r['age_mae']:.3f} | {100 * r['age_cs5']:.1f}% | {100 * r['ethnicity_accuracy']:.2f}% | "
        f"{r['ethnicity_macro_f1']:.3f} | {100 * r['gender_accuracy']:.2f}%"
    )


def scores(preds, faces) -> dict[str, float]:
    m = evaluate_predictions(preds, faces.age, faces.gender, faces.race)
    return {
        "age_mae": m["age"]["mae"],
        "age_cs5": m["age"]["cs5"],
        "ethnicity_accuracy": m["ethnicity"]["accuracy"],
        "ethnicity_macro_f1": m["ethnicity"]["macro_f1"],
        "gender_accuracy": m["gender"]["accuracy"],
    }


def load_run(run: Path):
    """(config, recipe, final weights, validation faces at the recipe's size) of a multitask run."""
    config = json.loads((run / "config.json").read_text())
    config["settings"] = run_settings(config)  # older runs lack the settings added since
    recipe = build_recipe("multitask", **{**config["settings"], "pretrained": False})
    model = load_weights(recipe.build_model(), run / "model.safetensors").eval()
    val = project_protocol(load_faces(DATA, recipe.input_size, progress=False))["val"]
    return config, recipe, model, val


def describe_difference(other: dict, main: dict) -> str:
    """What sets run ``other`` apart from run ``main``, e.g. "image_size 112 (not 128), epochs 18 (not 16)".

    A setting one run's config lacks did not exist when it was trained: it shows as "unset". The
    low-res size is left out when neither run trains at a lower size, the distillation weight when
    neither run is distilled.
    """
    a, b = {**other["settings"], "epochs": other["epochs_run"]}, {**main["settings"], "epochs": main["epochs_run"]}
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    if not a.get("low_res_epochs") and not b.get("low_res_epochs"):  # then the low-res size is unused
        keys = [k for k in keys if k != "low_res_size"]
    if not a.get("distill_from") and not b.get("distill_from"):  # then the distillation weight is unused
        keys = [k for k in keys if k != "distill_weight"]
    return ", ".join(f"{k} {a.get(k, 'unset')} (not {b.get(k, 'unset')})" for k in keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="other runs to score beside it")
    args = parser.parse_args()
    torch.set_num_threads(2)
    config, recipe, model, val = load_run(args.run)
    rows = {}
    for tta in (False, True):
        rows[f"flip TTA {'on' if tta else 'off'}"] = scores(predict(model, recipe, val, tta_flip=tta), val)
    if (args.run / "checkpoint" / "ema.safetensors").exists():
        raw = load_weights(recipe.build_model(), args.run / "checkpoint" / "last.safetensors").eval()
        rows["last step's weights instead of the EMA, flip TTA on"] = scores(predict(raw, recipe, val), val)
    for other in args.compare:
        other_config, other_recipe, other_model, other_val = load_run(other)
        name = f"run {other.name}, flip TTA on: {describe_difference(other_config, config)}"
        rows[name] = scores(predict(other_model, other_recipe, other_val), other_val)
    history = json.loads((args.run / "history.json").read_text())
    fired = next((row for row in history if row["val_percentile_distance"] <= 11.0), None)
    last = history[-1]
    percentile = {
        "fires_at_epoch": fired["epoch"] if fired else None,
        "of_epochs": len(history),
        "val_mae_there": fired["val_mae"] if fired else None,
        "val_accuracy_there": fired["val_accuracy"] if fired else None,
        "val_gender_accuracy_there": fired["val_gender_accuracy"] if fired else None,
        "val_mae_last": last["val_mae"],
        "val_accuracy_last": last["val_accuracy"],
        "val_gender_accuracy_last": last["val_gender_accuracy"],
        "distance_per_epoch": [round(row["val_percentile_distance"], 2) for row in history],
    }
    result = {"run": str(args.run), "validation_faces": len(val), "rows": rows, "percentile_rule": percentile}
    head = f"| validation ({len(val)} faces), run {args.run.name} unless named |"
    lines = [f"{head} {SCORE_HEADER} |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {score_cells(r)} |" for name, r in rows.items()]
    p = percentile
    if fired:
        lines.append(
            f"\nThe percentile rule (≤ 11) would have stopped this run after epoch {p['fires_at_epoch']} of "
            f"{p['of_epochs']}: validation age MAE {p['val_mae_there']:.2f} there against {p['val_mae_last']:.2f} "
            f"after the full schedule (ethnicity {100 * p['val_accuracy_there']:.1f}% against "
            f"{100 * p['val_accuracy_last']:.1f}%). Statistic per epoch: {p['distance_per_epoch']}."
        )
    else:
        lines.append("\nThe percentile rule (≤ 11) never fired in this run.")
    md = "\n".join(lines) + "\n"
    save_results("multitask_ablations", result, md)


if __name__ == "__main__":
    main()
