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
    assert "neither a training run" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r"), "--set", "nonsense"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_bad_arguments_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["train", "--recipe", "nope", "--out", "x"])
    assert exc.value.code == 2


def test_help_lists_the_user_commands_first():
    from faceattrs.cli import build_parser

    commands = list(build_parser()._subparsers._group_actions[0].choices)
    assert commands == ["predict", "app", "serve", "data", "train", "evaluate", "build"]


def test_build_takes_its_defaults_from_the_build_config(monkeypatch, tmp_path, capsys):
    import faceattrs.build.pipeline as pipeline

    seen = []

    def fake_build(config):
        seen.append(config)
        return {"val": {"n": 3, "gender": {"accuracy": 0.5}}}

    monkeypatch.setattr(pipeline, "build", fake_build)
    assert main(["build", "--work-dir", str(tmp_path), "--validation-only"]) == 0
    (config,) = seen
    assert config == pipeline.BuildConfig(work_dir=tmp_path, validation_only=True)
    assert config.model_dir == tmp_path / "model"
    assert "val: 3 faces, gender 0.5000" in capsys.readouterr().out


def test_evaluate_scores_a_model_folder_through_onnx(face_folder, tmp_path, monkeypatch, capsys):
    from tests.conftest import ship_random_model

    monkeypatch.setenv("FACEATTRS_CACHE", str(tmp_path / "cache"))
    split = tmp_path / "split.csv"
    assert main(["data", "split", str(face_folder), "--out", str(split)]) == 0
    model, _, _ = ship_random_model(tmp_path / "m", n_faces=20, image_size=64, backbone="lite1")
    assert main(["evaluate", str(model), "--data", str(face_folder), "--split", str(split)]) == 0
    metrics = json.loads((model / "eval_val" / "metrics.json").read_text())
    assert metrics["model"]["part"] == "val" and metrics["gender"]["n"] > 0
    assert "val: " in capsys.readouterr().out


def test_data_commands_read_a_fairface_folder_by_its_labels_file(tmp_path, capsys):
    from tests.data.test_fairface import synthetic_folder

    folder = tmp_path / "fairface"
    synthetic_folder(folder, n=40)
    assert main(["data", "inspect", str(folder), "--no-decode"]) == 0
    assert "race (FairFace's 7):" in capsys.readouterr().out
    split = tmp_path / "fairface_split.csv"
    assert main(["data", "split", str(folder), "--out", str(split)]) == 0
    assert split.read_text().startswith("file,sha256,part\n") and len(split.read_text().splitlines()) == 41
    assert f"wrote {split}: train 3" in capsys.readouterr().out
