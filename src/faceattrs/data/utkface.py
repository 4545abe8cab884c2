"""Reading a UTKFace folder: labels, content hashes, quirks and bad files.

>>> from pathlib import Path
>>> scan = scan_utkface(Path("../shared/datasets/utkface/UTKFace"))  # doctest: +SKIP
>>> len(scan.records), len(scan.skipped)  # doctest: +SKIP
(21391, 0)
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from faceattrs.data.labels import FaceLabel, parse_utkface_name

log = logging.getLogger(__name__)


class UTKFaceQuirkWarning(UserWarning):
    """A UTKFace file name broke the naming pattern and a documented rule applied."""


@dataclass(frozen=True)
class FaceRecord:
    """One readable, labelled UTKFace image."""

    name: str
    path: Path
    label: FaceLabel
    sha256: str

    @property
    def age(self) -> int:
        return self.label.age

    @property
    def gender(self) -> int:
        return self.label.gender

    @property
    def race(self) -> int | None:
        return self.label.race


@dataclass
class UTKFaceScan:
    """What :func:`scan_utkface` found in a folder."""

    records: list[FaceRecord]
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason

    def quirks(self) -> dict[str, list[str]]:
        """Names per quirk kind."""
        out: dict[str, list[str]] = defaultdict(list)
        for record in self.records:
            for quirk in record.label.quirks:
                out[quirk].append(record.name)
        return dict(out)

    def duplicate_groups(self) -> list[list[FaceRecord]]:
        """Groups of byte-identical files (two or more), largest first."""
        by_hash: dict[str, list[FaceRecord]] = defaultdict(list)
        for record in self.records:
            by_hash[record.sha256].append(record)
        groups = [g for g in by_hash.values() if len(g) > 1]
        return sorted(groups, key=lambda g: (-len(g), g[0].name))


def labels_agree(group: Iterable[FaceRecord]) -> bool:
    """True when every file of a duplicate group carries the same labels."""
    return len({(r.age, r.gender, r.race) for r in group}) == 1


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_image(path: Path) -> str | None:
    """Return why ``path`` is not a decodable image, or ``None`` when it is."""
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"not a decodable image: {exc}"
    return None


def scan_utkface(folder: Path, *, decode: bool = True, progress: bool = True) -> UTKFaceScan:
    """Read labels and content hashes of every file in a UTKFace folder.

    Files whose names are not UTKFace labels, and files that do not decode as
    images (when ``decode`` is true), are skipped with the reason recorded in
    :attr:`UTKFaceScan.skipped` and logged; a quirky name raises a
    :class:`UTKFaceQuirkWarning` and is handled by the rule documented in
    :mod:`faceattrs.data.labels`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"UTKFace folder not found: {folder}")
    records: list[FaceRecord] = []
    skipped: dict[str, str] = {}
    paths = sorted(p for p in folder.iterdir() if p.is_file())
    for path in tqdm(paths, desc="scan", unit="img", disable=not progress, leave=False):
        label = parse_utkface_name(path.name)
        if label is None:
            skipped[path.name] = "name is not [age]_[gender]_[race]_[datetime].jpg.chip.jpg"
            continue
        if decode and (reason := _check_image(path)) is not None:
            skipped[path.name] = reason
            continue
        records.append(FaceRecord(path.name, path, label, file_sha256(path)))
    quirk_counts = Counter(q for r in records for q in r.label.quirks)
    for quirk, count in sorted(quirk_counts.items()):
        warnings.warn(
            f"{count} UTKFace name(s) with quirk {quirk!r}; documented rule applied",
            UTKFaceQuirkWarning,
            stacklevel=2,
        )
    for name, reason in skipped.items():
        log.warning("skipped %s: %s", name, reason)
    return UTKFaceScan(records, skipped)
