"""Render ``MODEL_CARD.md`` from the shipped model's metadata and its test report.

The figures in the card are never typed by hand: ``faceattrs export`` measures
them and this module lays them out.
"""

from __future__ import annotations

from typing import Any

from faceattrs.data.labels import ETHNICITIES, GENDERS
from faceattrs.evaluation.calibration_report import coverage_markdown


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _interval_rule(interval: dict[str, Any]) -> str:
    low, high = interval["level"], 1 - interval["level"]
    return (
        f"split-conformal for {interval['coverage']:.0%} coverage: `[Q{low:.1%}, Q{high:.1%}]`, "
        "Q the quantiles of the network's age distribution in whole years, the level fitted on validation "
        "as the conformal quantile of the largest level whose range still holds each face's label, for each kind "
        "of label on its own (UTKFace's exact ages inside the range, FairFace's age groups overlapping it), the "
        "wider of the two kept (the range never excludes the age shown)."
    )


def _fairface_data(training: dict[str, Any]) -> list[str]:
    if "FairFace" not in training.get("data", ""):
        return []
    return [
        "FairFace (Kärkkäinen & Joo, WACV 2021; CC BY 4.0): 20,000 of its training images, web photos balanced "
        "for race, with age groups (not ages), gender and 7 race groups mapped to UTKFace's five. Split "
        "`splits/fairface_v1.csv` (80/10/10, stratified by race × age group × gender); every image went through "
        "the serving pipeline's own detector and alignment. A face labelled with a group learns from the "
        "probability its age distribution puts inside the group.",
        "",
    ]


def _fairface_performance(f: dict[str, Any] | None) -> list[str]:
    """The FairFace test part, beside UTKFace's: age groups, gender and ethnicity, per age group and per group."""
    if not f:
        return []
    return [
        "### FairFace (test part of its split, measured once, through ONNX)",
        "",
        f"{f['n']} test faces. The age is right when it falls inside the labelled group; the 90% range "
        "overlaps the group for the share given.",
        "",
        "| age group accuracy | 90% range overlaps group | ethnicity acc. | ethnicity macro-F1 | gender acc. |",
        "|---|---|---|---|---|",
        f"| {_pct(f['age']['group_accuracy'])} | {_pct(f['age']['range_overlap'])} | "
        f"{_pct(f['ethnicity']['accuracy'])} | {f['ethnicity']['macro_f1']:.3f} | {_pct(f['gender']['accuracy'])} |",
        "",
        "| age group | n | age in group | ethnicity acc. | gender acc. |",
        "|---|---|---|---|---|",
        *[
            f"| {r['age_group']} | {r['n']} | {_pct(r.get('age_accuracy', float('nan')))} | "
            f"{_pct(r.get('ethnicity_accuracy', float('nan')))} | {_pct(r.get('gender_accuracy', float('nan')))} |"
            for r in f["by_age_group"]
        ],
        "",
        "| ethnicity | gender | n | ethnicity acc. | gender acc. |",
        "|---|---|---|---|---|",
        *[
            f"| {r['ethnicity']} | {r['gender']} | {r['n']} | {_pct(r.get('ethnicity_accuracy', float('nan')))} | "
            f"{_pct(r.get('gender_accuracy', float('nan')))} |"
            for r in f["by_ethnicity_gender"]
            if r["n"]
        ],
        "",
    ]


def _children_gender_line(buckets: list[dict[str, Any]]) -> list[str]:
    """A limitation line comparing gender accuracy on children's faces with the older buckets."""
    rates = {r["age_bucket"]: r["gender_accuracy"] for r in buckets if "gender_accuracy" in r}
    if "0-12" not in rates or len(rates) < 2:
        return []
    older = [v for k, v in rates.items() if k != "0-12"]
    return [
        f"- Gender is much harder to read from children's faces: {_pct(rates['0-12'])} correct for ages 0–12 "
        f"against {_pct(min(older))}–{_pct(max(older))} in the older age buckets (test part)."
    ]


def _range_by_age_line(interval_report: dict[str, Any], floor: float = 0.85) -> list[str]:
    """A limitation line naming the age buckets where the 90% range held the true age for fewer than ``floor``."""
    low = {k: v["coverage"] for k, v in interval_report.get("age bucket", {}).items() if v["coverage"] < floor}
    if not low:
        return []
    buckets = ", ".join(f"{_pct(v)} for ages {k.replace('-', '–')}" for k, v in low.items())
    return [
        f"- The age range is fitted for its coverage over all ages, not per age: on the test part it held the true "
        f"age less often for some ages ({buckets})."
    ]


def _quantization(training: dict[str, Any]) -> list[str]:
    quantized = training.get("quantization")
    if not quantized:
        return []
    return [
        f"- Then stored as int8 (`faceattrs build`, step 3): weights {quantized['weights']}; activations "
        f"{quantized['activations']}; {quantized['format']}. Temperatures and the age range were refitted "
        "on validation through the int8 file.",
    ]


def _descriptor_heads(training: dict[str, Any]) -> list[str]:
    blend = training.get("descriptor_heads")
    if not blend:
        return []
    w = blend["head_weight"]
    return [
        f"- Descriptor heads (`faceattrs build`, steps 4-5): a second network, {blend['network']}, never trained on "
        f"age, gender or ethnicity labels. Its 128-d face descriptors ({blend['input']}) feed {blend['heads']}; the "
        "ethnicity and gender outputs are weighted means of both networks' log-probabilities (descriptor weight "
        f"{w['ethnicity']:.2f} for ethnicity, {w['gender']:.2f} for gender, chosen on validation). "
        + (
            "A third head reads the age group (FairFace's nine); the age distribution is the first network's times "
            f"that head's probability of each age's group to the power {w['age']:.2f} (chosen on validation by the "
            "likelihood of the age labels), renormalised. "
            if "age" in w
            else "Age comes from the first network alone. "
        )
        + f"Weight storage: {blend['weights_stored_as']}.",
    ]


def render_model_card(metadata: dict[str, Any], report: dict[str, Any]) -> str:
    t = report["test"]
    cal = t["calibration"]
    training = metadata["training"]
    settings = training.get("settings") or {}
    age, eth, gen = t["age"], t["ethnicity"], t["gender"]
    interval = metadata["calibration"]["age_interval"]
    both = " (both data sets' parts together)" if "FairFace" in training.get("data", "") else ""
    lines = [
        "# Model card: faceattrs multitask",
        "",
        f"Version {metadata['version']}, exported {metadata['created']}; ONNX sha256 `{metadata['sha256']}`.",
        "",
        "## What it does",
        "",
        "From one aligned face crop (UTKFace geometry; the photo pipeline detects and aligns faces first) it "
        "estimates **apparent age** with a 90% range, **gender** (male/female) and **ethnicity** in UTKFace's "
        "five groups (White, Black, Asian, Indian, Others) with calibrated probabilities.",
        "",
        "## Intended use",
        "",
        "- Research, teaching and aggregate analysis of photo collections where the people photographed "
        "have agreed, e.g. checking the demographic balance of a data set.",
        "- Demonstrating what such models can and cannot do, including their errors per group.",
        "",
        "## Out of scope — do not use it for",
        "",
        "- **Any decision about an individual**: hiring, admission, credit, insurance, policing, age "
        "verification or access control, medical or legal judgements.",
        "- Inferring anyone's self-identified gender or ethnicity. The labels are how annotators saw a face; "
        "gender here is binary and ethnicity has five coarse groups, which cannot describe real people.",
        "- Surveillance, or processing photos of people who have not agreed to it.",
        "- Commercial use: the training data's licence forbids it (see below).",
        "",
        "## Model",
        "",
        f"- Backbone: {training['backbone']}, Apache-2.0; no face-attribute pretraining. "
        f"Input {metadata['input']['model_size']}×"
        f"{metadata['input']['model_size']} RGB, resized from the aligned crop.",
        "- Heads: age as a softmax over 0..116 years (the age shown is its median, in whole years: the point with "
        "the least expected absolute error), ethnicity (5), gender (2).",
        f"- Recipe `{training['recipe']}`: {settings.get('epochs')} epochs"
        f", age loss `{settings.get('age_loss', 'ldl')}`, "
        f"augmentation {'on' if settings.get('augment') else 'off'}, "
        f"{'mixup α ' + str(settings['mixup_alpha']) + ', ' if settings.get('mixup_alpha') else ''}"
        f"{'weight decay ' + str(settings['weight_decay']) + ', ' if settings.get('weight_decay') else ''}"
        f"{'an exponential moving average of the weights, ' if settings.get('ema_decay') else ''}"
        f"flip test-time augmentation "
        f"{'on' if metadata['input']['flip_tta_in_graph'] else 'off'}; "
        f"{(training.get('train_seconds') or 0) / 60:.0f} minutes on 2 CPU cores.",
        *_quantization(training),
        *_descriptor_heads(training),
        "",
        "## Training data",
        "",
        "UTKFace, aligned & cropped (Zhang, Song, Qi, CVPR 2017): faces of people aged 1 to 116 collected from "
        "the web, with age, gender and ethnicity labels estimated by an algorithm and checked by a human. "
        f"Split `{training['split']}` (sha256 `{training['split_sha256'][:16]}…`): {training['n_train']} training "
        f"and {training['n_val']} validation faces{both}; identical files never cross parts. "
        "**Licence: non-commercial research only**; the images stay with their owners and are not shipped.",
        "",
        "Known biases of the data: White faces are 42% of it and 'Others' 7%; few faces are over 80; labels "
        "are noisy, and 259 groups of byte-identical images carry conflicting labels.",
        "",
        *_fairface_data(training),
        "## Performance (test part of the project split, measured once, through ONNX)",
        "",
        f"{t['n']} test faces, natural class balance, all ages.",
        "",
        "| age MAE | age RMSE | CS@5 | ethnicity accuracy | ethnicity macro-F1 | gender accuracy |",
        "|---|---|---|---|---|---|",
        f"| {age['mae']:.2f} | {age['rmse']:.2f} | {_pct(age['cs5'])} | {_pct(eth['accuracy'])} | "
        f"{eth['macro_f1']:.3f} | {_pct(gen['accuracy'])} |",
        "",
        "### Per group",
        "",
        "| ethnicity | n | recall | age MAE |",
        "|---|---|---|---|",
        *[
            f"| {e} | {age['by_ethnicity'][e]['n']} | {_pct(eth['recall'][e])} | {age['by_ethnicity'][e]['mae']:.2f} |"
            for e in ETHNICITIES
            if e in age["by_ethnicity"] and e in eth["recall"]
        ],
        "",
        "| gender | recall | age MAE |",
        "|---|---|---|",
        *[
            f"| {g} | {_pct(gen['recall'][g])} | {age['by_gender'][g]['mae']:.2f} |"
            for g in GENDERS
            if g in age["by_gender"]
        ],
        "",
        "| age bucket | n | age MAE | ethnicity acc. | gender acc. |",
        "|---|---|---|---|---|",
        *[
            f"| {r['age_bucket']} | {r['n']} | {r.get('age_mae', float('nan')):.2f} | "
            f"{_pct(r.get('ethnicity_accuracy', float('nan')))} | {_pct(r.get('gender_accuracy', float('nan')))} |"
            for r in t["by_age_bucket"]
            if r["n"]
        ],
        "",
        "| ethnicity | gender | n | age MAE | ethnicity acc. | gender acc. |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['ethnicity']} | {r['gender']} | {r['n']} | {r.get('age_mae', float('nan')):.2f} | "
            f"{_pct(r.get('ethnicity_accuracy', float('nan')))} | {_pct(r.get('gender_accuracy', float('nan')))} |"
            for r in t["by_ethnicity_gender"]
        ],
        "",
        *_fairface_performance(t.get("fairface")),
        "## Calibration (fitted on validation only)",
        "",
        f"- Temperature scaling: ethnicity T = {metadata['calibration']['ethnicity_temperature']:.3f}, "
        f"gender T = {metadata['calibration']['gender_temperature']:.3f}. Expected calibration error on test: "
        f"ethnicity {cal['ethnicity_ece_before']:.4f} → {cal['ethnicity_ece_after']:.4f}, "
        f"gender {cal['gender_ece_before']:.4f} → {cal['gender_ece_after']:.4f}.",
        f"- Age range: {_interval_rule(interval)} Coverage and mean width on test:",
        "",
        coverage_markdown(cal["age_interval"]),
        "## Limitations",
        "",
        "- Apparent age is not real age: make-up, lighting, expression and image quality move it.",
        "- Accuracy is lower for the 'Others' group, for the elderly and for groups with few training faces "
        "(tables above); faces unlike UTKFace's (profile views, occlusion, tiny or blurry faces, children in "
        "unusual poses) are less reliable, and the photo pipeline flags small, blurry, noisy, cut-off and "
        "heavily JPEG-compressed faces.",
        "- The conformal range holds on average over faces like the validation faces; it is not a guarantee "
        "for any one face or for photos from a different source.",
        "- Photos unlike UTKFace's crops cost accuracy: `benchmarks/robustness.py` measures how much for sensor "
        "noise, tighter framing, JPEG compression, blur, light, greyscale, small images and rotation "
        "(docs/benchmarks.md, Robustness).",
        *_children_gender_line(t["by_age_bucket"]),
        *_range_by_age_line(t["calibration"]["age_interval"]),
        "",
        "## Privacy",
        "",
        "faceattrs processes images in memory; the web app and the API never write uploaded images to disk or logs.",
        "",
    ]
    return "\n".join(lines)
