"""Bytes -> an upright 8-bit RGB image, or a clear, typed error.

What people upload: JPEG/PNG/WebP/GIF/TIFF/BMP (and HEIC when ``pillow-heif``
is installed), phone pictures rotated by an EXIF tag, grayscale scans,
palette and CMYK images, 16-bit PNGs, images with an alpha channel. All of
them become upright RGB; anything else raises :class:`ImageError` with a
stable ``code`` that front ends map to a message. The pixel count is checked
from the header *before* decoding, so a decompression bomb costs nothing.

>>> import io
>>> from PIL import Image
>>> buffer = io.BytesIO(); Image.new("L", (4, 3)).save(buffer, "PNG")
>>> decode_image(buffer.getvalue()).size
(4, 3)
>>> decode_image(b"hello")
Traceback (most recent call last):
...
faceattrs.inference.decode.ImageError: not_an_image: the data is not an image format faceattrs can read
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from faceattrs.preprocessing import to_rgb

#: Largest decoded image accepted (width x height). 50 MP covers every phone camera.
DEFAULT_MAX_PIXELS = 50_000_000

try:  # HEIC/HEIF from iPhones, when the optional plugin is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional
    pass


class ImageError(ValueError):
    """An input that cannot be analysed; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``data`` into an upright RGB Pillow image (EXIF orientation applied)."""
    if not data:
        raise ImageError("empty", "the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    "too_large",
                    f"the image is {width}x{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels",
                )
            image.seek(0)  # animated images: the first frame
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refuses far-too-large headers before our check runs; report our limit all the same.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found[1]) / 1e6:.0f} megapixels" if found else "too many pixels"
        raise ImageError("too_large", f"the image has {size}; the limit is {max_pixels / 1e6:.0f} megapixels") from None
    except UnidentifiedImageError:
        raise ImageError("not_an_image", "the data is not an image format faceattrs can read") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError("corrupt", f"the image data is damaged or truncated ({exc})") from None
    with contextlib.suppress(Exception):  # a broken EXIF block must not lose the picture
        image = ImageOps.exif_transpose(image) or image
    return to_rgb(image)


def load_image(source: str | Path | bytes | Image.Image | np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS):
    """Any supported input -> (RGB uint8 array H x W x 3).

    Paths and bytes are decoded (EXIF applied); Pillow images are converted;
    arrays must be H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA), uint8.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError("not_found", f"no such file: {path}") from None
        except IsADirectoryError:
            raise ImageError("not_a_file", f"{path} is a folder") from None
        except OSError as exc:
            raise ImageError("unreadable", f"cannot read {path}: {exc.strerror}") from None
        return np.asarray(decode_image(data, max_pixels))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return np.asarray(decode_image(bytes(source), max_pixels))
    if isinstance(source, Image.Image):
        if source.width * source.height > max_pixels:
            raise ImageError("too_large", f"the image is {source.width}x{source.height} pixels")
        return np.asarray(to_rgb(source))
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, max_pixels)
    raise ImageError("unsupported_input", f"cannot analyse an object of type {type(source).__name__}")


def _array_to_rgb(array: np.ndarray, max_pixels: int) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError("bad_array", f"expected an H x W x 3 RGB array, got shape {array.shape}")
    if array.shape[0] * array.shape[1] > max_pixels:
        raise ImageError("too_large", f"the array is {array.shape[1]}x{array.shape[0]} pixels")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and float(np.nanmax(array)) <= 1.0:
            array = array * 255.0
        array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array[..., :3])
