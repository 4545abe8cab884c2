"""FairFace: labels, the committed split and training crops made by the serving pipeline.

The folder (``faceattrs.data.folders.FAIRFACE_DIR``; see its ``README.md``) holds ``train/N.jpg``,
224x224 crops with padding 0.25 around a face, and ``labels.csv`` (``file,age,gender,race``).

Labels
    * ``age`` is an age *group*, read as an interval of whole years, both ends included: ``"0-2"`` is
      [0, 2], ``"3-9"`` is [3, 9], ... ``"60-69"`` is [60, 69]. The open group ``"more than 70"`` is
      read as [70, 116], 116 being the oldest age the project's models predict (UTKFace's oldest). The
      README writes it "more than 70" but the groups before it end at 69, so 70 belongs to it.
    * ``gender``: ``Male`` -> 0, ``Female`` -> 1 (UTKFace's coding).
    * ``race``: FairFace's 7 groups are mapped to UTKFace's five as the README says (White -> 0 white,
      Black -> 1 black, East Asian and Southeast Asian -> 2 asian, Indian -> 3 indian, Latino_Hispanic
      and Middle Eastern -> 4 others); the 7-group name is kept in ``race7``.
    * A bad row (unknown age group, gender or race, missing cell, a file listed twice, a path leaving
      the folder, a missing or undecodable file) is skipped with its reason in
      :attr:`FairFaceScan.skipped` and one :class:`FairFaceLabelWarning` per kind of reason; reading
      never crashes on a row. A ``labels.csv`` that is missing or lacks a column raises a clear error.

Split (``splits/fairface_v1.csv``, columns ``file,sha256,part`` like ``splits/utkface_v1.csv``)
    80/10/10 stratified by race (7 groups) x age group x gender, seed 0; byte-identical files are one
    unit (a group whose copies disagree on a label goes to train); see :func:`make_fairface_split`.

Training crops (:func:`load_fairface_faces`)
    Every image goes through the serving pipeline itself (``faceattrs.Analyzer``: decode, RetinaFace,
    5-point alignment to the UTKFace template), so training sees exactly the geometry serving does.
    Of the faces found in an image, the largest (box area) is the labelled face; an image with no face
    is dropped and counted (see :func:`pick_face`).
    The aligned 200x200 crops are cached once, keyed on the pipeline's source files
    (:data:`PIPELINE_FILES`: a changed detector or alignment builds new crops) and on the files'
    content; each model size is then a second cache made with :func:`faceattrs.preprocessing.to_model_input`.

>>> parse_fairface_label("more than 70", "Female", "Middle Eastern")
FairFaceLabel(age_group='more than 70', age_low=70, age_high=116, gender=1, race=4, race7='Middle Eastern')
>>> parse_age_group("0-2"), parse_age_group("more than 70")
((0, 2), (70, 116))
>>> scan = read_fairface(Path("../shared/datasets/fairface"))  # doctest: +SKIP
>>> len(scan.records), len(scan.skipped)  # doctest: +SKIP
(20000, 0)
>>> faces = load_fairface_faces(Path("../shared/datasets/fairface"), size=128)  # doctest: +SKIP
>>> faces.faces.images.shape, faces.age_low[:2], faces.age_high[:2]  # doctest: +SKIP
((19963, 128, 128, 3), array([50, 30], dtype=int16), array([59, 39], dtype=int16))
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import logging
import math
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from faceattrs.data.cache import FaceArrays, default_cache_dir, private_tmp
from faceattrs.data.folders import FAIRFACE_DIR, FAIRFACE_SPLIT
from faceattrs.data.labels import ETHNICITIES, GENDERS
from faceattrs.data.split import PARTS, SplitFractions, write_split
from faceattrs.preprocessing import to_model_input

log = logging.getLogger(__name__)

#: FairFace's age groups, youngest first, as written in ``labels.csv``
AGE_GROUPS: tuple[str, ...] = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")
#: the upper end given to the open group "more than 70": the oldest age the models predict (0..116)
OLDEST_AGE = 116
#: age group -> (first year, last year), both included
AGE_INTERVALS: dict[str, tuple[int, int]] = {
    "0-2": (0, 2),
    "3-9": (3, 9),
    "10-19": (10, 19),
    "20-29": (20, 29),
    "30-39": (30, 39),
    "40-49": (40, 49),
    "50-59": (50, 59),
    "60-69": (60, 69),
    "more than 70": (70, OLDEST_AGE),
}
#: FairFace's 7 race groups, in the README's order
RACES_7: tuple[str, ...] = (
    "White",
    "Black",
    "East Asian",
    "Southeast Asian",
    "Indian",
    "Latino_Hispanic",
    "Middle Eastern",
)
#: 7-group name -> UTKFace's race index (0 white, 1 black, 2 asian, 3 indian, 4 others), per the README
RACE_TO_UTKFACE: dict[str, int] = {
    "White": 0,
    "Black": 1,
    "East Asian": 2,
    "Southeast Asian": 2,
    "Indian": 3,
    "Latino_Hispanic": 4,
    "Middle Eastern": 4,
}
#: gender as written in ``labels.csv`` -> UTKFace's index (0 male, 1 female)
GENDER_TO_UTKFACE: dict[str, int] = {"Male": 0, "Female": 1}
LABEL_COLUMNS: tuple[str, ...] = ("file", "age", "gender", "race")
#: the split's train / val / test shares
FRACTIONS = SplitFractions()

#: the serving pipeline's detection and alignment: their bytes key the crop cache
PIPELINE_FILES: tuple[tuple[str, str], ...] = (
    ("faceattrs", "inference/align.py"),
    ("faceattrs", "inference/detector.py"),
    ("faceattrs", "assets/alignment_template.json"),
)
#: bump when the face choice (:func:`pick_face`) or what the crop cache stores changes
CROPS_VERSION = 2


class FairFaceLabelWarning(UserWarning):
    """Rows of a FairFace ``labels.csv`` were skipped (the reasons are in :attr:`FairFaceScan.skipped`)."""


# --- labels -----------------------------------------------------------------------------------------


def parse_age_group(text: str) -> tuple[int, int] | None:
    """The interval of whole years (both ends included) of a FairFace age group, or ``None``.

    >>> parse_age_group("20-29"), parse_age_group(" 3-9 "), parse_age_group("70+")
    ((20, 29), (3, 9), None)
    """
    return AGE_INTERVALS.get(text.strip())


@dataclass(frozen=True)
class FairFaceLabel:
    """The labels of one FairFace image, in UTKFace's coding plus FairFace's own names."""

    age_group: str  # as in labels.csv, e.g. "20-29"
    age_low: int  # first year of the group
    age_high: int  # last year of the group (116 for "more than 70")
    gender: int  # 0 male, 1 female
    race: int  # UTKFace's five: 0 white, 1 black, 2 asian, 3 indian, 4 others
    race7: str  # FairFace's group, e.g. "Southeast Asian"

    @property
    def age_mid(self) -> int:
        """The middle year of the group, rounded down (a placeholder where one number is needed).

        >>> parse_fairface_label("20-29", "Male", "White").age_mid
        24
        """
        return (self.age_low + self.age_high) // 2


def parse_fairface_label(age: str | None, gender: str | None, race: str | None) -> FairFaceLabel:
    """Read one row's cells; raises :class:`ValueError` naming the bad cell.

    Surrounding spaces are ignored; spelling and case must match the README.

    >>> parse_fairface_label("0-2", "Male", "Southeast Asian")
    FairFaceLabel(age_group='0-2', age_low=0, age_high=2, gender=0, race=2, race7='Southeast Asian')
    >>> parse_fairface_label("30-39", "male", "White")
    Traceback (most recent call last):
    ...
    ValueError: unknown gender 'male' (expected one of Male, Female)
    """
    cells = {"age": age, "gender": gender, "race": race}
    for column, value in cells.items():
        if value is None or not value.strip():
            raise ValueError(f"empty {column}")
    age, gender, race = age.strip(), gender.strip(), race.strip()  # type: ignore[union-attr]
    interval = parse_age_group(age)
    if interval is None:
        raise ValueError(f"unknown age group {age!r} (expected one of {', '.join(AGE_GROUPS)})")
    if gender not in GENDER_TO_UTKFACE:
        raise ValueError(f"unknown gender {gender!r} (expected one of {', '.join(GENDER_TO_UTKFACE)})")
    if race not in RACE_TO_UTKFACE:
        raise ValueError(f"unknown race {race!r} (expected one of {', '.join(RACES_7)})")
    return FairFaceLabel(age, interval[0], interval[1], GENDER_TO_UTKFACE[gender], RACE_TO_UTKFACE[race], race)


@dataclass(frozen=True)
class FairFaceRecord:
    """One labelled FairFace image. ``file`` is the path as written in ``labels.csv`` (``train/1.jpg``)."""

    file: str
    path: Path
    label: FairFaceLabel
    sha256: str | None = None  # None when read with hashes=False

    @property
    def name(self) -> str:
        """``file``, under the name the split helpers of :mod:`faceattrs.data.split` use."""
        return self.file

    @property
    def age_interval(self) -> tuple[int, int]:
        return (self.label.age_low, self.label.age_high)

    @property
    def gender(self) -> int:
        return self.label.gender

    @property
    def race(self) -> int:
        return self.label.race

    @property
    def race7(self) -> str:
        return self.label.race7


@dataclass
class FairFaceScan:
    """What :func:`read_fairface` found: the good rows, and ``file`` (or ``line N``) -> why a row was skipped."""

    records: list[FairFaceRecord]
    skipped: dict[str, str] = field(default_factory=dict)

    def duplicate_groups(self) -> list[list[FairFaceRecord]]:
        """Groups of byte-identical files (two or more), largest first; empty when read without hashes."""
        by_hash: dict[str, list[FairFaceRecord]] = defaultdict(list)
        for record in self.records:
            if record.sha256 is not None:
                by_hash[record.sha256].append(record)
        groups = [g for g in by_hash.values() if len(g) > 1]
        return sorted(groups, key=lambda g: (-len(g), g[0].file))


def _bad_path(file: str) -> str | None:
    pure = PurePosixPath(file.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or Path(file).is_absolute():
        return f"{file!r} is absolute or climbs out with '..'"
    return None


def _undecodable(path: Path) -> str | None:
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"not a decodable image: {exc}"
    return None


def read_fairface(
    folder: Path = FAIRFACE_DIR, *, hashes: bool = True, decode: bool = False, progress: bool = True
) -> FairFaceScan:
    """Read ``folder/labels.csv`` into records sorted by file, skipping (and warning about) bad rows.

    ``hashes`` reads every file for its sha256 (about a second for the 20,000 images); a file that
    is missing is then skipped. ``decode`` also decodes each image and skips those that fail.
    Raises :class:`FileNotFoundError` when there is no ``labels.csv`` and :class:`ValueError` when
    its header lacks one of ``file, age, gender, race``.
    """
    folder = Path(folder)
    labels = folder / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"FairFace labels not found: {labels}")
    with labels.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in LABEL_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{labels}: header {reader.fieldnames} lacks column(s) {', '.join(missing)}")
        rows = [(reader.line_num, row) for row in reader]

    records: list[FairFaceRecord] = []
    skipped: dict[str, str] = {}
    kinds: dict[str, list[str]] = defaultdict(list)  # kind of problem -> keys of skipped rows
    seen: set[str] = set()

    def skip(key: str, kind: str, detail: str = "") -> None:
        if key in skipped:
            key = f"{key} (line {line})"
        skipped[key] = f"{kind}: {detail}" if detail else kind
        kinds[kind].append(key)

    for line, row in tqdm(rows, desc="read FairFace", unit="img", disable=not progress, leave=False):
        file = (row.get("file") or "").strip()
        key = file or f"line {line}"
        if not file:
            skip(key, "empty file cell")
        elif None in row or any(row.get(c) is None for c in LABEL_COLUMNS):
            skip(key, "wrong number of cells", f"line {line}, expected {len(reader.fieldnames or [])}")
        elif (reason := _bad_path(file)) is not None:
            skip(key, "path leaves the data folder", reason)
        elif file in seen:
            skip(key, "file listed twice", f"line {line} ignored")
        else:
            try:
                label = parse_fairface_label(row["age"], row["gender"], row["race"])
            except ValueError as exc:
                skip(key, "bad label", f"line {line}: {exc}")
                continue
            path = folder / file
            if (hashes or decode) and not path.is_file():
                skip(key, "file not found")
            elif decode and (reason := _undecodable(path)) is not None:
                skip(key, "not a decodable image", reason)
            else:
                seen.add(file)
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if hashes else None
                records.append(FairFaceRecord(file, path, label, digest))

    for kind, keys in sorted(kinds.items()):
        warnings.warn(
            f"{labels}: {len(keys)} row(s) skipped ({kind}), e.g. {keys[0]!r}: {skipped[keys[0]]}",
            FairFaceLabelWarning,
            stacklevel=2,
        )
    for key, reason in skipped.items():
        log.info("skipped %s: %s", key, reason)
    return FairFaceScan(sorted(records, key=lambda r: r.file), skipped)


# --- split ------------------------------------------------------------------------------------------


def fairface_stratum(record: FairFaceRecord) -> tuple[str, str, int]:
    """Race (7 groups) x age group x gender, the split's stratification key.

    >>> fairface_stratum(FairFaceRecord("a.jpg", Path("a.jpg"), parse_fairface_label("3-9", "Female", "Indian")))
    ('Indian', '3-9', 1)
    """
    return (record.label.race7, record.label.age_group, record.label.gender)


def allocate_with_carry(sizes: Iterable[int], fractions: SplitFractions = FRACTIONS) -> list[list[int]]:
    """Train/val/test counts for strata of ``sizes``: each stratum's shares rounded, the rounding carried over.

    Each part of a stratum gets its exact share rounded down; the one or two items left go to the parts
    with a fractional share whose running shortfall (over the strata before) is largest. So every
    count is within one of its exact share, and the parts' totals stay within one of theirs.
    (Rounding each stratum on its own, as ``split._allocate`` does, breaks a tie such as
    4 / 0.5 / 0.5 toward val every time: on FairFace's 126 strata, many of fewer than 20 images,
    that gives val 2,024 images and test 1,975.)

    >>> allocate_with_carry([5, 5, 10])
    [[4, 1, 0], [4, 0, 1], [8, 1, 1]]
    """
    shares = np.array(fractions.as_tuple())
    carry = np.zeros(len(shares))
    out = []
    for n in sizes:
        exact = shares * n
        counts = np.floor(exact + 1e-9).astype(int)
        fraction = exact - counts
        want = np.where(fraction > 1e-9, fraction + carry, -np.inf)
        counts[np.argsort(-want, kind="stable")[: n - counts.sum()]] += 1
        carry += exact - counts
        out.append(counts.tolist())
    return out


def make_fairface_split(
    records: list[FairFaceRecord], *, seed: int = 0, fractions: SplitFractions = FRACTIONS
) -> dict[str, str]:
    """Assign every record to ``train``, ``val`` or ``test``; returns file -> part.

    The unit is a content group (files with one sha256; a record without a hash is its own group),
    so byte-identical files never straddle parts; a group whose copies disagree on a label goes to
    train. Groups are stratified by :func:`fairface_stratum`, shuffled with ``seed`` within each
    stratum (strata in sorted order) and cut by :func:`allocate_with_carry`.
    """
    groups: dict[str, list[FairFaceRecord]] = defaultdict(list)
    for record in records:
        groups[record.sha256 or f"file:{record.file}"].append(record)
    assignment: dict[str, str] = {}
    by_stratum: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for key, group in sorted(groups.items()):
        if len({r.label for r in group}) > 1:
            assignment.update((r.file, "train") for r in group)
        else:
            by_stratum[fairface_stratum(group[0])].append(key)
    rng = np.random.default_rng(seed)
    strata = sorted(by_stratum)
    for stratum in strata:
        rng.shuffle(by_stratum[stratum])
    counts = allocate_with_carry([len(by_stratum[s]) for s in strata], fractions)
    for stratum, (n_train, n_val, _) in zip(strata, counts, strict=True):
        for i, key in enumerate(by_stratum[stratum]):
            part = PARTS[0] if i < n_train else PARTS[1] if i < n_train + n_val else PARTS[2]
            assignment.update((r.file, part) for r in groups[key])
    return assignment


def write_fairface_split(
    out: Path = FAIRFACE_SPLIT, folder: Path = FAIRFACE_DIR, *, seed: int = 0, progress: bool = True
) -> dict[str, str]:
    """Read ``folder`` (hashing and decoding every image), split it and write ``out`` (``file,sha256,part``).

    What ``faceattrs data split`` runs for FairFace; returns file -> part.
    """
    scan = read_fairface(folder, hashes=True, decode=True, progress=progress)
    assignment = make_fairface_split(scan.records, seed=seed)
    write_split(Path(out), scan.records, assignment)
    return assignment


# --- crops through the serving pipeline -------------------------------------------------------------


def pipeline_fingerprint(files: Iterable[tuple[str, str]] | None = None) -> str:
    """sha256 over the serving pipeline's detection and alignment sources (:data:`PIPELINE_FILES`)."""
    digest = hashlib.sha256()
    for package, relative in PIPELINE_FILES if files is None else files:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"package {package} not found")
        path = Path(next(iter(spec.submodule_search_locations))) / relative
        digest.update(f"{package}/{relative}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def pick_face(faces: list[Any], width: int, height: int) -> int | None:
    """Index of the labelled face: the largest box (ties: the box centre nearest the image centre).

    A FairFace image is cut around its labelled face, which fills about the middle 60% of it, so a
    bystander's face is smaller or cut off by the edge. Measured on the 20,000 images: 118 have two
    or more detections, and "largest" and "nearest the centre" disagree on one (``train/30366.jpg``),
    where the face nearest the centre is a small face in the background.

    >>> from types import SimpleNamespace as F
    >>> pick_face([F(box=(5, 80, 60, 70), det_score=0.99), F(box=(40, 30, 140, 170), det_score=0.9)], 224, 224)
    1
    >>> pick_face([], 224, 224) is None
    True
    """
    if not faces:
        return None

    def rank(i: int) -> tuple[float, float]:
        x, y, w, h = faces[i].box
        return (-w * h, math.hypot(x + w / 2 - width / 2, y + h / 2 - height / 2))

    return min(range(len(faces)), key=rank)


@dataclass
class FairFaceFaces:
    """FairFace faces as the model sees them, row-aligned with their labels.

    ``faces`` is a :class:`FaceArrays` (names = ``file``; gender and race in UTKFace's coding) that
    carries the age groups as intervals (``faces.age_low`` .. ``faces.age_high``, both included; also
    here as ``age_low``/``age_high``); its ``age`` is only a placeholder inside the interval: the
    middle year, rounded down ("more than 70": 93). ``dropped`` maps each image left out to why (a
    bad ``labels.csv`` row, no face found, not readable).
    """

    faces: FaceArrays
    age_low: np.ndarray  # int16
    age_high: np.ndarray  # int16
    age_group: np.ndarray  # str, as in labels.csv
    race7: np.ndarray  # str, FairFace's 7 groups
    det_score: np.ndarray  # float32, the chosen detection's score
    box: np.ndarray  # float32 (N, 4): x, y, w, h in the 224x224 image
    n_detected: np.ndarray  # int16: faces the detector found in the image
    dropped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.faces)

    def subset(self, index: np.ndarray) -> FairFaceFaces:
        """Rows ``index`` (bool mask or integer indices); ``dropped`` is kept whole."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        faces = self.faces.subset(index)
        return FairFaceFaces(
            faces,
            faces.age_low if faces.age_low is not None else self.age_low[index],
            faces.age_high if faces.age_high is not None else self.age_high[index],
            self.age_group[index],
            self.race7[index],
            self.det_score[index],
            self.box[index],
            self.n_detected[index],
            dict(self.dropped),
        )

    def part(self, split: dict[str, str], part: str) -> FairFaceFaces:
        """The rows that ``split`` (file -> part) assigns to ``part``."""
        return self.subset(np.array([split.get(n) == part for n in self.faces.names], dtype=bool))


def _content_key(records: list[FairFaceRecord]) -> str:
    digest = hashlib.sha256()
    for record in records:
        if record.sha256 is None:
            raise ValueError("records must be read with hashes=True to be cached")
        digest.update(f"{record.file}\t{record.sha256}\n".encode())
    return digest.hexdigest()[:12]


def build_fairface_crops(
    records: list[FairFaceRecord],
    crop_file: Path,
    *,
    batch_size: int = 32,
    progress: bool = True,
    analyzer: Any = None,
) -> dict[str, Any]:
    """Run every record's image through ``faceattrs.Analyzer`` and write the chosen aligned crops.

    ``crop_file`` gets a ``(len(records), S, S, 3)`` uint8 array (zeros where no face was found) and
    ``crop_file.with_suffix(".json")`` the per-row metadata, which is also returned.
    """
    if analyzer is None:
        from faceattrs import Analyzer

        analyzer = Analyzer(keep_crops=True)
    if not getattr(analyzer, "keep_crops", False):
        raise ValueError("the analyzer must be made with keep_crops=True")
    n = len(records)
    meta: dict[str, Any] = {
        "files": [r.file for r in records],
        "found": [False] * n,
        "box": [[0.0, 0.0, 0.0, 0.0]] * n,
        "det_score": [0.0] * n,
        "n_detected": [0] * n,
        "dropped": {},
        "pipeline": pipeline_fingerprint(),
    }
    crop_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = private_tmp(crop_file)
    crops = None
    start = time.perf_counter()
    results = analyzer.analyze_many((r.path for r in records), batch_size=batch_size)
    bar = tqdm(results, total=n, desc="FairFace crops", unit="img", disable=not progress)
    for i, result in enumerate(bar):
        meta["n_detected"][i] = int(result.detected)
        chosen = pick_face(result.faces, result.width or 0, result.height or 0)
        if chosen is None:
            meta["dropped"][records[i].file] = (
                f"{result.error_code}: {result.error}" if result.status == "error" else "no face found"
            )
            continue
        face = result.faces[chosen]
        if crops is None:
            crops = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, *face.crop.shape))
        crops[i] = face.crop
        meta["found"][i] = True
        meta["box"][i] = [round(float(v), 2) for v in face.box]
        meta["det_score"][i] = round(float(face.det_score), 5)
        bar.set_postfix(no_face=len(meta["dropped"]), refresh=False)
    meta["seconds"] = round(time.perf_counter() - start, 1)
    if crops is None:  # not one face: an empty array of the template's size
        crops = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 200, 200, 3))
    crops.flush()
    del crops
    tmp.replace(crop_file)
    crop_file.with_suffix(".json").write_text(json.dumps(meta))
    log.info("FairFace crops: %d images, %d without a face, %.0f s", n, len(meta["dropped"]), meta["seconds"])
    return meta


def load_fairface_faces(
    folder: Path = FAIRFACE_DIR,
    size: int = 128,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
    batch_size: int = 32,
    analyzer: Any = None,
) -> FairFaceFaces:
    """Every FairFace face with a detection, aligned by the serving pipeline, at ``size`` px.

    The first call runs :func:`build_fairface_crops` (a few minutes for 20,000 images) into
    ``cache_dir`` (default ``$FACEATTRS_CACHE`` or ``.cache``, git-ignored); the 200x200 crops are
    kept there under a name keyed on :func:`pipeline_fingerprint` and the files' (name, sha256), and
    each ``size`` is cached beside them via :func:`faceattrs.preprocessing.to_model_input`. Images
    arrive as read-only memmaps. Labels are read from ``labels.csv`` on every call.
    """
    scan = read_fairface(Path(folder), hashes=True, progress=progress)
    records = scan.records
    key = f"v{CROPS_VERSION}_{pipeline_fingerprint()[:12]}_{_content_key(records)}"
    cache = Path(cache_dir or default_cache_dir())
    crop_file = cache / f"fairface_crops_{key}.npy"
    if crop_file.exists() and crop_file.with_suffix(".json").exists():
        meta = json.loads(crop_file.with_suffix(".json").read_text())
    else:
        meta = build_fairface_crops(records, crop_file, batch_size=batch_size, progress=progress, analyzer=analyzer)
    found = np.array(meta["found"], dtype=bool)
    rows = np.flatnonzero(found)

    image_file = cache / f"fairface_{size}px_{key}.npy"
    if not image_file.exists():
        crops = np.load(crop_file, mmap_mode="r")
        tmp = private_tmp(image_file)
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(rows), size, size, 3))
        for j, i in enumerate(tqdm(rows, desc=f"resize {size}px", unit="img", disable=not progress, leave=False)):
            images[j] = to_model_input(np.asarray(crops[i]), size)
        images.flush()
        del images, crops
        tmp.replace(image_file)

    kept = [records[i] for i in rows]
    labels = [r.label for r in kept]
    dropped = dict(scan.skipped) | meta["dropped"]
    faces = FaceArrays(
        names=np.array([r.file for r in kept], dtype=str),
        images=np.load(image_file, mmap_mode="r"),
        age=np.array([lab.age_mid for lab in labels], np.int16),
        gender=np.array([lab.gender for lab in labels], np.int8),
        race=np.array([lab.race for lab in labels], np.int8),
        age_low=np.array([lab.age_low for lab in labels], np.int16),
        age_high=np.array([lab.age_high for lab in labels], np.int16),
    )
    return FairFaceFaces(
        faces=faces,
        age_low=faces.age_low,
        age_high=faces.age_high,
        age_group=np.array([lab.age_group for lab in labels], dtype=str),
        race7=np.array([lab.race7 for lab in labels], dtype=str),
        det_score=np.array(meta["det_score"], np.float32)[rows],
        box=np.array(meta["box"], np.float32).reshape(-1, 4)[rows],
        n_detected=np.array(meta["n_detected"], np.int16)[rows],
        dropped=dropped,
    )


# --- summary ----------------------------------------------------------------------------------------


def summarize_fairface(
    scan: FairFaceScan, split: dict[str, str] | None = None, faces: FairFaceFaces | None = None
) -> str:
    """Counts per race (7 groups and UTKFace's five), age group and gender, per part of ``split``.

    With ``faces``, also how many images per part have no face (dropped from training).

    >>> print(summarize_fairface(FairFaceScan([])).splitlines()[0])
    rows: 0 read, 0 skipped
    """
    records = scan.records
    parts = [p for p in PARTS if split and p in split.values()]
    columns = ["all", *parts]
    out = [f"rows: {len(records)} read, {len(scan.skipped)} skipped"]

    def part_of(record: FairFaceRecord) -> str | None:
        return None if split is None else split.get(record.file)

    totals = Counter(part_of(r) for r in records)
    header = f"  {'':16s}" + "".join(f"{c:>8s}" for c in columns)

    def table(title: str, names: Iterable[Any], key, label=str) -> None:
        counts = Counter((key(r), part_of(r)) for r in records)
        out.append(title)
        out.append(header)
        for name in names:
            row = [sum(v for (k, _), v in counts.items() if k == name)] + [counts[(name, p)] for p in parts]
            out.append(f"  {label(name):16s}" + "".join(f"{v:8d}" for v in row))

    if split is not None:
        unsplit = sum(1 for r in records if r.file not in split)
        out.append(
            "part:" + "".join(f"  {p} {totals[p]}" for p in parts) + (f"  not in split {unsplit}" if unsplit else "")
        )
    table("race (FairFace's 7):", RACES_7, lambda r: r.race7)
    table("race (UTKFace's five):", range(len(ETHNICITIES)), lambda r: r.race, lambda i: ETHNICITIES[i])
    table("age group:", AGE_GROUPS, lambda r: r.label.age_group)
    table("gender:", range(len(GENDERS)), lambda r: r.gender, lambda i: GENDERS[i])
    if faces is not None:
        part_by_file = {r.file: part_of(r) for r in records}
        no_face = Counter(part_by_file[f] for f in faces.dropped if f in part_by_file)
        row = [sum(no_face.values())] + [no_face[p] for p in parts]
        out.append(f"  {'no face':16s}" + "".join(f"{v:8d}" for v in row))
    if scan.skipped:
        out.append("skipped rows:")
        for key, reason in sorted(scan.skipped.items()):
            out.append(f"  {key!r}: {reason}")
    groups = scan.duplicate_groups()
    out.append(f"duplicate groups (byte-identical): {len(groups)} groups, {sum(len(g) for g in groups)} files")
    for group in groups[:5]:
        out.append("  " + ", ".join(r.file for r in group))
    return "\n".join(out)
