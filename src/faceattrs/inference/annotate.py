"""Draw numbered boxes and short labels on a photo (Pillow only)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from faceattrs.inference.analyzer import Face

_COLOURS = ((46, 204, 113), (52, 152, 219), (231, 76, 60), (241, 196, 15), (155, 89, 182), (26, 188, 156))


def short_label(face: Face) -> str:
    """``"#1 34 (28-41) F"``: number, age and range, gender initial.

    >>> f = Face(0, (0, 0, 1, 1), 1.0, [], 34.2, 27.6, 40.9, "female", 0.9, "asian", 0.8, {})
    >>> short_label(f)
    '#1 34 (28-41) F'
    """
    return f"#{face.index + 1} {face.age:.0f} ({face.age_low:.0f}-{face.age_high:.0f}) {face.gender[0].upper()}"


def annotate(image: np.ndarray, faces: list[Face]) -> Image.Image:
    """A copy of ``image`` with every face boxed, numbered and labelled."""
    canvas = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    side = max(canvas.size)
    width = max(2, side // 300)
    font = ImageFont.load_default(size=max(12, side // 45))
    for face in faces:
        colour = _COLOURS[face.index % len(_COLOURS)]
        x, y, w, h = face.box
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=width)
        label = short_label(face) + (" ?" if face.quality_flags else "")
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        ty = y - (bottom - top) - 2 * width if y - (bottom - top) - 2 * width > 0 else y + h + width
        draw.rectangle([x, ty, x + right - left + 2 * width, ty + bottom - top + 2 * width], fill=colour)
        draw.text((x + width - left, ty + width - top), label, fill=(0, 0, 0), font=font)
    return canvas
