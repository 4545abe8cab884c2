"""``faceattrs predict`` over a folder: a run killed with SIGKILL and resumed, and the Ray engine, each compared
with an uninterrupted run of the local engine on the same files (the shipped model, real photos)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

IMAGES = Path(__file__).resolve().parents[1] / "images"
FACEATTRS = [sys.executable, "-m", "faceattrs.cli"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Photos with faces, without, and unreadable ones: every kind of row."""
    folder = tmp_path_factory.mktemp("photos")
    names = [
        "astronaut.jpg",
        "group_5.jpg",
        "no_face.png",
        "truncated.jpg",
        "empty.jpg",
        "tilted_25.jpg",
        "exif_rotated.jpg",
        "grayscale.png",
        "tiny_face.jpg",
        "cmyk.jpg",
    ]
    for i in range(2):
        for name in names:
            shutil.copy(IMAGES / name, folder / f"{i}_{name}")
    return folder


@pytest.fixture(scope="module")
def uninterrupted(folder, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("whole") / "rows.csv"
    subprocess.run([*FACEATTRS, "predict", str(folder), "--output", str(out)], capture_output=True, check=False)
    return pd.read_csv(out, keep_default_na=False, dtype=str)


def test_a_killed_run_resumed_gives_the_rows_of_an_uninterrupted_run(folder, uninterrupted, tmp_path):
    out = tmp_path / "rows.csv"
    manifest = tmp_path / "rows.csv.progress"
    # one face per model batch: results, and so shards, arrive one file at a time, not all at the end
    command = [*FACEATTRS, "predict", str(folder), "--output", str(out), "--shard-size", "1", "--batch-size", "1"]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        if manifest.is_file() and len(manifest.read_text().splitlines()) >= 3:  # the header and two shards
            break
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    shards = len(manifest.read_text().splitlines()) - 1
    assert 2 <= shards < 20, "the run was to be killed part way through"
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, check=False)
    assert "already in the output" in resumed.stderr
    pd.testing.assert_frame_equal(pd.read_csv(out, keep_default_na=False, dtype=str), uninterrupted)


def test_the_ray_engine_gives_the_rows_of_the_local_engine(folder, uninterrupted, tmp_path):
    pytest.importorskip("ray", reason="the Ray engine is an extra: pip install 'faceattrs[ray]'")
    out = tmp_path / "rows.parquet"
    run = subprocess.run(
        [
            *FACEATTRS,
            "predict",
            str(folder),
            "--engine",
            "ray",
            "--workers",
            "2",
            "--shard-size",
            "7",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stderr[-2000:]  # 1: some files are unreadable, as in the local run
    local_summary = "20 files: 14 with faces"
    assert local_summary in run.stderr.splitlines()[-1]
    rows = pd.read_parquet(out)
    assert len(rows) == len(uninterrupted)
    # Parquet keeps numbers as numbers; written as CSV they are the local engine's cells exactly
    as_csv = tmp_path / "rows.csv"
    rows.to_csv(as_csv, index=False)
    csv_rows = pd.read_csv(as_csv, keep_default_na=False, dtype=str)
    for column in ("path", "status", "gender", "ethnicity", "error"):
        assert csv_rows[column].tolist() == uninterrupted[column].tolist(), column
    numbers = [c for c in uninterrupted.columns if c not in ("path", "status", "gender", "ethnicity", "error")]
    expected = uninterrupted[numbers].replace("", float("nan")).astype(float)
    pd.testing.assert_frame_equal(rows[numbers].astype(float), expected)
