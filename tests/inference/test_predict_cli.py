import csv
import io
import json
import shutil

import pytest

from faceattrs.cli import main
from faceattrs.inference.records import COLUMNS
from tests.conftest import IMAGES

HEADER = (
    "path,face,status,x,y,w,h,det_score,age,age_low,age_high,gender,gender_prob,ethnicity,ethnicity_prob,"
    "p_white,p_black,p_asian,p_indian,p_others,error"
)


@pytest.fixture(autouse=True)
def use_model(model_dir, monkeypatch):
    import faceattrs.inference.attribute_model as am

    monkeypatch.setattr(am, "default_model_dir", lambda: model_dir)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_columns_are_exactly_the_contract():
    assert ",".join(COLUMNS) == HEADER


def test_folder_is_walked_recursively_by_content(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    shutil.copy(IMAGES / "group_5.jpg", tmp_path / "sub" / "group.data")  # image without an image extension
    shutil.copy(IMAGES / "no_face.png", tmp_path / "plain.png")
    (tmp_path / "notes.txt").write_text("not an image")  # skipped: folders keep images only
    code, out, err = run(capsys, "predict", str(tmp_path))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0
    assert out.splitlines()[0] == HEADER
    assert [(r["path"].split("/")[-1], r["status"]) for r in rows] == [("plain.png", "no_face")] + [
        ("group.data", "ok")
    ] * 5
    assert [r["face"] for r in rows[1:]] == ["1", "2", "3", "4", "5"]  # as numbered on the annotated pictures
    assert rows[0]["error"] == "no face found" and rows[0]["age"] == ""
    ok = rows[1]
    assert ok["gender"] in ("male", "female") and ok["ethnicity"] in (
        "white",
        "black",
        "asian",
        "indian",
        "others",
    )
    assert float(ok["age_low"]) <= float(ok["age"]) <= float(ok["age_high"])
    assert "2 files: 1 with faces (5 faces), 1 without a face, 0 unreadable" in err


def test_damaged_photo_in_a_folder_gets_an_error_row_and_other_files_are_counted(tmp_path, capsys):
    shutil.copy(IMAGES / "no_face.png", tmp_path / "plain.png")
    (tmp_path / "broken.JPG").write_bytes(b"")  # a photo by its name: reported, not silently dropped
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    code, out, err = run(capsys, "predict", str(tmp_path))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 1
    assert [(r["path"].split("/")[-1], r["status"], r["error"]) for r in rows] == [
        ("broken.JPG", "error", "the file is empty"),
        ("plain.png", "no_face", "no face found"),
    ]
    summary = "2 files: 0 with faces (0 faces), 1 without a face, 1 unreadable; 2 other files in the folders skipped"
    assert summary in err


def test_bad_files_get_error_rows_and_exit_1(tmp_path, capsys):
    files = [IMAGES / n for n in ("empty.jpg", "astronaut.jpg", "text.jpg", "truncated.jpg", "bomb_30000.png")]
    code, out, err = run(capsys, "predict", *map(str, files), str(tmp_path / "missing.jpg"))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 1
    assert [r["status"] for r in rows] == ["error", "ok", "error", "error", "error", "error"]
    assert rows[0]["error"] == "the file is empty"
    assert rows[2]["error"] == "the data is not an image format faceattrs can read"
    assert rows[3]["error"].startswith("the image data is damaged or truncated")
    assert rows[4]["error"] == "the image has 900 megapixels; the limit is 50 megapixels"
    assert rows[5]["error"].startswith("no such file")
    assert "5 unreadable" in err and "Traceback" not in err


def test_jsonl_output_file_and_annotations(tmp_path, capsys):
    out_file = tmp_path / "out.jsonl"
    images = [str(IMAGES / "group_5.jpg"), str(IMAGES / "astronaut.jpg")]
    options = ["--format", "jsonl", "--output", str(out_file), "--annotate", str(tmp_path / "ann")]
    code, out, _ = run(capsys, "predict", *options, "--batch-size", "2", *images)
    assert code == 0 and out == ""
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(rows) == 6 and list(rows[0]) == list(COLUMNS)
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == [
        "00000_group_5.jpg",
        "00001_astronaut.jpg",
    ]


def test_aligned_mode_skips_detection(tmp_path, capsys):
    code, out, _ = run(capsys, "predict", "--aligned", str(IMAGES / "no_face.png"))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows[0]["status"] == "ok" and rows[0]["w"] == "400.0"


@pytest.mark.parametrize(
    "argv", [["predict"], ["predict", "--format", "xml", "a.jpg"], ["predict", "--batch-size", "x", "a.jpg"]]
)
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_zero_batch_size_is_a_user_error(capsys):
    code, _, err = run(capsys, "predict", "--batch-size", "0", str(IMAGES / "astronaut.jpg"))
    assert code == 2 and "--batch-size must be at least 1" in err


def test_a_file_named_like_a_formula_is_plain_text_in_the_csv_and_exact_in_jsonl(tmp_path, capsys, monkeypatch):
    name = '=HYPERLINK("evil.invalid","click").jpg'  # a file name cannot hold a slash
    shutil.copy(IMAGES / "astronaut.jpg", tmp_path / name)
    monkeypatch.chdir(tmp_path)  # `faceattrs predict .` writes the names as they are, starting with "="
    code, out, _ = run(capsys, "predict", ".")
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and row["path"] == "'" + name  # a spreadsheet shows it; it never runs it
    assert float(row["age"]) > 0 and float(row["x"]) >= 0  # numbers stay numbers
    code, out, _ = run(capsys, "predict", "--format", "jsonl", ".")
    assert json.loads(out)["path"] == name
