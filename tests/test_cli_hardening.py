"""The command line facing bad paths and broken model folders: one line on stderr, never a hang or a traceback."""

import json
import os
import shutil
import threading

import pytest

from faceattrs.cli import main
from tests.conftest import IMAGES, SHIPPED


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_within(seconds, capsys, *argv):
    """``run``, failing the test instead of hanging when it takes longer than ``seconds``."""
    result = []
    worker = threading.Thread(target=lambda: result.append(run(capsys, *argv)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, f"faceattrs {' '.join(argv)} still running after {seconds} s"
    return result[0]


def test_a_fifo_named_explicitly_gets_an_error_row_at_once(tmp_path, capsys):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    code, out, err = run_within(60, capsys, "predict", str(fifo), str(IMAGES / "astronaut.jpg"))
    rows = out.splitlines()
    assert code == 1 and len(rows) == 3 and ",error," in rows[1] and ",ok," in rows[2]
    assert "2 files: 1 with faces (1 face), 0 without a face, 1 unreadable" in err


def test_pipes_and_dangling_links_in_folders_are_skipped_and_counted(tmp_path, capsys):
    shutil.copy(IMAGES / "astronaut.jpg", tmp_path / "a.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    code, _, err = run_within(60, capsys, "predict", str(tmp_path))
    assert code == 0
    assert "1 file: 1 with faces (1 face), 0 without a face, 0 unreadable; 2 other files" in err


@pytest.mark.parametrize("flag", ["--output", "--annotate"])
def test_an_output_of_the_wrong_kind_is_one_line(tmp_path, capsys, flag):
    target = tmp_path if flag == "--output" else tmp_path / "a_file"
    target.touch() if flag == "--annotate" else None
    code, out, err = run(capsys, "predict", flag, str(target), str(IMAGES / "astronaut.jpg"))
    assert code == 2 and out == "" and err.startswith("faceattrs: error: ") and len(err.splitlines()) == 1
    code, _, err = run(
        capsys, "predict", "--output", str(tmp_path / "missing" / "x.csv"), str(IMAGES / "astronaut.jpg")
    )
    assert code == 2 and "does not exist" in err


def broken_model(folder, what):
    shutil.copytree(SHIPPED, folder, ignore=shutil.ignore_patterns("report*", "*.md", "*.png"))
    meta = json.loads((folder / "metadata.json").read_text())
    if what == "no sha256":
        del meta["sha256"]
    elif what == "garbage onnx":
        import hashlib

        (folder / "model.onnx").write_bytes(b"not a model" * 100)
        meta["sha256"] = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    elif what == "short class list":
        meta["classes"]["ethnicity"] = meta["classes"]["ethnicity"][:3]
    (folder / "metadata.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("what", "says"),
    [("no sha256", "lacks 'sha256'"), ("garbage onnx", "onnxruntime cannot load"), ("short class list", "3 ethnicity")],
)
def test_a_broken_model_folder_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch, what, says):
    broken_model(tmp_path / "model", what)
    monkeypatch.setenv("FACEATTRS_MODEL_DIR", str(tmp_path / "model"))
    code, out, err = run(capsys, "predict", str(IMAGES / "astronaut.jpg"))
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert says in err and str(tmp_path / "model") in err
