"""Make the committed test photos from scikit-image's `astronaut` (NASA, public domain).

Run once (needs scikit-image): ``python tests/images/make_images.py``. Every
file it writes is ours to commit; no UTKFace image is ever stored here.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels but carries almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def main() -> None:
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())  # 512x512, one face
    face = astronaut.crop((150, 20, 310, 200))  # head and shoulders
    astronaut.save(HERE / "astronaut.jpg", quality=92)

    # five faces on one canvas, different sizes
    group = Image.new("RGB", (1200, 500), (200, 210, 220))
    for i, size in enumerate((230, 210, 190, 170, 150)):
        group.paste(face.resize((size, round(size * face.height / face.width))), (20 + i * 235, 60 + i * 15))
    group.save(HERE / "group_5.jpg", quality=90)

    # about 1 megapixel, one face, as a phone would send
    astronaut.resize((1024, 1024), Image.Resampling.BICUBIC).save(HERE / "astronaut_1mp.jpg", quality=90)

    # head tilted by 25 degrees
    astronaut.rotate(25, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128)).save(
        HERE / "tilted_25.jpg", quality=90
    )

    # pixels stored sideways, EXIF orientation 6 says "rotate 90 degrees clockwise to view"
    sideways = astronaut.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(HERE / "exif_rotated.jpg", quality=90, exif=exif.tobytes())

    astronaut.convert("L").save(HERE / "grayscale.png")
    astronaut.convert("RGBA").save(HERE / "rgba.png")
    astronaut.convert("P", palette=Image.Palette.ADAPTIVE).save(HERE / "palette.png")
    astronaut.convert("CMYK").save(HERE / "cmyk.jpg", quality=90)
    grey16 = (np.asarray(astronaut.convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(grey16).save(HERE / "grey16.png")
    frames = [astronaut.resize((256, 256)), astronaut.resize((256, 256)).rotate(90)]
    frames[0].save(HERE / "animated.gif", save_all=True, append_images=frames[1:], duration=200, loop=0)
    astronaut.resize((96, 96)).save(HERE / "tiny_face.jpg", quality=90)  # face about 30 px wide

    # no face: a smooth gradient
    ramp = np.linspace(0, 255, 400, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (300, 1))] * 3, -1)).save(HERE / "no_face.png")

    # bad input
    good = (HERE / "astronaut.jpg").read_bytes()
    (HERE / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (HERE / "empty.jpg").write_bytes(b"")
    (HERE / "text.jpg").write_text("this is not an image\n")
    (HERE / "bomb_30000.png").write_bytes(png_header_only(30000, 30000))


if __name__ == "__main__":
    main()
