"""Checks against the real UTKFace copy in ../shared (skipped, with a reason, when absent)."""

from collections import defaultdict

import pytest

from faceattrs.data.split import DEFAULT_SPLIT_FILE, read_split, read_split_hashes
from faceattrs.data.utkface import scan_utkface

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scan(shared_utkface):
    return scan_utkface(shared_utkface, decode=False, progress=False)


def test_committed_split_covers_this_copy_of_utkface(scan):
    split = read_split(DEFAULT_SPLIT_FILE)
    hashes = read_split_hashes(DEFAULT_SPLIT_FILE)
    assert {r.name for r in scan.records} == set(split)
    assert all(hashes[r.name] == r.sha256[:16] for r in scan.records)


def test_committed_split_keeps_identical_files_together(scan):
    split = read_split(DEFAULT_SPLIT_FILE)
    parts = defaultdict(set)
    for r in scan.records:
        parts[r.sha256].add(split[r.name])
    assert all(len(p) == 1 for p in parts.values())
    counts = defaultdict(int)
    for part in split.values():
        counts[part] += 1
    assert abs(counts["test"] / len(split) - 0.1) < 0.01


def test_every_documented_quirk_is_found(scan):
    quirks = scan.quirks()
    assert len(quirks["missing_race"]) == 3
    assert len(quirks["space_before_ext"]) == 1 and len(quirks["missing_dot"]) == 1
    assert {"datetime_16", "datetime_18"} <= set(quirks)
