"""The project's split protocol and the committed split file.

Rules (``utkface_v1``):

* train/val/test = 80/10/10, stratified by ethnicity x age decade
  (decades 0-9, 10-19, ..., 90+);
* byte-identical files (same sha256) always land in one part: the unit that
  is split is a *content group*, not a file;
* a content group whose copies disagree on a label, and every file without a
  race label, goes to train only (their ground truth is uncertain, so they must
  not score a model);
* groups are shuffled with a fixed seed and each stratum is cut with
  largest-remainder rounding, so the split is deterministic.

The result is written to a CSV (``file,sha256,part``) that is committed, so
every model in the project is scored on the same test images.

>>> from faceattrs.data.split import SplitFractions
>>> SplitFractions().as_tuple()
(0.8, 0.1, 0.1)
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceattrs.data.folders import UTKFACE_SPLIT
from faceattrs.data.utkface import FaceRecord, labels_agree

PARTS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_SPLIT_FILE = UTKFACE_SPLIT


@dataclass(frozen=True)
class SplitFractions:
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.train, self.val, self.test)


def stratum(record: FaceRecord) -> tuple[int, int]:
    """Ethnicity x age decade, the split's stratification key."""
    return (record.race if record.race is not None else -1, min(record.age // 10, 9))


def _allocate(n: int, fractions: tuple[float, float, float]) -> list[int]:
    """Split ``n`` items into counts by largest remainder (sums to ``n``)."""
    exact = np.array(fractions) * n
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    for i in order[: n - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def make_split(
    records: list[FaceRecord], *, seed: int = 0, fractions: SplitFractions = SplitFractions()
) -> dict[str, str]:
    """Assign every record to ``train``, ``val`` or ``test``; returns name -> part."""
    groups: dict[str, list[FaceRecord]] = defaultdict(list)
    for record in records:
        groups[record.sha256].append(record)

    assignment: dict[str, str] = {}
    by_stratum: dict[tuple[int, int], list[str]] = defaultdict(list)
    for sha, group in sorted(groups.items()):
        if not labels_agree(group) or group[0].race is None:
            for record in group:
                assignment[record.name] = "train"
        else:
            by_stratum[stratum(group[0])].append(sha)

    rng = np.random.default_rng(seed)
    for key in sorted(by_stratum):
        shas = by_stratum[key]
        rng.shuffle(shas)
        n_train, n_val, _ = _allocate(len(shas), fractions.as_tuple())
        for i, sha in enumerate(shas):
            part = "train" if i < n_train else "val" if i < n_train + n_val else "test"
            for record in groups[sha]:
                assignment[record.name] = part
    return assignment


def write_split(path: Path, records: list[FaceRecord], assignment: dict[str, str]) -> None:
    """Write ``file,sha256,part`` rows sorted by file name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    by_name = {r.name: r for r in records}
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["file", "sha256", "part"])
        for name in sorted(assignment):
            writer.writerow([name, by_name[name].sha256[:16], assignment[name]])


def read_split(path: Path = DEFAULT_SPLIT_FILE) -> dict[str, str]:
    """Read a split file into name -> part."""
    with Path(path).open(newline="") as f:
        return {row["file"]: row["part"] for row in csv.DictReader(f)}


def read_split_hashes(path: Path = DEFAULT_SPLIT_FILE) -> dict[str, str]:
    """Read a split file into name -> sha256 prefix (to verify the data matches)."""
    with Path(path).open(newline="") as f:
        return {row["file"]: row["sha256"] for row in csv.DictReader(f)}
