"""Each quality flag fires on the degradation it is for, and not on the clean photo of the same face.

The degradations are those of ``benchmarks/quality_flags.py`` (sensor noise, blur, JPEG quality 10,
a photo edge through the face, a tiny face), applied here to the astronaut photos; the scores are
taken as the analyzer takes them, with the face region's share of "cut off" as well.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from faceattrs.inference.align import face_scale, outside_share, similarity_transform
from faceattrs.inference.quality import (
    DEFAULT_LIMITS,
    QualityScores,
    blockiness_score,
    face_outside_share,
    flags_for,
    quality_flags,
    quality_scores,
)
from tests.conftest import IMAGES


def _scores(analyzer, photo: Image.Image) -> tuple[QualityScores, list[str]]:
    """The scores of the most confident face of ``photo``, and the flags the analyzer gave it."""
    result = analyzer.analyze_image(np.asarray(photo), keep_image=True)
    face = max(result.faces, key=lambda f: f.det_score)
    template = analyzer.template
    matrix = similarity_transform(np.array(face.landmarks), template.points)
    scores = quality_scores(
        face.crop,
        eye_distance=float(np.linalg.norm(template.points[1] - template.points[0])) / face_scale(matrix),
        outside=outside_share(matrix, result.image.shape, template.size),
        blockiness=blockiness_score(result.image, face.box),
        face_outside=face_outside_share(matrix, result.image.shape, template.size),
    )
    return scores, face.quality_flags


def _whole_crop(scores: QualityScores) -> QualityScores:
    return dataclasses.replace(scores, face_outside=None)


def _noise(photo: Image.Image, sd: float) -> Image.Image:
    noise = np.random.default_rng(0).normal(0, sd, (photo.height, photo.width, 3))
    return Image.fromarray(np.clip(np.asarray(photo, np.float32) + noise, 0, 255).astype(np.uint8))


def _jpeg(photo: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _cut(photo: Image.Image, box: tuple[float, ...], share: float) -> Image.Image:
    """The photo's right edge moved into the face's box, cutting ``share`` of its width away."""
    x, _, w, _ = box
    return photo.crop((0, 0, round(x + w * (1 - share)), photo.height))


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.open(IMAGES / "astronaut.jpg").convert("RGB")  # 512 px, the eyes 42 px apart


@pytest.fixture(scope="module")
def astronaut_1mp() -> Image.Image:
    return Image.open(IMAGES / "astronaut_1mp.jpg").convert("RGB")  # the eyes 87 px apart: about the crop's scale


@pytest.mark.parametrize(
    ("flag", "photo", "degrade"),
    [
        ("noisy", "astronaut_1mp", lambda im: _noise(im, 10)),
        ("noisy", "astronaut", lambda im: _noise(im, 25)),  # enlarged into the crop, noise reads lower
        ("blurry", "astronaut", lambda im: im.filter(ImageFilter.GaussianBlur(3))),
        ("blurry", "astronaut_1mp", lambda im: im.filter(ImageFilter.GaussianBlur(5))),
        ("compressed", "astronaut", lambda im: _jpeg(im, 10)),
        ("compressed", "astronaut_1mp", lambda im: _jpeg(im, 10)),
        ("small", "astronaut", lambda im: im.resize((128, 128), Image.Resampling.LANCZOS)),
    ],
)
def test_flag_fires_on_its_degradation_and_not_on_the_clean_photo(analyzer, request, flag, photo, degrade):
    clean = request.getfixturevalue(photo)
    clean_scores, clean_flags = _scores(analyzer, clean)
    degraded_scores, degraded_flags = _scores(analyzer, degrade(clean))
    assert flag not in flags_for(clean_scores) and flag not in clean_flags
    assert flag in flags_for(degraded_scores) and flag in degraded_flags


@pytest.mark.parametrize("share", [1 / 3, 1 / 2])
def test_cut_off_fires_when_the_photo_edge_runs_through_the_face(analyzer, astronaut, share):
    clean_scores, clean_flags = _scores(analyzer, astronaut)
    box = analyzer.analyze(np.asarray(astronaut))[0].box
    cut_scores, cut_flags = _scores(analyzer, _cut(astronaut, box, share))
    assert "cut off" not in flags_for(clean_scores) + clean_flags
    assert "cut off" in flags_for(cut_scores)  # the face region's share
    assert cut_scores.face_outside > DEFAULT_LIMITS.max_face_outside_share
    if share >= 1 / 2:  # the whole crop's share, which the analyzer measures until it passes the face region's
        assert "cut off" in flags_for(_whole_crop(cut_scores))
    # the analyzer's own flags follow one of the two rules
    assert cut_flags in (flags_for(cut_scores), flags_for(_whole_crop(cut_scores)))


def test_a_tight_photo_around_the_face_is_not_cut_off(analyzer, astronaut):
    """A photo cropped to the detector's box of the face (tighter than FairFace's photos): the aligned crop
    reaches past its edge, the face region does not."""
    x, y, w, h = analyzer.analyze(np.asarray(astronaut))[0].box
    tight = astronaut.crop((round(x), round(y), round(x + w), round(y + h)))
    scores, _ = _scores(analyzer, tight)
    assert scores.outside > 0.1  # the aligned crop reaches past the photo's edge ...
    assert scores.face_outside <= DEFAULT_LIMITS.max_face_outside_share  # ... the face itself does not
    assert "cut off" not in flags_for(scores)


def test_face_region_decides_cut_off_when_measured():
    crop = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    common = {"eye_distance": 50.0, "blockiness": 1.0}
    assert "cut off" in quality_flags(crop, outside=0.9, **common)
    assert "cut off" not in quality_flags(crop, outside=0.9, face_outside=0.0, **common)
    assert "cut off" in quality_flags(crop, outside=0.0, face_outside=0.5, **common)
    assert "cut off" not in quality_flags(crop, outside=None, **common)  # an aligned crop has no photo edge


def test_face_outside_share_grows_as_the_edge_moves_into_the_face():
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    shares = [face_outside_share(identity, (200, width, 3)) for width in (200, 170, 140, 100, 30)]
    assert shares[0] == shares[1] == 0.0
    assert shares == sorted(shares) and shares[-1] == 1.0
