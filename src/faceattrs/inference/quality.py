"""Quality scoring: why an estimate for one face deserves less trust.

Each score is a plain measurement on the aligned crop or on the photo; :class:`QualityLimits` holds
the thresholds, and :func:`quality_flags` turns one face's measurements into the flags that front
ends show ("small", "blurry", "noisy", "cut off", "compressed"). The estimate is always given; a flag
only says to trust it less.

>>> crop = np.full((200, 200, 3), 128, np.uint8)  # a flat crop: no detail at all
>>> quality_flags(crop, eye_distance=12.0, outside=0.0, blockiness=1.0)
['small', 'blurry']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QualityLimits:
    """Thresholds past which a face is flagged; the figures behind each are in its comment."""

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


#: the limits used unless others are given
DEFAULT_LIMITS = QualityLimits()


def quality_flags(
    crop: np.ndarray,
    *,
    eye_distance: float | None,
    outside: float | None,
    blockiness: float,
    limits: QualityLimits = DEFAULT_LIMITS,
) -> list[str]:
    """The flags of one face, in a fixed order, from its aligned ``crop`` and its measurements in the photo.

    ``eye_distance`` (pixels in the photo) and ``outside`` (share of the crop past the photo's edge)
    are None for an already aligned crop, which has neither; ``blockiness`` is :func:`blockiness_score`.
    """
    flags = []
    if eye_distance is not None and eye_distance < limits.min_eye_distance:
        flags.append("small")
    if blur_score(crop) < limits.min_blur_score:
        flags.append("blurry")
    if noise_score(crop) > limits.max_noise_score:
        flags.append("noisy")
    if outside is not None and outside > limits.max_outside_share:
        flags.append("cut off")
    if blockiness > limits.max_blockiness:
        flags.append("compressed")
    return flags


def _grey(crop: np.ndarray) -> np.ndarray:
    """Luma (ITU-R 601 weights) of an RGB crop, as float32."""
    return crop.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def blur_score(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop (low = blurry).

    >>> stripes = np.tile(np.array([0, 255], np.uint8).repeat(2), (20, 5))[..., None].repeat(3, 2)
    >>> blur_score(np.full((20, 20, 3), 128, np.uint8)), blur_score(stripes) > 1000
    (0.0, True)
    """
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
