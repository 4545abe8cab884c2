"""Flat rows of results, the column contract shared by the CLI, the web app and the API.

>>> COLUMNS[:4]
('path', 'face', 'status', 'x')
>>> rows_for(ImageResult("a.jpg", "no_face", error_code="no_face", error="no face found"))[0]["status"]
'no_face'
"""

from __future__ import annotations

from typing import Any

from faceattrs.inference.analyzer import ImageResult

ETHNICITY_COLUMNS = ("p_white", "p_black", "p_asian", "p_indian", "p_others")
COLUMNS: tuple[str, ...] = (
    "path", "face", "status", "x", "y", "w", "h", "det_score", "age", "age_low", "age_high",
    "gender", "gender_prob", "ethnicity", "ethnicity_prob", *ETHNICITY_COLUMNS, "error",
)  # fmt: skip


def rows_for(result: ImageResult) -> list[dict[str, Any]]:
    """One row per face; one row with empty numbers when there is no face or an error."""
    if result.status != "ok" or not result.faces:
        row = dict.fromkeys(COLUMNS, "")
        row |= {"path": result.source, "status": result.status, "error": result.error or ""}
        return [row]
    rows = []
    for face in result.faces:
        x, y, w, h = face.box
        rows.append(
            {
                "path": result.source,
                "face": face.index,
                "status": "ok",
                "x": round(x, 1),
                "y": round(y, 1),
                "w": round(w, 1),
                "h": round(h, 1),
                "det_score": round(face.det_score, 4),
                "age": round(face.age, 1),
                "age_low": round(face.age_low, 1),
                "age_high": round(face.age_high, 1),
                "gender": face.gender,
                "gender_prob": round(face.gender_prob, 4),
                "ethnicity": face.ethnicity,
                "ethnicity_prob": round(face.ethnicity_prob, 4),
                **{f"p_{k}": round(v, 4) for k, v in face.ethnicity_probs.items()},
                "error": ("low_quality: " + ", ".join(face.quality_flags)) if face.quality_flags else "",
            }
        )
    return rows
