"""Which faces train, tune and score a model.

* ``project`` -- the committed split (``splits/utkface_v1.csv``), natural class
  balance, all ages. Every model in the project is scored on its test part.
* ``original`` -- the course project's own protocol, kept to reproduce its
  figures: a random 60/20/20 split of the files (no grouping of duplicates);
  for ethnicity the White class is first randomly halved, for age the faces
  over 99 are dropped.

>>> import numpy as np
>>> from faceattrs.data.cache import FaceArrays
>>> n = 100
>>> faces = FaceArrays(np.array([f"{i}" for i in range(n)]), np.zeros((n, 1, 1, 3), np.uint8),
...                    np.arange(n, dtype=np.int16) + 10, np.zeros(n, np.int8), np.zeros(n, np.int8))
>>> parts = original_protocol(faces, task="age", seed=0)
>>> [len(parts[p]) for p in ("train", "val", "test")]
[54, 18, 18]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceattrs.data.cache import FaceArrays
from faceattrs.data.folders import FAIRFACE_SPLIT, UTKFACE_DIR, UTKFACE_SPLIT
from faceattrs.data.split import DEFAULT_SPLIT_FILE, PARTS, read_split

PROTOCOLS = ("project", "original")


def project_protocol(faces: FaceArrays, split_file: Path = DEFAULT_SPLIT_FILE) -> dict[str, FaceArrays]:
    split = read_split(split_file)
    missing = [n for n in faces.names if n not in split]
    if missing:
        raise ValueError(
            f"{len(missing)} files of the data folder are not in {split_file} (e.g. {missing[0]}); "
            "the split belongs to another copy of UTKFace"
        )
    return {part: faces.part(split, part) for part in PARTS}


def original_protocol(faces: FaceArrays, task: str, seed: int) -> dict[str, FaceArrays]:
    rng = np.random.default_rng(seed)
    if task == "ethnicity":
        keep = faces.race >= 0
        white = np.flatnonzero(faces.race == 0)
        keep[rng.choice(white, size=len(white) // 2, replace=False)] = False
    elif task == "age":
        keep = faces.age <= 99
    else:
        raise ValueError(f"the original protocol has no {task!r} task")
    index = rng.permutation(np.flatnonzero(keep))
    n_train, n_val = int(0.6 * len(index)), int(0.2 * len(index))
    cuts = {
        "train": index[:n_train],
        "val": index[n_train : n_train + n_val],
        "test": index[n_train + n_val :],
    }
    return {part: faces.subset(np.sort(idx)) for part, idx in cuts.items()}


def project_parts(
    size: int,
    utkface: Path = UTKFACE_DIR,
    utkface_split: Path = UTKFACE_SPLIT,
    fairface: Path | None = None,
    fairface_split: Path = FAIRFACE_SPLIT,
) -> dict[str, FaceArrays]:
    """The project protocol's train/val/test faces at ``size`` px: UTKFace's, joined with FairFace's when given.

    FairFace faces carry their age groups as intervals (``FaceArrays.age_low``/``age_high``), so the
    faces with exact ages in a part are UTKFace's and the others FairFace's.
    """
    from faceattrs.data.cache import concat_faces, load_faces

    parts = project_protocol(load_faces(utkface, size), utkface_split)
    if fairface is None:
        return parts
    from faceattrs.data.fairface import load_fairface_faces

    faces = load_fairface_faces(fairface, size).faces  # its age groups ride along as age_low/age_high
    split = read_split(fairface_split)
    missing = [n for n in faces.names if n not in split]
    if missing:
        raise ValueError(f"{len(missing)} FairFace files are not in {fairface_split} (e.g. {missing[0]})")
    return {part: concat_faces(parts[part], faces.part(split, part)) for part in PARTS}


def make_parts(faces: FaceArrays, protocol: str, task: str, seed: int, split_file: Path = DEFAULT_SPLIT_FILE):
    """train/val/test faces of ``protocol``."""
    if protocol == "project":
        return project_protocol(faces, split_file)
    if protocol == "original":
        return original_protocol(faces, task, seed)
    raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")
