"""About the model: training data, measured performance, limitations, privacy."""

from __future__ import annotations

import json

import streamlit as st

from faceattrs.inference import attribute_model


def _asset(name: str):
    return attribute_model.default_model_dir() / name  # looked up at call time: FACEATTRS_MODEL_DIR, tests


def _card_section(card: str, title: str) -> str:
    """The body of one ``## title`` section of the model card."""
    start = card.find(f"## {title}")
    if start < 0:
        return ""
    end = card.find("\n## ", start + 3)
    return card[start + len(title) + 3 : end if end > 0 else None].strip()


def describe_model(metadata: dict) -> str:
    """One paragraph on what the shipped model is, from its metadata.

    >>> describe_model({"training": {"backbone": "EfficientNet-Lite1, ImageNet weights", "n_train": 10}})[:44]
    'One EfficientNet-Lite1 network (ImageNet-pre'
    """
    training = metadata["training"]
    data = (
        "UTKFace's face crops and FairFace's web photos"
        if "FairFace" in training.get("data", "")
        else "the UTKFace data set"
    )
    text = (
        f"One {training['backbone'].split(',')[0]} network (ImageNet-pretrained) with three heads, trained on "
        f"{data} ({training['n_train']} training faces) on 2 CPU cores"
    )
    if training.get("descriptor_heads"):
        text += (
            ", and a second one, dlib's face-recognition ResNet (trained on identities only, never on these "
            "labels), whose face descriptors feed ethnicity, gender and age-group heads that are blended with the "
            "first network's outputs; both ship in one ONNX file"
        )
    else:
        text += ", shipped as ONNX"
    return text + ". Faces are detected with RetinaFace and aligned to UTKFace's crop geometry first."


#: 95% range of the test ECE of a model calibrated by construction with the shipped model's test confidences
#: (labels drawn from its own probabilities, 500 draws over the 2,077 faces of tests/integration/expected/
#: test_split_aligned.csv); the measured test ECE lies inside it before and after the temperatures
SAMPLING_NOISE = {"ethnicity": (0.008, 0.022), "gender": (0.005, 0.014)}


def calibration_note(report: dict) -> str | None:
    """Why a calibration error that rose on the test part is no sign that calibration hurt (None when none rose).

    The temperatures are fitted on validation by log-loss. An expected calibration error (ECE) near 0.01
    on about 2,000 faces is mostly sampling noise: for the shipped model, labels drawn from its own
    test probabilities read an ECE inside :data:`SAMPLING_NOISE` in 95% of draws.

    >>> part = lambda e0, e1: {"calibration": {"ethnicity_ece_before": e0, "ethnicity_ece_after": e1,
    ...                                        "gender_ece_before": 0.015, "gender_ece_after": 0.013}}
    >>> print(calibration_note({"val": part(0.0124, 0.0098), "test": part(0.0135, 0.0181)}))
    Why ethnicity's calibration error rose on test (0.0135 → 0.0181): ...
    >>> calibration_note({"val": part(0.0124, 0.0098), "test": part(0.0135, 0.0101)}) is None
    True
    """
    try:
        val, test = report["val"]["calibration"], report["test"]["calibration"]
        rose = [t for t in ("ethnicity", "gender") if test[f"{t}_ece_after"] > test[f"{t}_ece_before"]]
    except (KeyError, TypeError):
        return None
    if not rose:
        return None
    t = rose[0]
    return (
        f"Why {t}'s calibration error rose on test ({test[f'{t}_ece_before']:.4f} → {test[f'{t}_ece_after']:.4f}): "
        f"the temperatures were fitted on the validation part, where they lowered it ({val[f'{t}_ece_before']:.4f} → "
        f"{val[f'{t}_ece_after']:.4f}). Both are close to 1, so they move the probabilities very little, and an "
        "error this small, measured on about 2,000 faces, is mostly sampling noise (for the shipped model, a model "
        f"calibrated by construction, with the same confidences, reads {SAMPLING_NOISE[t][0]:.3f} to "
        f"{SAMPLING_NOISE[t][1]:.3f} on the test faces). Both figures say the probabilities are well calibrated; "
        "the rise is noise, not a loss."
    )


def render() -> None:
    """The *About the model* page: what the model is, its measured performance, intended use and limits."""
    st.title("About the model")
    metadata = json.loads(_asset("metadata.json").read_text())
    st.markdown(describe_model(metadata))
    if "metrics" not in metadata or not _asset("MODEL_CARD.md").is_file():
        # a folder chosen with FACEATTRS_MODEL_DIR that was scored on validation only (tools/candidates)
        st.info(
            f"This model folder (version {metadata['version']}) has no test figures and no model card: it was "
            "scored on the validation part only. Like every model here it estimates how a face looks, not who "
            "a person is: never use it to make decisions about individuals."
        )
        _privacy()
        return
    card = _asset("MODEL_CARD.md").read_text()
    m = metadata["metrics"]
    st.subheader("Measured performance")
    st.caption(f"UTKFace {m['part']} part, {m['n']} face crops")
    cols = st.columns(5)
    cols[0].metric("Age MAE", f"{m['age_mae']:.2f} y")
    cols[1].metric("Age within 5 y", f"{m['age_cs5']:.0%}")
    cols[2].metric("90% range coverage", f"{m['age_interval_coverage']:.0%}")
    cols[3].metric("Ethnicity accuracy", f"{m['ethnicity_accuracy']:.1%}")
    cols[4].metric("Gender accuracy", f"{m['gender_accuracy']:.1%}")
    if "fairface_n" in m:  # FairFace's test part: web photos, age groups instead of ages
        st.caption(f"FairFace test part, {m['fairface_n']} web photos")
        cols = st.columns(5)
        cols[0].metric("Age in its group", f"{m['fairface_age_group_accuracy']:.0%}")
        cols[1].metric("Range overlaps the group", f"{m['fairface_age_range_overlap']:.0%}")
        cols[3].metric("Ethnicity accuracy", f"{m['fairface_ethnicity_accuracy']:.1%}")
        cols[4].metric("Gender accuracy", f"{m['fairface_gender_accuracy']:.1%}")
    st.markdown(_card_section(card, "Performance (test part of the project split, measured once, through ONNX)"))
    plots = [p for p in ("age_scatter.png", "age_mae_by_ethnicity.png", "ethnicity_confusion.png",
                         "age_mae_by_bucket.png") if _asset(f"report/{p}").is_file()]  # fmt: skip
    for row in range(0, len(plots), 2):
        for col, name in zip(st.columns(2), plots[row : row + 2], strict=False):
            col.image(_asset(f"report/{name}").read_bytes())
    st.subheader("Calibration")
    st.markdown(_card_section(card, "Calibration (fitted on validation only)"))
    if _asset("report.json").is_file() and (note := calibration_note(json.loads(_asset("report.json").read_text()))):
        st.caption(note)
    for title in ("Intended use", "Out of scope — do not use it for", "Limitations"):
        st.subheader(title)
        st.markdown(_card_section(card, title))
    st.subheader("Training data and licence")
    st.markdown(_card_section(card, "Training data"))
    _privacy()


def _privacy() -> None:
    st.subheader("Privacy")
    st.markdown(
        "Photos you upload are decoded and analysed **in memory only**. The app does not write them to disk, "
        "does not log them and keeps no copy after your session ends."
    )
