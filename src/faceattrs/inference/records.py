"""Serialisation of results: the one place that turns a :class:`Face` into fields.

:func:`face_fields` gives a face's flat fields (the CLI's columns from ``face`` to the ethnicity
probabilities, which are named ``p_<class>`` after the model's own classes in its metadata). The
CLI's CSV and JSONL rows, the web app's downloads (:func:`rows_for`, rounded) and the HTTP API's
faces (:func:`face_dict`, full precision, with landmarks and quality flags) are all built from it.

>>> columns(["white", "black"])[-4:]
('ethnicity_prob', 'p_white', 'p_black', 'error')
>>> rows_for(ImageResult("a.jpg", "no_face", error_code="no_face", error="no face found"), ["white"])[0]["status"]
'no_face'
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from faceattrs.inference import attribute_model
from faceattrs.inference.analyzer import Face, ImageResult
from faceattrs.model_folder import read_metadata

_BEFORE = ("path", "face", "status", "x", "y", "w", "h", "det_score", "age", "age_low", "age_high",
           "gender", "gender_prob", "ethnicity", "ethnicity_prob")  # fmt: skip


def columns(ethnicities: Sequence[str]) -> tuple[str, ...]:
    """The CLI's columns for a model whose ethnicity classes are ``ethnicities`` (in the model's order)."""
    return (*_BEFORE, *(f"p_{name}" for name in ethnicities), "error")


def default_ethnicities() -> tuple[str, ...]:
    """The ethnicity classes of the model that ``Analyzer()`` loads (``$FACEATTRS_MODEL_DIR`` or the shipped one)."""
    return _ethnicities_of(Path(attribute_model.default_model_dir()))


@lru_cache(maxsize=8)
def _ethnicities_of(model_dir: Path) -> tuple[str, ...]:
    # cached: the CLI asks once per photo without a face
    return tuple(read_metadata(model_dir)["classes"]["ethnicity"])


def __getattr__(name: str) -> Any:
    # COLUMNS is read from the default model's metadata when first asked for, not at import: the
    # model folder can be chosen by $FACEATTRS_MODEL_DIR, and the columns must follow its classes.
    if name == "COLUMNS":
        return columns(default_ethnicities())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def face_fields(face: Face, *, rounded: bool = True) -> dict[str, Any]:
    """The flat fields of ``face``, in the CLI's column order from ``face`` to the last ``p_<class>``.

    ``rounded``: coordinates and ages to 0.1, scores and probabilities to 1e-4, as the CLI writes
    them (enough for any use, and files that do not change with the last bits of a float).
    """

    def r(value: float, digits: int) -> float:
        return round(value, digits) if rounded else value

    x, y, w, h = face.box
    return {
        "face": face.index,
        "x": r(x, 1),
        "y": r(y, 1),
        "w": r(w, 1),
        "h": r(h, 1),
        "det_score": r(face.det_score, 4),
        "age": r(face.age, 1),
        "age_low": r(face.age_low, 1),
        "age_high": r(face.age_high, 1),
        "gender": face.gender,
        "gender_prob": r(face.gender_prob, 4),
        "ethnicity": face.ethnicity,
        "ethnicity_prob": r(face.ethnicity_prob, 4),
        **{f"p_{name}": r(p, 4) for name, p in face.ethnicity_probs.items()},
    }


def face_dict(face: Face) -> dict[str, Any]:
    """``face`` as JSON-ready fields at full precision, with its landmarks and quality flags (the HTTP API's face)."""
    return face_fields(face, rounded=False) | {"landmarks": face.landmarks, "quality_flags": list(face.quality_flags)}


def quality_note(face: Face) -> str:
    """The ``error`` column of a face: ``"low_quality: blurry, cut off"``, or ``""`` when nothing is flagged."""
    return ("low_quality: " + ", ".join(face.quality_flags)) if face.quality_flags else ""


def rows_for(result: ImageResult, ethnicities: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per face; one row with empty numbers when there is no face or an error.

    ``ethnicities`` (the model's classes; by default those of the model ``Analyzer()`` loads) name
    the probability columns of that empty row; a face's row takes them from the face itself.
    """
    if result.status != "ok" or not result.faces:
        row = dict.fromkeys(columns(default_ethnicities() if ethnicities is None else ethnicities), "")
        row |= {"path": result.source, "status": result.status, "error": result.error or ""}
        return [row]
    rows = []
    for face in result.faces:
        fields = face_fields(face)
        # the CLI's column order: path, face, status, then the rest of the face's fields
        rows.append({"path": result.source, "face": fields.pop("face"), "status": "ok", **fields,
                     "error": quality_note(face)})  # fmt: skip
    return rows
