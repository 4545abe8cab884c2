"""Draw numbered boxes and short labels on a photo (Pillow only)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from faceattrs.inference.records import Face

_COLOURS = ((46, 204, 113), (52, 152, 219), (231, 76, 60), (241, 196, 15), (155, 89, 182), (26, 188, 156))


def short_label(face: Face) -> str:
    """``"#1 34 (28-41) F"``: number (from 1, as in every output), age and range, gender initial.

    >>> f = Face(0, (0, 0, 1, 1), 1.0, [], 34.2, 27.6, 40.9, "female", 0.9, "asian", 0.8, {})
    >>> short_label(f)
    '#1 34 (28-41) F'
    """
    return f"#{face.number} {face.age:.0f} ({face.age_low:.0f}-{face.age_high:.0f}) {face.gender[0].upper()}"


def label_position(
    box: tuple[float, float, float, float], label: tuple[int, int], image: tuple[int, int]
) -> tuple[float, float]:
    """Top-left corner of a ``label`` (width, height) for a face ``box`` (x, y, w, h) in an ``image`` (width, height).

    Above the box when it fits there, else below it, else inside the box at its top; always inside the
    picture, so that a face touching an edge keeps a readable label.

    >>> label_position((10, 50, 40, 40), (30, 12), (100, 100))  # room above the box
    (10, 38)
    >>> label_position((10, 0, 40, 100), (30, 12), (100, 100))  # the box fills the height: inside it
    (10, 0)
    >>> label_position((90, 5, 40, 40), (30, 12), (100, 100))  # past the right edge: moved in
    (70, 45)
    """
    x, y, _, h = box
    label_w, label_h = label
    width, height = image
    if y - label_h >= 0:
        top = y - label_h
    elif y + h + label_h <= height:
        top = y + h
    else:
        top = max(0, y)
    left = min(max(0, x), width - label_w)
    return max(0, left), min(max(0, top), height - label_h)


def annotate(image: np.ndarray, faces: list[Face]) -> Image.Image:
    """A copy of ``image`` with every face boxed, numbered and labelled; every label lies inside the picture."""
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
        size = (right - left + 2 * width, bottom - top + 2 * width)  # the text and its margin
        lx, ly = label_position((x, y - width, w, h + 2 * width), size, canvas.size)
        draw.rectangle([lx, ly, lx + size[0] - 1, ly + size[1] - 1], fill=colour)
        draw.text((lx + width - left, ly + width - top), label, fill=(0, 0, 0), font=font)
    return canvas
