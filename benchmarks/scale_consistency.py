"""Does the photo pipeline read the same face the same way at every size?

Each sampled **validation** face of UTKFace (and, as condition *fairface*, each sampled FairFace validation
photo, whole, its face width measured from the detector's landmarks on the original) is enlarged or shrunk
(Pillow's Lanczos filter, which antialiases when it shrinks) so that the face is W px wide, pasted in the
middle of a neutral grey photo twice its size, and sent through ``Analyzer.analyze_many`` (detect -> align ->
model), for W in 40, 64, 100, 160, 250, 400 and 800 px. The face width is defined as **twice the distance between
the eye centres**: UTKFace's crops put the eyes 78.7 px apart on average (the alignment template,
the mean landmark positions the detector finds on them), so a 200 px crop scaled by W / 157.4 shows
a face W px wide on average; the aligned crop the model sees is 200 px, so the pipeline enlarges
faces narrower than about 157 px and shrinks wider ones.

Two conditions. *clean*: the scaled crop as it is; enlarged from a 200 px crop, a large face has
no detail finer than the original crop's pixels, unlike a real photo taken at that size. *grain*:
the same photos with Gaussian noise (standard deviation 3 grey levels, fixed seed per face and
width) added at the photo's own resolution, as a camera's sensor and a real face's fine texture
give every photo pixel-level detail whatever the face's size; that detail is what point-sampling a
large face turns into false coarse patterns.

Reported per face, over the widths (the most confident face of each photo): the **age spread**
(largest minus smallest predicted age) and the **gender flips** (readings that differ from the
face's majority gender; a tie counts half the readings), summarised as the median and 90th
percentile of the spread, the share of readings that flip and the share of faces with any flip;
for all widths and for 64-800 px, where the issue "Faces beyond UTKFace" sets the goal (median age
spread at most 5 years, at most 3% of gender readings flipped). Per width: faces found, age MAE,
gender and ethnicity accuracy against the file names' labels, how far the age lies from the face's
median age over all widths, and the share of faces flagged "noisy" or flagged at all.

Validation part only: pipeline choices may be made on these figures without touching test.

Usage::

    python benchmarks/scale_consistency.py [--faces 300] [--out DIR] [--label TEXT] [--compare OTHER.json]

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
from faceattrs.data.fairface import pick_face, read_fairface
from faceattrs.data.folders import FAIRFACE_DIR, FAIRFACE_SPLIT, UTKFACE_DIR, UTKFACE_SPLIT
from faceattrs.data.labels import ETHNICITIES, GENDERS, parse_utkface_name
from faceattrs.inference.align import AlignmentTemplate
from faceattrs.model_folder import model_identity
from results_io import RESULTS, save_results

NAME = "scale_consistency"
WIDTHS = (40, 64, 100, 160, 250, 400, 800)
GOAL_WIDTHS = (64, 100, 160, 250, 400, 800)
#: condition -> standard deviation of the grain added to the photo (grey levels)
CONDITIONS = {"clean": 0.0, "grain": 3.0}
NEUTRAL = (128, 128, 128)

Reading = dict | None  # age, gender, ethnicity and flags of the most confident face of a photo, or None


def template_eye_distance() -> float:
    """The mean distance between the eye centres in UTKFace's 200 px crops (the alignment template's)."""
    points = AlignmentTemplate.load().points
    return float(np.linalg.norm(points[1] - points[0]))


def face_photo(crop: Image.Image, width: int, eye_distance: float, grain: float = 0.0, seed: int = 0) -> np.ndarray:
    """``crop`` scaled so that its face (2 x ``eye_distance`` wide in the crop) is ``width`` px wide, in a grey photo.

    The photo is twice the scaled crop's side, the crop in its middle, so the face fills the same
    share of the photo at every width and only the resolution changes. ``grain``: the standard
    deviation of Gaussian noise added to every pixel (the same on the three channels), drawn with ``seed``.

    >>> face_photo(Image.new("RGB", (200, 200)), 100, 50.0).shape
    (400, 400, 3)
    """
    side = max(1, round(crop.width * width / (2 * eye_distance)))
    face = crop.resize((side, max(1, round(crop.height * side / crop.width))), Image.Resampling.LANCZOS)
    photo = Image.new("RGB", (2 * side, 2 * side), NEUTRAL)
    photo.paste(face, (side // 2, side // 2))
    if not grain:
        return np.asarray(photo)
    noise = np.random.default_rng(seed).normal(0, grain, (photo.height, photo.width, 1))
    return np.clip(np.asarray(photo, np.float32) + noise, 0, 255).astype(np.uint8)


def validation_names(n_faces: int, seed: int) -> list[str]:
    """``n_faces`` validation files of the committed split, drawn with ``seed`` (all of them for 0)."""
    with UTKFACE_SPLIT.open(newline="") as f:
        names = sorted(row["file"] for row in csv.DictReader(f) if row["part"] == "val")
    if 0 < n_faces < len(names):
        names = [names[i] for i in np.sort(np.random.default_rng(seed).choice(len(names), n_faces, replace=False))]
    return names


Label = tuple[int, int, int, int]  # age_low, age_high (equal for an exact age), gender, ethnicity


def utkface_faces(names: list[str], eye_distance: float) -> list[tuple[Image.Image, float, Label]]:
    """UTKFace's validation crops, their eyes ``eye_distance`` apart (the template's), and their labels."""
    out = []
    for name in names:
        label = parse_utkface_name(name)
        crop = Image.open(UTKFACE_DIR / name).convert("RGB")
        out.append((crop, eye_distance, (label.age, label.age, label.gender, label.race)))
    return out


def fairface_faces(analyzer: Analyzer, n_faces: int, seed: int) -> tuple[list[str], list]:
    """``n_faces`` FairFace validation photos (224 px web photos, whole), each with the distance between the eyes of
    its labelled face (the largest, as the training crops take it) as the detector finds it, and its labels."""
    with FAIRFACE_SPLIT.open(newline="") as f:
        val = {row["file"] for row in csv.DictReader(f) if row["part"] == "val"}
    records = [r for r in read_fairface(FAIRFACE_DIR, hashes=False, progress=False).records if r.file in val]
    if 0 < n_faces < len(records):
        records = [records[i] for i in np.sort(np.random.default_rng(seed).choice(len(records), n_faces, False))]
    names, out = [], []
    for record in records:
        photo = Image.open(record.path).convert("RGB")
        found = analyzer.detector.detect(np.asarray(photo))
        chosen = pick_face(found, photo.width, photo.height)
        if chosen is None:
            continue
        landmarks = found[chosen].landmarks
        low, high = record.age_interval
        names.append(record.file)
        out.append((photo, float(np.linalg.norm(landmarks[1] - landmarks[0])), (low, high, record.gender, record.race)))
    return names, out


def read_faces(analyzer: Analyzer, faces: list, grain: float, desc: str) -> list[list[Reading]]:
    """Per face, per width: the most confident face found in its photo, or None."""

    def photos():
        for i, (image, eye_distance, _) in enumerate(faces):
            for width in WIDTHS:
                yield face_photo(image, width, eye_distance, grain, seed=i * 1000 + width)

    readings: list[Reading] = []
    results = analyzer.analyze_many(photos(), batch_size=32)
    for result in tqdm(results, total=len(faces) * len(WIDTHS), desc=desc, unit="photo"):
        if result.faces:
            face = max(result.faces, key=lambda f: f.det_score)
            readings.append(
                {"age": face.age, "gender": face.gender, "ethnicity": face.ethnicity, "flags": face.quality_flags}
            )
        else:
            readings.append(None)
    return [readings[i : i + len(WIDTHS)] for i in range(0, len(readings), len(WIDTHS))]


def _disagreeing(values: list[str]) -> int:
    """How many of ``values`` differ from the most common one (a tie: half of them)."""
    return len(values) - max(values.count(v) for v in set(values))


def summarise(faces: list[list[Reading]], widths: tuple[int, ...]) -> dict[str, float]:
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


def _median_ages(faces: list[list[Reading]]) -> list[float]:
    """Each face's median predicted age over the widths where it was found."""
    return [float(np.median([r["age"] for r in face if r])) if any(face) else np.nan for face in faces]


def per_width(faces: list[list[Reading]], labels: list[Label]) -> dict[str, dict[str, float]]:
    """Per width: faces found, accuracy against the labels (age: MAE for exact ages, else the share in the group),
    distance from each face's median age, flags."""
    medians = _median_ages(faces)
    majority = []
    for face in faces:
        genders = [r["gender"] for r in face if r is not None]
        majority.append(max(sorted(set(genders)), key=genders.count) if genders else None)
    out = {}
    for c, width in enumerate(WIDTHS):
        found = [i for i, face in enumerate(faces) if face[c] is not None]
        read = [faces[i][c] for i in found]
        ages = np.array([r["age"] for r in read])
        low, high = np.array([labels[i][0] for i in found]), np.array([labels[i][1] for i in found])
        exact = bool((low == high).all())
        out[str(width)] = {
            "found": len(found) / len(faces),
            "age_mae": float(np.abs(ages - low).mean()) if exact else None,
            "age_group_accuracy": None if exact else float(((ages >= low) & (ages <= high)).mean()),
            "gender_accuracy": float(
                np.mean([GENDERS.index(r["gender"]) == labels[i][2] for r, i in zip(read, found, strict=True)])
            ),
            "ethnicity_accuracy": float(
                np.mean([ETHNICITIES.index(r["ethnicity"]) == labels[i][3] for r, i in zip(read, found, strict=True)])
            ),
            "age_off_median": float(np.median(np.abs(ages - [medians[i] for i in found]))),
            "gender_off_majority": float(
                np.mean([r["gender"] != majority[i] for r, i in zip(read, found, strict=True)])
            ),
            "flagged_noisy": float(np.mean(["noisy" in r["flags"] for r in read])),
            "flagged": float(np.mean([bool(r["flags"]) for r in read])),
        }
    return out


def markdown(report: dict, before: dict | None) -> str:
    """The summary and per-width tables; with ``before``, its figures beside this run's ("before → after")."""

    def cell(path: tuple[str, ...], fmt: str) -> str:
        def value(run: dict) -> str | None:
            for key in path:
                if key not in run:
                    return None  # a condition the earlier run did not have
                run = run[key]
            return "—" if run is None else fmt.format(run)

        earlier = None if before is None else value(before)
        return value(report) if earlier is None else f"{earlier} → {value(report)}"

    pct, yrs = "{:.1%}", "{:.1f}"
    lines = [
        "| condition | widths | faces found at every width | median age spread (years) | mean spread | 90th pct. "
        "spread | gender readings flipped | faces with a gender flip | ethnicity readings flipped |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for condition in report["conditions"]:
        for key, label in (("all", "40–800 px"), ("goal", "64–800 px (goal: ≤ 5 years, ≤ 3%)")):
            figures = [
                cell(("conditions", condition, "summary", key, name), fmt)
                for name, fmt in (
                    ("faces_found_at_every_width", pct),
                    ("age_spread_median", yrs),
                    ("age_spread_mean", "{:.2f}"),
                    ("age_spread_p90", yrs),
                    ("gender_flip_rate", pct),
                    ("faces_with_a_gender_flip", pct),
                    ("ethnicity_flip_rate", pct),
                )
            ]
            lines.append(f"| {condition} | {label} | " + " | ".join(figures) + " |")
    lines += [
        "",
        "| condition | face width | faces found | age MAE | age in its group | gender acc. | ethnicity acc. | "
        "median distance from the face's median age | gender differs from the face's majority | flagged noisy | "
        "flagged (any) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for condition, run in report["conditions"].items():
        for width in run["per_width"]:
            figures = [
                cell(("conditions", condition, "per_width", width, name), fmt)
                for name, fmt in (
                    ("found", pct),
                    ("age_mae", "{:.2f}"),
                    ("age_group_accuracy", pct),
                    ("gender_accuracy", pct),
                    ("ethnicity_accuracy", pct),
                    ("age_off_median", yrs),
                    ("gender_off_majority", pct),
                    ("flagged_noisy", pct),
                    ("flagged", pct),
                )
            ]
            lines.append(f"| {condition} | {width} px | " + " | ".join(figures) + " |")
    compared = f" Before → after: {before['label']} → {report['label']}." if before else ""
    grains = ", ".join(f"{name}: grain {sd:g}" for name, sd in report["grain"].items())
    lines.append(
        f"\n{report['faces']} random UTKFace validation faces (clean, grain) and {report['fairface_faces']} FairFace "
        f"validation photos, whole (fairface; seed {report['seed']}), each pasted at every width into a grey photo "
        "twice its size (face width: twice the distance between the eyes) and sent through detect → "
        f"align → model; the most confident face of each photo ({grains}: the standard deviation of the "
        f"noise added to every pixel). Ages are whole years, so the median spread moves in steps of 0.5 when "
        f"a few faces change; the mean shows smaller moves. Model version {report['model']['version']}.{compared}\n"
    )
    return "\n".join(lines)


def plot(report: dict, before: dict | None, path: Path) -> None:
    """Per width and condition: mean distance of the age from the face's median age, gender flips, noisy flags."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colours = dict(zip(report["conditions"], ("#4c72b0", "#dd8452", "#55a868"), strict=False))
    runs = [(before, "--", 0.6), (report, "-", 1.0)] if before else [(report, "-", 1.0)]
    for run, style, alpha in runs:
        for condition, figures in run["conditions"].items():
            label = f"{condition}, {run.get('label', 'this run')}"
            colour = colours.get(condition, "#999999")
            widths = [int(w) for w in figures["per_width"]]
            ages = np.array([[np.nan if v is None else v for v in face] for face in figures["ages"]])
            off = np.abs(ages - np.nanmedian(ages, 1, keepdims=True))  # |age - the face's median age|
            # the mean, not the median: ages are whole years, so most faces sit at 0 or 1
            axes[0].plot(widths, np.nanmean(off, 0), style, color=colour, marker="o", alpha=alpha, label=label)
            for ax, key in ((axes[1], "gender_off_majority"), (axes[2], "flagged_noisy")):
                values = [100 * r[key] for r in figures["per_width"].values()]
                ax.plot(widths, values, style, color=colour, marker="o", alpha=alpha, label=label)
    titles = (
        ("mean |age − the face's median age| (years)", "age spread by width"),
        ("gender differs from the face's majority (%)", "gender flips by width"),
        ("faces flagged noisy (%)", "the noisy flag by width"),
    )
    for ax, (ylabel, title) in zip(axes, titles, strict=True):
        ax.set_xscale("log")
        ax.set_xticks(WIDTHS, [str(w) for w in WIDTHS])
        ax.minorticks_off()
        ax.set_xlabel("face width in the photo (px)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.axvline(2 * report["template_eye_distance"], color="#999999", lw=1, ls=":")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(
        f"The same {report['faces']} validation faces at 7 sizes (model version {report['model']['version']}); "
        "dotted: the aligned crop's own scale; dashed: before",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=300, help="UTKFace validation faces sampled (0: all 2,090)")
    parser.add_argument("--fairface-faces", type=int, default=300, help="FairFace validation photos (0: all 2,001)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results (default: results/)")
    parser.add_argument("--label", default="this run", help="what this run measures, e.g. 'antialiased alignment'")
    parser.add_argument("--compare", type=Path, help="an earlier run's .json, shown beside this one")
    args = parser.parse_args()

    names = validation_names(args.faces, args.seed)
    eye_distance = template_eye_distance()
    analyzer = Analyzer()
    report = {
        "model": model_identity(),
        "part": "val",
        "label": args.label,
        "faces": len(names),
        "seed": args.seed,
        "widths": list(WIDTHS),
        "grain": CONDITIONS | {"fairface": 0.0},
        "template_eye_distance": eye_distance,
        "conditions": {},
    }
    utkface = utkface_faces(names, eye_distance)
    fairface_names, fairface = fairface_faces(analyzer, args.fairface_faces, args.seed)
    report["fairface_faces"] = len(fairface)
    runs = [(condition, utkface, grain) for condition, grain in CONDITIONS.items()] + [("fairface", fairface, 0.0)]
    for condition, sources, grain in runs:
        faces = read_faces(analyzer, sources, grain, condition)
        report["conditions"][condition] = {
            "summary": {"all": summarise(faces, WIDTHS), "goal": summarise(faces, GOAL_WIDTHS)},
            "per_width": per_width(faces, [label for _, _, label in sources]),
            # faces (in the order of "files") x widths: the predicted age, None where no face was found
            "ages": [[None if r is None else r["age"] for r in face] for face in faces],
        }
    report["files"] = names
    report["fairface_files"] = fairface_names
    before = json.loads(args.compare.read_text()) if args.compare else None
    if before:  # the earlier run's figures kept beside this run's
        before.pop("compared_with", None)
        report["compared_with"] = before
    save_results(NAME, report, markdown(report, before), args.out)
    plot(report, before, args.out / f"{NAME}.png")


if __name__ == "__main__":
    main()
