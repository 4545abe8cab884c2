"""Results and their serialisation: :class:`Face`, :class:`ImageResult`, and the one place that turns them into fields.

:func:`face_fields` gives a face's flat fields (the CLI's columns from ``face`` to the ethnicity
probabilities, which are named ``p_<class>`` after the model's own classes in its metadata). The
CLI's CSV and JSONL rows, the web app's downloads (:func:`rows_for`) and the HTTP API's faces
(:func:`face_dict`: the same fields, rounded alike, plus landmarks and quality flags) are all built
from it. Faces are numbered from 1 everywhere a person reads them (the ``face`` field, the labels
drawn on pictures, the app's cards); :attr:`Face.index` is the position in the list, from 0.
:func:`spreadsheet_safe` neutralises text cells that a spreadsheet would run as a formula.

The analyzer builds these classes and this module never imports it (no import cycle).

>>> columns(["white", "black"])[-4:]
('ethnicity_prob', 'p_white', 'p_black', 'error')
>>> rows_for(ImageResult("a.jpg", "no_face", error_code="no_face", error="no face found"), ["white"])[0]["status"]
'no_face'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from faceattrs.inference import attribute_model
from faceattrs.model_folder import read_metadata


@dataclass
class Face:
    """What faceattrs estimates for one face. Coordinates are in the input image's pixels."""

    #: the face's position in its image's list, from 0 (faces are ordered left to right); people read :attr:`number`
    index: int
    box: tuple[float, float, float, float]  # x, y, w, h
    det_score: float
    landmarks: list[list[float]]
    age: float
    age_low: float
    age_high: float
    gender: str
    gender_prob: float
    ethnicity: str
    ethnicity_prob: float
    ethnicity_probs: dict[str, float]
    #: reasons not to trust this face: "small" (too few pixels), "blurry", "noisy", "cut off", "compressed"
    quality_flags: list[str] = field(default_factory=list)
    #: the aligned crop the model saw (200x200 RGB at most); not serialised
    crop: np.ndarray | None = field(default=None, repr=False)
    #: the network's probability of each age 0..116 (``age`` is its median); not serialised
    age_probs: np.ndarray | None = field(default=None, repr=False)

    @property
    def number(self) -> int:
        """The face's number as people see it, from 1: drawn on pictures, on the app's cards, the ``face`` field."""
        return self.index + 1

    def age_window(self, margin: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ages from ``margin`` years below the 90% range to ``margin`` above, their probabilities, and which lie in it.

        For charts of the age distribution (the app's cards, the HTML page).
        """
        first = max(0, int(self.age_low) - margin)
        last = min(len(self.age_probs) - 1, int(np.ceil(self.age_high)) + margin)
        ages = np.arange(first, last + 1)
        return ages, self.age_probs[first : last + 1], (ages >= self.age_low) & (ages <= self.age_high)

    @property
    def looks_like_a_child(self) -> bool:
        """Shown 12 or younger: the model card's 0–12 age bucket, where gender is hard to read (front ends say so)."""
        return self.age < 13

    def to_dict(self) -> dict[str, Any]:
        """The face as JSON-ready fields, as the HTTP API sends it (:func:`face_dict`)."""
        return face_dict(self)


@dataclass
class ImageResult:
    """The outcome for one input: ``ok`` with faces, ``no_face``, or ``error`` with a code and message."""

    source: str
    status: str
    faces: list[Face] = field(default_factory=list)
    error_code: str | None = None
    error: str | None = None
    width: int | None = None
    height: int | None = None
    #: faces the detector found; more than ``len(faces)`` when the per-image cap cut the list
    detected: int = 0
    #: the decoded photo (RGB), kept only when asked for (to draw on it without decoding it again)
    image: np.ndarray | None = field(default=None, repr=False)


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
        "face": face.number,
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
    """``face`` as JSON-ready fields (the HTTP API's face): :func:`face_fields`, rounded as the CLI writes them,
    plus its landmarks and quality flags (the CLI's ``error`` column puts the flags in words)."""
    return face_fields(face) | {"landmarks": face.landmarks, "quality_flags": list(face.quality_flags)}


#: What a spreadsheet reads as the start of a formula (OWASP's list for CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every text cell that a spreadsheet would run as a formula prefixed with ``'``.

    For CSV files only (JSON is not read by spreadsheets, and stays exact). A photo named
    ``=HYPERLINK(...).jpg`` would otherwise be a live formula when the CSV is opened; the apostrophe
    makes the cell plain text (OWASP's advice). Numbers stay numbers: only ``str`` cells are changed.

    >>> spreadsheet_safe({"path": "=HYPERLINK(1).jpg", "x": -1.5, "gender": "male", "error": "-"})
    {'path': "'=HYPERLINK(1).jpg", 'x': -1.5, 'gender': 'male', 'error': "'-"}
    """
    return {k: "'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v for k, v in row.items()}


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
