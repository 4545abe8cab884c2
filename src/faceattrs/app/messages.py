"""Friendly, specific messages for every way an upload can fail (no tracebacks, ever).

>>> friendly("not_an_image", "x", "cat.txt")
'**cat.txt** is not an image faceattrs can read. Try a JPEG, PNG or WebP photo.'
"""

from __future__ import annotations

from faceattrs.inference.decode import DEFAULT_MAX_PIXELS

MAX_UPLOAD_MB = 25
MAX_FACES = 50


def friendly(code: str | None, message: str | None, name: str) -> str:
    """The message shown for an image whose result is ``error`` or ``no_face``: one for every code, never a trace.

    >>> friendly("too_complex", "the image has over 100 scans", "x.jpg")
    '**x.jpg** was refused: the image has over 100 scans. Save it again as an ordinary JPEG or PNG.'
    """
    texts = {
        "no_face": f"No face found in **{name}**. Try a photo where the face is frontal, lit and at least "
        "about 40 pixels wide.",
        "not_an_image": f"**{name}** is not an image faceattrs can read. Try a JPEG, PNG or WebP photo.",
        "unsupported_format": f"**{name}** is in a format faceattrs does not open: {message}.",
        "empty": f"**{name}** is empty.",
        "corrupt": f"**{name}** looks damaged or cut short; it could not be decoded.",
        "too_large": f"**{name}** is too large: {message}. The limit is {DEFAULT_MAX_PIXELS / 1e6:.0f} megapixels "
        f"and {MAX_UPLOAD_MB} MB per file.",
        "too_complex": f"**{name}** was refused: {message}. Save it again as an ordinary JPEG or PNG.",
        "too_small": f"**{name}** is too small to analyse: {message}.",
        # the app passes uploaded bytes; these come from files and arrays, for the Python API's callers
        "unreadable": f"**{name}** could not be read: {message}.",
        "not_found": f"**{name}** was not found.",
        "not_a_file": f"**{name}** is not a file: {message}.",
        "bad_array": f"**{name}** is not an RGB picture: {message}.",
        "unsupported_input": f"**{name}** is not an image: {message}.",
    }
    return texts.get(code or "", f"**{name}** could not be analysed: {message}")


#: how a flag reads in a sentence, where its name alone would not say enough
FLAG_WORDS = {"compressed": "blocky from JPEG compression"}


def quality_warning(flags: list[str]) -> str:
    """The caution shown under a face the pipeline flagged (``Face.quality_flags``).

    >>> quality_warning(["small", "blurry", "noisy"])
    'Treat with care: the face is small, blurry and noisy, so these estimates are less reliable.'
    >>> quality_warning(["cut off"])
    'Treat with care: the face is cut off, so these estimates are less reliable.'
    >>> quality_warning(["small", "compressed"])
    'Treat with care: the face is small and blocky from JPEG compression, so these estimates are less reliable.'
    """
    words = [FLAG_WORDS.get(flag, flag) for flag in flags]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"Treat with care: the face is {listed}, so these estimates are less reliable."
