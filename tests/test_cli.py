import json

import pytest

from faceattrs.cli import main


def test_inspect_prints_counts_and_quirks(face_folder, capsys):
    (face_folder / "39_1_20170116174525125.jpg.chip.jpg").write_bytes(next(face_folder.glob("*.jpg")).read_bytes())
    (face_folder / "broken.jpg").write_text("x")
    assert main(["data", "inspect", str(face_folder)]) == 0
    out = capsys.readouterr().out
    assert "images: 65 readable, 1 skipped" in out
    assert "missing_race: 1" in out
    assert "duplicate groups (byte-identical): 1 groups, 2 files, 1 with disagreeing labels" in out


def test_split_train_evaluate_end_to_end(face_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEATTRS_CACHE", str(tmp_path / "cache"))
    split = tmp_path / "split.csv"
    assert main(["data", "split", str(face_folder), "--out", str(split)]) == 0
    assert split.read_text().startswith("file,sha256,part\n")
    run = tmp_path / "run"
    common = ["--data", str(face_folder), "--split", str(split)]
    assert main(["train", "--recipe", "seed-age", "--out", str(run), "--epochs", "2", *common]) == 0
    assert main(["evaluate", str(run), "--part", "train", *common]) == 0
    report = run / "eval_project_train"
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["model"]["recipe"] == "seed-age" and metrics["age"]["n"] > 0
    for name in ("report.md", "age_scatter.png", "age_error_hist.png", "training_curves.png"):
        assert (report / name).stat().st_size > 0, name
    assert "| MAE | RMSE | CS@5 |" in (report / "report.md").read_text()


def test_user_errors_are_one_line_without_traceback(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("faceattrs: error: UTKFace folder not found") and "Traceback" not in err
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a training run" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r"), "--set", "nonsense"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_bad_arguments_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["train", "--recipe", "nope", "--out", "x"])
    assert exc.value.code == 2


def test_add_descriptor_heads_validation_only_leaves_the_test_part_alone(face_folder, tmp_path, monkeypatch, capsys):
    from tests.conftest import ship_random_model
    from tests.models.test_dlib_resnet import write_tiny_net

    monkeypatch.setenv("FACEATTRS_CACHE", str(tmp_path / "cache"))
    split = tmp_path / "split.csv"
    assert main(["data", "split", str(face_folder), "--out", str(split)]) == 0
    base, _, _ = ship_random_model(tmp_path / "base", n_faces=20, image_size=64, backbone="lite1")
    write_tiny_net(tmp_path / "net.xml", outputs=16)
    out = tmp_path / "candidate"
    args = ["--net", str(tmp_path / "net.xml"), "--model-dir", str(base), "--out", str(out), "--version", "c"]
    common = ["--data", str(face_folder), "--split", str(split)]
    int8 = ["--int8-descriptors", "--descriptor-calibration", "percentile"]
    assert main(["add-descriptor-heads", *args, "--validation-only", *int8, *common]) == 0
    assert "test not scored" in capsys.readouterr().out
    assert json.loads((out / "validation.json").read_text())["gender"]["n"] > 0
    assert not (out / "report.json").exists() and not (out / "MODEL_CARD.md").exists()
    blend = json.loads((out / "metadata.json").read_text())["training"]["descriptor_heads"]
    assert "descriptor network int8" in blend["weights_stored_as"]
    assert "percentile calibration" in blend["weights_stored_as"]


def test_quantize_refuses_bad_arguments_in_one_line(tmp_path, model_dir, capsys):
    common = ["--out", str(tmp_path / "int8"), "--version", "q"]
    assert main(["quantize", "--model-dir", str(tmp_path / "missing"), *common]) == 2
    assert main(["quantize", "--model-dir", str(model_dir), "--out", str(model_dir), "--version", "q"]) == 2
    assert main(["quantize", "--model-dir", str(model_dir), *common, "--calibration-faces", "0"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(e.startswith("faceattrs: error: ") for e in errors)
    assert not (tmp_path / "int8").exists()


def test_self_distill_refuses_bad_arguments_in_one_line(tmp_path, model_dir, capsys):
    common = ["--out", str(tmp_path / "tuned"), "--version", "sd"]
    assert main(["self-distill", "--model-dir", str(tmp_path / "missing"), *common]) == 2
    assert main(["self-distill", "--model-dir", str(model_dir), "--out", str(model_dir), "--version", "sd"]) == 2
    assert main(["self-distill", "--model-dir", str(model_dir), *common, "--degrade", "1.5"]) == 2
    assert main(["self-distill", "--model-dir", str(model_dir), *common, "--epochs", "0"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 4 and all(e.startswith("faceattrs: error: ") for e in errors)
    assert not (tmp_path / "tuned").exists()


def test_export_refuses_score_only_with_validation_only(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"recipe": "multitask", "seed": 0}))
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "m"), "--score-only", "--validation-only"]) == 2
    assert "--validation-only is for a new candidate" in capsys.readouterr().err
