"""Outputs written a shard at a time, each shard made durable before it is recorded, so a killed run loses at
most the shard it was writing and ``--resume`` carries on from the last one recorded.

The record is a manifest of JSON lines: a header line (format and columns), then one line per shard with
the files it covers, each as ``[path, size, mtime_ns]``. It lies beside a CSV or JSON-lines file
(``faces.csv.progress``) and inside a Parquet folder (``faces.parquet/_progress.jsonl``; readers skip
names that start with ``_`` or ``.``).

- CSV and JSON lines: one file, appended a shard at a time (one write, flush, fsync); the manifest line
  says how many bytes the file had after the shard. On resume, the file is cut back to the last recorded
  size, which drops a shard that was being written when the run was killed.
- Parquet: a folder of ``part-000000.parquet`` files (what pyarrow, pandas, DuckDB, Spark and Ray read as one
  table), each written under a hidden name and renamed when complete. Every shard has the same schema,
  numbers as float64 or int64 with nulls where CSV has empty cells.

A file counts as done when its path, size and modification time (nanoseconds) all match a recorded one:
cheap to check for millions of files, where a content hash would read every byte again.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from faceattrs.inference.records import spreadsheet_safe

FORMATS = ("csv", "jsonl", "parquet")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
#: Columns that are whole numbers; the other non-text columns are float64 (:func:`parquet_schema`)
_INTEGER_COLUMNS = ("face",)
_TEXT_COLUMNS = ("path", "status", "gender", "ethnicity", "error")

FileIdentity = tuple[str, int, int]  # path, size in bytes, mtime in nanoseconds


class OutputError(Exception):
    """An output that cannot be written or resumed as asked; the message says why, in one line."""


def output_format(format: str | None, output: Path | None) -> str:
    """``format`` when given, else the one ``output``'s suffix names, else CSV.

    >>> output_format(None, Path("out.JSONL")), output_format(None, None), output_format("csv", Path("x.parquet"))
    ('jsonl', 'csv', 'csv')
    """
    if format is not None:
        return format
    return _SUFFIXES.get(output.suffix.lower(), "csv") if output is not None else "csv"


def file_identity(path: str | Path) -> FileIdentity:
    """``(path, size, mtime_ns)`` of a file as given; ``(path, -1, -1)`` when it cannot be read (an error row)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return (str(path), -1, -1)
    return (str(path), st.st_size, st.st_mtime_ns)


def parquet_schema(columns: Sequence[str]):
    """The Arrow schema of the rows: text, ``face`` as int64, every other column float64, all nullable."""
    import pyarrow as pa

    def kind(name: str):
        return pa.string() if name in _TEXT_COLUMNS else pa.int64() if name in _INTEGER_COLUMNS else pa.float64()

    return pa.schema([(name, kind(name)) for name in columns])


class ShardedOutput:
    """Rows of ``columns`` in ``format``, written to ``path`` (stdout when None) a shard at a time.

    With ``resume``, an output that a manifest describes is continued (:attr:`done` holds the files it covers),
    one without a manifest is refused and a missing one is started; without, anything at ``path`` is replaced.

    >>> out = ShardedOutput(None, "jsonl", ("path", "age"))  # doctest: +SKIP
    >>> out.write_shard([{"path": "a.jpg", "age": 31.5}], [("a.jpg", 1024, 0)])  # doctest: +SKIP
    """

    def __init__(self, path: Path | None, format: str, columns: Sequence[str], resume: bool = False) -> None:
        if format not in FORMATS:
            raise OutputError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
        if path is None and (format == "parquet" or resume):
            raise OutputError("Parquet output and --resume need --output")
        self.path, self.format, self.columns = path, format, tuple(columns)
        self.done: set[FileIdentity] = set()
        self._shards = 0
        self._file: TextIO | None = None
        if path is None:
            self._file = sys.stdout
            if format == "csv":
                self._write_text(self._csv_text([], header=True))
            return
        self.manifest = path / "_progress.jsonl" if format == "parquet" else path.with_name(path.name + ".progress")
        header = {"format": format, "columns": list(self.columns)}
        if resume and self.manifest.is_file():
            self._resume(header)
        elif resume and path.exists():
            raise OutputError(f"{path} has no manifest ({self.manifest.name}) to resume from; run without --resume")
        else:
            self._start(header)

    # --- writing ---------------------------------------------------------------------------

    def write_shard(self, rows: list[dict[str, Any]], files: Sequence[FileIdentity]) -> None:
        """Write ``rows`` (those of ``files``) durably, then record the shard in the manifest."""
        entry: dict[str, Any] = {"shard": self._shards, "files": [list(f) for f in files]}
        if self.format == "parquet":
            entry["part"] = self._write_part(rows)
        else:
            text = self._csv_text(rows) if self.format == "csv" else "".join(json.dumps(r) + "\n" for r in rows)
            self._write_text(text)
            if self.path is not None:
                entry["bytes"] = self._file.tell()
        if self.path is not None:
            _append_line(self.manifest, entry)
        self.done.update(tuple(f) for f in files)
        self._shards += 1

    def close(self) -> None:
        if self._file is not None and self._file is not sys.stdout:
            self._file.close()
        self._file = None

    def __enter__(self) -> ShardedOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ---------------------------------------------------------------------------

    def _csv_text(self, rows: list[dict[str, Any]], header: bool = False) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.columns, lineterminator="\n")
        if header:
            writer.writeheader()
        for row in rows:
            writer.writerow(spreadsheet_safe(row))  # a file named "=HYPERLINK(...)" stays text
        return buffer.getvalue()

    def _write_text(self, text: str) -> None:
        self._file.write(text)
        self._file.flush()
        if self._file is not sys.stdout:
            os.fsync(self._file.fileno())

    def _write_part(self, rows: list[dict[str, Any]]) -> str:
        import pyarrow as pa
        import pyarrow.parquet as pq

        def cell(name: str, value: Any) -> Any:
            return None if value == "" and name not in _TEXT_COLUMNS else value  # CSV's empty cell is a null

        table = pa.Table.from_pylist(
            [{name: cell(name, row.get(name, "")) for name in self.columns} for row in rows],
            schema=parquet_schema(self.columns),
        )
        name = f"part-{self._shards:06d}.parquet"
        hidden = self.path / f".{name}.tmp"
        pq.write_table(table, hidden)
        with open(hidden, "rb") as f:
            os.fsync(f.fileno())
        hidden.replace(self.path / name)
        return name

    def _start(self, header: dict[str, Any]) -> None:
        if self.format == "parquet":
            if self.path.is_dir():
                for old in self.path.iterdir():
                    if not _ours(old.name):
                        raise OutputError(f"--output {self.path} is a folder with other files in it")
                for old in self.path.iterdir():
                    old.unlink()
            else:
                if self.path.exists():
                    self.path.unlink()
                self.path.mkdir()
        else:
            self._file = self.path.open("w", newline="", encoding="utf-8")
            if self.format == "csv":
                self._write_text(self._csv_text([], header=True))
        self.manifest.write_text(json.dumps(header) + "\n")

    def _resume(self, header: dict[str, Any]) -> None:
        lines = _read_manifest(self.manifest)
        if not lines or lines[0] != header:
            raise OutputError(
                f"{self.path} was written with another format or other columns; write to a new --output to start over"
            )
        shards = [e for e in lines[1:] if "shard" in e]
        self._shards = len(shards)
        self.done = {tuple(f) for e in shards for f in e["files"]}
        if self.format == "parquet":
            keep = {e["part"] for e in shards}
            for name in os.listdir(self.path):
                if name not in keep and _ours(name) and name != self.manifest.name:
                    (self.path / name).unlink()  # a part written after the last recorded shard, or half written
        else:
            size = shards[-1]["bytes"] if shards else 0
            if not self.path.is_file() or self.path.stat().st_size < size:
                raise OutputError(
                    f"{self.path} is missing or shorter than its manifest says; start again without --resume"
                )
            with self.path.open("r+b") as f:  # cut off a shard that was being written when the run stopped
                f.truncate(size)
            self._file = self.path.open("a", newline="", encoding="utf-8")
            if size == 0 and self.format == "csv":
                self._write_text(self._csv_text([], header=True))


def _ours(name: str) -> bool:
    return name.startswith(("part-", ".part-")) or name == "_progress.jsonl"


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    """The manifest's entries; a last line cut short (the run was killed while writing it) is left out."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    entries = []
    for i, line in enumerate(lines):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise OutputError(f"{path} is damaged (line {i + 1}); start over without --resume") from None
    return entries


def _append_line(path: Path, entry: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())
