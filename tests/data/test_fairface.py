"""FairFace: labels, the split and the training crops, on synthetic folders (no FairFace image is stored here)."""

from __future__ import annotations

import csv
import shutil
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceattrs.data import fairface
from faceattrs.data.fairface import (
    AGE_GROUPS,
    RACE_TO_UTKFACE,
    RACES_7,
    FairFaceLabelWarning,
    FairFaceRecord,
    FairFaceScan,
    allocate_with_carry,
    fairface_stratum,
    load_fairface_faces,
    make_fairface_split,
    parse_fairface_label,
    pick_face,
    pipeline_fingerprint,
    read_fairface,
    summarize_fairface,
    write_fairface_split,
)
from faceattrs.data.split import read_split, read_split_hashes
from faceattrs.preprocessing import to_model_input

IMAGES = Path(__file__).resolve().parents[1] / "images"
ROOT = Path(__file__).resolve().parents[2]
SHARED_FAIRFACE = ROOT / ".." / "shared" / "datasets" / "fairface"


def write_labels(
    folder: Path, rows: list[list[str]], header: tuple[str, ...] = ("file", "age", "gender", "race")
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def small_jpeg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def synthetic_folder(folder: Path, n: int = 40, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row = [f"train/{i}.jpg", AGE_GROUPS[i % 9], ("Male", "Female")[i % 2], RACES_7[int(rng.integers(0, 7))]]
        small_jpeg(folder / row[0], i)
        rows.append(row)
    write_labels(folder, rows)
    return rows


# --- labels -----------------------------------------------------------------------------------------


def test_labels_map_to_utkface_coding_and_keep_the_seven_groups():
    expected = {"White": 0, "Black": 1, "East Asian": 2, "Southeast Asian": 2, "Indian": 3}
    expected |= {"Latino_Hispanic": 4, "Middle Eastern": 4}
    assert expected == RACE_TO_UTKFACE and set(RACES_7) == set(expected)
    label = parse_fairface_label(" 10-19", "Female ", "Latino_Hispanic")
    assert (label.age_low, label.age_high, label.gender, label.race, label.race7) == (10, 19, 1, 4, "Latino_Hispanic")
    intervals = [fairface.AGE_INTERVALS[g] for g in AGE_GROUPS]
    assert intervals[0] == (0, 2) and intervals[-1] == (70, 116)
    assert all(a[1] + 1 == b[0] for a, b in pairwise(intervals))  # no gap, no overlap


def test_bad_rows_are_skipped_with_a_warning_never_a_crash(tmp_path):
    folder = tmp_path / "fairface"
    for i in range(3):
        small_jpeg(folder / f"train/{i}.jpg", i)
    (folder / "train/broken.jpg").write_bytes(b"not a jpeg")
    small_jpeg(tmp_path / "outside.jpg", 9)
    rows = [
        ["train/0.jpg", "20-29", "Male", "White"],
        ["train/1.jpg", "more than 70", "Female", "Southeast Asian"],
        ["train/2.jpg", "70+", "Female", "White"],  # unknown age group
        ["train/0.jpg", "20-29", "Male", "White"],  # listed twice
        ["train/3.jpg", "30-39", "Male", "White"],  # file not found
        ["train/broken.jpg", "30-39", "Male", "White"],  # not an image
        ["../outside.jpg", "30-39", "Male", "White"],  # leaves the folder
        ["train/1.jpg"],  # too few cells
        ["", "3-9", "Male", "White"],  # no file
        ["train/2.jpg", "3-9", "male", "White"],  # gender case
        ["train/2.jpg", "3-9", "Female", "Hispanic"],  # unknown race
        ["train/2.jpg", "3-9", "", "White"],  # empty gender
    ]
    write_labels(folder, rows)
    with pytest.warns(FairFaceLabelWarning) as caught:
        scan = read_fairface(folder, decode=True, progress=False)
    assert [r.file for r in scan.records] == ["train/0.jpg", "train/1.jpg"]
    assert scan.records[1].age_interval == (70, 116) and scan.records[1].race == 2
    reasons = list(scan.skipped.values())
    assert len(reasons) == len(rows) - 2
    for needle in ("unknown age group '70+'", "listed twice", "file not found", "not a decodable image"):
        assert any(needle in r for r in reasons), needle
    for needle in ("leaves the data folder", "wrong number of cells", "empty file cell", "unknown gender 'male'"):
        assert any(needle in r for r in reasons), needle
    assert any("unknown race 'Hispanic'" in r for r in reasons) and any("empty gender" in r for r in reasons)
    assert "train/2.jpg (line 11)" in scan.skipped  # one key per skipped row, even for a repeated file
    assert all("skipped" in str(w.message) for w in caught)
    assert len(caught) == len({r.split(":")[0] for r in reasons})  # one warning per kind of problem


def test_unreadable_labels_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels not found"):
        read_fairface(tmp_path, progress=False)
    write_labels(tmp_path, [["train/0.jpg", "3-9", "Male"]], header=("file", "age", "gender"))
    with pytest.raises(ValueError, match="lacks column"):
        read_fairface(tmp_path, progress=False)


def test_reading_without_hashes_needs_no_images(tmp_path):
    write_labels(tmp_path, [["train/0.jpg", "3-9", "Male", "Indian"]])
    scan = read_fairface(tmp_path, hashes=False, progress=False)
    assert len(scan.records) == 1 and scan.records[0].sha256 is None and not scan.skipped


# --- split ------------------------------------------------------------------------------------------


def synthetic_records(n: int = 6000, seed: int = 0) -> list[FairFaceRecord]:
    """Labels drawn like FairFace's (old ages rare); every 60th image has a byte-identical copy."""
    rng = np.random.default_rng(seed)
    age_p = np.array([421, 2431, 2159, 5840, 4469, 2439, 1416, 630, 195], float)
    records = []
    for i in range(n):
        label = parse_fairface_label(
            AGE_GROUPS[rng.choice(9, p=age_p / age_p.sum())], ("Male", "Female")[i % 2], RACES_7[i % 7]
        )
        records.append(FairFaceRecord(f"train/{i}.jpg", Path(f"{i}.jpg"), label, f"sha{i:06d}"))
        if i % 60 == 0:
            records.append(FairFaceRecord(f"train/{i}_copy.jpg", Path(f"{i}c.jpg"), label, f"sha{i:06d}"))
    return records


def test_split_fractions_are_exact_and_every_stratum_is_cut_80_10_10():
    records = synthetic_records()
    split = make_fairface_split(records)
    assert set(split) == {r.file for r in records}
    counts = Counter(split.values())
    n = len(records)
    assert abs(counts["val"] - n / 10) <= 3 and abs(counts["test"] - n / 10) <= 3  # 2 files per copied group
    by_stratum: dict[tuple, Counter] = defaultdict(Counter)
    for r in records:
        by_stratum[fairface_stratum(r)][split[r.file]] += 1
    for parts in by_stratum.values():
        total = sum(parts.values())
        for part, share in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
            assert abs(parts[part] - share * total) <= 2.5, (parts, total)  # +-1 group of up to 2 files


def test_identical_files_stay_together_and_disagreeing_copies_go_to_train():
    records = synthetic_records(2000)
    twin = records[0]
    other = parse_fairface_label("60-69", "Female", "Black")
    records.append(FairFaceRecord("train/conflict.jpg", Path("c.jpg"), other, twin.sha256))
    split = make_fairface_split(records)
    parts_of_hash = defaultdict(set)
    for r in records:
        parts_of_hash[r.sha256].add(split[r.file])
    assert all(len(p) == 1 for p in parts_of_hash.values())
    assert split["train/conflict.jpg"] == split[twin.file] == "train"


def test_split_is_deterministic_and_seed_dependent():
    records = synthetic_records(1000)
    assert make_fairface_split(records, seed=0) == make_fairface_split(list(reversed(records)), seed=0)
    assert make_fairface_split(records, seed=0) != make_fairface_split(records, seed=1)


def test_cumulative_allocation_keeps_totals_within_one():
    sizes = [int(s) for s in np.random.default_rng(3).integers(1, 30, 126)]
    counts = np.array(allocate_with_carry(sizes))
    assert (counts.sum(1) == sizes).all() and (counts >= 0).all()
    exact = np.outer(sizes, [0.8, 0.1, 0.1])
    assert np.abs(counts - exact).max() < 1
    assert np.abs(counts.sum(0) - exact.sum(0)).max() <= 1


def test_split_file_round_trip(tmp_path):
    folder = tmp_path / "fairface"
    synthetic_folder(folder)
    shutil.copy(folder / "train/0.jpg", folder / "train/dup.jpg")
    with (folder / "labels.csv").open("a") as f:
        f.write("train/dup.jpg,0-2,Male,White\n")  # train/0.jpg's labels
    out = tmp_path / "splits" / "fairface_v1.csv"
    split = write_fairface_split(out, folder, progress=False)
    assert read_split(out) == split and len(split) == 41
    assert split["train/dup.jpg"] == split["train/0.jpg"]
    hashes = read_split_hashes(out)
    assert all(len(h) == 16 for h in hashes.values()) and hashes["train/dup.jpg"] == hashes["train/0.jpg"]
    assert out.read_text().splitlines()[0] == "file,sha256,part"


def test_committed_split_matches_the_shared_data():
    if not (SHARED_FAIRFACE / "labels.csv").is_file():
        pytest.skip(f"FairFace not found at {SHARED_FAIRFACE}")
    scan = read_fairface(SHARED_FAIRFACE, progress=False)
    committed = ROOT / "splits" / "fairface_v1.csv"
    assert read_split(committed) == make_fairface_split(scan.records)
    assert read_split_hashes(committed) == {r.file: r.sha256[:16] for r in scan.records}


# --- crops through the serving pipeline -------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """Real photos (tests/images) with FairFace-style labels: two faces, one crowd, one without a face."""
    folder = tmp_path_factory.mktemp("fairface_photos")
    (folder / "train").mkdir()
    files = {"astronaut.jpg": "a.jpg", "group_5.jpg": "g.jpg", "no_face.png": "n.png", "tiny_face.jpg": "t.jpg"}
    for source, target in files.items():
        shutil.copy(IMAGES / source, folder / "train" / target)
    (folder / "train" / "x.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    write_labels(
        folder,
        [
            ["train/a.jpg", "30-39", "Female", "White"],
            ["train/g.jpg", "20-29", "Male", "East Asian"],
            ["train/n.png", "3-9", "Female", "Black"],
            ["train/t.jpg", "more than 70", "Male", "Middle Eastern"],
            ["train/x.jpg", "40-49", "Male", "Indian"],
        ],
    )
    return folder


@pytest.fixture(scope="module")
def analyzer():
    from faceattrs import Analyzer

    return Analyzer(keep_crops=True, threads=1)


def test_crops_are_the_serving_pipelines_and_cached(photo_folder, analyzer, tmp_path):
    cache = tmp_path / "cache"
    faces = load_fairface_faces(photo_folder, 32, cache_dir=cache, progress=False, analyzer=analyzer)
    assert list(faces.faces.names) == ["train/a.jpg", "train/g.jpg", "train/t.jpg"]
    assert faces.faces.images.shape == (3, 32, 32, 3) and faces.faces.images.dtype == np.uint8
    assert set(faces.dropped) == {"train/n.png", "train/x.jpg"}
    assert faces.dropped["train/n.png"] == "no face found" and "not_an_image" in faces.dropped["train/x.jpg"]
    assert faces.faces.gender.tolist() == [1, 0, 0] and faces.faces.race.tolist() == [0, 2, 4]
    assert faces.age_low.tolist() == [30, 20, 70] and faces.age_high.tolist() == [39, 29, 116]
    assert faces.faces.age.tolist() == [34, 24, 93] and faces.race7.tolist()[1] == "East Asian"
    assert faces.n_detected[1] >= 2 and (faces.det_score > 0.5).all()

    # the same crop serving makes, of the largest face, through the model's own resize
    result = next(analyzer.analyze_many([photo_folder / "train/g.jpg"]))
    areas = [f.box[2] * f.box[3] for f in result.faces]
    chosen = result.faces[int(np.argmax(areas))]
    assert pick_face(result.faces, result.width, result.height) == int(np.argmax(areas))
    np.testing.assert_array_equal(faces.faces.images[1], to_model_input(chosen.crop, 32))
    np.testing.assert_allclose(faces.box[1], chosen.box, atol=0.01)
    assert faces.faces.age_interval()[1].tolist() == [39, 29, 116] and not faces.faces.exact_age.any()

    # second call: from the cache (memmap), no detection; a new size reuses the aligned crops
    class NoAnalyzer:
        keep_crops = True

        def analyze_many(self, *args, **kwargs):
            raise AssertionError("the cache should have been used")

    again = load_fairface_faces(photo_folder, 32, cache_dir=cache, progress=False, analyzer=NoAnalyzer())
    assert isinstance(again.faces.images, np.memmap)
    np.testing.assert_array_equal(again.faces.images, faces.faces.images)
    bigger = load_fairface_faces(photo_folder, 48, cache_dir=cache, progress=False, analyzer=NoAnalyzer())
    assert bigger.faces.images.shape == (3, 48, 48, 3)
    assert len(list(cache.glob("fairface_crops_*.npy"))) == 1

    # parts and the summary
    split = {"train/a.jpg": "train", "train/g.jpg": "test", "train/n.png": "val", "train/t.jpg": "train"}
    assert list(faces.part(split, "train").faces.names) == ["train/a.jpg", "train/t.jpg"]
    assert faces.part(split, "test").age_low.tolist() == [20]
    assert faces.part(split, "test").faces.age_high.tolist() == [29]
    text = summarize_fairface(read_fairface(photo_folder, progress=False), split | {"train/x.jpg": "val"}, faces)
    assert "  no face                2       0       2       0" in text
    assert "  East Asian             1       0       0       1" in text


def test_a_changed_pipeline_builds_new_crops(photo_folder, analyzer, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    load_fairface_faces(photo_folder, 16, cache_dir=cache, progress=False, analyzer=analyzer)
    monkeypatch.setattr(fairface, "pipeline_fingerprint", lambda files=None: "0" * 64)
    load_fairface_faces(photo_folder, 16, cache_dir=cache, progress=False, analyzer=analyzer)
    assert len(list(cache.glob("fairface_crops_*.npy"))) == 2
    assert len(list(cache.glob("fairface_16px_*.npy"))) == 2


def test_pipeline_fingerprint_follows_the_source_files(tmp_path, monkeypatch):
    assert {"inference/align.py", "inference/detector.py"} <= {p for _, p in fairface.PIPELINE_FILES}
    package = tmp_path / "fakepipeline"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "align.py").write_text("SIZE = 200\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    files = [("fakepipeline", "align.py")]
    before = pipeline_fingerprint(files)
    assert pipeline_fingerprint(files) == before
    (package / "align.py").write_text("SIZE = 224\n")
    assert pipeline_fingerprint(files) != before
    assert len(pipeline_fingerprint()) == 64


def test_summary_of_an_empty_scan():
    assert summarize_fairface(FairFaceScan([])).startswith("rows: 0 read, 0 skipped")


def test_two_processes_filling_the_cache_at_once_both_leave_whole_files(photo_folder, analyzer, tmp_path, monkeypatch):
    # Session 26: a build and a probe both built FairFace's crops into one shared temporary file; the second
    # truncated the first's, and the build trained on 9,860 black crops. Each process now writes its own file.
    expected = load_fairface_faces(photo_folder, 32, cache_dir=tmp_path / "alone", progress=False, analyzer=analyzer)
    cache = tmp_path / "shared"
    process = {"id": "a"}
    monkeypatch.setattr(fairface, "private_tmp", lambda p: p.with_name(f"{p.stem}.{process['id']}.tmp{p.suffix}"))

    class HalfwayAnotherProcessFillsTheCache:
        keep_crops = True

        def analyze_many(self, paths, **kwargs):
            for i, result in enumerate(analyzer.analyze_many(paths, **kwargs)):
                if i == 2:
                    process["id"] = "b"
                    load_fairface_faces(photo_folder, 32, cache_dir=cache, progress=False, analyzer=analyzer)
                    process["id"] = "a"
                yield result

    first = load_fairface_faces(
        photo_folder, 32, cache_dir=cache, progress=False, analyzer=HalfwayAnotherProcessFillsTheCache()
    )
    np.testing.assert_array_equal(first.faces.images, expected.faces.images)
    (crops,) = cache.glob("fairface_crops_*.npy")
    (alone,) = (tmp_path / "alone").glob("fairface_crops_*.npy")
    np.testing.assert_array_equal(np.load(crops), np.load(alone))
    assert not list(cache.glob("*.tmp.npy"))
