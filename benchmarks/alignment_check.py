"""Does the photo pipeline crop faces the way UTKFace did?

Scores the shipped model on the committed test split twice: feeding each
aligned UTKFace crop directly (``--aligned``), and passing the same crop
through the full photo pipeline (detect -> align to the template -> model).
Nearly equal figures mean the template reproduces the training geometry.

Usage::

    python benchmarks/alignment_check.py

Writes ``benchmarks/results/alignment_check.json`` and ``.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from faceattrs import Analyzer
from faceattrs.data.labels import ETHNICITIES, GENDERS, parse_utkface_name
from faceattrs.data.split import read_split
from faceattrs.model_folder import model_identity
from results_io import save_results

DATA = Path("../shared/datasets/utkface/UTKFace")


def score(pred_age, pred_eth, pred_gender, labels) -> dict[str, float]:
    age = np.array([lab.age for lab in labels], float)
    race = np.array([lab.race for lab in labels])
    gender = np.array([lab.gender for lab in labels])
    err = np.abs(np.array(pred_age) - age)
    return {
        "n": len(labels),
        "age_mae": float(err.mean()),
        "age_cs5": float((err <= 5).mean()),
        "ethnicity_accuracy": float((np.array(pred_eth) == race).mean()),
        "gender_accuracy": float((np.array(pred_gender) == gender).mean()),
    }


def main() -> None:
    names = sorted(n for n, part in read_split().items() if part == "test")
    labels = [parse_utkface_name(n) for n in names]
    analyzer = Analyzer()
    paths = [str(DATA / n) for n in names]
    direct = list(tqdm(analyzer.analyze_many(paths, aligned=True), total=len(paths), desc="direct"))
    full = list(tqdm(analyzer.analyze_many(paths), total=len(paths), desc="pipeline"))

    def pick(results, keep):
        out = [], [], []
        for result, ok in zip(results, keep, strict=True):
            if ok:
                face = max(result.faces, key=lambda f: f.det_score)  # the UTKFace subject
                out[0].append(face.age)
                out[1].append(ETHNICITIES.index(face.ethnicity))
                out[2].append(GENDERS.index(face.gender))
        return out

    found = [r.status == "ok" for r in full]
    kept = [lab for lab, ok in zip(labels, found, strict=True) if ok]
    report = {
        "model": model_identity(),
        "test_crops": len(names),
        "pipeline_found_a_face": int(sum(found)),
        "direct_all": score(*pick(direct, [True] * len(names)), labels),
        "direct_on_detected": score(*pick(direct, found), kept),
        "pipeline_on_detected": score(*pick(full, found), kept),
    }
    rows = [
        "| input | faces | age MAE | CS@5 | ethnicity acc. | gender acc. |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (
        ("direct_all", "aligned crops fed directly (all test crops)"),
        ("direct_on_detected", "aligned crops fed directly (crops where the detector found a face)"),
        ("pipeline_on_detected", "same crops through detect + align (full pipeline)"),
    ):
        r = report[key]
        rows.append(
            f"| {label} | {r['n']} | {r['age_mae']:.2f} | {100 * r['age_cs5']:.1f}% | "
            f"{100 * r['ethnicity_accuracy']:.1f}% | {100 * r['gender_accuracy']:.1f}% |"
        )
    md = "\n".join(rows) + f"\n\nThe detector found a face in {sum(found)} of {len(names)} test crops.\n"
    save_results("alignment_check", report, md)


if __name__ == "__main__":
    main()
