"""A printable summary of a UTKFace folder (``faceattrs data inspect``)."""

from __future__ import annotations

from collections import Counter

from faceattrs.data.labels import ETHNICITIES, GENDERS
from faceattrs.data.utkface import UTKFaceScan, labels_agree


def summarize(scan: UTKFaceScan, show_groups: int = 5) -> str:
    """Counts, label distributions, quirks, unreadable files and duplicate groups.

    >>> from faceattrs.data.utkface import UTKFaceScan
    >>> print(summarize(UTKFaceScan([])).splitlines()[0])
    images: 0 readable, 0 skipped
    """
    records = scan.records
    n = len(records)
    out = [f"images: {n} readable, {len(scan.skipped)} skipped"]

    def share(count: int) -> str:
        return f"{count:6d}  {100 * count / max(n, 1):5.1f}%"

    races = Counter(r.race for r in records)
    out.append("ethnicity:")
    for i, name in enumerate(ETHNICITIES):
        out.append(f"  {name:8s}{share(races.get(i, 0))}")
    if races.get(None):
        out.append(f"  {'unknown':8s}{share(races[None])}")
    genders = Counter(r.gender for r in records)
    out.append("gender:")
    for i, name in enumerate(GENDERS):
        out.append(f"  {name:8s}{share(genders.get(i, 0))}")
    decades = Counter(min(r.age // 10, 10) for r in records)
    out.append("age decade:")
    for d in sorted(decades):
        label = f"{10 * d}-{10 * d + 9}" if d < 10 else "100+"
        out.append(f"  {label:8s}{share(decades[d])}")
    if records:
        ages = sorted(r.age for r in records)
        mode = Counter(ages).most_common(1)[0][0]
        out.append(f"age: min {ages[0]}, median {ages[n // 2]}, max {ages[-1]}, mode {mode}")
    out.append("quirks (documented rule applied):")
    for quirk, names in sorted(scan.quirks().items()):
        out.append(f"  {quirk}: {len(names)}  e.g. {names[0]!r}")
    if scan.skipped:
        out.append("skipped files:")
        for name, reason in sorted(scan.skipped.items()):
            out.append(f"  {name!r}: {reason}")
    groups = scan.duplicate_groups()
    conflicting = [g for g in groups if not labels_agree(g)]
    out.append(
        f"duplicate groups (byte-identical): {len(groups)} groups, {sum(len(g) for g in groups)} files, "
        f"{len(conflicting)} with disagreeing labels"
    )
    for group in groups[:show_groups]:
        out.append("  " + ", ".join(r.name for r in group))
    if len(groups) > show_groups:
        out.append(f"  ... {len(groups) - show_groups} more")
    return "\n".join(out)
