"""faceattrs: age (with a calibrated range), gender and ethnicity from face photos.

>>> from faceattrs import Analyzer
>>> faces = Analyzer().analyze("photo.jpg")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Analyzer", "Face", "ImageError", "ImageResult", "__version__"]

if TYPE_CHECKING:
    from faceattrs.inference.analyzer import Analyzer, Face, ImageResult
    from faceattrs.inference.decode import ImageError


def __getattr__(name: str):
    # Lazy: `import faceattrs` stays cheap for the CLI and for training code.
    if name in ("Analyzer", "Face", "ImageResult"):
        from faceattrs.inference import analyzer

        return getattr(analyzer, name)
    if name == "ImageError":
        from faceattrs.inference.decode import ImageError

        return ImageError
    raise AttributeError(f"module 'faceattrs' has no attribute {name!r}")
