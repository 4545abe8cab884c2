"""Fuzz :func:`load_image`: mutated images of every format Pillow writes, refused formats included.

Each seed image is made here, then mutated with a seeded RNG (byte flips, truncation, inserted
markers and extreme header values, duplicated slices). Every case goes in twice: as bytes (the
allow-list, the structure checks and the allowed decoders) and, where Pillow itself opens the
mutated bytes, as a lazily opened Pillow image (every other decoder). Only :class:`ImageError` may
come out. A failure names its case: ``mutated(name, case)`` rebuilds the bytes.

Bounded: about 1,200 cases (under a second here), decoded at a 1 MP cap; no new case starts after ``BUDGET_S`` seconds.
"""

from __future__ import annotations

import functools
import io
import random
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from faceattrs.inference.decode import ImageError, load_image

SEED = 2024
CASES_PER_SEED = 30
BUDGET_S = 20.0
MAX_PIXELS = 1_000_000

#: Bytes the mutations insert: markers and chunk names of the formats, and extreme 32-bit values.
MARKERS = [
    b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00",  # a JPEG scan header
    b"\xff\xd8",
    b"\xff\xd9",
    b"\xff\xc2\x00\x11\x08\xff\xff\xff\xff\x03",
    b"\xff\xe1\xff\xff",
    b"\xff\xdd\x00\x04\xff\xff",
    b"\x00\x00\x00\x00IDAT",
    b"\xff\xff\xff\xffIHDR",
    b"\x00\x00\x00\x00IEND",
    b"acTL\x00\x00\xff\xff",
    b"!\xf9\x04\x01",
    b",\x00\x00\x00\x00\xff\xff\xff\xff",
    b";",
    b"VP8X",
    b"ANMF",
    b"ftypheic",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x80\x00\x00\x00",
]


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@functools.cache
def seeds() -> dict[str, bytes]:
    """name -> a small image; the ones this Pillow cannot write are left out."""
    rng = np.random.default_rng(SEED)
    ramp = np.linspace(0, 255, 24 * 16, dtype=np.float64).reshape(16, 24)
    rgb = Image.fromarray(np.clip(ramp[..., None] + rng.normal(0, 20, (16, 24, 3)), 0, 255).astype(np.uint8))
    grey = rgb.convert("L")
    exif = Image.Exif()
    exif[0x0112] = 6
    la = _encode(Image.merge("LA", [grey, grey]), "TIFF")
    la = la.replace(b"\x52\x01\x03\x00\x01\x00\x00\x00\x02\x00", b"\x52\x01\x03\x00\x01\x00\x00\x00\x01\x00")
    makers = {
        # the allowed formats
        "jpeg": lambda: _encode(rgb, "JPEG", quality=80),
        "jpeg-progressive": lambda: _encode(rgb, "JPEG", progressive=True),
        "jpeg-grey-exif": lambda: _encode(grey, "JPEG", exif=exif.tobytes()),
        "jpeg-cmyk": lambda: _encode(rgb.convert("CMYK"), "JPEG"),
        "jpeg-restart": lambda: _encode(rgb, "JPEG", restart_marker_blocks=1),
        "mpo": lambda: _encode(rgb, "MPO", save_all=True, append_images=[grey.convert("RGB")]),
        "png": lambda: _encode(rgb, "PNG"),
        "png-palette-transparent": lambda: _encode(rgb.convert("P"), "PNG", transparency=0),
        "png-grey-alpha": lambda: _encode(Image.merge("LA", [grey, grey]), "PNG"),
        "png-16bit": lambda: _encode(Image.fromarray(np.asarray(grey, np.uint16) * 257), "PNG"),
        "png-interlaced": lambda: _encode(rgb, "PNG", interlace=1),
        "apng": lambda: _encode(rgb, "PNG", save_all=True, append_images=[grey.convert("RGB")]),
        "webp": lambda: _encode(rgb, "WEBP"),
        "webp-lossless-alpha": lambda: _encode(rgb.convert("RGBA"), "WEBP", lossless=True),
        "webp-animated": lambda: _encode(rgb, "WEBP", save_all=True, append_images=[grey.convert("RGB")]),
        "gif-animated": lambda: _encode(rgb, "GIF", save_all=True, append_images=[grey.convert("RGB")]),
        "bmp": lambda: _encode(rgb, "BMP"),
        "bmp-palette": lambda: _encode(rgb.convert("P"), "BMP"),
        "tiff": lambda: _encode(rgb, "TIFF"),
        "tiff-lzw": lambda: _encode(rgb, "TIFF", compression="tiff_lzw"),
        "tiff-jpeg": lambda: _encode(rgb, "TIFF", compression="jpeg"),
        "tiff-grey-premultiplied-alpha": lambda: la,
        "tiff-float": lambda: _encode(Image.fromarray(ramp.astype(np.float32) / 255, "F"), "TIFF"),
        "tiff-16bit": lambda: _encode(Image.fromarray(np.asarray(grey, np.uint16) * 257), "TIFF"),
        "heif": lambda: _encode(rgb, "HEIF"),
        "avif": lambda: _encode(rgb, "AVIF"),
        # formats that are refused
        "eps": lambda: _encode(rgb, "EPS"),
        "dds": lambda: _encode(rgb, "DDS"),
        "spider": lambda: _encode(Image.fromarray(ramp.astype(np.float32), "F"), "SPIDER"),
        "ico": lambda: _encode(rgb, "ICO"),
        "pcx": lambda: _encode(rgb, "PCX"),
        "tga": lambda: _encode(rgb, "TGA", compression="tga_rle"),
        "ppm": lambda: _encode(rgb, "PPM"),
        "sgi": lambda: _encode(rgb, "SGI"),
        "im": lambda: _encode(rgb, "IM"),
        "msp": lambda: _encode(grey.convert("1"), "MSP"),
        "xbm": lambda: _encode(grey.convert("1"), "XBM"),
        "qoi": lambda: _encode(rgb, "QOI"),
        "jpeg2000": lambda: _encode(rgb, "JPEG2000"),
        "dib": lambda: _encode(rgb, "DIB"),
        "blp": lambda: _encode(rgb.convert("P"), "BLP"),
    }
    made = {}
    for name, make in makers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # IM: deprecated, still opened by Pillow
                made[name] = make()
        except (KeyError, OSError, ValueError):  # an encoder this Pillow was built without
            continue
    return made


def mutated(name: str, case: int) -> bytes:
    """Case ``case`` of seed ``name``: one to three mutations chosen by an RNG seeded with both."""
    rng = random.Random(f"{SEED}-{name}-{case}")
    data = bytearray(seeds()[name])
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["flip", "flip", "truncate", "insert", "extreme", "duplicate"])
        header = min(len(data), 96)
        at = rng.randrange(header) if rng.random() < 0.6 else rng.randrange(len(data))
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(header) if rng.random() < 0.6 else rng.randrange(len(data))] ^= rng.randint(1, 255)
        elif kind == "truncate":
            del data[rng.randint(1, len(data) - 1) :]
        elif kind == "insert":
            data[at:at] = rng.choice(MARKERS)
        elif kind == "extreme":
            data[at : at + 4] = rng.choice(MARKERS[-4:])
        else:
            start = rng.randrange(len(data))
            data[at:at] = data[start : start + rng.randint(1, 64)] * rng.randint(1, 4)
        if len(data) < 2:
            data = bytearray(seeds()[name][:2])
    return bytes(data)


def _try(source) -> str | None:
    """None when ``load_image`` gives an RGB image or an ImageError; else what went wrong."""
    try:
        array = load_image(source, MAX_PIXELS)
    except ImageError:
        return None
    except BaseException as exc:
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    if not (isinstance(array, np.ndarray) and array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3):
        return f"returned {type(array).__name__} {getattr(array, 'shape', '')} {getattr(array, 'dtype', '')}"
    return None


def test_there_are_seeds_of_the_allowed_and_the_refused_formats():
    assert {"jpeg", "png", "webp", "gif-animated", "bmp", "tiff", "eps", "dds", "spider", "pcx"} <= set(seeds())
    for name in ("jpeg", "png", "webp", "gif-animated", "bmp", "tiff", "tiff-grey-premultiplied-alpha", "heif"):
        if name in seeds():
            assert load_image(seeds()[name]).shape[2] == 3, name


@pytest.mark.filterwarnings("ignore")
def test_mutated_images_give_only_image_errors():
    started = time.perf_counter()
    failures, cases, opened = [], 0, 0
    for case in range(CASES_PER_SEED):
        for name in seeds():
            if time.perf_counter() - started > BUDGET_S:
                break
            data = mutated(name, case)
            cases += 1
            problem = _try(data)
            if problem:
                failures.append(f"mutated({name!r}, {case}) as bytes: {problem}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:  # every plugin, not just the allowed ones
                    image = Image.open(io.BytesIO(data))
                except Exception:
                    continue
            opened += 1
            problem = _try(image)
            if problem:
                failures.append(f"mutated({name!r}, {case}) as a Pillow image ({image.format}): {problem}")
    elapsed = time.perf_counter() - started
    assert not failures, f"{len(failures)} of {cases} cases (seed {SEED}) raised:\n" + "\n".join(failures)
    assert cases >= min(200, len(seeds()) * CASES_PER_SEED), f"only {cases} cases in {elapsed:.1f} s"
    assert opened > cases // 4  # the Pillow-image route did run
