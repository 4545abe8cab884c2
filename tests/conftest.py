"""Shared fixtures: a synthetic UTKFace-like folder made of generated images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_UTKFACE = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "utkface" / "UTKFace"


def make_face_folder(folder: Path, n: int = 64, seed: int = 0, size: int = 200) -> list[str]:
    """Write ``n`` small JPEGs with valid UTKFace names; labels drive the colour a little."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        age, gender, race = int(rng.integers(1, 90)), int(rng.integers(0, 2)), i % 5
        image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        image[..., race % 3] = np.clip(image[..., race % 3].astype(int) // 2 + 2 * age, 0, 255)
        name = f"{age}_{gender}_{race}_20170116{i:09d}.jpg.chip.jpg"
        Image.fromarray(image).save(folder / name, quality=90)
        names.append(name)
    return names


@pytest.fixture
def face_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "UTKFace"
    make_face_folder(folder)
    return folder


@pytest.fixture(scope="session")
def shared_utkface() -> Path:
    if not SHARED_UTKFACE.is_dir():
        pytest.skip(f"UTKFace not found at {SHARED_UTKFACE}: integration test skipped")
    return SHARED_UTKFACE
