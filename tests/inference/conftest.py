from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[1] / "images"
SHIPPED = Path(__file__).resolve().parents[2] / "src" / "faceattrs" / "assets"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """The shipped model; before one is shipped, a randomly initialised one of the same shape."""
    if (SHIPPED / "model.onnx").exists():
        return SHIPPED
    from tests.conftest import make_face_folder

    from faceattrs.data.cache import load_faces
    from faceattrs.training.export import ship
    from faceattrs.training.recipes import build_recipe

    root = tmp_path_factory.mktemp("random_model")
    make_face_folder(root / "UTKFace", n=20)
    faces = load_faces(root / "UTKFace", 112, cache_dir=root / "cache", progress=False)
    recipe = build_recipe("multitask", pretrained=False)
    split = root / "split.csv"
    split.write_text("file,sha256,part\n")
    parts = {"train": faces, "val": faces, "test": faces}
    ship(recipe.build_model().eval(), recipe, parts, {"recipe": "multitask"}, root / "model", split_file=split)
    return root / "model"


@pytest.fixture(scope="session")
def analyzer(model_dir):
    from faceattrs import Analyzer

    return Analyzer(model_dir, keep_crops=True)
