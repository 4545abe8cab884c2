import numpy as np
import pytest

from faceattrs import Analyzer, ImageError
from faceattrs.inference.annotate import annotate
from faceattrs.inference.decode import load_image
from tests.conftest import IMAGES

EXPECTED = {
    "astronaut.jpg": ("ok", 1),
    "astronaut_1mp.jpg": ("ok", 1),
    "group_5.jpg": ("ok", 5),
    "tilted_25.jpg": ("ok", 1),
    "exif_rotated.jpg": ("ok", 1),
    "grayscale.png": ("ok", 1),
    "rgba.png": ("ok", 1),
    "palette.png": ("ok", 1),
    "cmyk.jpg": ("ok", 1),
    "grey16.png": ("ok", 1),
    "animated.gif": ("ok", 1),
    "tiny_face.jpg": ("ok", 1),
    "no_face.png": ("no_face", 0),
    "empty.jpg": ("error", 0),
    "text.jpg": ("error", 0),
    "truncated.jpg": ("error", 0),
    "bomb_30000.png": ("error", 0),
}


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items())
def test_every_test_image_has_its_exact_outcome(analyzer, name, expected):
    result = analyzer.analyze_image(IMAGES / name)
    assert (result.status, len(result.faces)) == expected
    if result.status == "error":
        assert result.error and result.error_code
    if result.status == "no_face":
        assert result.error == "no face found"


def test_face_fields_are_complete_and_consistent(analyzer):
    face = analyzer.analyze(IMAGES / "astronaut.jpg")[0]
    assert 0 <= face.age_low <= face.age <= face.age_high <= 117
    assert face.gender in ("male", "female") and 0.5 <= face.gender_prob <= 1
    assert face.ethnicity in face.ethnicity_probs
    assert sum(face.ethnicity_probs.values()) == pytest.approx(1)
    assert face.ethnicity_prob == max(face.ethnicity_probs.values())
    assert len(face.landmarks) == 5 and face.det_score > 0.9
    assert face.crop.shape == (200, 200, 3) and face.quality_flags == []
    assert "crop" not in face.to_dict()


def test_small_faces_are_flagged_not_hidden(analyzer):
    face = analyzer.analyze(IMAGES / "tiny_face.jpg")[0]
    assert "small" in face.quality_flags


def test_noisy_faces_are_flagged_and_clean_ones_are_not(analyzer):
    photo = load_image(IMAGES / "astronaut_1mp.jpg")  # a face about as large as the aligned crop
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
    (clean_face,), (noisy_face,) = analyzer.analyze(photo), analyzer.analyze(noisy)
    assert "noisy" not in clean_face.quality_flags and "noisy" in noisy_face.quality_flags


def test_faces_cut_off_by_the_photo_edge_are_flagged(analyzer):
    photo = load_image(IMAGES / "astronaut.jpg")
    (face,) = analyzer.analyze(photo)
    x, y, w, h = (int(v) for v in face.box)
    tight = np.ascontiguousarray(photo[y + h // 5 : y + h, x + w // 8 : x + w - w // 8])  # forehead and sides cut
    (cut,) = analyzer.analyze(tight)
    assert "cut off" not in face.quality_flags and "cut off" in cut.quality_flags


@pytest.mark.parametrize("name", ["astronaut_1mp.jpg", "group_5.jpg"])
def test_heavily_compressed_faces_are_flagged_and_the_originals_are_not(analyzer, name):
    import io

    from PIL import Image

    photo = load_image(IMAGES / name)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "JPEG", quality=10)
    originals, compressed = analyzer.analyze(photo), analyzer.analyze(buffer.getvalue())
    assert len(originals) == len(compressed) > 0
    assert not any("compressed" in face.quality_flags for face in originals)
    assert all("compressed" in face.quality_flags for face in compressed)


def test_blockiness_is_measured_on_the_photos_own_8_pixel_grid():
    from faceattrs.inference.quality import blockiness_score

    rng = np.random.default_rng(0)
    blocks = np.kron(rng.integers(0, 200, (12, 12)), np.ones((8, 8)))[..., None].repeat(3, 2).astype(np.uint8)
    blocks = np.clip(blocks + rng.normal(0, 3, blocks.shape), 0, 255).astype(np.uint8)
    box = (13.0, 21.0, 60.0, 50.0)  # not on the grid: the score widens it to whole blocks of the photo
    assert blockiness_score(blocks, box) > 5
    shifted = np.ascontiguousarray(blocks[3:, 5:])  # the same blocks off the photo's grid read as none
    assert blockiness_score(shifted, box) < 1.5


def test_bad_input_raises_typed_error_from_analyze(analyzer):
    with pytest.raises(ImageError) as exc:
        analyzer.analyze(IMAGES / "text.jpg")
    assert exc.value.code == "not_an_image"


def test_batching_across_images_gives_the_same_answers(analyzer):
    names = ["group_5.jpg", "text.jpg", "astronaut.jpg", "no_face.png", "tilted_25.jpg"]
    together = list(analyzer.analyze_many([IMAGES / n for n in names], batch_size=4))
    alone = [analyzer.analyze_image(IMAGES / n) for n in names]
    assert [r.status for r in together] == [r.status for r in alone]
    for a, b in zip(together, alone, strict=True):
        for fa, fb in zip(a.faces, b.faces, strict=True):
            assert fa.age == pytest.approx(fb.age, abs=1e-3)
            assert fa.ethnicity_probs == pytest.approx(fb.ethnicity_probs, abs=1e-4)


def test_inputs_as_bytes_array_and_aligned_crop(analyzer):
    by_path = analyzer.analyze(IMAGES / "astronaut.jpg")[0]
    by_bytes = analyzer.analyze((IMAGES / "astronaut.jpg").read_bytes())[0]
    by_array = analyzer.analyze(load_image(IMAGES / "astronaut.jpg"))[0]
    assert by_path.age == pytest.approx(by_bytes.age) == pytest.approx(by_array.age)
    aligned = analyzer.analyze(by_path.crop, aligned=True)
    assert len(aligned) == 1 and aligned[0].box == (0.0, 0.0, 200.0, 200.0)
    assert aligned[0].age == pytest.approx(by_path.age, abs=0.5)


def test_max_faces_caps_the_count(model_dir):
    capped = Analyzer(model_dir, max_faces=2)
    assert len(capped.analyze(IMAGES / "group_5.jpg")) == 2


def test_annotate_draws_on_a_copy(analyzer):
    image = load_image(IMAGES / "group_5.jpg")
    faces = analyzer.analyze(image)
    drawn = np.asarray(annotate(image, faces))
    assert drawn.shape == image.shape and not np.array_equal(drawn, image)
    assert np.array_equal(image, load_image(IMAGES / "group_5.jpg"))  # input untouched
