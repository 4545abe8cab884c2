import io

import numpy as np
import pytest
from PIL import Image

from faceattrs.inference.decode import ImageError, decode_image, load_image
from tests.conftest import IMAGES


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("empty.jpg", "empty"),
        ("text.jpg", "not_an_image"),
        ("truncated.jpg", "corrupt"),
        ("bomb_30000.png", "too_large"),
    ],
)
def test_bad_files_raise_a_typed_error(name, code):
    with pytest.raises(ImageError) as exc:
        decode_image((IMAGES / name).read_bytes())
    assert exc.value.code == code
    assert "Traceback" not in exc.value.message


def test_pixel_cap_is_checked_before_decoding():
    with pytest.raises(ImageError, match="limit is 1 megapixels") as exc:
        decode_image((IMAGES / "astronaut_1mp.jpg").read_bytes(), max_pixels=1_000_000)
    assert exc.value.code == "too_large"


@pytest.mark.parametrize(
    "name",
    ["astronaut.jpg", "grayscale.png", "rgba.png", "palette.png", "cmyk.jpg", "grey16.png", "animated.gif"],
)
def test_every_mode_becomes_rgb(name):
    image = decode_image((IMAGES / name).read_bytes())
    array = np.asarray(image)
    assert image.mode == "RGB" and array.dtype == np.uint8 and array.shape[2] == 3
    assert 40 < array.mean() < 220  # not blank: 16-bit grey is rescaled, not clipped to white


def test_exif_orientation_is_applied():
    upright = np.asarray(decode_image((IMAGES / "astronaut.jpg").read_bytes()), float)
    rotated = np.asarray(decode_image((IMAGES / "exif_rotated.jpg").read_bytes()), float)
    assert rotated.shape == upright.shape
    assert np.abs(rotated - upright).mean() < 6  # same picture up to JPEG noise


def test_load_image_accepts_paths_bytes_pil_and_arrays():
    path = IMAGES / "astronaut.jpg"
    a = load_image(path)
    assert np.array_equal(a, load_image(str(path)))
    assert np.array_equal(a, load_image(path.read_bytes()))
    assert np.array_equal(a, load_image(Image.open(io.BytesIO(path.read_bytes()))))
    assert load_image(a[..., 0]).shape == a.shape  # grey 2-D
    assert load_image(np.dstack([a, np.full(a.shape[:2], 255, np.uint8)])).shape == a.shape  # RGBA
    assert load_image(a / 255.0).max() == 255  # float in [0, 1]


@pytest.mark.parametrize(
    ("source", "code"),
    [
        (IMAGES / "missing.jpg", "not_found"),
        (IMAGES, "not_a_file"),
        (np.zeros((4, 4, 2), np.uint8), "bad_array"),
        (42, "unsupported_input"),
    ],
)
def test_load_image_errors(source, code):
    with pytest.raises(ImageError) as exc:
        load_image(source)
    assert exc.value.code == code
