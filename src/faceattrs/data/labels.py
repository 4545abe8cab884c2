"""Labels of UTKFace images, read from their file names.

UTKFace names its aligned crops ``[age]_[gender]_[race]_[datetime].jpg.chip.jpg``.
A handful of names in the public release break that pattern. Each break is
handled by one documented rule, reported as a *quirk*, and never raises:

==================  =================================================  ===========================
quirk               example                                            rule
==================  =================================================  ===========================
``missing_race``    ``39_1_20170116174525125.jpg.chip.jpg``            race = ``None`` (unknown):
                                                                       usable for age and gender,
                                                                       ignored by ethnicity losses
                                                                       and metrics; kept in train.
``space_before_ext`` ``24_0_1_20170116220224657 .jpg.chip.jpg``        the space is ignored.
``missing_dot``     ``55_0_0_20170116232725357jpg.chip.jpg``           the dot is implied.
``datetime_16``     ``14_0_0_2017011022340900.jpg.chip.jpg``           datetime kept as written.
``datetime_18``     ``28_1_2_201701161846515488.jpg.chip.jpg``         datetime kept as written.
==================  =================================================  ===========================

A name that does not carry an age and a gender at all is not a UTKFace label
and :func:`parse_utkface_name` returns ``None`` for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ETHNICITIES: tuple[str, ...] = ("white", "black", "asian", "indian", "others")
GENDERS: tuple[str, ...] = ("male", "female")

# Age and gender are mandatory; race is optional (3 names lack it); the
# datetime may have any number of digits; an optional space and an optional
# dot may precede the ``jpg.chip.jpg`` tail.
_NAME = re.compile(
    r"^(?P<age>\d{1,3})_(?P<gender>[01])_(?:(?P<race>[0-4])_)?"
    r"(?P<datetime>\d{6,})(?P<space> ?)(?P<dot>\.?)jpg\.chip\.jpg$"
)


@dataclass(frozen=True)
class FaceLabel:
    """Ground truth of one UTKFace image.

    ``race`` is an index into :data:`ETHNICITIES`, or ``None`` when the file
    name does not carry one. ``gender`` indexes :data:`GENDERS`.
    """

    age: int
    gender: int
    race: int | None
    datetime: str
    quirks: tuple[str, ...] = ()


def parse_utkface_name(name: str) -> FaceLabel | None:
    """Parse a UTKFace file name into its labels.

    Returns ``None`` when the name is not a UTKFace label at all.

    >>> parse_utkface_name("26_1_2_20170116174525125.jpg.chip.jpg")
    FaceLabel(age=26, gender=1, race=2, datetime='20170116174525125', quirks=())
    >>> parse_utkface_name("39_1_20170116174525125.jpg.chip.jpg").quirks
    ('missing_race',)
    >>> parse_utkface_name("holiday.jpg") is None
    True
    """
    match = _NAME.match(name)
    if match is None:
        return None
    quirks: list[str] = []
    race = match["race"]
    if race is None:
        quirks.append("missing_race")
    if match["space"]:
        quirks.append("space_before_ext")
    if not match["dot"]:
        quirks.append("missing_dot")
    if len(match["datetime"]) != 17:
        quirks.append(f"datetime_{len(match['datetime'])}")
    return FaceLabel(
        age=int(match["age"]),
        gender=int(match["gender"]),
        race=None if race is None else int(race),
        datetime=match["datetime"],
        quirks=tuple(quirks),
    )
