"""Random photo degradations of model-input faces, for training a model to shrug them off.

``degrade(image, rng)`` applies one or two of: sensor noise, JPEG compression, blur, greyscale,
too little or too much light, low contrast, and a tight crop (the face's surroundings replaced by
stretched border pixels, as the photo pipeline's alignment fills what lies outside a photo), each
with a random strength. The families are those of ``benchmarks/robustness.py`` but the strengths
are drawn from ranges rather than its fixed levels, and its framing-outwards and rotation
conditions are left out, so the benchmark also shows how a model does on kinds it never trained on.

>>> import numpy as np
>>> face = np.full((128, 128, 3), 128, np.uint8)
>>> out = degrade(face, np.random.default_rng(0))
>>> out.shape, out.dtype
((128, 128, 3), dtype('uint8'))
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def _noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(0, rng.uniform(3, 20), x.shape)


def _jpeg(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(_to_uint8(x)).save(buffer, "JPEG", quality=int(rng.integers(8, 60)))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), np.float32)


def _blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    image = Image.fromarray(_to_uint8(x)).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    return np.asarray(image, np.float32)


def _grey(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.repeat(x @ np.array([0.299, 0.587, 0.114], np.float32), 3).reshape(x.shape)


def _light(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x * rng.uniform(0.3, 1.7)


def _contrast(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    keep = rng.uniform(0.4, 0.9)
    return keep * x + (1 - keep) * rng.uniform(60, 190)


def _tight(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = x.shape[0]
    inner = round(side * rng.uniform(0.6, 0.9))
    top, left = (side - inner) // 2 + rng.integers(-3, 4, 2)
    top, left = int(np.clip(top, 0, side - inner)), int(np.clip(left, 0, side - inner))
    kept = x[top : top + inner, left : left + inner]
    return np.pad(kept, ((top, side - inner - top), (left, side - inner - left), (0, 0)), mode="edge")


DEGRADATIONS = (_noise, _jpeg, _blur, _grey, _light, _contrast, _tight)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` (H x W x 3 uint8) with one or two random degradations, applied in a random order."""
    x = image.astype(np.float32)
    for k in rng.choice(len(DEGRADATIONS), int(rng.integers(1, 3)), replace=False):
        x = DEGRADATIONS[k](x, rng)
    return _to_uint8(x)
