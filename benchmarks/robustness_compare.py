"""Models on the same degraded validation photos: saved robustness runs beside the shipped model's.

``robustness.py`` measures one model; this puts earlier models' saved runs (default: versions 12
to 16, kept as ``results/robustness_version12.json`` ... ``robustness_version16.json``) beside the
shipped model's (``results/robustness.json``), condition by condition, with the mean over the
degraded conditions. Nothing is measured here: all files are runs of ``robustness.py`` on the same faces.

Usage::

    python benchmarks/robustness_compare.py [--previous FILE ...]

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


def compare(previous: list[dict], shipped: dict) -> tuple[dict, str]:
    """The per-condition pipeline figures of all runs (JSON) and their Markdown table, the shipped model last."""
    runs = [*previous, shipped]
    if any(run["faces"] != shipped["faces"] or run["part"] != shipped["part"] for run in previous):
        raise SystemExit("the runs did not measure the same faces: rerun robustness.py with the same --faces")
    names = [f"version {run['model']['version']}" for run in runs]
    lines = [
        f"| condition ({shipped['faces']} validation faces, pipeline) | {names[0]}: age MAE / ethnicity % / gender % | "
        + " | ".join([*names[1:-1], f"{names[-1]} (shipped)"])
        + " |",
        "|---" * (len(runs) + 1) + "|",
    ]
    rows, degraded = {}, []
    for condition, entry in shipped["conditions"].items():
        figures = [run["conditions"][condition]["pipeline"] for run in runs]
        rows[condition] = {name: {k: p[k] for k in FIGURES} for name, p in zip(names, figures, strict=True)}
        lines.append(f"| {condition} | " + " | ".join(map(_cell, figures)) + " |")
        if entry["kind"] != "reference":
            degraded.append(figures)
    means = [{k: float(np.mean([row[i][k] for row in degraded])) for k in FIGURES} for i in range(len(runs))]
    lines.append(f"| **mean of the {len(degraded)} degraded conditions** | " + " | ".join(map(_cell, means)) + " |")
    data = {
        "model": shipped["model"],  # the shipped model, as in every result of it (tests/test_benchmark_results.py)
        "previous_models": [run["model"] for run in previous],
        "conditions": rows,
        "mean_degraded": dict(zip(names, means, strict=True)),
    }
    return data, "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--previous",
        type=Path,
        nargs="+",
        default=[RESULTS / f"robustness_version{v}.json" for v in (12, 13, 14, 15, 16)],
    )
    args = parser.parse_args()
    previous = [json.loads(path.read_text()) for path in args.previous]
    data, markdown = compare(previous, json.loads((RESULTS / "robustness.json").read_text()))
    save_results("robustness_compare", data, markdown)


if __name__ == "__main__":
    main()
