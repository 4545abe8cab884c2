"""Typed request/response models; the OpenAPI schema is generated from them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from faceattrs.inference.records import Face, face_dict


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. not_an_image, too_large, queue_full")
    message: str = Field(description="what went wrong, for people")


class ErrorResponse(BaseModel):
    error: ErrorBody


class FaceOut(BaseModel):
    """One face: the fields of a `faceattrs predict` row from `face` to the last `p_<class>`, rounded alike
    (coordinates and ages to 0.1, scores and probabilities to 1e-4), plus landmarks and quality flags.

    The row's `path`, `status` and `error` are the image's here; the row's `error` for a face is its
    quality flags in words (`low_quality: blurry`), here the list `quality_flags`.
    """

    face: int = Field(description="the face's number in its image, from 1, left to right: the number drawn on it")
    x: float = Field(description="left edge of the face's box, pixels of the (EXIF-rotated) image, to 0.1")
    y: float = Field(description="top edge of the box")
    w: float = Field(description="width of the box")
    h: float = Field(description="height of the box")
    det_score: float = Field(description="the detector's confidence (1.0 for an aligned crop)")
    age: float = Field(description="apparent age in years: the median of the model's age distribution")
    age_low: float = Field(description="lower end of the 90% conformal age range")
    age_high: float
    gender: Literal["male", "female"]
    gender_prob: float
    ethnicity: Literal["white", "black", "asian", "indian", "others"]
    ethnicity_prob: float
    p_white: float
    p_black: float
    p_asian: float
    p_indian: float
    p_others: float
    landmarks: list[list[float]] = Field(description="5 points (x, y): eyes, nose, mouth corners; [] when aligned")
    quality_flags: list[str] = Field(
        description='"small", "blurry", "noisy", "cut off" (the photo cuts off part of the head) or '
        '"compressed" (JPEG blocks) when the estimate deserves less trust'
    )

    @classmethod
    def of(cls, face: Face) -> FaceOut:
        """``face`` as the API sends it: :func:`faceattrs.inference.records.face_dict`."""
        return cls(**face_dict(face))


class ModelInfo(BaseModel):
    name: str
    version: str
    sha256: str


class AnalyzeResponse(BaseModel):
    status: Literal["ok", "no_face"]
    faces: list[FaceOut]
    model: ModelInfo
    timing_ms: float


class ImageOut(BaseModel):
    index: int
    filename: str | None
    status: Literal["ok", "no_face", "error"]
    faces: list[FaceOut]
    error: ErrorBody | None = None


class BatchResponse(BaseModel):
    results: list[ImageOut]
    model: ModelInfo
    timing_ms: float


class Health(BaseModel):
    status: Literal["ok"]
