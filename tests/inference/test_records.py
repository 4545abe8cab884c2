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


def test_rows_round_as_the_cli_always_did():
    face = a_face(flags=["blurry", "cut off"])
    (row,) = records.rows_for(ImageResult("a.jpg", "ok", faces=[face]))
    assert list(row) == list(records.columns(SHIPPED_CLASSES))
    assert row | {"p_white": 0} == {
        "path": "a.jpg", "face": 2, "status": "ok", "x": 10.0, "y": 20.1, "w": 30.1, "h": 40.1,
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


def test_the_api_and_to_dict_serialise_a_face_the_same_way_at_full_precision():
    from faceattrs.api.schemas import FaceOut

    face = a_face(flags=["small"])
    as_dict = face.to_dict()
    assert as_dict == records.face_dict(face) == FaceOut.of(face).model_dump()
    assert as_dict["x"] == 10.04 and as_dict["landmarks"] == face.landmarks and as_dict["quality_flags"] == ["small"]
    assert {k: v for k, v in as_dict.items() if k not in ("landmarks", "quality_flags")}.keys() == set(
        records.columns(SHIPPED_CLASSES)
    ) - {"path", "status", "error"}


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
