"""The whole build, every step, on a tiny synthetic data set: it writes a model folder users can load,
resumes by skipping finished steps, and leaves the test part unread with ``validation_only``."""

import json
from dataclasses import replace

import numpy as np

from faceattrs.build.pipeline import BuildConfig, build
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.training.recipes import MultiTaskSettings
from tests.conftest import make_face_folder
from tests.models.test_dlib_resnet import write_tiny_net


def tiny_config(tmp_path, **changes) -> BuildConfig:
    from faceattrs.data.split import write_split
    from faceattrs.data.utkface import scan_utkface

    folder = tmp_path / "UTKFace"
    make_face_folder(folder, n=16)
    records = scan_utkface(folder).records
    parts = {r.name: "train" if i < 8 else "val" if i < 12 else "test" for i, r in enumerate(records)}
    write_split(tmp_path / "split.csv", records, parts)
    work = tmp_path / "work"
    work.mkdir()
    write_tiny_net(work / "dlib_net.xml", outputs=16)  # stands in for dlib's network: step 4 is skipped
    return BuildConfig(
        work_dir=work,
        data=folder,
        split=tmp_path / "split.csv",
        version="tiny",
        training=MultiTaskSettings(image_size=64, epochs=1, batch_size=8, pretrained=False),
        quantize_faces=8,
        **changes,
    )


def test_the_build_runs_every_step_resumes_and_leaves_test_unread(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEATTRS_CACHE", str(tmp_path / "cache"))
    config = tiny_config(tmp_path, validation_only=True)
    logged = []
    scores = build(config, log=logged.append)
    assert [line.split(" ", 2)[2].split(" (")[0] for line in logged[:-1]] == [
        "0/5 read the data and crop FairFace's faces",
        "1/5 train",
        "2/5 export and calibrate",
        "3/5 store as int8",
        "5/5 add the descriptor heads and score",
    ]
    model = AttributeModel(config.model_dir)  # the sha256 in the metadata is the file's
    assert model.metadata["version"] == "tiny"
    assert {"quantization", "descriptor_heads"} <= set(model.metadata["training"])
    assert model.predict(np.zeros((2, 200, 200, 3), np.uint8)).ethnicity_proba.shape == (2, 5)
    assert set(scores) == {"val"} and json.loads((config.model_dir / "validation.json").read_text())["n"] > 0
    assert not (config.model_dir / "report.json").exists()  # the test part was not scored
    assert not list(config.work_dir.glob("*.partial"))

    logged.clear()
    build(config, log=logged.append)  # every intermediate exists: only the last step runs again
    assert [line.split(" ", 2)[2].split(" (")[0] for line in logged[:-1]] == [
        "0/5 read the data and crop FairFace's faces",
        "5/5 add the descriptor heads and score",
    ]


def test_a_build_on_both_data_sets_scores_each(tmp_path, monkeypatch):
    import shutil

    from tests.conftest import IMAGES
    from tests.data.test_fairface import write_labels

    monkeypatch.setenv("FACEATTRS_CACHE", str(tmp_path / "cache"))
    fairface = tmp_path / "fairface"
    (fairface / "train").mkdir(parents=True)
    for name in ("astronaut.jpg", "group_5.jpg", "tiny_face.jpg"):
        shutil.copy(IMAGES / name, fairface / "train" / name)
    rows = [["train/astronaut.jpg", "30-39", "Female", "White"], ["train/group_5.jpg", "20-29", "Male", "Indian"],
            ["train/tiny_face.jpg", "more than 70", "Male", "Latino_Hispanic"]]  # fmt: skip
    write_labels(fairface, rows)
    split = tmp_path / "fairface_split.csv"
    parts = ["train", "val", "test"]
    split.write_text("file,sha256,part\n" + "".join(f"{r[0]},x,{p}\n" for r, p in zip(rows, parts, strict=True)))
    base = tiny_config(tmp_path)
    config = replace(
        base,
        training=replace(base.training, fairface=True),
        fairface_data=fairface,
        fairface_split=split,
        descriptor_heads=False,
    )
    logged = []
    scores = build(config, log=logged.append)
    assert len(logged) == 6 and logged[-1].split(" ", 2)[2].startswith("done:")
    model = AttributeModel(config.model_dir)
    assert logged[-2].split(" ", 2)[2] == "5/5 score"
    assert "quantization" in model.metadata["training"] and "descriptor_heads" not in model.metadata["training"]
    assert "FairFace" in model.metadata["training"]["data"]
    assert scores["test"]["fairface"]["n"] == 1 and scores["val"]["fairface"]["n"] == 1
    assert scores["test"]["n"] == 4  # UTKFace's test faces, scored apart
    assert 0 <= model.metadata["metrics"]["fairface_age_group_accuracy"] <= 1
    assert json.loads((config.work_dir / "build_times.json").read_text())["train"] >= 0
