import pytest

from faceattrs.data.labels import parse_utkface_name


@pytest.mark.parametrize(
    ("name", "age", "gender", "race", "quirks"),
    [
        ("26_1_2_20170116174525125.jpg.chip.jpg", 26, 1, 2, ()),
        ("39_1_20170116174525125.jpg.chip.jpg", 39, 1, None, ("missing_race",)),
        ("24_0_1_20170116220224657 .jpg.chip.jpg", 24, 0, 1, ("space_before_ext",)),
        ("55_0_0_20170116232725357jpg.chip.jpg", 55, 0, 0, ("missing_dot",)),
        ("14_0_0_2017011022340900.jpg.chip.jpg", 14, 0, 0, ("datetime_16",)),
        ("28_1_2_201701161846515488.jpg.chip.jpg", 28, 1, 2, ("datetime_18",)),
        ("116_1_4_20170116174525125.jpg.chip.jpg", 116, 1, 4, ()),
    ],
)
def test_every_known_quirk_has_a_rule(name, age, gender, race, quirks):
    label = parse_utkface_name(name)
    assert label is not None
    assert (label.age, label.gender, label.race, label.quirks) == (age, gender, race, quirks)


@pytest.mark.parametrize(
    "name",
    [
        "holiday.jpg",
        "26_2_0_20170116174525125.jpg.chip.jpg",
        "26_1_5_20170116174525125.jpg.chip.jpg",
        "x_1_0_20170116174525125.jpg.chip.jpg",
        "26_1_0_20170116174525125.png",
        "",
    ],
)
def test_names_that_are_not_labels_give_none(name):
    assert parse_utkface_name(name) is None
