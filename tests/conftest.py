"""Shared fixtures: a synthetic UTKFace-like folder made of generated images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

IMAGES = Path(__file__).resolve().parent / "images"
SHIPPED = Path(__file__).resolve().parents[1] / "src" / "faceattrs" / "assets"
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


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """The shipped model; before one is shipped, a randomly initialised one of the same shape."""
    if (SHIPPED / "model.onnx").exists():
        return SHIPPED

    return ship_random_model(tmp_path_factory.mktemp("random_model"), n_faces=20)[0]


def ship_random_model(root: Path, n_faces: int, **settings):
    """Ship a randomly initialised multitask model, trained on nothing, to ``root / "model"``.

    Every part is the same ``n_faces`` synthetic faces. Returns the model folder, the ship report
    and the faces.
    """
    from faceattrs.build.export import score_shipped, ship
    from faceattrs.data.cache import load_faces
    from faceattrs.training.recipes import build_recipe

    make_face_folder(root / "UTKFace", n=n_faces)
    recipe = build_recipe("multitask", pretrained=False, **settings)
    faces = load_faces(root / "UTKFace", recipe.input_size, cache_dir=root / "cache", progress=False)
    split = root / "split.csv"
    split.write_text("file,sha256,part\n")
    parts = {"train": faces, "val": faces, "test": faces}
    config = {"recipe": "multitask", "seed": 0}
    agreement = ship(recipe.build_model().eval(), recipe, parts, config, root / "model", split_file=split)
    report = score_shipped(root / "model", parts, extra=agreement)
    return root / "model", report, faces


@pytest.fixture(scope="session")
def analyzer(model_dir):
    from faceattrs import Analyzer

    return Analyzer(model_dir, keep_crops=True)


@pytest.fixture(scope="session")
def candidate_dir(model_dir, tmp_path_factory) -> Path:
    """``model_dir``'s model as a candidate folder: scored on validation only, so no test metrics or card."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("candidate")
    shutil.copy(model_dir / "model.onnx", folder / "model.onnx")
    metadata = json.loads((model_dir / "metadata.json").read_text())
    metadata.pop("metrics", None)
    (folder / "metadata.json").write_text(json.dumps(metadata | {"version": "candidate"}))
    return folder
