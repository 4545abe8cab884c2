"""Alignment: warp a detected face onto UTKFace's crop geometry.

A similarity transform (rotation, uniform scale, translation; Umeyama's
least-squares solution) maps the five detected landmarks onto a template, and
the photo is resampled into a 200x200 crop (a face much larger than the crop
is first reduced with an antialiasing filter). The template is the mean landmark
position that the same detector finds on UTKFace's own aligned crops
(``assets/alignment_template.json``, made by ``benchmarks/alignment_template.py``),
so a face from a photo is cropped the way the training faces were.

>>> src = np.array([[0, 0], [1, 0], [0, 1]], float)
>>> m = similarity_transform(src * 2 + 5, src)  # maps the scaled copy back onto src
>>> (np.round(m, 6) + 0.0).tolist()  # + 0.0 turns -0.0 into 0.0
[[0.5, 0.0, -2.5], [0.0, 0.5, -2.5]]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

CROP_SIZE = 200
#: The most the warp (bilinear, one sample per crop pixel) may shrink a face; a larger face is first reduced
#: with an antialiasing filter to this much larger than the crop. Not 1: most faces in UTKFace-like photos
#: come through at 0.9-1.05x the crop's scale, where point sampling barely aliases, and reducing them first
#: (Lanczos, then the warp: two resamplings) softened their crops, flagging 27 more of UTKFace's 2,090
#: validation photos "blurry", with no gain in any prediction (benchmarks/scale_consistency.py)
MAX_WARP_SHRINK = 1.25


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of the similarity that best maps ``src`` points onto ``dst`` (least squares)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (sigma * sign).sum() / max(s.var(0).sum(), 1e-12)
    translation = mu_d - scale * rotation @ mu_s
    return np.hstack([scale * rotation, translation[:, None]])


@dataclass(frozen=True)
class AlignmentTemplate:
    """Mean landmark positions (5 x 2) in a ``size`` x ``size`` UTKFace crop."""

    points: np.ndarray
    size: int = CROP_SIZE

    @classmethod
    def load(cls, path: Path | None = None) -> AlignmentTemplate:
        """The template in ``path``, by default the one shipped in the package."""
        path = path or Path(str(resources.files("faceattrs") / "assets" / "alignment_template.json"))
        data = json.loads(Path(path).read_text())
        return cls(np.array(data["points"], np.float64), int(data["size"]))


class Alignment(NamedTuple):
    """An aligned face: the crop, and the 2x3 similarity ``matrix`` that maps photo pixels onto it."""

    crop: np.ndarray
    matrix: np.ndarray


def align_face(image: np.ndarray, landmarks: np.ndarray, template: AlignmentTemplate) -> Alignment:
    """The ``template.size`` square RGB crop of the face whose 5 landmarks are given, and its matrix.

    The matrix tells how large the face was in the photo (:func:`face_scale`) and how much of the
    crop lies past the photo's edge (:func:`outside_share`). There, the edge pixels are repeated
    rather than painted black: UTKFace's crops have real surroundings there, and black corners
    measurably hurt the model (``benchmarks/alignment_check.py``).
    """
    matrix = similarity_transform(landmarks, template.points)
    return Alignment(_warp(image, matrix, template.size), matrix)


def _warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Resample ``image`` through the 2x3 photo -> crop ``matrix`` into a ``size`` square crop.

    ``Image.transform`` samples the photo at one point per crop pixel (bilinear between the four
    nearest pixels), which aliases when the crop is much smaller than the face: fine detail of a
    large face (skin, hair, sensor noise) comes out as coarse false patterns, and the same face
    photographed larger read as noisy. When the matrix shrinks the face by more than
    ``MAX_WARP_SHRINK``, the region the crop covers is first reduced with an antialiasing filter
    (Lanczos) so that the warp shrinks by exactly ``MAX_WARP_SHRINK``. Smaller shrinks and
    enlarging are unchanged.
    """
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]  # crop pixel -> photo pixel
    scale = face_scale(matrix)  # crop pixels per photo pixel
    # the reduction left to do before the warp: none unless the warp would shrink by more than it may
    reduce = min(1.0, scale * MAX_WARP_SHRINK)
    # enough photo around the crop for the reducing filter (3 lobes of Lanczos, in photo pixels) to see real pixels
    margin = 2 + (int(np.ceil(3 / reduce)) if reduce < 1 else 0)
    corners = inverse @ np.array([[0, size, 0, size], [0, 0, size, size], [1, 1, 1, 1]], np.float64)
    x0, y0 = np.floor(corners.min(1)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(1)).astype(int) + margin
    # Gather only the face's region; clipped indices repeat the edge pixels outside the photo.
    rows = np.clip(np.arange(y0, y1), 0, image.shape[0] - 1)
    cols = np.clip(np.arange(x0, x1), 0, image.shape[1] - 1)
    region = Image.fromarray(np.ascontiguousarray(image[rows[:, None], cols[None, :]]))
    inverse[:, 2] -= (x0, y0)
    if reduce < 1:
        reduced = (max(1, round(region.width * reduce)), max(1, round(region.height * reduce)))
        # the region's coordinates scale with it: (0, 0) stays the corner, pixel edges stay on integers
        inverse = np.diag([reduced[0] / region.width, reduced[1] / region.height]) @ inverse
        region = region.resize(reduced, Image.Resampling.LANCZOS)
    warped = region.transform(
        (size, size), Image.Transform.AFFINE, inverse.ravel().tolist(), resample=Image.Resampling.BILINEAR
    )
    return np.asarray(warped)


def outside_share(matrix: np.ndarray, image_shape: tuple[int, ...], size: int, step: int = 4) -> float:
    """The share of the ``size`` square crop that lies outside the photo (filled by repeating its edge).

    A large share means the photo cuts off part of the head the model expects to see (chin,
    forehead, hair), the framing that costs the model most (``benchmarks/robustness.py``).
    Sampled every ``step`` crop pixels.

    >>> outside_share(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (100, 100, 3), 200)  # a 100 px photo in a 200 px crop
    0.75
    """
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]  # crop pixel -> photo pixel
    centres = np.arange(step / 2, size, step)
    xs, ys = np.meshgrid(centres, centres)
    x, y = inverse @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    height, width = image_shape[:2]
    return float(((x < 0) | (x > width) | (y < 0) | (y > height)).mean())


def face_scale(matrix: np.ndarray) -> float:
    """How much the alignment enlarges the face (>1: the face was smaller than the crop)."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
