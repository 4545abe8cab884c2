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

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from faceattrs.inference.align import AlignmentTemplate, align_face, face_scale, outside_share
from faceattrs.inference.attribute_model import AttributeModel, AttributePredictions
from faceattrs.inference.decode import DEFAULT_MAX_PIXELS, ImageError, load_image
from faceattrs.inference.detector import RetinaFaceDetector
from faceattrs.inference.quality import (
    DEFAULT_LIMITS,
    QualityLimits,
    blockiness_score,
    face_outside_share,
    quality_flags,
)
from faceattrs.inference.records import Face, ImageResult
from faceattrs.preprocessing import RESAMPLE

Source = str | Path | bytes | np.ndarray | Any  # Any: a PIL image

#: Aligned crops of more pixels than this are refused (``too_large``) from their header, before they are decoded:
#: a face crop needs nothing like it (the template is 200x200, the model's input smaller; 2000x2000 is 10 times
#: the template's side), and decoding a 49-megapixel PNG of 143 KB costs a second of CPU and 350 MB
MAX_ALIGNED_PIXELS = 4_000_000

#: Aligned crops narrower or shorter than this are refused (``too_small``): a face needs more pixels than
#: that to say anything, and the quality scores' filters need a few to work on. UTKFace's crops are 200x200.
MIN_ALIGNED_SIDE = 32


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
    #: share of the crop's face region past the photo's edge (``quality.face_outside_share``); None when aligned
    face_outside: float | None = None


@dataclass(eq=False)
class LocatedImage:
    """One input after :meth:`Analyzer.locate`: its result so far and its faces, waiting for the model."""

    result: ImageResult
    candidates: list[_Candidate]


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
        pending: list[LocatedImage] = []
        n_faces = 0
        for source in sources:
            located = self.locate(source, aligned, keep_images)
            pending.append(located)
            n_faces += len(located.candidates)
            if n_faces >= batch_size:
                yield from self.finish(pending)
                pending, n_faces = [], 0
        if pending:
            yield from self.finish(pending)

    def locate(self, source: Source, aligned: bool = False, keep_image: bool = False) -> LocatedImage:
        """The first half of :meth:`analyze_many`: decode one input, find, align and measure its faces.

        The model runs later, in :meth:`finish`, over the faces of many images at once; the two halves
        can run in different processes (the Ray engine of ``faceattrs predict`` does), since a
        :class:`LocatedImage` holds only plain data.
        """
        name = str(source) if isinstance(source, (str, Path)) else f"<{type(source).__name__}>"
        try:
            # an aligned crop's size is read from its header and refused before it is decoded when it is huge
            image = load_image(source, min(self.max_pixels, MAX_ALIGNED_PIXELS) if aligned else self.max_pixels)
        except ImageError as exc:
            message = exc.message
            if aligned and exc.code == "too_large":
                message += f" for an aligned face crop; shrink it to about {self.template.size} pixels a side first"
            return LocatedImage(ImageResult(name, "error", error_code=exc.code, error=message), [])
        result = ImageResult(name, "ok", width=image.shape[1], height=image.shape[0])
        if keep_image:
            result.image = image
        if aligned:  # the whole image is one face crop in UTKFace geometry
            try:
                candidate = self._aligned_candidate(image)
            except ImageError as exc:
                return LocatedImage(ImageResult(name, "error", error_code=exc.code, error=exc.message), [])
            result.detected = 1
            return LocatedImage(result, [candidate])
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
                    face_outside=face_outside_share(matrix, image.shape, self.template.size),
                )
            )
        if not found:
            result.status, result.error_code, result.error = "no_face", "no_face", "no face found"
        return LocatedImage(result, found)

    def finish(self, located: Sequence[LocatedImage]) -> Iterator[ImageResult]:
        """The second half of :meth:`analyze_many`: run the model once over every face of ``located``.

        Yields each image's result in the order given.
        """
        crops = [c.crop for image in located for c in image.candidates]
        preds = self.model.predict(crops) if crops else None  # a list: aligned inputs may differ in size
        i = 0
        for image in located:
            for index, candidate in enumerate(image.candidates):
                image.result.faces.append(self._face(index, candidate, preds, i))
                i += 1
            yield image.result

    # --- internals --------------------------------------------------------------------------

    def _aligned_candidate(self, image: np.ndarray) -> _Candidate:
        """An already aligned crop as one face, no larger than the template (a larger one is shrunk first).

        The model's input is smaller than the template and the quality thresholds were measured on
        template-sized crops, so pixels past the template's size add nothing but cost: a 143 KB PNG
        of 49 megapixels, scored in float32 at full size, took 1.85 GB (crops over
        :data:`MAX_ALIGNED_PIXELS` are now refused before decoding). It is shrunk first, with the
        model's own antialiased filter, side by side to at most the template's size; a crop no larger
        than the template (every UTKFace crop) is used exactly as it is, so its prediction is unchanged.
        """
        h, w = image.shape[:2]
        if min(h, w) < MIN_ALIGNED_SIDE:
            raise ImageError(
                "too_small",
                f"the aligned face crop is {w}x{h} pixels; at least {MIN_ALIGNED_SIDE} on each side is needed "
                f"({self.template.size}x{self.template.size} is best)",
            )
        size = self.template.size
        crop = image
        if h > size or w > size:
            # reducing_gap: an integer box reduction first, then the filter; 0.1 s for 49 MP instead of seconds
            shrunk = Image.fromarray(image).resize((min(w, size), min(h, size)), RESAMPLE, reducing_gap=2.0)
            crop = np.asarray(shrunk)
        # JPEG's blocks lie on the photo's own 8-pixel grid, which shrinking loses: blockiness is measured on the
        # photo, in a window of the template's size at its centre, on that grid (the whole crop when it is no larger)
        x0, y0 = max(0, (w - size) // 2) // 8 * 8, max(0, (h - size) // 2) // 8 * 8
        window = (float(x0), float(y0), float(min(w - x0, size)), float(min(h - y0, size)))
        box = (0.0, 0.0, float(w), float(h))
        return _Candidate(box, 1.0, None, crop, None, None, blockiness_score(image, window))

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
                c.crop,
                eye_distance=c.eye_distance,
                outside=c.outside,
                blockiness=c.blockiness,
                face_outside=c.face_outside,
                limits=self.quality,
            ),
            crop=c.crop if self.keep_crops else None,
            age_probs=preds.age_proba[i],
        )
