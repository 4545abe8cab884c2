import numpy as np
import pytest

from faceattrs.inference import records
from faceattrs.inference.analyzer import Face, ImageResult
from faceattrs.inference.quality import QualityLimits, quality_flags

SHIPPED_CLASSES = ["white", "black", "asian", "indian", "others"]


def a_face(names=SHIPPED_CLASSES, flags=()) -> Face:
    probs = np.linspace(1, 2, len(names)) / np.linspace(1, 2, len(names)).sum()
    return Face(
        index=2,
        box=(10.04, 20.06, 30.15, 40.149),
        det_score=0.987654,
        landmarks=[[1.0, 2.0]] * 5,
        age=34.0,
        age_low=27.66,
        age_high=40.94,
        gender="female",
        gender_prob=0.912345,
        ethnicity=names[-1],
        ethnicity_prob=float(probs[-1]),
        ethnicity_probs={n: float(p) for n, p in zip(names, probs, strict=True)},
        quality_flags=list(flags),
    )


def test_rows_round_as_the_cli_always_did_and_number_faces_from_1():
    face = a_face(flags=["blurry", "cut off"])  # index 2: the third face
    (row,) = records.rows_for(ImageResult("a.jpg", "ok", faces=[face]))
    assert list(row) == list(records.columns(SHIPPED_CLASSES))
    assert row | {"p_white": 0} == {
        "path": "a.jpg", "face": 3, "status": "ok", "x": 10.0, "y": 20.1, "w": 30.1, "h": 40.1,
        "det_score": 0.9877, "age": 34.0, "age_low": 27.7, "age_high": 40.9, "gender": "female",
        "gender_prob": 0.9123, "ethnicity": "others", "ethnicity_prob": 0.2667, "p_white": 0,
        "p_black": 0.1667, "p_asian": 0.2, "p_indian": 0.2333, "p_others": 0.2667,
        "error": "low_quality: blurry, cut off",
    }  # fmt: skip


def test_columns_follow_the_models_classes():
    face = a_face(names=["a", "b"])
    (row,) = records.rows_for(ImageResult("x.png", "ok", faces=[face]))
    assert list(row) == list(records.columns(["a", "b"]))
    assert records.columns(["a", "b"])[-3:] == ("p_a", "p_b", "error")
    (empty,) = records.rows_for(ImageResult("y.png", "no_face", error="no face found"), ["a", "b"])
    assert list(empty) == list(records.columns(["a", "b"])) and empty["p_a"] == ""


def test_default_columns_come_from_the_default_models_metadata(model_dir, monkeypatch):
    import json

    import faceattrs.inference.attribute_model as am

    monkeypatch.setattr(am, "default_model_dir", lambda: model_dir)
    classes = json.loads((model_dir / "metadata.json").read_text())["classes"]["ethnicity"]
    assert records.columns(classes) == records.COLUMNS
    (empty,) = records.rows_for(ImageResult("y.png", "error", error_code="corrupt", error="damaged"))
    assert tuple(empty) == records.COLUMNS and empty["error"] == "damaged"


def test_the_api_and_to_dict_give_the_cli_fields_rounded_alike_plus_landmarks_and_flags():
    from faceattrs.api.schemas import FaceOut

    face = a_face(flags=["small"])
    as_dict = face.to_dict()
    assert as_dict == records.face_dict(face) == FaceOut.of(face).model_dump()
    (row,) = records.rows_for(ImageResult("a.jpg", "ok", faces=[face]))
    # the same values as the CLI's row: no 15-digit coordinates
    assert {k: v for k, v in as_dict.items() if k not in ("landmarks", "quality_flags")} == {
        k: v for k, v in row.items() if k not in ("path", "status", "error")
    }
    assert as_dict["x"] == 10.0 and as_dict["h"] == 40.1 and as_dict["det_score"] == 0.9877
    assert as_dict["landmarks"] == face.landmarks and as_dict["quality_flags"] == ["small"]


def test_faces_are_numbered_from_1_in_every_output():
    from faceattrs.api.schemas import FaceOut
    from faceattrs.inference.annotate import short_label

    first = a_face()
    first.index = 0
    (row,) = records.rows_for(ImageResult("a.jpg", "ok", faces=[first]))
    assert first.number == 1 and row["face"] == 1 and FaceOut.of(first).face == 1
    assert short_label(first).startswith("#1 ")


def test_text_cells_that_start_a_formula_are_neutralised_for_spreadsheets():
    face = a_face()
    face.ethnicity_probs = dict.fromkeys(face.ethnicity_probs, -1.5)  # a negative number stays a number
    (row,) = records.rows_for(ImageResult('=HYPERLINK("http://x","y").jpg', "ok", faces=[face]))
    safe = records.spreadsheet_safe(row)
    assert safe["path"] == '\'=HYPERLINK("http://x","y").jpg' and safe["p_white"] == -1.5
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert records.spreadsheet_safe({"path": start + "x"}) == {"path": "'" + start + "x"}
    assert records.spreadsheet_safe({"path": "a=b.jpg", "x": -3.0}) == {"path": "a=b.jpg", "x": -3.0}
    assert row["path"].startswith("=")  # the rows themselves (and JSON) keep the name exactly


def test_quality_flags_come_in_a_fixed_order():
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (200, 200, 3)).astype(np.uint8)
    assert quality_flags(noisy, eye_distance=50.0, outside=0.0, blockiness=1.0) == ["noisy"]
    flat = np.full((200, 200, 3), 100, np.uint8)
    assert quality_flags(flat, eye_distance=5.0, outside=0.5, blockiness=3.0) == [
        "small",
        "blurry",
        "cut off",
        "compressed",
    ]
    assert quality_flags(flat, eye_distance=None, outside=None, blockiness=1.0) == ["blurry"]  # an aligned crop
    lenient = QualityLimits(min_blur_score=-1.0)
    assert quality_flags(flat, eye_distance=None, outside=None, blockiness=1.0, limits=lenient) == []


@pytest.mark.parametrize("status", ["no_face", "error"])
def test_a_photo_without_faces_gets_one_row(status):
    (row,) = records.rows_for(ImageResult("z.jpg", status, error="why"), SHIPPED_CLASSES)
    assert row["status"] == status and row["error"] == "why" and row["age"] == "" and row["face"] == ""
