import numpy as np
import pytest
from PIL import Image

from faceattrs.inference.align import AlignmentTemplate, align_face, face_scale, similarity_transform
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
