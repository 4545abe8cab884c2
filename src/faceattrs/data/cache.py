"""Decoded UTKFace images cached as memory-mapped ``.npy`` arrays.

Decoding 20k JPEGs each epoch costs more than training a small network on
2 cores, so every image is decoded once, passed through the shared
:func:`faceattrs.preprocessing.to_model_input` at the training resolution and
stored with its labels. The cache key is the resolution plus a hash of the
(file name, content hash) list, so a changed data folder builds a new cache.

>>> faces = load_faces(Path("../shared/datasets/utkface/UTKFace"), size=80)  # doctest: +SKIP
>>> faces.images.shape  # doctest: +SKIP
(21391, 80, 80, 3)
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from faceattrs.data.utkface import FaceRecord, UTKFaceQuirkWarning, scan_utkface
from faceattrs.preprocessing import to_model_input


def default_cache_dir() -> Path:
    """``$FACEATTRS_CACHE`` when set, else ``.cache`` in the working directory (git-ignored)."""
    return Path(os.environ.get("FACEATTRS_CACHE", ".cache"))


def private_tmp(path: Path) -> Path:
    """A temporary name beside ``path`` that no other process uses, for writing ``path`` and renaming it into place.

    Two commands that fill the same cache at once (a build and an evaluation, say) must not write into one
    shared temporary file: the second one's ``open_memmap(mode="w+")`` truncated the first one's half-written
    array, and the first then renamed it into place with 9,860 of FairFace's 19,963 crops black (session 26).
    With a name per process each writes a whole file and the last rename wins.

    >>> private_tmp(Path("c/x.npy")).name == f"x.{os.getpid()}.tmp.npy"
    True
    """
    return path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")


@dataclass
class FaceArrays:
    """Images and labels of a set of faces, row-aligned.

    ``race`` is -1 where the file name carries no race. Ages are exact years (UTKFace) unless
    ``age_low`` and ``age_high`` are given: then each face's label is the interval between them, both
    included (FairFace's age groups), and ``age`` is only a placeholder inside it. A face with
    ``age_low == age_high`` has an exact age. :func:`concat_faces` joins sets of both kinds.

    >>> exact = FaceArrays(np.array(["a"]), np.zeros((1, 2, 2, 3), np.uint8), np.array([30], np.int16),
    ...                    np.array([0], np.int8), np.array([1], np.int8))
    >>> exact.exact_age.tolist(), exact.age_interval()
    ([True], (array([30], dtype=int16), array([30], dtype=int16)))
    """

    names: np.ndarray  # str
    images: np.ndarray  # uint8 (N, H, W, 3), often a read-only memmap
    age: np.ndarray  # int16
    gender: np.ndarray  # int8
    race: np.ndarray  # int8
    age_low: np.ndarray | None = None  # int16; None: every age is exact
    age_high: np.ndarray | None = None  # int16

    def __len__(self) -> int:
        return len(self.names)

    def age_interval(self) -> tuple[np.ndarray, np.ndarray]:
        """Each face's age label as ``(low, high)``, both included (``(age, age)`` for an exact age)."""
        if self.age_low is None or self.age_high is None:
            return self.age, self.age
        return self.age_low, self.age_high

    @property
    def exact_age(self) -> np.ndarray:
        """Which faces are labelled with an exact age (the ones age errors in years are measured on)."""
        low, high = self.age_interval()
        return low == high

    def subset(self, index: np.ndarray) -> FaceArrays:
        """Rows ``index`` (bool mask or integer indices); images stay lazy where possible."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        low, high = (None, None) if self.age_low is None else (self.age_low[index], self.age_high[index])
        return FaceArrays(
            self.names[index], self.images[index], self.age[index], self.gender[index], self.race[index], low, high
        )

    def part(self, split: dict[str, str], part: str) -> FaceArrays:
        """The rows that ``split`` (name -> part) assigns to ``part``."""
        return self.subset(np.array([split.get(n) == part for n in self.names], dtype=bool))


def concat_faces(*sets: FaceArrays) -> FaceArrays:
    """One set of the rows of ``sets`` in order (images copied into memory); intervals kept where any set has them.

    >>> a = FaceArrays(np.array(["a"]), np.zeros((1, 2, 2, 3), np.uint8), np.array([30], np.int16),
    ...                np.array([0], np.int8), np.array([1], np.int8))
    >>> group = np.array([20], np.int16), np.array([29], np.int16)
    >>> b = FaceArrays(np.array(["b"]), np.ones((1, 2, 2, 3), np.uint8), np.array([25], np.int16),
    ...                np.array([1], np.int8), np.array([2], np.int8), *group)
    >>> both = concat_faces(a, b)
    >>> both.names.tolist(), both.age_interval()[1].tolist(), both.exact_age.tolist()
    (['a', 'b'], [30, 29], [True, False])
    """
    intervals = any(s.age_low is not None for s in sets)
    return FaceArrays(
        names=np.concatenate([s.names for s in sets]),
        images=np.concatenate([np.asarray(s.images) for s in sets]),
        age=np.concatenate([s.age for s in sets]).astype(np.int16),
        gender=np.concatenate([s.gender for s in sets]).astype(np.int8),
        race=np.concatenate([s.race for s in sets]).astype(np.int8),
        age_low=np.concatenate([s.age_interval()[0] for s in sets]).astype(np.int16) if intervals else None,
        age_high=np.concatenate([s.age_interval()[1] for s in sets]).astype(np.int16) if intervals else None,
    )


def _key(records: list[FaceRecord], size: int) -> str:
    digest = hashlib.sha256()
    for record in records:
        digest.update(f"{record.name}\t{record.sha256}\n".encode())
    return f"{size}px_{digest.hexdigest()[:12]}"


def build_arrays(records: list[FaceRecord], size: int, progress: bool = True) -> FaceArrays:
    """Decode and resize ``records`` into memory (no cache)."""
    images = np.empty((len(records), size, size, 3), np.uint8)
    for i, record in enumerate(tqdm(records, desc=f"decode {size}px", unit="img", disable=not progress)):
        with Image.open(record.path) as image:
            images[i] = to_model_input(image, size)
    return FaceArrays(
        names=np.array([r.name for r in records]),
        images=images,
        age=np.array([r.age for r in records], np.int16),
        gender=np.array([r.gender for r in records], np.int8),
        race=np.array([-1 if r.race is None else r.race for r in records], np.int8),
    )


def load_faces(folder: Path, size: int, *, cache_dir: Path | None = None, progress: bool = True) -> FaceArrays:
    """All readable faces of a UTKFace folder at ``size`` px, from the cache when present."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UTKFaceQuirkWarning)  # the full scan below reports them
        records = scan_utkface(Path(folder), decode=False, progress=progress)
    key = _key(records.records, size)
    image_file = Path(cache_dir or default_cache_dir()) / f"utkface_{key}.npy"
    label_file = image_file.with_suffix(".json")
    if image_file.exists() and label_file.exists():
        labels = json.loads(label_file.read_text())
        return FaceArrays(
            names=np.array(labels["names"]),
            images=np.load(image_file, mmap_mode="r"),
            age=np.array(labels["age"], np.int16),
            gender=np.array(labels["gender"], np.int8),
            race=np.array(labels["race"], np.int8),
        )
    # A full scan decodes every file so unreadable ones are reported and dropped.
    scan = scan_utkface(Path(folder), decode=True, progress=progress)
    arrays = build_arrays(scan.records, size, progress)
    image_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = private_tmp(image_file)
    np.save(tmp, arrays.images)
    tmp.replace(image_file)
    label_file.write_text(
        json.dumps(
            {
                "names": arrays.names.tolist(),
                "age": arrays.age.tolist(),
                "gender": arrays.gender.tolist(),
                "race": arrays.race.tolist(),
                "skipped": scan.skipped,
            }
        )
    )
    return arrays
