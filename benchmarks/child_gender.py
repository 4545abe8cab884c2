"""Where the shipped model's gender errors are: accuracy by finer age on the validation part.

Gender is the one target the shipped model misses, and most of its errors are children's. This
splits the validation faces by age (babies, small children, older children, teenagers, adults)
and reports, per group, the accuracy, each sex's recall and how many of all errors fall there. A
group whose errors lean one way (boys called girls far more often than the reverse, say) could be
helped by a shift of the decision threshold; balanced errors cannot.

Usage::

    python benchmarks/child_gender.py

Writes ``benchmarks/results/child_gender.json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import recall_score

from faceattrs.build.export import onnx_predictions
from faceattrs.data.cache import load_faces
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.model_folder import model_identity
from faceattrs.training.protocols import project_protocol
from results_io import RESULTS, save_results

DATA = Path("../shared/datasets/utkface/UTKFace")
#: (first age, last age) of each group; UTKFace labels male 0, female 1
AGE_GROUPS = ((0, 2), (3, 5), (6, 12), (13, 19), (20, 116))


def by_age(age: np.ndarray, gender: np.ndarray, predicted: np.ndarray) -> list[dict]:
    """One row per age group: faces, accuracy, each sex's recall, share of all errors.

    >>> rows = by_age(np.array([1, 1, 30, 30]), np.array([0, 1, 0, 1]), np.array([1, 1, 0, 1]))
    >>> [(r["ages"], r["accuracy"], r["error_share"]) for r in rows if r["faces"]]
    [('0-2', 0.5, 1.0), ('20+', 1.0, 0.0)]
    """
    errors = max(int((predicted != gender).sum()), 1)
    rows = []
    for first, last in AGE_GROUPS:
        group = (age >= first) & (age <= last)
        y, p = gender[group], predicted[group]
        recalls = recall_score(y, p, labels=[0, 1], average=None, zero_division=np.nan) if len(y) else [np.nan] * 2
        rows.append(
            {
                "ages": f"{first}-{last}" if last < AGE_GROUPS[-1][1] else f"{first}+",
                "faces": int(group.sum()),
                "accuracy": float((p == y).mean()) if len(y) else float("nan"),
                "male_recall": float(recalls[0]),
                "female_recall": float(recalls[1]),
                "error_share": float((p != y).sum() / errors),
            }
        )
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for offset, key, label in (
        (-0.2, "male_recall", "boys / men right"),
        (0.2, "female_recall", "girls / women right"),
    ):
        ax.bar(x + offset, [100 * r[key] for r in rows], width=0.4, label=label)
    ax.axhline(95, color="grey", linestyle="--", linewidth=1, label="95% (the target, all ages)")
    ax.set_xticks(x, [f"{r['ages']}\n({r['faces']} faces)" for r in rows])
    ax.set_ylim(50, 100)
    ax.set_ylabel("validation recall (%)")
    ax.set_title("Shipped model's gender recall by age")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    model = AttributeModel()
    val = project_protocol(load_faces(DATA, model.input_size, progress=False))["val"]
    _, _, predictions = onnx_predictions(model, val.images)
    predicted = predictions.gender_proba.argmax(1)
    rows = by_age(val.age, val.gender, predicted)
    result = {"model": model_identity(), "validation_faces": len(val), "groups": rows}
    lines = [
        "| ages (validation) | faces | gender accuracy | boys / men right | girls / women right "
        "| share of all errors |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['ages']} | {r['faces']} | {r['accuracy']:.1%} | {r['male_recall']:.1%} | "
            f"{r['female_recall']:.1%} | {r['error_share']:.0%} |"
        )
    errors = int((predicted != val.gender).sum())
    lines.append(
        f"\nShipped model, all {len(val):,} validation faces ({errors} gender errors, accuracy "
        f"{(predicted == val.gender).mean():.2%}); calibrated probabilities, argmax. "
        "Plot: `benchmarks/results/child_gender.png`."
    )
    save_results("child_gender", result, "\n".join(lines) + "\n")
    plot(rows, RESULTS / "child_gender.png")


if __name__ == "__main__":
    main()
