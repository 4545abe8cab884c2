"""Does the photo pipeline read the same face the same way at every size?

Each sampled **validation** face of UTKFace is enlarged or shrunk (Pillow's Lanczos filter, which
antialiases when it shrinks) so that the face is W px wide, pasted in the middle of a neutral grey
photo twice its size, and sent through ``Analyzer.analyze_many`` (detect -> align -> model), for W in
40, 64, 100, 160, 250, 400 and 800 px. The face width is defined as **twice the distance between
the eye centres**: UTKFace's crops put the eyes 78.7 px apart on average (the alignment template,
the mean landmark positions the detector finds on them), so a 200 px crop scaled by W / 157.4 shows
a face W px wide on average; the aligned crop the model sees is 200 px, so the pipeline enlarges
faces narrower than about 157 px and shrinks wider ones.

Reported per face, over the widths (the most confident face of each photo): the **age spread**
(largest minus smallest predicted age) and the **gender flips** (readings that differ from the
face's majority gender; a tie counts half the readings), summarised as the median and 90th
percentile of the spread, the share of readings that flip and the share of faces with any flip;
for all widths and for 64-800 px, where the issue "Faces beyond UTKFace" sets the goal (median age
spread at most 5 years, at most 3% of gender readings flipped). Per width: faces found, age MAE,
gender and ethnicity accuracy against the file names' labels, and how far the age lies from the
face's median age over all widths.

Validation part only: pipeline choices may be made on these figures without touching test.

Usage::

    python benchmarks/scale_consistency.py [--faces 300] [--out DIR] [--compare OTHER.json]

Writes ``benchmarks/results/scale_consistency.json``, ``.md`` and ``.png`` (into ``--out`` when
given); ``--compare`` puts the figures of an earlier run (its ``.json``) beside this run's, e.g. the
same benchmark run on an older checkout with ``PYTHONPATH=that/checkout/src``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from faceattrs import Analyzer
from faceattrs.data.folders import UTKFACE_DIR, UTKFACE_SPLIT
from faceattrs.data.labels import ETHNICITIES, GENDERS, parse_utkface_name
from faceattrs.inference.align import AlignmentTemplate
from faceattrs.model_folder import model_identity
from results_io import RESULTS, save_results

NAME = "scale_consistency"
WIDTHS = (40, 64, 100, 160, 250, 400, 800)
GOAL_WIDTHS = (64, 100, 160, 250, 400, 800)
#: the issue's goal between 64 and 800 px
GOAL_AGE_SPREAD, GOAL_GENDER_FLIPS = 5.0, 0.03
NEUTRAL = (128, 128, 128)


def template_eye_distance() -> float:
    """The mean distance between the eye centres in UTKFace's 200 px crops (the alignment template's)."""
    points = AlignmentTemplate.load().points
    return float(np.linalg.norm(points[1] - points[0]))


def face_photo(crop: Image.Image, width: int, eye_distance: float) -> np.ndarray:
    """``crop`` scaled so that its face (2 x ``eye_distance`` wide in the crop) is ``width`` px wide, in a grey photo.

    The photo is twice the scaled crop's side, the crop in its middle, so the face fills the same
    share of the photo at every width and only the resolution changes.

    >>> face_photo(Image.new("RGB", (200, 200)), 100, 50.0).shape
    (400, 400, 3)
    """
    side = max(1, round(crop.width * width / (2 * eye_distance)))
    face = crop.resize((side, side), Image.Resampling.LANCZOS)
    photo = Image.new("RGB", (2 * side, 2 * side), NEUTRAL)
    photo.paste(face, (side // 2, side // 2))
    return np.asarray(photo)


def validation_names(n_faces: int, seed: int) -> list[str]:
    """``n_faces`` validation files of the committed split, drawn with ``seed`` (all of them for 0)."""
    with UTKFACE_SPLIT.open(newline="") as f:
        names = sorted(row["file"] for row in csv.DictReader(f) if row["part"] == "val")
    if 0 < n_faces < len(names):
        names = [names[i] for i in np.sort(np.random.default_rng(seed).choice(len(names), n_faces, replace=False))]
    return names


def read_faces(analyzer: Analyzer, names: list[str], eye_distance: float) -> list[list[dict | None]]:
    """Per face, per width: the most confident face found (age, gender, ethnicity), or None."""

    def photos():
        for name in names:
            crop = Image.open(UTKFACE_DIR / name).convert("RGB")
            for width in WIDTHS:
                yield face_photo(crop, width, eye_distance)

    readings: list[dict | None] = []
    results = analyzer.analyze_many(photos(), batch_size=32)
    for result in tqdm(results, total=len(names) * len(WIDTHS), desc="photos", unit="photo"):
        if result.faces:
            face = max(result.faces, key=lambda f: f.det_score)
            readings.append({"age": face.age, "gender": face.gender, "ethnicity": face.ethnicity})
        else:
            readings.append(None)
    return [readings[i : i + len(WIDTHS)] for i in range(0, len(readings), len(WIDTHS))]


def _disagreeing(values: list[str]) -> int:
    """How many of ``values`` differ from the most common one (a tie: half of them)."""
    return len(values) - max(values.count(v) for v in set(values))


def summarise(faces: list[list[dict | None]], widths: tuple[int, ...]) -> dict[str, float]:
    """Consistency over ``widths``, on the faces found at every one of them."""
    columns = [WIDTHS.index(w) for w in widths]
    complete = [[face[c] for c in columns] for face in faces if all(face[c] is not None for c in columns)]
    spread = np.array([max(r["age"] for r in face) - min(r["age"] for r in face) for face in complete])
    gender_flips = np.array([_disagreeing([r["gender"] for r in face]) for face in complete])
    ethnicity_flips = np.array([_disagreeing([r["ethnicity"] for r in face]) for face in complete])
    return {
        "widths": list(widths),
        "faces_found_at_every_width": len(complete) / len(faces),
        "faces": len(complete),
        "age_spread_median": float(np.median(spread)),
        "age_spread_mean": float(spread.mean()),
        "age_spread_p90": float(np.percentile(spread, 90)),
        "gender_flip_rate": float(gender_flips.sum() / (len(complete) * len(widths))),
        "faces_with_a_gender_flip": float((gender_flips > 0).mean()),
        "ethnicity_flip_rate": float(ethnicity_flips.sum() / (len(complete) * len(widths))),
    }


def per_width(faces: list[list[dict | None]], names: list[str]) -> dict[str, dict[str, float]]:
    """Per width: faces found, accuracy against the labels, and the distance from each face's median age."""
    labels = [parse_utkface_name(n) for n in names]
    medians = [np.median([r["age"] for r in face if r is not None]) if any(face) else np.nan for face in faces]
    majority = []
    for face in faces:
        genders = [r["gender"] for r in face if r is not None]
        majority.append(max(set(genders), key=genders.count) if genders else None)
    out = {}
    for c, width in enumerate(WIDTHS):
        found = [i for i, face in enumerate(faces) if face[c] is not None]
        ages = np.array([faces[i][c]["age"] for i in found])
        out[str(width)] = {
            "found": len(found) / len(faces),
            "age_mae": float(np.abs(ages - [labels[i].age for i in found]).mean()),
            "gender_accuracy": float(
                np.mean([GENDERS.index(faces[i][c]["gender"]) == labels[i].gender for i in found])
            ),
            "ethnicity_accuracy": float(
                np.mean([ETHNICITIES.index(faces[i][c]["ethnicity"]) == labels[i].race for i in found])
            ),
            "age_off_median": float(np.median(np.abs(ages - [medians[i] for i in found]))),
            "gender_off_majority": float(np.mean([faces[i][c]["gender"] != majority[i] for i in found])),
        }
    return out


def markdown(report: dict, before: dict | None) -> str:
    """The summary and per-width tables; with ``before``, its figures beside this run's."""

    def pair(now: float, key_path: tuple[str, ...], fmt: str) -> str:
        cell = fmt.format(now)
        if before is None:
            return cell
        old = before
        for key in key_path:
            old = old[key]
        return f"{fmt.format(old)} → {cell}"

    pct, yrs = "{:.1%}", "{:.1f}"
    lines = [
        "| widths | faces found at every width | median age spread (years) | 90th pct. spread | "
        "gender readings flipped | faces with a gender flip | ethnicity readings flipped |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in (("all", "40–800 px"), ("goal", "64–800 px (goal: ≤ 5 years, ≤ 3%)")):
        s = report["summary"][key]
        p = ("summary", key)
        lines.append(
            f"| {label} | {pair(s['faces_found_at_every_width'], (*p, 'faces_found_at_every_width'), pct)} | "
            f"{pair(s['age_spread_median'], (*p, 'age_spread_median'), yrs)} | "
            f"{pair(s['age_spread_p90'], (*p, 'age_spread_p90'), yrs)} | "
            f"{pair(s['gender_flip_rate'], (*p, 'gender_flip_rate'), pct)} | "
            f"{pair(s['faces_with_a_gender_flip'], (*p, 'faces_with_a_gender_flip'), pct)} | "
            f"{pair(s['ethnicity_flip_rate'], (*p, 'ethnicity_flip_rate'), pct)} |"
        )
    lines += [
        "",
        "| face width | faces found | age MAE | gender acc. | ethnicity acc. | median distance from the face's "
        "median age | gender differs from the face's majority |",
        "|---|---|---|---|---|---|---|",
    ]
    for width, r in report["per_width"].items():
        p = ("per_width", width)
        lines.append(
            f"| {width} px | {pair(r['found'], (*p, 'found'), pct)} | {pair(r['age_mae'], (*p, 'age_mae'), '{:.2f}')} | "
            f"{pair(r['gender_accuracy'], (*p, 'gender_accuracy'), pct)} | "
            f"{pair(r['ethnicity_accuracy'], (*p, 'ethnicity_accuracy'), pct)} | "
            f"{pair(r['age_off_median'], (*p, 'age_off_median'), yrs)} | "
            f"{pair(r['gender_off_majority'], (*p, 'gender_off_majority'), pct)} |"
        )
    compared = f" Before → after: {before['label']} → {report['label']}." if before else ""
    lines.append(
        f"\n{report['faces']} random validation faces (seed {report['seed']}), each pasted at every width into a "
        "grey photo twice its size (face width: twice the distance between the eyes) and sent through detect → "
        f"align → model; the most confident face of each photo. Model version {report['model']['version']}."
        f"{compared}\n"
    )
    return "\n".join(lines)


def plot(report: dict, before: dict | None, path: Path) -> None:
    """Per width: the distance of the age from the face's median age (median and IQR) and gender flips."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_age, ax_gender) = plt.subplots(1, 2, figsize=(11, 4))
    runs = [(before, "--", "#999999"), (report, "-", "#4c72b0")] if before else [(report, "-", "#4c72b0")]
    for run, style, colour in runs:
        widths = [int(w) for w in run["per_width"]]
        label = run.get("label", "this run")
        spread = np.array(run["age_spread_by_width"])  # faces x widths: |age - the face's median age|
        ax_age.plot(widths, np.nanmedian(spread, 0), style, color=colour, marker="o", label=label)
        ax_age.fill_between(widths, *np.nanpercentile(spread, [25, 75], 0), color=colour, alpha=0.15)
        flips = [100 * r["gender_off_majority"] for r in run["per_width"].values()]
        ax_gender.plot(widths, flips, style, color=colour, marker="o", label=label)
    for ax in (ax_age, ax_gender):
        ax.set_xscale("log")
        ax.set_xticks(WIDTHS, [str(w) for w in WIDTHS])
        ax.set_xlabel("face width in the photo (px)")
        ax.axvline(157.4, color="#55a868", lw=1, ls=":")  # the face is as large as in the aligned crop
        ax.legend(fontsize=8)
    ax_age.set_ylabel("|age − the face's median age| (years)")
    ax_age.set_title("age spread by width (median, IQR shaded)", fontsize=10)
    ax_gender.set_ylabel("gender differs from the face's majority (%)")
    ax_gender.set_title("gender flips by width", fontsize=10)
    fig.suptitle(
        f"The same {report['faces']} validation faces at 7 sizes (model version {report['model']['version']}); "
        "dotted: the aligned crop's own scale",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=300, help="validation faces sampled (0: all 2,090)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results (default: results/)")
    parser.add_argument("--label", default="this run", help="what this run measures, e.g. 'antialiased alignment'")
    parser.add_argument("--compare", type=Path, help="an earlier run's .json, shown beside this one")
    args = parser.parse_args()

    names = validation_names(args.faces, args.seed)
    eye_distance = template_eye_distance()
    faces = read_faces(Analyzer(), names, eye_distance)
    medians = [np.median([r["age"] for r in face if r is not None]) if any(face) else np.nan for face in faces]
    report = {
        "model": model_identity(),
        "part": "val",
        "label": args.label,
        "faces": len(names),
        "seed": args.seed,
        "widths": list(WIDTHS),
        "template_eye_distance": eye_distance,
        "summary": {"all": summarise(faces, WIDTHS), "goal": summarise(faces, GOAL_WIDTHS)},
        "per_width": per_width(faces, names),
        "age_spread_by_width": [
            [abs(r["age"] - m) if r is not None else None for r in face] for face, m in zip(faces, medians, strict=True)
        ],
        "readings": [{"file": n, "by_width": face} for n, face in zip(names, faces, strict=True)],
    }
    before = json.loads(args.compare.read_text()) if args.compare else None
    save_results(NAME, report, markdown(report, before), args.out)
    plot(_with_floats(report), before and _with_floats(before), args.out / f"{NAME}.png")


def _floats(rows: list[list[float | None]]) -> list[list[float]]:
    """None (no face found) as NaN, for the plot's nan-aware statistics."""
    return [[np.nan if v is None else v for v in row] for row in rows]


def _with_floats(report: dict) -> dict:
    """``report`` with its age spreads as floats (NaN where no face was found)."""
    return report | {"age_spread_by_width": _floats(report["age_spread_by_width"])}


if __name__ == "__main__":
    main()
