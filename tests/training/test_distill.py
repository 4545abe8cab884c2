import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from faceattrs.cli import main
from faceattrs.data.cache import load_faces
from faceattrs.training.distill import describe_teachers, save_soft_targets, soft_targets_for
from faceattrs.training.engine import train
from faceattrs.training.recipes import build_recipe, soft_target_loss

TINY = ["--set", "image_size=32", "--set", "batch_size=16", "--set", "pretrained=false"]


def _batch(n: int = 4):
    torch.manual_seed(0)
    out = {"age": torch.randn(n, 117), "ethnicity": torch.randn(n, 5), "gender": torch.randn(n, 2)}
    targets = {"age": torch.full((n,), 30.0), "race": torch.zeros(n, dtype=torch.long),
               "gender": torch.ones(n, dtype=torch.long)}  # fmt: skip
    return out, targets


def test_soft_target_loss_is_zero_when_the_student_matches_its_teachers():
    out, _ = _batch()
    same = {f"soft_{head}": logits.softmax(1) for head, logits in out.items()}
    assert soft_target_loss(out, same).item() == pytest.approx(0, abs=1e-6)
    other = {f"soft_{head}": torch.full_like(logits, 1 / logits.shape[1]) for head, logits in out.items()}
    assert soft_target_loss(out, other).item() > 0.1


def test_distill_weight_blends_the_label_and_teacher_losses():
    out, targets = _batch()
    targets |= {f"soft_{head}": torch.full_like(v, 1 / v.shape[1]) for head, v in out.items()}
    labels_only = build_recipe("multitask", pretrained=False).loss(out, targets)
    half = build_recipe("multitask", pretrained=False, distill_from="t.safetensors", distill_weight=0.5)
    expected = 0.5 * labels_only + 0.5 * soft_target_loss(out, targets)
    torch.testing.assert_close(half.loss(out, targets), expected)


def test_soft_targets_are_looked_up_by_face_name(face_folder, tmp_path):
    faces = load_faces(face_folder, 32, cache_dir=tmp_path / "cache", progress=False)
    n = len(faces)
    targets = {head: np.random.default_rng(0).random((n, k), dtype=np.float32)
               for head, k in (("age", 117), ("ethnicity", 5), ("gender", 2))}  # fmt: skip
    path = tmp_path / "t.safetensors"
    save_soft_targets(path, targets, faces.names, teachers=["runs/a", "runs/b"])
    with safe_open(str(path), framework="numpy") as f:
        assert json.loads(f.metadata()["teachers"]) == ["runs/a", "runs/b"]
    some = faces.subset(np.array([5, 1, 3]))
    rows = soft_targets_for(path, some)
    np.testing.assert_array_equal(rows["age"], targets["age"][[5, 1, 3]])
    np.testing.assert_array_equal(rows["gender"], targets["gender"][[5, 1, 3]])
    save_soft_targets(path, {h: t[:10] for h, t in targets.items()}, faces.names[:10], teachers=[])
    with pytest.raises(ValueError, match=f"no soft targets for {n - 10} of the faces"):
        soft_targets_for(path, faces)


def test_teach_then_train_a_student_from_the_cli(face_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEATTRS_CACHE", str(tmp_path / "cache"))
    split = tmp_path / "split.csv"
    assert main(["data", "split", str(face_folder), "--out", str(split)]) == 0
    common = ["--data", str(face_folder), "--split", str(split)]
    teachers = [tmp_path / "t1", tmp_path / "t2"]
    for seed, run in enumerate(teachers):
        assert main(["train", "--out", str(run), "--epochs", "1", "--seed", str(seed), *TINY, *common]) == 0
    soft = tmp_path / "soft.safetensors"
    assert main(["teach", *map(str, teachers), "--out", str(soft), *common]) == 0
    assert "soft targets of 2 teachers" in capsys.readouterr().out
    with safe_open(str(soft), framework="numpy") as f:
        n_train = len(json.loads(f.metadata()["names"]))
        age = f.get_tensor("age")
    assert age.shape == (n_train, 117)
    np.testing.assert_allclose(age.sum(1), 1, rtol=1e-5)  # a mean of distributions is a distribution

    student = tmp_path / "student"
    distill = ["--set", f"distill_from={soft}", "--set", "distill_weight=0.7"]
    assert main(["train", "--out", str(student), "--epochs", "1", *TINY, *distill, *common]) == 0
    config = json.loads((student / "config.json").read_text())
    assert config["settings"]["distill_from"] == str(soft) and config["settings"]["distill_weight"] == 0.7
    # the teachers changed what was learnt: the same run without them ends with other weights
    assert main(["train", "--out", str(tmp_path / "plain"), "--epochs", "1", *TINY, *common]) == 0
    a = (student / "model.safetensors").read_bytes()
    assert a != (tmp_path / "plain" / "model.safetensors").read_bytes()


def test_teach_needs_finished_runs(tmp_path, capsys):
    assert main(["teach", str(tmp_path), "--out", str(tmp_path / "t.safetensors")]) == 2
    assert "not a finished run folder" in capsys.readouterr().err


def test_a_student_whose_soft_targets_miss_training_faces_stops_before_training(face_folder, tmp_path):
    faces = load_faces(face_folder, 32, cache_dir=tmp_path / "cache", progress=False)
    path = tmp_path / "t.safetensors"
    save_soft_targets(path, {"age": np.zeros((1, 117), np.float32), "ethnicity": np.zeros((1, 5), np.float32),
                             "gender": np.zeros((1, 2), np.float32)}, faces.names[:1], teachers=[])  # fmt: skip
    recipe = build_recipe("multitask", image_size=32, pretrained=False, distill_from=str(path))
    with pytest.raises(ValueError, match="no soft targets"):
        train(recipe, faces, faces, tmp_path / "run", epochs=1, progress=False)


def test_describe_teachers_reads_each_teachers_run_folder(tmp_path):
    run = tmp_path / "runs" / "teacher"
    run.mkdir(parents=True)
    settings = {"backbone": "lite2"}
    (run / "config.json").write_text(json.dumps({"recipe": "multitask", "settings": settings, "epochs_run": 14,
                                                 "train_seconds": 6965.0}))  # fmt: skip
    path = tmp_path / "t.safetensors"
    zeros = {"age": np.zeros((0, 117), np.float32), "ethnicity": np.zeros((0, 5), np.float32),
             "gender": np.zeros((0, 2), np.float32)}  # fmt: skip
    save_soft_targets(path, zeros, np.array([], dtype=str), teachers=[run, tmp_path / "gone"])
    assert describe_teachers(path) == [
        {"run": "teacher", "backbone": "lite2", "epochs_run": 14, "train_seconds": 6965.0},
        {"run": "gone", "backbone": None, "epochs_run": None, "train_seconds": None},
    ]
