"""One batch run: the files not yet in the output go through an engine, in order, and their rows are written
a shard at a time. The engines differ only in where the work happens; the rows and the counts are the same.

>>> output = ShardedOutput(None, "csv", COLUMNS)  # doctest: +SKIP
>>> summary = predict_files([Path("photos/a.jpg")], local_engine(Analyzer()), output)  # doctest: +SKIP
>>> summary.line()  # doctest: +SKIP
'1 file: 1 with faces (2 faces), 0 without a face, 0 unreadable'
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from faceattrs.batch.outputs import FileIdentity, OutputError, ShardedOutput, file_identity

#: Files per shard by default: at most this much work is lost when a run is killed
DEFAULT_SHARD_FILES = 500


@dataclass(frozen=True)
class FileRows:
    """What an engine gives back for one input file: its status, how many faces, and its output rows."""

    status: str  # "ok", "no_face" or "error"
    faces: int
    rows: list[dict[str, Any]]


#: An engine turns file paths into one :class:`FileRows` each, in the same order
Engine = Callable[[Sequence[str]], Iterator[FileRows]]


@dataclass
class BatchSummary:
    """The counts printed at the end of a run."""

    files: int = 0
    ok: int = 0
    no_face: int = 0
    error: int = 0
    faces: int = 0
    #: files of a resumed run that were already in the output
    already_done: int = 0
    #: entries of the folders that were not images
    skipped: int = 0

    def add(self, result: FileRows) -> None:
        self.files += 1
        self.faces += result.faces
        setattr(self, result.status, getattr(self, result.status) + 1)

    def line(self) -> str:
        """The summary in words.

        >>> BatchSummary(files=3, ok=2, no_face=1, faces=4).line()
        '3 files: 2 with faces (4 faces), 1 without a face, 0 unreadable'
        """
        text = (
            f"{_count(self.files, 'file')}: {self.ok} with faces ({_count(self.faces, 'face')}), "
            f"{self.no_face} without a face, {self.error} unreadable"
        )
        if self.already_done:
            text += f"; {self.already_done} already in the output (--resume)"
        if self.skipped:
            text += f"; {_count(self.skipped, 'other file')} in the folders skipped (not images)"
        return text


def local_engine(
    analyzer: Any,
    aligned: bool = False,
    batch_size: int | None = None,
    on_result: Callable[[int, Any], None] | None = None,
) -> Engine:
    """The engine of one process: ``analyzer.analyze_many`` (``on_result(i, ImageResult)`` sees each result)."""
    from faceattrs.inference.records import rows_for

    ethnicities = analyzer.model.ethnicities

    def run(paths: Sequence[str]) -> Iterator[FileRows]:
        kwargs = {"batch_size": batch_size} if batch_size is not None else {}
        for i, result in enumerate(
            analyzer.analyze_many(paths, aligned=aligned, keep_images=on_result is not None, **kwargs)
        ):
            if on_result is not None:
                on_result(i, result)
            yield FileRows(result.status, len(result.faces), rows_for(result, ethnicities))

    return run


def predict_files(
    inputs: Iterable[Path],
    engine: Engine,
    output: ShardedOutput,
    shard_files: int = DEFAULT_SHARD_FILES,
    progress: bool = True,
) -> BatchSummary:
    """Run ``engine`` over the ``inputs`` that ``output`` does not hold yet and write their rows shard by shard.

    Raises :class:`OutputError` when a file of a resumed output changed since it was written (its old rows
    would stay beside the new ones).
    """
    if shard_files < 1:
        raise OutputError("--shard-size must be at least 1")
    identities = [file_identity(p) for p in inputs]
    summary = BatchSummary()
    if output.done:
        done_paths = {path for path, _, _ in output.done}
        changed = [i for i in identities if i[0] in done_paths and i not in output.done]
        if changed:
            raise OutputError(
                f"{_count(len(changed), 'file')} changed since the output was written (e.g. {changed[0][0]}); "
                "write to a new --output"
            )
        summary.already_done = sum(i in output.done for i in identities)
        identities = [i for i in identities if i not in output.done]
    bar = tqdm(total=len(identities), desc="predict", unit="file", file=sys.stderr, disable=not progress)
    rows: list[dict[str, Any]] = []
    files: list[FileIdentity] = []
    with bar:
        for identity, result in zip(identities, engine([i[0] for i in identities]), strict=True):
            summary.add(result)
            rows.extend(result.rows)
            files.append(identity)
            bar.update()
            bar.set_postfix(faces=summary.faces, refresh=False)
            if len(files) >= shard_files:
                output.write_shard(rows, files)
                rows, files = [], []
        if files:
            output.write_shard(rows, files)
    return summary


def _count(n: int, noun: str) -> str:
    """``3 files``, ``1 file``.

    >>> _count(1, "file"), _count(0, "face")
    ('1 file', '0 faces')
    """
    return f"{n} {noun}{'' if n == 1 else 's'}"
