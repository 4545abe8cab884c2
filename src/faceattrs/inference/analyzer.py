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

from faceattrs.inference.align import (
    AlignmentTemplate,
    face_scale,
    outside_share,
    similarity_transform,
    warp_to_template,
)
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.inference.decode import DEFAULT_MAX_PIXELS, ImageError, load_image
from faceattrs.inference.detector import RetinaFaceDetector

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
        out = {k: v for k, v in self.__dict__.items() if k not in ("crop", "age_probs")}
        out["box"] = [round(v, 1) for v in self.box]
        return out


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
    image: np.ndarray | None = field(default=None, repr=False)


def _grey(crop: np.ndarray) -> np.ndarray:
    """Luma (ITU-R 601 weights) of an RGB crop, as float32."""
    return crop.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def blur_score(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop (low = blurry)."""
    grey = _grey(crop)
    lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return float(lap.var())


def noise_score(crop: np.ndarray) -> float:
    """Standard deviation of the grey crop's pixel noise (Immerkaer's estimator; high = noisy).

    A 3x3 second-difference filter cancels smooth shading and straight edges but not noise.

    >>> flat = np.full((50, 50, 3), 128, np.uint8)
    >>> noisy = np.clip(flat + np.random.default_rng(0).normal(0, 10, (50, 50, 1)), 0, 255).astype(np.uint8)
    >>> round(noise_score(flat), 1), 8 < noise_score(noisy) < 12
    (0.0, True)
    """
    g = _grey(crop)
    rows = g[:, :-2] - 2 * g[:, 1:-1] + g[:, 2:]  # second difference along each row
    laplace = rows[:-2] - 2 * rows[1:-1] + rows[2:]  # ... and down the columns: the kernel [1 -2 1]^T [1 -2 1]
    return float(np.sqrt(np.pi / 2) * np.abs(laplace).mean() / 6)


def blockiness_score(image: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """How much larger the steps across JPEG's 8x8 block borders are than the steps inside blocks (1 = no blocks).

    Measured on the photo itself, inside the face's box (x, y, w, h), because the 8-pixel grid of a
    JPEG file is anchored at the photo's corner and the aligned crop, rotated and resized, loses it.
    Mean absolute difference between neighbouring pixels across the grid lines over the mean elsewhere.

    >>> smooth = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (64, 1))[..., None].repeat(3, 2)
    >>> blocks = np.kron(np.arange(64, dtype=np.float32).reshape(8, 8), np.ones((8, 8)))[..., None].repeat(3, 2)
    >>> whole = (0, 0, 64, 64)
    >>> round(blockiness_score(smooth.astype(np.uint8), whole), 1), blockiness_score(blocks, whole) > 100
    (1.0, True)
    """
    x, y, w, h = box
    # the box widened to whole blocks of the photo's grid, and kept inside the photo
    x0, y0 = max(0, int(x) // 8 * 8), max(0, int(y) // 8 * 8)
    x1, y1 = min(image.shape[1], int(np.ceil(x + w))), min(image.shape[0], int(np.ceil(y + h)))
    grey = _grey(image[y0:y1, x0:x1])
    if min(grey.shape) < 16:
        return 1.0  # too small to tell
    across_columns, across_rows = np.abs(np.diff(grey, axis=1)), np.abs(np.diff(grey, axis=0))
    on_column_lines = np.arange(across_columns.shape[1]) % 8 == 7  # between pixels 7 and 8 of a block
    on_row_lines = np.arange(across_rows.shape[0]) % 8 == 7
    border = np.concatenate([across_columns[:, on_column_lines].ravel(), across_rows[on_row_lines].ravel()])
    inside = np.concatenate([across_columns[:, ~on_column_lines].ravel(), across_rows[~on_row_lines].ravel()])
    return float(border.mean() / max(float(inside.mean()), 1e-3))


@dataclass(frozen=True)
class QualityLimits:
    #: faces whose eyes are closer than this (pixels in the photo) are flagged "small"
    min_eye_distance: float = 20.0
    #: aligned crops with a Laplacian variance below this are flagged "blurry": 6.0 is about the
    #: 1st percentile of UTKFace's own validation crops (median 29), so a flagged face is blurrier
    #: than 99% of the faces the model learned from
    min_blur_score: float = 6.0
    #: aligned crops with a ``noise_score`` above this are flagged "noisy": 1.3 is about the 99th
    #: percentile of UTKFace's validation crops (median 0.41; sensor noise of standard deviation 10
    #: on such a crop reads about 6.6 and costs about 2 years of age MAE: ``benchmarks/robustness.py``).
    #: Measured on the aligned crop, so noise on a face smaller than the crop, smoothed by enlarging
    #: it, reads lower
    max_noise_score: float = 1.3
    #: faces whose aligned crop lies more than this share outside the photo are flagged "cut off":
    #: 0.27 is about the 99th percentile of UTKFace's validation crops through the pipeline (median
    #: 0.04); a photo cropped to the central 80% of such a crop reads about 0.35 and its central 60%
    #: about 0.63, the framing that costs the model most (``benchmarks/robustness.py``)
    max_outside_share: float = 0.27
    #: faces whose ``blockiness_score`` is above this are flagged "compressed" (JPEG blocks): UTKFace's
    #: validation crops, JPEG files themselves, read 1.27 in the median and 1.50 at the 99th percentile
    #: through the pipeline (one of 2,089 above 2.0). Saved again at JPEG quality 10, which costs about
    #: 0.7 years of age MAE (``benchmarks/robustness.py``), every one reads above 2.0 (median 3.2); at
    #: quality 30, which costs almost nothing, 13% do (median 1.75)
    max_blockiness: float = 2.0


class Analyzer:
    """Detect, align and analyse every face in photos.

    Parameters: ``model_dir`` (default: the model shipped in the package),
    ``max_pixels`` (decoded-size cap), ``max_faces`` (per image, largest
    first), ``threads`` (onnxruntime threads of the attribute model, which runs batches; the
    detector runs one image at a time on one thread, which measured faster here).
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_faces: int = 50,
        threads: int | None = None,
        quality: QualityLimits = QualityLimits(),
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
        pending: list[tuple[ImageResult, list[dict[str, Any]]]] = []
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

    def _locate(self, source: Source, aligned: bool, keep_image: bool):
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
            whole = {"box": (0.0, 0.0, float(w), float(h)), "score": 1.0, "landmarks": None, "crop": image}
            result.detected = 1
            blocks = blockiness_score(image, whole["box"])
            return result, [whole | {"eye_distance": None, "outside": None, "blockiness": blocks}]
        found = []
        detections = self.detector.detect(image)
        result.detected = len(detections)
        # keep the most confident faces, then number them left to right as people read a photo
        kept = sorted(detections[: self.max_faces], key=lambda d: (d.box[0], d.box[1]))
        for det in kept:
            matrix = similarity_transform(det.landmarks, self.template.points)
            found.append(
                {
                    "box": det.box,
                    "score": det.score,
                    "landmarks": det.landmarks,
                    "crop": warp_to_template(image, matrix, self.template.size),
                    "eye_distance": self._template_eye_distance / face_scale(matrix),
                    "outside": outside_share(matrix, image.shape, self.template.size),
                    "blockiness": blockiness_score(image, det.box),
                }
            )
        if not found:
            result.status, result.error_code, result.error = "no_face", "no_face", "no face found"
        return result, found

    def _finish(self, pending: list[tuple[ImageResult, list[dict[str, Any]]]]) -> Iterator[ImageResult]:
        crops = [f["crop"] for _, found in pending for f in found]
        preds = self.model.predict(crops) if crops else None  # a list: aligned inputs may differ in size
        i = 0
        for result, found in pending:
            for index, f in enumerate(found):
                result.faces.append(self._face(index, f, preds, i))
                i += 1
            yield result

    def _face(self, index: int, f: dict[str, Any], preds, i: int) -> Face:
        eth = preds.ethnicity_proba[i]
        gen = preds.gender_proba[i]
        flags = []
        if f["eye_distance"] is not None and f["eye_distance"] < self.quality.min_eye_distance:
            flags.append("small")
        if blur_score(f["crop"]) < self.quality.min_blur_score:
            flags.append("blurry")
        if noise_score(f["crop"]) > self.quality.max_noise_score:
            flags.append("noisy")
        if f["outside"] is not None and f["outside"] > self.quality.max_outside_share:
            flags.append("cut off")
        if f["blockiness"] > self.quality.max_blockiness:
            flags.append("compressed")
        names = self.model.ethnicities
        return Face(
            index=index,
            box=tuple(float(v) for v in f["box"]),
            det_score=float(f["score"]),
            landmarks=[] if f["landmarks"] is None else np.round(f["landmarks"], 1).tolist(),
            age=float(preds.age[i]),
            age_low=float(preds.age_low[i]),
            age_high=float(preds.age_high[i]),
            gender=self.model.genders[int(gen.argmax())],
            gender_prob=float(gen.max()),
            ethnicity=names[int(eth.argmax())],
            ethnicity_prob=float(eth.max()),
            ethnicity_probs={n: float(p) for n, p in zip(names, eth, strict=True)},
            quality_flags=flags,
            crop=f["crop"] if self.keep_crops else None,
            age_probs=preds.age_proba[i],
        )
