"""Two models on the same degraded validation photos: a saved robustness run beside the shipped model's.

``robustness.py`` measures one model; this puts an earlier model's saved run (default: version 12's,
kept as ``results/robustness_version12.json``) beside the shipped model's
(``results/robustness.json``), condition by condition, with the mean over the degraded conditions.
Nothing is measured here: both files are runs of ``robustness.py`` on the same faces.

Usage::

    python benchmarks/robustness_compare.py [--previous benchmarks/results/robustness_version12.json]

Writes ``benchmarks/results/robustness_compare.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from results_io import RESULTS, save_results  # sibling script: python puts benchmarks/ on the path

FIGURES = ("age_mae", "ethnicity_accuracy", "gender_accuracy")


def _cell(p: dict) -> str:
    return f"{p['age_mae']:.2f} / {100 * p['ethnicity_accuracy']:.1f} / {100 * p['gender_accuracy']:.1f}"


def compare(previous: dict, shipped: dict) -> tuple[dict, str]:
    """The per-condition pipeline figures of both runs (JSON) and their Markdown table."""
    if previous["faces"] != shipped["faces"] or previous["part"] != shipped["part"]:
        raise SystemExit("the two runs did not measure the same faces: rerun robustness.py with the same --faces")
    names = [f"version {run['model']['version']}" for run in (previous, shipped)]
    lines = [
        f"| condition ({shipped['faces']} validation faces, pipeline) | {names[0]}: age MAE / ethnicity % / gender % "
        f"| {names[1]} (shipped) |",
        "|---|---|---|",
    ]
    rows, degraded = {}, []
    for condition, entry in shipped["conditions"].items():
        pair = [previous["conditions"][condition]["pipeline"], entry["pipeline"]]
        rows[condition] = {name: {k: p[k] for k in FIGURES} for name, p in zip(names, pair, strict=True)}
        lines.append(f"| {condition} | {_cell(pair[0])} | {_cell(pair[1])} |")
        if entry["kind"] != "reference":
            degraded.append(pair)
    means = [{k: float(np.mean([pair[i][k] for pair in degraded])) for k in FIGURES} for i in range(2)]
    lines.append(f"| **mean of the {len(degraded)} degraded conditions** | {_cell(means[0])} | {_cell(means[1])} |")
    data = {
        "model": shipped["model"],  # the shipped model, as in every result of it (tests/test_benchmark_results.py)
        "previous_model": previous["model"],
        "conditions": rows,
        "mean_degraded": dict(zip(names, means, strict=True)),
    }
    return data, "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--previous", type=Path, default=RESULTS / "robustness_version12.json")
    args = parser.parse_args()
    previous, shipped = (json.loads(path.read_text()) for path in (args.previous, RESULTS / "robustness.json"))
    data, markdown = compare(previous, shipped)
    save_results("robustness_compare", data, markdown)


if __name__ == "__main__":
    main()
