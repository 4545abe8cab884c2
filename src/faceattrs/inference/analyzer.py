"""The prediction core: photos in, one plain result per face out.

bytes -> decode (EXIF, any mode, pixel cap) -> detect -> align -> model ->
calibrate -> :class:`Face`. Every front end (CLI, web app, HTTP API) calls
this and nothing below it. Faces are batched across images.

>>> from faceattrs import Analyzer
>>> analyzer = Analyzer()  # doctest: +SKIP
>>> faces = analyzer.analyze("photo.jpg")  # doctest: +SKIP
>>> faces[0].age, faces[0].age_low, faces[0].age_high, faces[0].gender  # doctest: +SKIP
(34.2, 27.9, 40.5, 'female')
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceattrs.inference.align import AlignmentTemplate, align_face, face_scale, outside_share
from faceattrs.inference.attribute_model import AttributeModel, AttributePredictions
from faceattrs.inference.decode import DEFAULT_MAX_PIXELS, ImageError, load_image
from faceattrs.inference.detector import RetinaFaceDetector
from faceattrs.inference.quality import DEFAULT_LIMITS, QualityLimits, blockiness_score, quality_flags

Source = str | Path | bytes | np.ndarray | Any  # Any: a PIL image


@dataclass
class Face:
    """What faceattrs estimates for one face. Coordinates are in the input image's pixels."""

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
    #: the aligned crop the model saw (200x200 RGB); not serialised
    crop: np.ndarray | None = field(default=None, repr=False)
    #: the network's probability of each age 0..116 (``age`` is its median); not serialised
    age_probs: np.ndarray | None = field(default=None, repr=False)

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
        """The face as JSON-ready fields, as the HTTP API sends it (:func:`faceattrs.inference.records.face_dict`)."""
        from faceattrs.inference.records import face_dict  # records imports this module

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


@dataclass(frozen=True, eq=False)
class _Candidate:
    """A face found in a photo, aligned and measured, waiting for its batch to go through the model."""

    box: tuple[float, float, float, float]  # x, y, w, h in the photo's pixels
    score: float
    landmarks: np.ndarray | None  # None for an already aligned crop
    crop: np.ndarray
    eye_distance: float | None  # pixels in the photo; None for an already aligned crop
    outside: float | None  # share of the crop past the photo's edge; None for an already aligned crop
    blockiness: float


class Analyzer:
    """Detect, align and analyse every face in photos.

    Parameters: ``model_dir`` (default: the model shipped in the package),
    ``max_pixels`` (decoded-size cap), ``max_faces`` (per image, largest
    first), ``threads`` (onnxruntime threads of the attribute model, which runs batches; the
    detector runs one image at a time on one thread, which measured faster here), ``quality``
    (the thresholds of the quality flags), ``keep_crops`` (keep each face's aligned crop in
    :attr:`Face.crop`).
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_faces: int = 50,
        threads: int | None = None,
        quality: QualityLimits = DEFAULT_LIMITS,
        keep_crops: bool = False,
    ) -> None:
        self.model = AttributeModel(model_dir, threads=threads)
        self.detector = RetinaFaceDetector()
        self.template = AlignmentTemplate.load()
        self._template_eye_distance = float(np.linalg.norm(self.template.points[1] - self.template.points[0]))
        self.max_pixels = max_pixels
        self.max_faces = max_faces
        self.quality = quality
        self.keep_crops = keep_crops

    # --- public API -------------------------------------------------------------------------

    def analyze(self, source: Source, aligned: bool = False) -> list[Face]:
        """Faces in one image; raises :class:`ImageError` for input that is not a usable image."""
        result = next(self.analyze_many([source], aligned=aligned))
        if result.status == "error":
            raise ImageError(result.error_code or "error", result.error or "")
        return result.faces

    def analyze_image(self, source: Source, aligned: bool = False, keep_image: bool = False) -> ImageResult:
        """Like :meth:`analyze` but never raises for bad input: the error is in the result."""
        return next(self.analyze_many([source], aligned=aligned, keep_images=keep_image))

    def analyze_many(
        self,
        sources: Iterable[Source],
        aligned: bool = False,
        batch_size: int = 32,
        keep_images: bool = False,
    ) -> Iterator[ImageResult]:
        """Results in input order; faces of several images share model batches."""
        pending: list[tuple[ImageResult, list[_Candidate]]] = []
        n_faces = 0
        for source in sources:
            result, found = self._locate(source, aligned, keep_images)
            pending.append((result, found))
            n_faces += len(found)
            if n_faces >= batch_size:
                yield from self._finish(pending)
                pending, n_faces = [], 0
        if pending:
            yield from self._finish(pending)

    # --- internals --------------------------------------------------------------------------

    def _locate(self, source: Source, aligned: bool, keep_image: bool) -> tuple[ImageResult, list[_Candidate]]:
        """Decode one input and find, align and measure its faces (the model runs later, in batches)."""
        name = str(source) if isinstance(source, (str, Path)) else f"<{type(source).__name__}>"
        try:
            image = load_image(source, self.max_pixels)
        except ImageError as exc:
            return ImageResult(name, "error", error_code=exc.code, error=exc.message), []
        result = ImageResult(name, "ok", width=image.shape[1], height=image.shape[0])
        if keep_image:
            result.image = image
        if aligned:  # the whole image is one face crop in UTKFace geometry
            h, w = image.shape[:2]
            box = (0.0, 0.0, float(w), float(h))
            result.detected = 1
            return result, [_Candidate(box, 1.0, None, image, None, None, blockiness_score(image, box))]
        found = []
        detections = self.detector.detect(image)
        result.detected = len(detections)
        # keep the most confident faces, then number them left to right as people read a photo
        kept = sorted(detections[: self.max_faces], key=lambda d: (d.box[0], d.box[1]))
        for det in kept:
            crop, matrix = align_face(image, det.landmarks, self.template)
            found.append(
                _Candidate(
                    box=det.box,
                    score=det.score,
                    landmarks=det.landmarks,
                    crop=crop,
                    eye_distance=self._template_eye_distance / face_scale(matrix),
                    outside=outside_share(matrix, image.shape, self.template.size),
                    blockiness=blockiness_score(image, det.box),
                )
            )
        if not found:
            result.status, result.error_code, result.error = "no_face", "no_face", "no face found"
        return result, found

    def _finish(self, pending: list[tuple[ImageResult, list[_Candidate]]]) -> Iterator[ImageResult]:
        """Run the model once over every face of ``pending`` and hand each image's result back in order."""
        crops = [c.crop for _, found in pending for c in found]
        preds = self.model.predict(crops) if crops else None  # a list: aligned inputs may differ in size
        i = 0
        for result, found in pending:
            for index, candidate in enumerate(found):
                result.faces.append(self._face(index, candidate, preds, i))
                i += 1
            yield result

    def _face(self, index: int, c: _Candidate, preds: AttributePredictions, i: int) -> Face:
        """The :class:`Face` of candidate ``c``, whose predictions are row ``i`` of ``preds``."""
        eth = preds.ethnicity_proba[i]
        gen = preds.gender_proba[i]
        names = self.model.ethnicities
        return Face(
            index=index,
            box=tuple(float(v) for v in c.box),
            det_score=float(c.score),
            landmarks=[] if c.landmarks is None else np.round(c.landmarks, 1).tolist(),
            age=float(preds.age[i]),
            age_low=float(preds.age_low[i]),
            age_high=float(preds.age_high[i]),
            gender=self.model.genders[int(gen.argmax())],
            gender_prob=float(gen.max()),
            ethnicity=names[int(eth.argmax())],
            ethnicity_prob=float(eth.max()),
            ethnicity_probs={n: float(p) for n, p in zip(names, eth, strict=True)},
            quality_flags=quality_flags(
                c.crop, eye_distance=c.eye_distance, outside=c.outside, blockiness=c.blockiness, limits=self.quality
            ),
            crop=c.crop if self.keep_crops else None,
            age_probs=preds.age_proba[i],
        )
