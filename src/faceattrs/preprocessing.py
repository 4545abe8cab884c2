"""The one preprocessing step shared by training and serving.

Every model in the project sees faces that went through :func:`to_model_input`:
an aligned RGB face crop (UTKFace geometry, 200x200 for the data set) resized
to the model's square input with Pillow's antialiased bilinear filter. The
training cache is built with it and the prediction core calls it, so the two
cannot drift apart.

>>> import numpy as np
>>> to_model_input(np.zeros((200, 200, 3), np.uint8), 80).shape
(80, 80, 3)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

RESAMPLE = Image.Resampling.BILINEAR


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode (L, LA, P, RGBA, CMYK, I;16, ...) to 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grey: scale to 8 bits instead of clipping.
        array = np.asarray(image, dtype=np.float64)
        top = max(float(array.max()), 1.0)
        image = Image.fromarray((array * (255.0 / top)).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def to_model_input(face: np.ndarray | Image.Image, size: int) -> np.ndarray:
    """Resize an aligned RGB face crop to ``size`` x ``size`` uint8 RGB."""
    image = face if isinstance(face, Image.Image) else Image.fromarray(np.asarray(face, np.uint8))
    image = to_rgb(image)
    if image.size != (size, size):
        image = image.resize((size, size), RESAMPLE)
    return np.asarray(image, dtype=np.uint8)
