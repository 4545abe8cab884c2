"""Sharded outputs and --resume, on rows made up here (no model): every format, a killed run, a changed file."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from faceattrs.batch.outputs import OutputError, ShardedOutput, file_identity
from faceattrs.batch.run import FileRows, predict_files

COLUMNS = ("path", "face", "status", "age", "gender", "error")


def fake_engine(calls: list[str], fail_after: int | None = None):
    """Rows that depend on the file only: a face per byte of the file's name length, odd ones without faces."""

    def run(paths):
        for n, path in enumerate(paths):
            if fail_after is not None and n == fail_after:
                raise KeyboardInterrupt  # the run is stopped in the middle of a shard
            calls.append(path)
            if len(path) % 2:
                yield FileRows(
                    "no_face",
                    0,
                    [
                        {
                            "path": path,
                            "face": "",
                            "status": "no_face",
                            "age": "",
                            "gender": "",
                            "error": "no face found",
                        }
                    ],
                )
            else:
                yield FileRows(
                    "ok",
                    2,
                    [
                        {"path": path, "face": k, "status": "ok", "age": 20.5 + k, "gender": "female", "error": ""}
                        for k in (1, 2)
                    ],
                )

    return run


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for i in range(23):
        path = folder / f"{'p' * (i % 3)}{i:03d}.jpg"
        path.write_bytes(b"x" * (i + 1))
        paths.append(path)
    return paths


def read(path, fmt):
    if fmt == "parquet":
        return pd.read_parquet(path)
    if fmt == "csv":
        return pd.read_csv(path, keep_default_na=False, dtype=str)
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()])


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_an_interrupted_run_resumed_gives_the_rows_of_an_uninterrupted_one(tmp_path, photos, fmt):
    whole = tmp_path / f"whole.{fmt}"
    with ShardedOutput(whole, fmt, COLUMNS) as out:
        predict_files(photos, fake_engine([]), out, shard_files=5, progress=False)

    parts = tmp_path / f"parts.{fmt}"
    with pytest.raises(KeyboardInterrupt), ShardedOutput(parts, fmt, COLUMNS) as out:
        predict_files(photos, fake_engine([], fail_after=13), out, shard_files=5, progress=False)
    if fmt != "parquet":  # a shard cut short by the kill: half its rows reached the file
        with parts.open("a") as f:
            f.write("half a row,")
    calls: list[str] = []
    with ShardedOutput(parts, fmt, COLUMNS, resume=True) as out:
        assert len(out.done) == 10  # two shards of 5 were recorded; the third was lost
        summary = predict_files(photos, fake_engine(calls), out, shard_files=5, progress=False)
    assert calls == [str(p) for p in photos[10:]]
    assert summary.already_done == 10 and summary.files == 13
    pd.testing.assert_frame_equal(read(parts, fmt), read(whole, fmt))


def test_parquet_shards_share_one_schema_with_nulls_for_empty_cells(tmp_path, photos):
    out_dir = tmp_path / "out.parquet"
    with ShardedOutput(out_dir, "parquet", COLUMNS) as out:
        predict_files(photos[1:2] + photos[:1], fake_engine([]), out, shard_files=1, progress=False)
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert sorted(p.name for p in out_dir.iterdir()) == [
        "_progress.jsonl",
        "part-000000.parquet",
        "part-000001.parquet",
    ]
    table = pq.read_table(out_dir)  # the folder is one table, the manifest left out
    assert table.schema.field("face").type == pa.int64() and table.schema.field("age").type == pa.float64()
    assert table.column("age").null_count == 1 and table.column("face").null_count == 1
    assert table.num_rows == 3


def test_a_file_changed_since_it_was_written_is_refused_on_resume(tmp_path, photos):
    path = tmp_path / "out.csv"
    with ShardedOutput(path, "csv", COLUMNS) as out:
        predict_files(photos[:4], fake_engine([]), out, shard_files=2, progress=False)
    photos[1].write_bytes(b"changed, and longer than before")
    with ShardedOutput(path, "csv", COLUMNS, resume=True) as out, pytest.raises(OutputError, match="1 file changed"):
        predict_files(photos, fake_engine([]), out, progress=False)


def test_resume_refuses_other_columns_and_a_shortened_file(tmp_path, photos):
    path = tmp_path / "out.jsonl"
    with ShardedOutput(path, "jsonl", COLUMNS) as out:
        predict_files(photos[:4], fake_engine([]), out, shard_files=2, progress=False)
    with pytest.raises(OutputError, match="other columns"):
        ShardedOutput(path, "jsonl", COLUMNS[:-1], resume=True)
    path.write_text("")
    with pytest.raises(OutputError, match="shorter than its manifest"):
        ShardedOutput(path, "jsonl", COLUMNS, resume=True)


def test_without_resume_the_output_starts_over(tmp_path, photos):
    path = tmp_path / "out.csv"
    for _ in range(2):
        with ShardedOutput(path, "csv", COLUMNS) as out:
            predict_files(photos[:3], fake_engine([]), out, progress=False)
    assert len(read(path, "csv")) == sum(2 if len(str(p)) % 2 == 0 else 1 for p in photos[:3])


def test_a_parquet_folder_with_other_files_is_not_emptied(tmp_path):
    folder = tmp_path / "out.parquet"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="other files"):
        ShardedOutput(folder, "parquet", COLUMNS)
    assert (folder / "notes.txt").read_text() == "mine"


def test_an_unreadable_path_has_an_identity_too(tmp_path):
    assert file_identity(tmp_path / "missing.jpg") == (str(tmp_path / "missing.jpg"), -1, -1)


def test_resume_refuses_an_output_without_a_manifest_and_starts_a_missing_one(tmp_path, photos):
    written_elsewhere = tmp_path / "old.csv"
    written_elsewhere.write_text("path,face\na.jpg,1\n")
    with pytest.raises(OutputError, match="no manifest"):
        ShardedOutput(written_elsewhere, "csv", COLUMNS, resume=True)
    assert written_elsewhere.read_text() == "path,face\na.jpg,1\n"  # nothing lost
    with ShardedOutput(tmp_path / "new.csv", "csv", COLUMNS, resume=True) as out:
        predict_files(photos[:2], fake_engine([]), out, progress=False)
    assert len(read(tmp_path / "new.csv", "csv")) >= 2
