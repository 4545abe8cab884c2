"""What averaging trained runs would buy, on the validation part only.

An ensemble of N runs costs N times the training (N x 2 h here) and N times the inference,
so it is not a candidate to ship under the 2-hour, 150 faces/s budget. It is an upper bound on
what more training compute of the same kind (the same backbones, data and recipe) reaches: if
the average of three 2-hour runs falls short of a target, a single longer run likely does too.

Each run is scored alone (EMA weights, its recipe's flip TTA), then every combination of two
or more, averaging expected ages and class probabilities.

Usage::

    python benchmarks/ensemble_check.py runs/multitask_v6 runs/multitask_v5 runs/multitask_v3

Writes ``benchmarks/results/ensemble_check.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from faceattrs.training.engine import predict
from multitask_ablations import (  # a sibling script: python puts benchmarks/ on the path
    SCORE_HEADER,
    load_run,
    score_cells,
    scores,
)
from results_io import save_results


def average(predictions: list) -> object:
    """The mean expected age and mean class probabilities of several runs' predictions."""
    return replace(
        predictions[0],
        age=np.mean([p.age for p in predictions], 0),
        ethnicity_proba=np.mean([p.ethnicity_proba for p in predictions], 0),
        gender_proba=np.mean([p.gender_proba for p in predictions], 0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(2)
    preds, minutes, val = {}, {}, None
    for run in args.runs:
        config, recipe, model, run_val = load_run(run)
        if val is not None and list(run_val.names) != list(val.names):
            raise SystemExit(f"{run} was validated on other faces")
        val = run_val
        preds[run.name] = predict(model, recipe, run_val)
        minutes[run.name] = (config.get("train_seconds") or 0) / 60
    rows = {}
    for k in range(1, len(preds) + 1):
        for combo in itertools.combinations(preds, k):
            rows[" + ".join(combo)] = {
                **scores(average([preds[name] for name in combo]), val),
                "training_minutes": sum(minutes[name] for name in combo),
            }
    lines = [
        f"| runs averaged (validation, {len(val)} faces) | training min | {SCORE_HEADER} |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {r['training_minutes']:.0f} | {score_cells(r)} |" for name, r in rows.items()]
    md = "\n".join(lines) + "\n"
    save_results("ensemble_check", {"validation_faces": len(val), "rows": rows}, md)


if __name__ == "__main__":
    main()
