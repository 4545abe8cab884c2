"""Train the course project's two networks and measure them on the test split.

For each seed network, protocol (``original``: the course project's own data
protocol; ``project``: the committed split, natural balance, all ages) and
random seed, the network is trained through the project's engine and scored
on that protocol's test part. Results go to ``benchmarks/results/seed_baselines.json``
and a Markdown table (``seed_baselines.md``), which the README shows.

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

RESULTS = Path(__file__).parent / "results"
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
    lines = [
        "| network | protocol | test figures (mean over seeds; per seed in brackets) | epochs run | "
        "train time / run | originally reported |",
        "|---|---|---|---|---|---|",
    ]
    keys = {}
    for row in rows:
        keys.setdefault((row["recipe"], row["protocol"]), []).append(row)
    for (recipe, protocol), group in keys.items():
        figures = []
        for metric in headline(group[0]):
            values = [headline(r)[metric] for r in group]
            pct = metric not in ("mae", "rmse", "mse")
            fmt = (lambda v: f"{100 * v:.1f}%") if pct else (lambda v: f"{v:.2f}")
            per_seed = ", ".join(fmt(v) for v in values)
            figures.append(f"{metric} {fmt(statistics.mean(values))} [{per_seed}]")
        epochs = ", ".join(str(r["epochs_run"]) for r in group)
        minutes = statistics.mean(r["train_seconds"] for r in group) / 60
        reported = REPORTED[recipe] if protocol == "original" else "—"
        lines.append(f"| {recipe} | {protocol} | {'; '.join(figures)} | {epochs} | {minutes:.1f} min | {reported} |")
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
                RESULTS.mkdir(exist_ok=True)
                summary = {
                    "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
                    "torch": torch.__version__,
                    "runs": rows,
                }
                (RESULTS / "seed_baselines.json").write_text(json.dumps(summary, indent=1))
                (RESULTS / "seed_baselines.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
