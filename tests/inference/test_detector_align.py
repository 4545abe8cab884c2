import numpy as np
import pytest
from PIL import Image

from faceattrs.inference.align import (
    MAX_WARP_SHRINK,
    AlignmentTemplate,
    align_face,
    face_scale,
    similarity_transform,
)
from faceattrs.inference.decode import load_image
from faceattrs.inference.detector import RetinaFaceDetector
from tests.conftest import IMAGES


@pytest.fixture(scope="module")
def detector():
    return RetinaFaceDetector()


def test_astronaut_face_is_found_with_landmarks(detector):
    faces = detector.detect(load_image(IMAGES / "astronaut.jpg"))
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 160 < x < 200 and 40 < y < 75 and 80 < w < 115 and 100 < h < 140
    eyes = faces[0].landmarks[:2]
    assert eyes[0, 0] < eyes[1, 0]  # image-left eye first
    assert np.all(faces[0].landmarks[:, 0] > x) and np.all(faces[0].landmarks[:, 0] < x + w)


@pytest.mark.parametrize(
    ("name", "n"), [("group_5.jpg", 5), ("no_face.png", 0), ("tilted_25.jpg", 1), ("astronaut_1mp.jpg", 1)]
)
def test_face_counts(detector, name, n):
    assert len(detector.detect(load_image(IMAGES / name))) == n


def test_large_photos_are_downscaled_but_coordinates_are_in_original_pixels(detector):
    small = detector.detect(load_image(IMAGES / "astronaut.jpg"))[0]
    large = detector.detect(load_image(IMAGES / "astronaut_1mp.jpg"))[0]
    np.testing.assert_allclose(np.array(large.box), 2 * np.array(small.box), rtol=0.08, atol=4)


def test_a_face_filling_a_tiny_image_is_found_on_a_second_look():
    face = Image.fromarray(load_image(IMAGES / "astronaut.jpg")).crop((150, 20, 300, 190))
    tiny = np.asarray(face.resize((36, 41), Image.Resampling.LANCZOS))
    assert RetinaFaceDetector(min_side=0).detect(tiny) == []  # one look at its own size misses it
    (found,) = RetinaFaceDetector().detect(tiny)
    x, y, w, h = found.box  # in the tiny image's pixels
    assert 3 < x < 12 and 5 < y < 15 and 15 < w < 30 and 20 < h < 35
    assert np.all((found.landmarks > 0) & (found.landmarks < [36, 41]))


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-9)
    assert face_scale(m) == pytest.approx(scale)


def test_template_is_face_shaped():
    t = AlignmentTemplate.load()
    assert t.size == 200 and t.points.shape == (5, 2)
    left_eye, right_eye, nose, mouth_l, mouth_r = t.points
    assert left_eye[0] < nose[0] < right_eye[0]
    assert left_eye[1] < nose[1] < mouth_l[1] and right_eye[1] < nose[1] < mouth_r[1]


def test_align_face_maps_landmarks_onto_the_template():
    t = AlignmentTemplate.load()
    image = np.zeros((400, 400, 3), np.uint8)
    landmarks = t.points * 1.5 + [60, 40]  # the face, 1.5x larger and shifted
    for x, y in landmarks.round().astype(int):
        image[y - 2 : y + 3, x - 2 : x + 3] = 255
    crop, matrix = align_face(image, landmarks, t)
    assert crop.shape == (200, 200, 3)
    for x, y in t.points.round().astype(int):
        assert crop[y, x].mean() > 100  # each marked landmark lands on its template point
    np.testing.assert_allclose(matrix, [[1 / 1.5, 0, -40], [0, 1 / 1.5, -40 / 1.5]], atol=1e-9)
    assert face_scale(matrix) == pytest.approx(1 / 1.5)


def test_crop_past_the_photo_edge_repeats_edge_pixels_not_black():
    t = AlignmentTemplate.load()
    image = np.full((120, 120, 3), 90, np.uint8)
    landmarks = t.points * 0.5 - [20, 20]  # a face hanging off the top-left corner
    crop = align_face(image, landmarks, t).crop
    assert crop.shape == (200, 200, 3) and crop.min() == 90 and crop.max() == 90


def _stripes(side: int, period: float) -> np.ndarray:
    """Vertical black and white stripes ``period`` pixels apart: detail far finer than a shrunk crop can show."""
    x = np.arange(side)
    row = np.where((x % period) < period / 2, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(row[None, :, None], (side, side, 3)))


def test_a_large_face_is_shrunk_with_antialiasing_not_point_sampling():
    t = AlignmentTemplate.load()
    image = _stripes(1800, 2.25)
    landmarks = t.points * 8 + 100  # the face 8x larger than the crop
    crop, matrix = align_face(image, landmarks, t)
    assert face_scale(matrix) == pytest.approx(1 / 8)
    assert abs(crop.mean() - image.mean()) < 3 and crop.std() < 3  # the stripes average to an even grey

    # point sampling, as Image.transform alone does, turns the same stripes into coarse false ones
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    aliased = np.asarray(
        Image.fromarray(image).transform((200, 200), Image.Transform.AFFINE, inverse.ravel().tolist(),
                                         resample=Image.Resampling.BILINEAR)
    )  # fmt: skip
    assert aliased.std() > 30  # against under 3 above


@pytest.mark.parametrize("angle", [0.0, 0.4])
@pytest.mark.parametrize("factor", [2, 4])
def test_a_face_given_larger_gives_nearly_the_same_crop(factor, angle):
    t = AlignmentTemplate.load()
    rng = np.random.default_rng(0)
    # smooth random content (a face-like mix of shapes and shading, nothing finer than a few pixels)
    small = Image.fromarray(rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)).resize((300, 300), Image.BICUBIC)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (t.points - 100) @ rotation.T * 1.2 + 150  # the face 1.2x larger than the crop, turned
    at_1x = align_face(np.asarray(small), landmarks, t).crop
    large = small.resize((300 * factor, 300 * factor), Image.Resampling.LANCZOS)
    at_nx = align_face(np.asarray(large), landmarks * factor, t).crop
    difference = np.abs(at_nx.astype(float) - at_1x)
    assert difference.mean() < 1.5 and np.percentile(difference, 99) < 8


@pytest.mark.parametrize("size", [0.5, 1.2])  # the face half the crop's size, and 1.2x: within MAX_WARP_SHRINK
def test_enlarging_and_mild_shrinking_are_a_plain_bilinear_warp(size):
    assert 1 / size <= MAX_WARP_SHRINK or size < 1
    t = AlignmentTemplate.load()
    image = np.asarray(Image.fromarray(_stripes(300, 6.0)).rotate(10, Image.Resampling.BILINEAR))
    landmarks = t.points * size + 5
    crop, matrix = align_face(image, landmarks, t)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    # the plain bilinear warp of the same region: nothing is done first
    corners = inverse @ [[0, 200, 0, 200], [0, 0, 200, 200], [1, 1, 1, 1]]
    (x0, y0), (x1, y1) = np.floor(corners.min(1)).astype(int) - 2, np.ceil(corners.max(1)).astype(int) + 2
    rows, cols = np.clip(np.arange(y0, y1), 0, 299), np.clip(np.arange(x0, x1), 0, 299)
    inverse[:, 2] -= (x0, y0)
    plain = Image.fromarray(np.ascontiguousarray(image[rows[:, None], cols[None, :]])).transform(
        (200, 200), Image.Transform.AFFINE, inverse.ravel().tolist(), resample=Image.Resampling.BILINEAR
    )
    np.testing.assert_array_equal(crop, np.asarray(plain))
