"""The main page: upload or snap a photo, see every face annotated.

Images stay in memory: Streamlit keeps uploads in RAM, the app never writes
them anywhere and logs nothing about them.
"""

from __future__ import annotations

import io
import json
from importlib import resources

import numpy as np
import pandas as pd
import streamlit as st

from faceattrs.app.messages import MAX_FACES, MAX_UPLOAD_MB, friendly, quality_warning
from faceattrs.inference import attribute_model, records
from faceattrs.inference.analyzer import Analyzer
from faceattrs.inference.annotate import annotate
from faceattrs.inference.records import Face, ImageResult

SAMPLE = "sample_photo.jpg"


@st.cache_resource(show_spinner="Loading the model…")
def get_analyzer() -> Analyzer:
    """One Analyzer per process (the ONNX sessions are loaded once)."""
    return Analyzer(max_faces=MAX_FACES, keep_crops=True)


def sample_bytes() -> bytes:
    """The sample photo shipped in the package."""
    return (resources.files("faceattrs") / "assets" / SAMPLE).read_bytes()


def _inputs() -> list[tuple[str, bytes]]:
    st.title("faceattrs")
    st.caption(
        "Apparent age (with a 90% range), gender and ethnicity for every face in a photo. "
        "Photos are analysed in memory and never stored."
    )
    left, right = st.columns([3, 1])
    with left:
        uploads = st.file_uploader(
            "Upload photos",
            type=["jpg", "jpeg", "png", "webp", "heic", "heif", "bmp", "gif", "tif", "tiff"],
            accept_multiple_files=True,
            help=f"Up to {MAX_UPLOAD_MB} MB per file.",
        )
    with right:
        st.write("")
        if st.button("Try a sample photo", icon=":material/image:", width="stretch"):
            st.session_state["use_sample"] = True
        use_camera = st.toggle("Use the camera")
    inputs = [(u.name, u.getvalue()) for u in uploads or []]
    if use_camera:
        snap = st.camera_input("Take a photo")
        if snap is not None:
            inputs.append(("camera.jpg", snap.getvalue()))
    if not inputs and st.session_state.get("use_sample"):
        inputs.append((SAMPLE, sample_bytes()))
    return inputs


def age_chart(face: Face) -> pd.DataFrame:
    """The network's age distribution around the face's 90% range, split into inside and outside it."""
    ages, probs, inside = face.age_window()
    return pd.DataFrame(
        {"age": ages, "in the 90% range": np.where(inside, probs, 0.0), "outside": np.where(inside, 0.0, probs)}
    )


CHILD_BUCKET = "0-12"


@st.cache_data
def gender_accuracy_by_age() -> tuple[float, float] | None:
    """Test gender accuracy for faces aged 0–12 and for older ones, from the model's report (None without one)."""
    report = attribute_model.default_model_dir() / "report.json"
    if not report.is_file():
        return None
    buckets = json.loads(report.read_text())["test"]["by_age_bucket"]
    child = [b for b in buckets if b["age_bucket"] == CHILD_BUCKET]
    older = [b for b in buckets if b["age_bucket"] != CHILD_BUCKET]
    if not child or not older:
        return None
    older_accuracy = sum(b["gender_accuracy"] * b["n"] for b in older) / sum(b["n"] for b in older)
    return child[0]["gender_accuracy"], older_accuracy


def child_gender_note(face: Face, accuracy: tuple[float, float] | None) -> str | None:
    """A caution under the gender of a face that looks 12 or younger, with the measured accuracies when known.

    >>> from faceattrs.inference.records import Face
    >>> child = Face(0, (0, 0, 1, 1), 1.0, [], 6.0, 3.0, 9.0, "male", 0.6, "asian", 0.8, {})
    >>> child_gender_note(child, (0.768, 0.971))
    "Gender is hard to read from children's faces: on the test set it was right for 77% of faces aged 0–12 (97% older)."
    """
    if not face.looks_like_a_child:
        return None
    measured = (
        ""
        if accuracy is None
        else (f": on the test set it was right for {accuracy[0]:.0%} of faces aged 0–12 ({accuracy[1]:.0%} older)")
    )
    return f"Gender is hard to read from children's faces{measured}."


def _face_card(face: Face) -> None:
    with st.container(border=True):
        st.markdown(f"#### Face {face.number}")
        crop_col, info_col = st.columns([1, 2])
        with crop_col:
            if face.crop is not None:
                st.image(face.crop, caption="what the model saw", width="stretch")
        with info_col:
            st.metric("Age", f"{face.age:.0f}", help="apparent age: the median of the model's age distribution")
            st.write(f"90% range: **{face.age_low:.0f}–{face.age_high:.0f}** years")
            st.write(f"Gender: **{face.gender}** ({face.gender_prob:.0%})")
            if note := child_gender_note(face, gender_accuracy_by_age()):
                st.caption(note)
            st.write(f"Ethnicity: **{face.ethnicity}** ({face.ethnicity_prob:.0%})")
        chart = pd.DataFrame({"probability": face.ethnicity_probs}).rename_axis("ethnicity")
        st.bar_chart(chart, horizontal=True, height=170, y_label="", x_label="probability")
        if face.age_probs is not None:
            st.bar_chart(age_chart(face), x="age", height=230, x_label="age (years)", y_label="", stack=True)
        if face.quality_flags:
            st.warning(quality_warning(face.quality_flags), icon=":material/warning:")


def results_csv(rows: list[dict], ethnicities: list[str]) -> str:
    """The CSV download: the CLI's columns, with text that a spreadsheet would run as a formula made plain text.

    >>> print(results_csv([{"path": "=1+1.jpg", "face": 1, "x": -2.5}], ["white"]).splitlines()[1][:17])
    '=1+1.jpg,1,,-2.5
    """
    safe = [records.spreadsheet_safe(row) for row in rows]  # an upload named "=HYPERLINK(...)" stays text
    return pd.DataFrame(safe, columns=list(records.columns(ethnicities))).to_csv(index=False)


def _show(name: str, result: ImageResult, ethnicities: list[str]) -> None:
    """One photo's outcome: the annotated photo, downloads (columns named after the model's ``ethnicities``), cards."""
    st.subheader(name)
    if result.status == "error":
        st.error(friendly(result.error_code, result.error, name), icon=":material/block:")
        return
    if result.status == "no_face":
        st.info(friendly("no_face", None, name), icon=":material/search_off:")
        return
    if result.detected > len(result.faces):
        st.warning(f"{result.detected} faces found; showing the {len(result.faces)} largest-scoring (the cap).")
    drawn = annotate(result.image, result.faces)
    st.image(drawn, caption=f"{len(result.faces)} face(s)", width="stretch")
    png = io.BytesIO()
    drawn.save(png, format="PNG")
    rows = records.rows_for(result, ethnicities)
    for row in rows:
        row["path"] = name
    a, b, c = st.columns(3)
    a.download_button("Annotated PNG", png.getvalue(), f"{name}.annotated.png", "image/png", key=f"png-{name}")
    csv = results_csv(rows, ethnicities)
    b.download_button("Results CSV", csv, f"{name}.faces.csv", "text/csv", key=f"csv-{name}")
    c.download_button("Results JSON", json.dumps(rows, indent=1), f"{name}.faces.json", "application/json",
                      key=f"json-{name}")  # fmt: skip
    columns = st.columns(min(3, len(result.faces)))
    for i, face in enumerate(result.faces):
        with columns[i % len(columns)]:
            _face_card(face)


def render() -> None:
    """The main page: inputs, then the outcome of every photo."""
    inputs = _inputs()
    if not inputs:
        st.info("Upload a photo, take one with the camera, or try the sample photo.", icon=":material/upload:")
        return
    analyzer = get_analyzer()
    with st.spinner("Finding faces…"):
        results = [analyzer.analyze_image(data, keep_image=True) for _, data in inputs]
    for (name, _), result in zip(inputs, results, strict=True):
        _show(name, result, analyzer.model.ethnicities)
        st.divider()
