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
    # the photo's edge runs a third of the way into the face (forehead and eyebrows gone) and cuts its sides;
    # a fifth (the hairline) is not flagged: the face region itself must be cut (quality.face_outside_share)
    tight = np.ascontiguousarray(photo[y + h // 3 : y + h, x + w // 8 : x + w - w // 8])
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


# --- aligned crops: bounded, and refused when too small ---------------------------------------------


def test_a_huge_aligned_crop_is_shrunk_to_the_template_before_anything_is_measured(analyzer):
    import tracemalloc

    rng = np.random.default_rng(0)
    big = np.kron(rng.integers(0, 255, (40, 40, 3)), np.ones((50, 50, 1))).astype(np.uint8)  # 2000x2000: the most
    tracemalloc.start()
    try:
        (face,) = analyzer.analyze(big, aligned=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the quality scores ran in float32 on all 4 MP before (tens of MB of numpy arrays); now on 200x200
    assert peak < 20e6, f"{peak / 1e6:.0f} MB of numpy arrays"
    assert face.box == (0.0, 0.0, 2000.0, 2000.0)  # coordinates stay the input's
    assert face.crop.shape == (200, 200, 3)


def test_a_huge_aligned_crop_is_refused_from_its_header_before_decoding(analyzer, monkeypatch):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2100, 2100), (200, 160, 140)).save(buffer, "PNG")  # 4.4 MP: a 49-MP one is the same
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("the crop was decoded"))
    result = analyzer.analyze_image(buffer.getvalue(), aligned=True)
    assert result.status == "error" and result.error_code == "too_large"
    assert "4 megapixels for an aligned face crop" in result.error


def test_crops_no_larger_than_the_template_are_used_exactly_as_they_are(analyzer):
    crop = analyzer.analyze(IMAGES / "astronaut.jpg")[0].crop  # 200x200, like every UTKFace crop
    (face,) = analyzer.analyze(crop, aligned=True)
    assert np.array_equal(face.crop, crop)
    direct = analyzer.model.predict([crop])
    assert face.age == float(direct.age[0]) and face.gender_prob == float(direct.gender_proba[0].max())
    small = np.ascontiguousarray(crop[::2, ::2])  # 100x100: smaller, not enlarged either
    assert analyzer.analyze(small, aligned=True)[0].crop.shape == (100, 100, 3)


def test_a_large_compressed_aligned_crop_is_still_flagged(analyzer):
    import io

    from PIL import Image

    photo = Image.fromarray(load_image(IMAGES / "astronaut_1mp.jpg"))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=10)
    (clean,), (blocky,) = analyzer.analyze(photo, aligned=True), analyzer.analyze(buffer.getvalue(), aligned=True)
    assert "compressed" not in clean.quality_flags and "compressed" in blocky.quality_flags


@pytest.mark.parametrize("shape", [(20, 200, 3), (200, 31, 3), (2, 2, 3)])
def test_aligned_crops_under_32_pixels_are_refused_with_a_clear_error(analyzer, shape):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warnings on the way
        result = analyzer.analyze_image(np.full(shape, 128, np.uint8), aligned=True)
    assert result.status == "error" and result.error_code == "too_small"
    assert f"{shape[1]}x{shape[0]} pixels" in result.error and "at least 32" in result.error


@pytest.mark.parametrize("box", [(10.0, -6.0, 60.0, 140.0), (100.0, 0.0, 60.0, 128.0), (-4.0, 50.0, 40.0, 90.0)])
def test_labels_stay_inside_the_picture_when_a_face_touches_its_edges(box):
    from faceattrs.inference.annotate import _COLOURS
    from faceattrs.inference.records import Face

    image = np.zeros((128, 160, 3), np.uint8)
    face = Face(0, box, 0.9, [], 34.0, 28.0, 41.0, "female", 0.9, "asian", 0.8, {})
    drawn = np.asarray(annotate(image, [face]))
    filled = np.all(drawn == _COLOURS[0], axis=2)
    # the label is a filled block of the face's colour with black text: far more of the colour than the box's outline
    rows_with_label = np.flatnonzero(filled.sum(axis=1) > 40)
    assert len(rows_with_label) >= 10, "no label drawn inside the picture"


def test_onnxruntime_telemetry_is_turned_off_before_any_session(model_dir, monkeypatch):
    import onnxruntime

    from faceattrs.inference.attribute_model import AttributeModel

    calls = []
    real = onnxruntime.InferenceSession
    monkeypatch.setattr(onnxruntime, "disable_telemetry_events", lambda: calls.append("off"))
    monkeypatch.setattr(onnxruntime, "InferenceSession", lambda *a, **k: calls.append("session") or real(*a, **k))
    AttributeModel(model_dir)
    assert calls[:2] == ["off", "session"]
