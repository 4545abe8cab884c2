"""The app's page icon, drawn here: Streamlit fetches a ``:material/...:`` or emoji icon from a font host or CDN.

>>> page_icon().size
(64, 64)
"""

from __future__ import annotations

from functools import cache

from PIL import Image, ImageDraw


@cache
def page_icon() -> Image.Image:
    """A 64x64 face (a disc with eyes and a smile) in the app's blue; Streamlit serves it from the app itself."""
    icon = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.ellipse([2, 2, 61, 61], fill=(31, 111, 209, 255))
    for x in (20, 38):
        draw.ellipse([x, 20, x + 6, 27], fill=(255, 255, 255, 255))
    draw.arc([17, 22, 46, 48], start=20, end=160, fill=(255, 255, 255, 255), width=4)
    return icon
