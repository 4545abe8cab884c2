import io
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from faceattrs.inference.decode import MAX_BLOCKS, MAX_JPEG_SCANS, ImageError, decode_image, load_image
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


# --- hostile and unusual files -----------------------------------------------------------------


def encode(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg_scans(data):
    """(start, end) of every scan (SOS header and entropy-coded data) of a JPEG Pillow wrote."""
    scans, pos = [], 2
    while data[pos + 1] != 0xD9:
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if data[pos + 1] == 0xDA:  # the data runs to the next marker that is not an escaped 0xFF or a restart
            while data[end] != 0xFF or data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                end += 1
            scans.append((pos, end))
        pos = end
    return scans


def scan_bomb(size=2000, repeats=20_000):
    """A flat progressive JPEG whose smallest scan is repeated: a few hundred KB that libjpeg decodes for seconds."""
    data = encode(Image.new("RGB", (size, size), (120, 90, 200)), "JPEG", progressive=True)
    start, end = min(jpeg_scans(data), key=lambda scan: scan[1] - scan[0])
    return data[:end] + data[start:end] * repeats + data[end:]


def test_a_jpeg_with_thousands_of_scans_is_refused_at_once():
    data = scan_bomb()
    assert len(data) < 1_000_000
    started = time.perf_counter()
    with pytest.raises(ImageError) as exc:
        decode_image(data)
    assert exc.value.code == "too_complex" and "scans" in exc.value.message
    assert time.perf_counter() - started < 2.0


def test_scan_markers_outside_the_picture_do_not_count():
    photo = encode(Image.open(IMAGES / "astronaut.jpg"), "JPEG", progressive=True)  # 10 scans
    assert len(jpeg_scans(photo)) > 5
    marks = b"\xff\xda" * 500
    comment = b"\xff\xfe" + (len(marks) + 2).to_bytes(2, "big") + marks  # a COM segment full of them
    expected = np.asarray(decode_image(photo))
    assert np.array_equal(np.asarray(decode_image(photo[:2] + comment + photo[2:])), expected)
    assert np.array_equal(np.asarray(decode_image(photo + marks)), expected)  # data appended after the picture


def test_a_progressive_jpeg_just_under_the_scan_limit_decodes():
    data = encode(Image.new("RGB", (64, 64), (120, 90, 200)), "JPEG", progressive=True)
    start, end = min(jpeg_scans(data), key=lambda scan: scan[1] - scan[0])
    repeats = MAX_JPEG_SCANS - len(jpeg_scans(data))
    assert decode_image(data[:end] + data[start:end] * repeats + data[end:]).size == (64, 64)
    with pytest.raises(ImageError, match="too_complex"):
        decode_image(data[:end] + data[start:end] * (repeats + 1) + data[end:])


def png_chunk(kind, payload=b""):
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


@pytest.mark.parametrize("where", ["jpeg segments", "jpeg junk", "jpeg fill", "png chunks", "gif blocks"])
def test_structure_that_pillow_parses_piece_by_piece_is_capped(where):
    jpeg = encode(Image.new("RGB", (8, 8)), "JPEG")
    app0 = 4 + int.from_bytes(jpeg[4:6], "big")
    png = encode(Image.new("RGB", (8, 8)), "PNG")
    gif = encode(Image.new("P", (8, 8)), "GIF")
    data = {
        "jpeg segments": jpeg[:app0] + b"\xff\xfe\x00\x02" * (MAX_BLOCKS + 1) + jpeg[app0:],
        "jpeg junk": jpeg[:app0] + b"\xff\x00" * 40_000 + jpeg[app0:],
        "jpeg fill": jpeg[:app0] + b"\xff" * 80_000 + jpeg[app0:],
        "png chunks": png[:33] + png_chunk(b"prIv") * (MAX_BLOCKS + 1) + png[33:],
        "gif blocks": gif[:-1] + b"!\xfe" + b"\x01a" * (MAX_BLOCKS + 1) + b"\x00" + gif[-1:],
    }[where]
    if where == "gif blocks":  # the comment must come before the picture
        start = gif.index(b",")
        data = gif[:start] + b"!\xfe" + b"\x01a" * (MAX_BLOCKS + 1) + b"\x00" + gif[start:]
    started = time.perf_counter()
    with pytest.raises(ImageError) as exc:
        decode_image(data)
    assert exc.value.code in ("too_complex", "corrupt")
    assert time.perf_counter() - started < 1.0


def test_a_little_of_that_structure_is_fine():
    jpeg = encode(Image.new("RGB", (8, 8)), "JPEG")
    app0 = 4 + int.from_bytes(jpeg[4:6], "big")
    png = encode(Image.new("RGB", (8, 8)), "PNG")
    assert decode_image(jpeg[:app0] + b"\xff\xfe\x00\x02" * 1000 + b"\x00" * 100 + jpeg[app0:]).size == (8, 8)
    assert decode_image(png[:33] + png_chunk(b"prIv") * 1000 + png[33:]).size == (8, 8)


def la_tiff():
    """A grey + premultiplied alpha TIFF (ExtraSamples = 1), which Pillow opens as mode "La"."""
    grey = Image.linear_gradient("L").resize((32, 32))
    data = encode(Image.merge("LA", [grey, Image.new("L", (32, 32), 128)]), "TIFF")
    unassociated = b"\x52\x01\x03\x00\x01\x00\x00\x00\x02\x00"  # tag 338, SHORT, 1 value: 2
    assert data.count(unassociated) == 1
    return data.replace(unassociated, unassociated[:-2] + b"\x01\x00")


ALLOWED = [
    ("JPEG", {}),
    ("JPEG", {"progressive": True}),
    ("PNG", {}),
    ("WEBP", {}),
    ("WEBP", {"lossless": True}),
    ("GIF", {}),
    ("BMP", {}),
    ("TIFF", {}),
    ("TIFF", {"compression": "tiff_lzw"}),
    ("HEIF", {}),
    ("AVIF", {}),
    ("MPO", {"save_all": True, "append_images": [Image.new("RGB", (40, 30), "red")]}),
]


@pytest.mark.parametrize(("fmt", "options"), ALLOWED, ids=[f"{f}-{'-'.join(o)}" for f, o in ALLOWED])
def test_the_allowed_formats_decode(fmt, options):
    image = Image.fromarray(np.linspace(0, 255, 40 * 30 * 3).reshape(30, 40, 3).astype(np.uint8))
    try:
        data = encode(image, fmt, **options)
    except (KeyError, OSError) as exc:  # an encoder this Pillow was built without
        pytest.skip(f"cannot write {fmt}: {exc}")
    decoded = np.asarray(decode_image(data), float)
    assert decoded.shape == (30, 40, 3)
    assert np.abs(decoded - np.asarray(image, float)).mean() < 30  # the picture, up to lossy coding and palettes


@pytest.mark.parametrize("fmt", ["EPS", "PCX", "DDS", "ICO", "QOI", "SGI", "PPM", "JPEG2000", "XBM", "DIB", "MSP"])
def test_other_formats_are_refused_without_being_opened(fmt, monkeypatch):
    image = Image.new("1" if fmt in ("XBM", "MSP") else "RGB", (16, 16))
    try:
        data = encode(image, fmt)
    except (KeyError, OSError) as exc:
        pytest.skip(f"cannot write {fmt}: {exc}")
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail(f"{fmt} was decoded"))
    with pytest.raises(ImageError) as exc:
        decode_image(data)
    assert exc.value.code == "unsupported_format"
    assert fmt in exc.value.message and "PNG" in exc.value.message


def test_formats_without_a_signature_are_not_images():
    spider = encode(Image.new("F", (16, 16)), "SPIDER")
    with pytest.raises(ImageError, match="not_an_image"):
        decode_image(spider)


def test_a_damaged_header_of_an_allowed_format_is_corrupt():
    with pytest.raises(ImageError) as exc:
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert exc.value.code == "corrupt" and "PNG" in exc.value.message


def test_a_grey_and_premultiplied_alpha_tiff_decodes():
    image = decode_image(la_tiff())
    array = np.asarray(image).astype(int)
    assert image.mode == "RGB" and array.shape == (32, 32, 3)
    grey = np.asarray(Image.linear_gradient("L").resize((32, 32))).astype(int)
    assert np.abs(array[..., 0] - np.minimum(grey + 127, 255)).max() <= 1  # premultiplied grey + (255 - alpha)


@pytest.mark.parametrize(
    "mode", ["1", "L", "LA", "La", "P", "PA", "I", "I;16", "I;16B", "F", "CMYK", "YCbCr", "RGBa", "RGBX", "RGBA"]
)
def test_every_pillow_mode_becomes_rgb(mode):
    array = load_image(Image.new(mode, (6, 4)))
    assert array.shape == (4, 6, 3) and array.dtype == np.uint8


def test_wide_grey_images_are_scaled_not_clipped_or_wrapped():
    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    assert load_image(Image.fromarray(ramp, "F")).max() == 255  # 0..1 floats (TIFF, FITS)
    assert load_image(Image.fromarray(ramp * 4000, "F")).max() == 255
    negative = Image.fromarray(np.full((4, 4), -5, np.int32), "I")
    assert load_image(negative).max() == 0  # black, not wrapped round to grey


def test_pillow_images_that_fail_to_load_raise_a_typed_error():
    data = (IMAGES / "astronaut.jpg").read_bytes()
    lazy = Image.open(io.BytesIO(data[: len(data) // 2]))  # opened, not loaded: truncated
    with pytest.raises(ImageError, match="corrupt"):
        load_image(lazy)


def test_an_eps_opened_by_the_caller_is_not_rendered(monkeypatch):
    lazy = Image.open(io.BytesIO(encode(Image.new("RGB", (16, 16)), "EPS")))
    monkeypatch.setattr(type(lazy), "load", lambda self, *a, **k: pytest.fail("Ghostscript would run"))
    with pytest.raises(ImageError, match="unsupported_format"):
        load_image(lazy)


# --- the Python API's inputs -------------------------------------------------------------------

HOSTILE_INPUTS = {
    "empty array": (np.zeros((0, 0, 3), np.uint8), "empty"),
    "no rows": (np.zeros((0, 10, 3), np.uint8), "empty"),
    "no columns": (np.zeros((10, 0)), "empty"),
    "empty image": (Image.new("RGB", (0, 0)), "empty"),
    "no-width image": (Image.new("L", (0, 5)), "empty"),
    "object dtype": (np.array([[[1, 2, 3]]], dtype=object), "bad_array"),
    "complex dtype": (np.ones((4, 4, 3), complex), "bad_array"),
    "string dtype": (np.array([[["a", "b", "c"]]]), "bad_array"),
    "NaN": (np.full((4, 4, 3), np.nan), "bad_array"),
    "negative integers": (np.full((4, 4, 3), -5, np.int16), "bad_array"),
    "integers over 255": (np.full((4, 4, 3), 300, np.int32), "bad_array"),
    "normalised floats": (np.linspace(-2, 3, 48).reshape(4, 4, 3), "bad_array"),
    "floats in -1..1": (np.linspace(-1, 1, 48).reshape(4, 4, 3), "bad_array"),
    "floats over 255": (np.linspace(0, 300, 48).reshape(4, 4, 3), "bad_array"),
    "path with NUL": ("photo\0.jpg", "unreadable"),
    "grey + alpha": (Image.new("La", (8, 8)), None),
}


@pytest.mark.parametrize(("source", "code"), HOSTILE_INPUTS.values(), ids=HOSTILE_INPUTS.keys())
def test_python_api_inputs_give_a_typed_error_or_an_image(source, code):
    if code is None:
        assert load_image(source).shape == (8, 8, 3)
        return
    with pytest.raises(ImageError) as exc:
        load_image(source)
    assert exc.value.code == code


@pytest.mark.parametrize(("source", "code"), HOSTILE_INPUTS.values(), ids=HOSTILE_INPUTS.keys())
def test_analyze_image_never_raises_for_them(analyzer, source, code):
    result = analyzer.analyze_image(source)
    assert result.status == ("error" if code else "no_face")
    assert result.error_code == (code or "no_face")


def test_array_values_are_read_by_dtype():
    a = load_image(IMAGES / "astronaut.jpg")
    assert np.array_equal(load_image(a / 255.0), a)  # 0..1 floats, rounded: exact
    assert np.array_equal(load_image(a.astype(np.float32)), a)  # 0..255 floats
    assert np.array_equal(load_image(a.astype(np.int64)), a)  # integers in 0..255
    assert np.array_equal(load_image(a.astype(np.uint16) * 257), a)  # 16-bit
    assert np.array_equal(load_image(a[..., :1]), load_image(a[..., 0]))  # H x W x 1 is grey
    assert load_image(np.eye(4, dtype=bool)).max() == 255 and load_image(np.eye(4, dtype=bool)).min() == 0
    overshoot = np.clip(a / 255.0, 0, 1) * 1.02 - 0.01  # the overshoot of cubic resampling
    assert load_image(overshoot).min() == 0 and load_image(overshoot).max() == 255


def test_special_files_are_not_read(tmp_path):
    link = tmp_path / "null.jpg"
    link.symlink_to("/dev/null")
    with pytest.raises(ImageError, match="not_a_file"):
        load_image(link)
