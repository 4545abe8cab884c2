"""Bytes -> an upright 8-bit RGB image, or a clear, typed error.

What people upload: JPEG/PNG/WebP/GIF/TIFF/BMP (and HEIC/AVIF), phone
pictures rotated by an EXIF tag, grayscale scans, palette and CMYK images,
16-bit PNGs, images with an alpha channel. All of them become upright RGB;
anything else raises :class:`ImageError` with a stable ``code`` that front
ends map to a message. No other exception leaves :func:`load_image`.

Hostile files are refused before they cost much:

* only the formats in :data:`ALLOWED_FORMATS` are opened, so an EPS upload
  never reaches Pillow's Ghostscript plugin (``unsupported_format``);
* the pixel count is checked from the header *before* decoding, so a
  decompression bomb costs nothing (``too_large``);
* a JPEG with more than :data:`MAX_JPEG_SCANS` scans is refused before
  decoding (``too_complex``): every scan of a progressive JPEG makes libjpeg
  walk the whole image again, so a small file with 100,000 scan headers would
  keep a worker busy for hours. Photos have about ten.
* the structure Pillow parses one piece at a time in Python (PNG chunks, GIF
  blocks before the first image, JPEG segments before the first scan) is
  capped at :data:`MAX_BLOCKS` pieces (``too_complex``).

What is left is linear in the file's size and the pixel cap.

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
import functools
import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from faceattrs.preprocessing import to_rgb

#: Largest decoded image accepted (width x height). 50 MP covers every phone camera.
DEFAULT_MAX_PIXELS = 50_000_000

#: The formats opened from files and bytes (Pillow's names); MPO, a JPEG with more pictures, comes in as JPEG.
#: Everything else Pillow could open (EPS, PSD, DDS, ICO, TGA, ...) is refused as ``unsupported_format``.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")

#: Most scans accepted in a JPEG. Progressive photos have about 10; libtiff refuses JPEG tiles with over 100 too.
MAX_JPEG_SCANS = 100

#: Most PNG chunks, GIF blocks before the first image or JPEG segments before the first scan accepted.
MAX_BLOCKS = 50_000

#: Most stray bytes accepted between the segments of a JPEG header (Pillow skips them one by one).
MAX_JPEG_JUNK = 65_536

_FORMAT_NAMES = "JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC or AVIF"

try:  # HEIC/HEIF from iPhones, when the optional plugin is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional
    pass


class ImageError(ValueError):
    """An input that cannot be analysed; ``code`` is stable, ``message`` is for people.

    Codes: ``empty``, ``not_an_image``, ``unsupported_format``, ``corrupt``, ``too_large`` (the
    API answers 413), ``too_complex``, ``not_found``, ``not_a_file``, ``unreadable``,
    ``unsupported_input``, ``bad_array``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``data`` into an upright RGB Pillow image (EXIF orientation applied).

    Raises :class:`ImageError` and nothing else for data that is not a usable image.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError("unsupported_input", f"expected the bytes of an image, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ImageError("empty", "the file is empty")
    _check_structure(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_allowed_formats())
            _check_size(image.width, image.height, max_pixels)
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
        raise _unidentified(data) from None
    except MemoryError:
        raise ImageError("too_large", "there is not enough memory to decode the image") from None
    except Exception as exc:  # any decoder failure is damaged data, never a crash
        raise ImageError("corrupt", f"the image data is damaged or truncated ({_reason(exc)})") from None
    with contextlib.suppress(Exception):  # a broken EXIF block must not lose the picture
        image = ImageOps.exif_transpose(image) or image
    return _to_rgb(image)


def load_image(source: str | Path | bytes | Image.Image | np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS):
    """Any supported input -> (RGB uint8 array H x W x 3); anything unusable raises :class:`ImageError`.

    * paths and bytes are decoded by :func:`decode_image` (EXIF orientation applied);
    * Pillow images are converted as they are (any mode; not rotated by EXIF); one opened but not
      loaded yet is loaded here, except an EPS, which would run Ghostscript;
    * arrays are H x W or H x W x 1 (grey), H x W x 3 (RGB) or H x W x 4 (RGBA; the alpha is
      dropped), of at least one pixel. Their values are read by dtype: ``uint8`` as is; ``bool``
      as black and white; ``uint16`` as 16-bit (0..65535, scaled to 0..255); other integers must
      lie in 0..255; floats as 0..1 when the largest value is at most 1.05, else as 0..255, and
      rounded. An overshoot of up to 5 % of the largest value (as cubic resampling leaves) is
      clipped; NaN, infinity, values further out and other dtypes raise ``bad_array``.
    """
    if isinstance(source, (str, Path)):
        return np.asarray(decode_image(_read_file(source), max_pixels))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return np.asarray(decode_image(source, max_pixels))
    if isinstance(source, Image.Image):
        return np.asarray(_pil_to_rgb(source, max_pixels))
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, max_pixels)
    raise ImageError("unsupported_input", f"cannot analyse an object of type {type(source).__name__}")


# --- files and Pillow images ------------------------------------------------------------------


def _read_file(source: str | Path) -> bytes:
    if "\0" in str(source):
        raise ImageError("unreadable", f"cannot read {str(source)!r}: the path contains a NUL character")
    path = Path(source)
    try:
        if path.exists() and not path.is_file():  # a folder, a FIFO, /dev/zero: never read
            kind = "a folder" if path.is_dir() else "not a file"
        else:
            return path.read_bytes()
    except FileNotFoundError:
        raise ImageError("not_found", f"no such file: {path}") from None
    except IsADirectoryError:
        raise ImageError("not_a_file", f"{path} is a folder") from None
    except OSError as exc:
        raise ImageError("unreadable", f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, MemoryError) as exc:
        raise ImageError("unreadable", f"cannot read {path}: {_reason(exc)}") from None
    raise ImageError("not_a_file", f"{path} is {kind}")


def _pil_to_rgb(image: Image.Image, max_pixels: int) -> Image.Image:
    _check_size(image.width, image.height, max_pixels)
    if getattr(image, "format", None) == "EPS" and getattr(image, "tile", None):
        raise ImageError("unsupported_format", "EPS images are rendered by Ghostscript; convert it to PNG first")
    try:
        image.load()
    except MemoryError:
        raise ImageError("too_large", "there is not enough memory to decode the image") from None
    except Exception as exc:
        raise ImageError("corrupt", f"the image data is damaged or truncated ({_reason(exc)})") from None
    return _to_rgb(image)


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(
            "too_large", f"the image is {width}x{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels"
        )
    if width <= 0 or height <= 0:
        raise ImageError("empty", f"the image is {width}x{height} pixels: it has no pixels")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; the modes :func:`to_rgb` does not read are prepared for it."""
    mode = image.mode
    try:
        if mode == "La":  # grey premultiplied by alpha, on white: L + (255 - a)
            grey, alpha = (np.asarray(band, np.int16) for band in image.split())
            image = Image.fromarray(np.clip(grey + 255 - alpha, 0, 255).astype(np.uint8), "L")
        elif mode == "RGBa":
            image = image.convert("RGBA")
        elif mode in ("I", "F"):  # 32-bit grey (TIFF, FITS, SPIDER): scaled like the arrays, never wrapped
            image = Image.fromarray(_wide_grey(np.asarray(image)), "L")
        return to_rgb(image)
    except MemoryError:
        raise ImageError("too_large", "there is not enough memory to convert the image") from None
    except Exception as exc:
        raise ImageError("unsupported_format", f"cannot convert {mode} pixels to RGB ({_reason(exc)})") from None


def _wide_grey(array: np.ndarray) -> np.ndarray:
    """32-bit integer or float grey -> uint8: 0..1 floats scaled by 255, the rest by its maximum."""
    values = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0).clip(0, None)
    top = float(values.max()) if values.size else 0.0
    scale = 255.0 if array.dtype.kind == "f" and top <= 1.0 else 255.0 / max(top, 1.0)
    return (values * scale).astype(np.uint8)


# --- formats and structure --------------------------------------------------------------------


@functools.cache
def _allowed_formats() -> tuple[str, ...]:
    Image.init()  # every plugin, so that the refused formats can be named
    return tuple(name for name in ALLOWED_FORMATS if name in Image.OPEN)


def _unidentified(data: bytes) -> ImageError:
    """The error for data no allowed plugin opened: a refused format, a damaged header, or no image."""
    prefix = data[:16]
    allowed = _allowed_formats()
    plugins = sorted(Image.OPEN.items(), key=lambda item: item[0] not in allowed)  # the allowed ones first
    for name, (_, accept) in plugins:
        result = False
        with contextlib.suppress(Exception):
            result = accept is not None and accept(prefix)
        if not result or isinstance(result, str):  # a string is a warning: not this format
            continue
        if name in allowed:
            return ImageError("corrupt", f"the data looks like a {name} image but its header is damaged")
        return ImageError("unsupported_format", f"{name} images are not accepted; send a {_FORMAT_NAMES} image")
    return ImageError("not_an_image", "the data is not an image format faceattrs can read")


def _check_structure(data: bytes) -> None:
    """Refuse a file whose structure would cost far more than its pixels to decode (see the module notes)."""
    if data[:3] == b"\xff\xd8\xff":
        _check_jpeg(data)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        _check_png(data)
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        _check_gif(data)


#: A JPEG marker: 0xFF then a code that is neither 0 (an escaped 0xFF) nor 0xFF (a fill byte before the marker).
_JPEG_MARKER = re.compile(rb"\xff([^\x00\xff])")
_PARAMETERLESS = {0x01, 0xD8, *range(0xD0, 0xD8)}  # TEM, SOI, RST0-7: no length field follows
_IN_SCAN = _PARAMETERLESS - {0xD8}  # the markers a scan's entropy-coded data may hold


def _too_complex(what: str) -> ImageError:
    return ImageError("too_complex", f"the image has {what}; it would take too long to decode")


def _check_jpeg(data: bytes) -> None:
    """Refuse too many segments before the first scan, too much junk between them, or too many scans.

    The header is walked as Pillow reads it (segment by segment, by their lengths). The count of
    0xFFDA byte pairs bounds the number of scans from above; only a file over the limit is walked
    to the end of its first picture, as libjpeg reads it, so that an EXIF thumbnail, metadata or a
    video appended to a photo never count.
    """
    pos, segments, junk = 2, 0, 0
    while True:  # the header, up to the first scan
        found = _JPEG_MARKER.search(data, pos, pos + MAX_JPEG_JUNK - junk + 16)
        if found is None:
            if len(data) - pos > MAX_JPEG_JUNK - junk:
                raise ImageError("corrupt", f"the JPEG has over {MAX_JPEG_JUNK} stray bytes in its header")
            return  # no scan at all: the decoder reports the damage
        junk += found.start() - pos  # fill bytes too: Pillow reads them one by one
        marker, pos = found[1][0], found.end()
        if marker == 0xDA:
            break
        if marker == 0xD9:
            return
        segments += 1
        if segments > MAX_BLOCKS:
            raise _too_complex(f"over {MAX_BLOCKS} segments before its first scan")
        if marker not in _PARAMETERLESS:
            pos += max(int.from_bytes(data[pos : pos + 2], "big"), 2)
    if data.count(b"\xff\xda") <= MAX_JPEG_SCANS:
        return
    scans = 1
    while True:  # the scans, up to the end of the first picture
        pos += max(int.from_bytes(data[pos : pos + 2], "big"), 2)  # this segment's parameters
        found = _JPEG_MARKER.search(data, pos)  # past the entropy-coded data, which holds no marker
        while found is not None and found[1][0] in _IN_SCAN:
            found = _JPEG_MARKER.search(data, found.end())
        if found is None or found[1][0] in (0xD8, 0xD9):
            return
        pos = found.end()
        if found[1][0] == 0xDA:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise _too_complex(f"over {MAX_JPEG_SCANS} scans (photos have about 10)")


def _check_png(data: bytes) -> None:
    pos, chunks = 8, 0
    while pos + 8 <= len(data) and data[pos + 4 : pos + 8] != b"IEND":
        chunks += 1
        if chunks > MAX_BLOCKS:
            raise _too_complex(f"over {MAX_BLOCKS} chunks")
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")


def _check_gif(data: bytes) -> None:
    if len(data) < 13:
        return
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # past the global colour table
    blocks = 0
    while pos + 1 < len(data) and data[pos] == 0x21:  # an extension: a label, then sub-blocks up to an empty one
        pos += 2
        size = -1
        while size and pos < len(data):
            size = data[pos]
            pos += 1 + size
            blocks += 1
            if blocks > MAX_BLOCKS:
                raise _too_complex(f"over {MAX_BLOCKS} blocks before its first picture")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return text or type(exc).__name__


# --- arrays -----------------------------------------------------------------------------------


def _array_to_rgb(array: np.ndarray, max_pixels: int) -> np.ndarray:
    array = np.asarray(array)  # masked arrays and other subclasses: their data
    if array.dtype.kind not in "biuf":
        raise ImageError("bad_array", f"pixel values must be numbers (bool, integer or float), not {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ImageError("bad_array", f"expected an H x W x 3 RGB array, got shape {array.shape}")
    height, width = array.shape[:2]
    if height * width > max_pixels:
        raise ImageError("too_large", f"the array is {width}x{height} pixels")
    if height == 0 or width == 0:
        raise ImageError("empty", f"the array has no pixels (shape {array.shape})")
    if array.ndim == 3:
        array = array[..., :3]
    array = _to_uint8(array)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        return array
    if kind == "b":
        return array.astype(np.uint8) * np.uint8(255)
    if kind == "u" and array.dtype.itemsize == 2:  # 16-bit: round(v / 257)
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    low, high = array.min(), array.max()
    if kind in "iu":
        if low < 0 or high > 255:
            raise ImageError(
                "bad_array", f"integer {array.dtype} pixel values must lie in 0..255, these span {low}..{high}"
            )
        return array.astype(np.uint8)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ImageError("bad_array", "the array holds NaN or infinite values")
    low, high = float(low), float(high)
    scale = 255.0 if high <= 1.05 else 1.0
    if low * scale < -0.05 * high * scale or high * scale > 1.05 * 255:
        span = "0..1 or 0..255" if scale == 1.0 else "0..1"
        raise ImageError("bad_array", f"float pixel values must lie in {span}, these span {low:g}..{high:g}")
    return np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
