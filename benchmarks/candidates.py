"""Candidate models beside the shipped one, on the validation part only, in one run.

For choosing between candidates before the test part is looked at: each model folder is scored
through onnxruntime with its own calibration on the validation faces, its differences from the
shipped model come with paired bootstrap 95% intervals (the same faces, resampled together), and
all models are timed in the same process in alternating rounds (aligned faces/s from the 200x200
validation crops, the shared resize included, as in ``models.py``). The test part is never read.

Usage::

    python benchmarks/candidates.py runs/v13_c7=LABEL runs/v13_c8=LABEL ... [--rounds 5] [--repeats 30]

A folder without ``=LABEL`` is labelled with its name. Writes ``benchmarks/results/candidates.json``
and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from age_readout import paired_interval  # sibling scripts: python puts benchmarks/ on the path
from faceattrs.build.export import score_part
from faceattrs.data.cache import load_faces
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.model_folder import MODEL_FILE, default_model_dir, model_identity
from faceattrs.training.protocols import project_protocol
from models import batch_seconds
from results_io import save_results

DATA = Path("../shared/datasets/utkface/UTKFace")
SHIPPED = "shipped"


def per_face(predictions, faces) -> dict[str, np.ndarray]:
    """Per-face scores that the paired intervals resample."""
    known = faces.race >= 0
    return {
        "age_error": np.abs(predictions.age - faces.age),
        "ethnicity_hit": (predictions.ethnicity_proba.argmax(1) == faces.race)[known].astype(float),
        "gender_hit": (predictions.gender_proba.argmax(1) == faces.gender).astype(float),
    }


def row(metrics: dict, scores: dict, shipped_scores: dict, resamples: int) -> dict:
    coverage = metrics["calibration"]["age_interval"]
    groups = [g["coverage"] for part in ("ethnicity", "gender") for g in coverage[part].values()]
    rng = np.random.default_rng(0)
    return {
        "age_mae": metrics["age"]["mae"],
        "age_cs5": metrics["age"]["cs5"],
        "ethnicity_accuracy": metrics["ethnicity"]["accuracy"],
        "ethnicity_macro_f1": metrics["ethnicity"]["macro_f1"],
        "gender_accuracy": metrics["gender"]["accuracy"],
        "range_coverage": coverage["all"]["all"]["coverage"],
        "range_coverage_worst_group": min(groups),
        "diff_ci": {
            name: paired_interval(scores[name] - shipped_scores[name], resamples, rng) for name in shipped_scores
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+", metavar="DIR[=LABEL]", help="model folders (model.onnx + metadata)")
    parser.add_argument("--repeats", type=int, default=30, help="timed batches per model and batch size")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds the batches are spread over")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    folders = {SHIPPED: default_model_dir()}
    for spec in args.candidates:
        folder, _, label = spec.partition("=")
        folders[label or Path(folder).name] = Path(folder)
    models = {name: AttributeModel(folder, threads=args.threads) for name, folder in folders.items()}
    sizes = {m.input_size for m in models.values()}
    if len(sizes) != 1:
        raise SystemExit(f"candidates take different input sizes {sorted(sizes)}; compare them in separate runs")
    val = project_protocol(load_faces(DATA, sizes.pop(), progress=False))["val"]

    scored = {name: score_part(model, val, model.metadata["calibration"]) for name, model in models.items()}
    scores = {name: per_face(predictions, val) for name, (_, predictions) in scored.items()}
    rows = {name: row(metrics, scores[name], scores[SHIPPED], args.resamples) for name, (metrics, _) in scored.items()}

    crops = np.stack([np.asarray(Image.open(DATA / n).convert("RGB")) for n in val.names[:256]])
    per_round = max(1, args.repeats // args.rounds)
    seconds = {name: {1: [], 32: []} for name in models}
    for _ in range(args.rounds):  # models take turns, so a slow spell of this shared machine hits them all alike
        for batch in (1, 32):
            for name, model in models.items():
                seconds[name][batch] += batch_seconds(model.raw, model.input_size, crops, batch, per_round)
    for name, model in models.items():
        rows[name]["faces_per_s"] = {f"batch{b}": b / statistics.median(t) for b, t in seconds[name].items()}
        rows[name]["megabytes"] = (folders[name] / MODEL_FILE).stat().st_size / 1e6
        rows[name]["version"] = model.metadata["version"]

    summary = {
        "model": model_identity(),
        "faces": len(val),
        "resamples": args.resamples,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, onnxruntime {ort.__version__}, "
        f"{args.threads} intra-op threads",
        "timing": f"median of {args.rounds} x {per_round} batches per model and batch size, in alternating rounds",
        "models": rows,
    }
    save_results("candidates", summary, markdown(summary))


def markdown(summary: dict) -> str:
    def ci(pair, scale):
        return f"{scale * pair[0]:+.2f} to {scale * pair[1]:+.2f}"

    shipped = summary["models"][SHIPPED]["faces_per_s"]["batch32"]
    lines = [
        "| model (validation part) | age MAE | CS@5 | ethnicity acc. | macro-F1 | gender acc. | 90% range coverage "
        "(worst group) | MB | faces/s b1 | faces/s b32 | b32 vs shipped | MAE − shipped | ethnicity − shipped "
        "(points) | gender − shipped (points) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in summary["models"].items():
        label = f"{name} (version {r['version']})" if name == SHIPPED else name
        diff = (
            "— | — | —"
            if name == SHIPPED
            else f"{ci(r['diff_ci']['age_error'], 1)} | {ci(r['diff_ci']['ethnicity_hit'], 100)} | "
            f"{ci(r['diff_ci']['gender_hit'], 100)}"
        )
        lines.append(
            f"| {label} | {r['age_mae']:.3f} | {100 * r['age_cs5']:.2f}% | {100 * r['ethnicity_accuracy']:.2f}% | "
            f"{r['ethnicity_macro_f1']:.3f} | {100 * r['gender_accuracy']:.2f}% | {100 * r['range_coverage']:.1f}% "
            f"({100 * r['range_coverage_worst_group']:.1f}%) | {r['megabytes']:.1f} | "
            f"{r['faces_per_s']['batch1']:.0f} | {r['faces_per_s']['batch32']:.0f} | "
            f"{r['faces_per_s']['batch32'] / shipped:.2f}× | {diff} |"
        )
    lines.append(
        f"\n{summary['faces']} validation faces, each model with its own calibration; differences: paired bootstrap "
        f"95% intervals ({summary['resamples']} resamples); {summary['machine']}; {summary['timing']}."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
