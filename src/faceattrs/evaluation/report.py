"""Evaluation report of one model on one split: metrics JSON, Markdown and PNG plots.

>>> import numpy as np, tempfile, pathlib
>>> from faceattrs.evaluation.metrics import Predictions, evaluate_predictions
>>> age = np.array([5, 25, 45, 70]); g = np.array([0, 1, 0, 1]); r = np.array([0, 1, 2, 3])
>>> m = evaluate_predictions(Predictions(age=age + 1.0), age, g, r)
>>> out = write_report(m, Predictions(age=age + 1.0), age, pathlib.Path(tempfile.mkdtemp()), "demo")
>>> sorted(p.name for p in out.iterdir())[:3]
['age_error_hist.png', 'age_mae_by_bucket.png', 'age_mae_by_ethnicity.png']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from faceattrs.data.labels import ETHNICITIES, GENDERS
from faceattrs.evaluation import plots
from faceattrs.evaluation.metrics import Predictions


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def markdown_report(metrics: dict[str, Any], title: str) -> str:
    lines = [f"# {title}", "", f"Faces: {metrics['n']}", ""]
    if "age" in metrics:
        a = metrics["age"]
        lines += [
            "## Age",
            "",
            "| MAE | RMSE | CS@5 | mean signed error |",
            "|---|---|---|---|",
            f"| {a['mae']:.2f} | {a['rmse']:.2f} | {_pct(a['cs5'])} | {a['mean_signed_error']:+.2f} |",
            "",
            "| percentile | true | predicted | abs diff |",
            "|---|---|---|---|",
            *[
                f"| {r['percentile']} | {r['true']:.1f} | {r['pred']:.1f} | {r['abs_diff']:.1f} |"
                for r in a["percentiles"]
            ],
            "",
        ]
        for key, name in (
            ("by_bucket", "age bucket"),
            ("by_ethnicity", "ethnicity"),
            ("by_gender", "gender"),
        ):
            lines += [f"| {name} | n | MAE |", "|---|---|---|"]
            lines += [f"| {g} | {v['n']} | {v['mae']:.2f} |" for g, v in a[key].items()]
            lines.append("")
        lines += ["![scatter](age_scatter.png) ![errors](age_error_hist.png)", ""]
    for task, classes in (("ethnicity", ETHNICITIES), ("gender", GENDERS)):
        if task in metrics:
            c = metrics[task]
            lines += [
                f"## {task.capitalize()}",
                "",
                f"Accuracy {_pct(c['accuracy'])}, macro-F1 {c['macro_f1']:.3f}.",
                "",
                "| class | recall |",
                "|---|---|",
                *[f"| {k} | {_pct(c['recall'][k])} |" for k in classes],
                "",
                f"![confusion]({task}_confusion.png)",
                "",
            ]
    lines += ["## By ethnicity × gender", "", *_group_table(metrics["by_ethnicity_gender"], ("ethnicity", "gender"))]
    lines += ["", "## By age bucket", "", *_group_table(metrics["by_age_bucket"], ("age_bucket",))]
    return "\n".join(lines) + "\n"


def _group_table(table: list[dict[str, Any]], keys: tuple[str, ...]) -> list[str]:
    """Markdown rows of a per-group table; a task a group has no figure for shows as "—"."""
    cols = [k for k in ("age_mae", "ethnicity_accuracy", "gender_accuracy") if any(k in r for r in table)]
    lines = ["| " + " | ".join((*keys, "n", *cols)) + " |", "|---" * (len(keys) + 1 + len(cols)) + "|"]
    for r in table:
        cells = [(f"{r[c]:.2f}" if c == "age_mae" else _pct(r[c])) if c in r else "—" for c in cols]
        lines.append("| " + " | ".join((*(str(r[k]) for k in keys), str(r["n"]), *cells)) + " |")
    return lines


def write_report(
    metrics: dict[str, Any],
    preds: Predictions,
    true_age: np.ndarray,
    out_dir: Path,
    title: str,
    history: list[dict[str, float]] | None = None,
) -> Path:
    """Write ``metrics.json``, ``report.md`` and the plots into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if preds.age is not None:
        plots.age_scatter(true_age, preds.age, out_dir / "age_scatter.png")
        plots.error_histogram(true_age, preds.age, out_dir / "age_error_hist.png")
        a = metrics["age"]
        plots.mae_by_group_bar(a["by_bucket"], "Age MAE by age bucket", out_dir / "age_mae_by_bucket.png")
        plots.mae_by_group_bar(a["by_ethnicity"], "Age MAE by ethnicity", out_dir / "age_mae_by_ethnicity.png")
    for task, classes in (("ethnicity", ETHNICITIES), ("gender", GENDERS)):
        if task in metrics:
            plots.confusion(metrics[task]["confusion"], classes, task, out_dir / f"{task}_confusion.png")
    report = markdown_report(metrics, title)
    if history:
        plots.training_curves(history, out_dir / "training_curves.png")
        report += "\n## Training\n\n![curves](training_curves.png)\n"
    (out_dir / "report.md").write_text(report)
    return out_dir
