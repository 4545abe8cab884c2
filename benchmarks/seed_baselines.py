"""Train the course project's two networks and measure them on the test split.

For each seed network, protocol (``original``: the course project's own data
protocol; ``project``: the committed split, natural balance, all ages) and
random seed, the network is trained through the project's engine and scored
on that protocol's test part. Results go to ``benchmarks/results/seed_baselines.json``
and a Markdown table (``seed_baselines.md``), which docs/results.md shows.

Usage::

    python benchmarks/seed_baselines.py [--data DIR] [--seeds 0 1] [--runs runs/seed_baselines]

Finished runs are reused (their ``test_metrics.json`` is read back), so the
script can be stopped and restarted.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from faceattrs.data.cache import load_faces
from faceattrs.evaluation.metrics import evaluate_predictions
from faceattrs.training.engine import predict, train
from faceattrs.training.protocols import make_parts
from faceattrs.training.recipes import build_recipe
from results_io import save_results

REPORTED = {
    "seed-ethnicity": "73.2% accuracy (original protocol)",
    "seed-age": "MSE 116.6, RMSE 10.8 (original protocol)",
}


def run_one(faces, recipe_name: str, protocol: str, seed: int, runs: Path) -> dict:
    recipe = build_recipe(recipe_name)
    run_dir = runs / f"{recipe_name}_{protocol}_s{seed}"
    done = run_dir / "test_metrics.json"
    if done.exists():
        return json.loads(done.read_text())
    parts = make_parts(faces, protocol, recipe.task, seed)
    result = train(recipe, parts["train"], parts["val"], run_dir, seed=seed, extra_config={"protocol": protocol})
    test = parts["test"]
    t0 = time.perf_counter()
    preds = predict(result.model, recipe, test)
    infer_s = time.perf_counter() - t0
    metrics = evaluate_predictions(preds, test.age, test.gender, test.race)
    row = {
        "recipe": recipe_name,
        "protocol": protocol,
        "seed": seed,
        "epochs_run": result.epochs_run,
        "stopped_by": result.stopped_by,
        "train_seconds": round(result.seconds, 1),
        "n_train": len(parts["train"]),
        "n_test": len(test),
        "test_inference_faces_per_s": round(len(test) / infer_s, 1),
        "metrics": metrics,
    }
    done.write_text(json.dumps(row, indent=1))
    return row


def headline(row: dict) -> dict[str, float]:
    m = row["metrics"]
    if row["recipe"] == "seed-age":
        a = m["age"]
        return {"mae": a["mae"], "rmse": a["rmse"], "mse": a["mse"], "cs5": a["cs5"]}
    e = m["ethnicity"]
    return {"accuracy": e["accuracy"], "macro_f1": e["macro_f1"], "others_recall": e["recall"]["others"]}


def markdown(rows: list[dict]) -> str:
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["recipe"], row["protocol"]), []).append(row)
    n_seeds = max(len(g) for g in groups.values())
    lines = [
        f"| network | protocol | test faces | test figures{' (mean [per seed])' if n_seeds > 1 else ''} | "
        "stopped after | training time | originally reported |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {"mae": "MAE", "rmse": "RMSE", "mse": "MSE", "cs5": "CS@5", "accuracy": "accuracy",
             "macro_f1": "macro-F1", "others_recall": '"others" recall'}  # fmt: skip
    for (recipe, protocol), group in groups.items():
        figures = []
        for metric in headline(group[0]):
            values = [headline(r)[metric] for r in group]
            pct = metric in ("cs5", "accuracy", "others_recall")

            def fmt(v: float, pct: bool = pct, metric: str = metric) -> str:
                return f"{100 * v:.1f}%" if pct else f"{v:.3f}" if metric == "macro_f1" else f"{v:.2f}"

            text = f"{names[metric]} {fmt(statistics.mean(values))}"
            if len(values) > 1:
                text += " [" + ", ".join(fmt(v) for v in values) + "]"
            figures.append(text)
        epochs = ", ".join(
            f"{r['epochs_run']} epochs" + (" (percentile rule)" if r["stopped_by"] == "PercentileStop" else "")
            for r in group
        )
        minutes = statistics.mean(r["train_seconds"] for r in group) / 60
        reported = REPORTED[recipe] if protocol == "original" else "—"
        lines.append(
            f"| {recipe} | {protocol} | {group[0]['n_test']} | {'; '.join(figures)} | {epochs} | "
            f"{minutes:.1f} min | {reported} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/utkface/UTKFace"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--runs", type=Path, default=Path("runs/seed_baselines"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    faces = load_faces(args.data, 80)
    rows = []
    for seed in args.seeds:
        for recipe in ("seed-ethnicity", "seed-age"):
            for protocol in ("original", "project"):
                rows.append(run_one(faces, recipe, protocol, seed, args.runs))
                summary = {
                    "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
                    "torch": torch.__version__,
                    "runs": rows,
                }
                # saved after every run, so that an interrupted benchmark keeps what it measured
                save_results("seed_baselines", summary, markdown(rows))


if __name__ == "__main__":
    main()
