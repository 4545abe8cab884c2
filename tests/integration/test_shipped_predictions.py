"""The shipped model's predictions on the test split, through ``faceattrs predict``, are byte-identical
to the committed CSVs: a refactor must not change what users get.

Both modes run: photos (detect + align) and ``--aligned`` crops. When a new model ships, or a change
is meant to move predictions, rewrite the files on purpose and say so in the commit::

    python -m tests.integration.test_shipped_predictions --write
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_UTKFACE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = Path(__file__).resolve().parent / "expected"
SPLIT_FILE = ROOT / "splits" / "utkface_v1.csv"
MODES = {"photos": [], "aligned": ["--aligned"]}


def test_split_files() -> list[Path]:
    with SPLIT_FILE.open() as f:
        return [SHARED_UTKFACE / row["file"] for row in csv.DictReader(f) if row["part"] == "test"]


test_split_files.__test__ = False  # a helper, not a test


def predictions_csv(mode: str, tmp: Path) -> str:
    """``faceattrs predict`` on the test split's files, with each path cut to its file name."""
    from faceattrs.cli import main

    out = tmp / f"{mode}.csv"
    code = main(["predict", *MODES[mode], "--output", str(out), *map(str, test_split_files())])
    assert code == 0, f"faceattrs predict exited with {code}"
    rows = list(csv.reader(io.StringIO(out.read_text())))
    for row in rows[1:]:
        row[0] = Path(row[0]).name
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", sorted(MODES))
def test_predictions_are_unchanged(mode, shared_utkface, tmp_path):
    expected = (EXPECTED / f"test_split_{mode}.csv").read_text()
    measured = predictions_csv(mode, tmp_path)
    if measured != expected:
        changed = sum(a != b for a, b in zip(measured.splitlines(), expected.splitlines(), strict=False))
        pytest.fail(f"{changed} rows of the {mode} predictions changed (see the module docstring)")


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    EXPECTED.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            (EXPECTED / f"test_split_{mode}.csv").write_text(predictions_csv(mode, Path(tmp)))
            print(f"wrote {EXPECTED / f'test_split_{mode}.csv'}")
