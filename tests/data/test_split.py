from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from faceattrs.data.labels import FaceLabel
from faceattrs.data.split import make_split, read_split, read_split_hashes, stratum, write_split
from faceattrs.data.utkface import FaceRecord


def synthetic_records(n_groups: int = 3000, seed: int = 0) -> list[FaceRecord]:
    rng = np.random.default_rng(seed)
    records = []
    for g in range(n_groups):
        age, gender, race = int(rng.integers(1, 100)), int(rng.integers(0, 2)), int(rng.integers(0, 5))
        copies = 3 if g % 50 == 0 else 1
        for c in range(copies):
            # every 100th group: copies disagree on the age
            label = FaceLabel(age + (c if g % 100 == 0 else 0), gender, race, "0")
            records.append(FaceRecord(f"{g}_{c}", Path(f"{g}_{c}"), label, f"sha{g:06d}"))
    records.append(FaceRecord("norace", Path("norace"), FaceLabel(30, 0, None, "0"), "sha-norace"))
    return records


def test_identical_files_never_cross_parts():
    records = synthetic_records()
    split = make_split(records)
    parts_of_hash = defaultdict(set)
    for r in records:
        parts_of_hash[r.sha256].add(split[r.name])
    assert all(len(p) == 1 for p in parts_of_hash.values())


def test_conflicting_groups_and_unknown_race_go_to_train():
    records = synthetic_records()
    split = make_split(records)
    for r in records:
        if r.name.startswith(("0_", "100_", "200_")) or r.name == "norace":
            assert split[r.name] == "train", r.name


def test_fractions_and_stratification_within_tolerance():
    records = synthetic_records(n_groups=5000)
    split = make_split(records)
    counts = Counter(split.values())
    n = len(records)
    assert abs(counts["test"] / n - 0.1) < 0.01 and abs(counts["val"] / n - 0.1) < 0.01
    strata_total, strata_test = Counter(), Counter()
    for r in records:
        strata_total[stratum(r)] += 1
        strata_test[stratum(r)] += split[r.name] == "test"
    for key, total in strata_total.items():
        if total >= 50:
            assert abs(strata_test[key] / total - 0.1) < 0.03, key


def test_split_is_deterministic_and_seed_dependent():
    records = synthetic_records()
    assert make_split(records, seed=0) == make_split(records, seed=0)
    assert make_split(records, seed=0) != make_split(records, seed=1)


def test_split_file_round_trip(tmp_path):
    records = synthetic_records(200)
    split = make_split(records)
    path = tmp_path / "split.csv"
    write_split(path, records, split)
    assert read_split(path) == split
    assert read_split_hashes(path)["norace"] == "sha-norace"[:16]
