from faceattrs.evaluation.model_card import _interval_rule


def test_the_card_names_the_fitted_level():
    assert "`[Q8.1%, Q91.9%]`" in _interval_rule({"coverage": 0.9, "level": 0.0806})


def test_the_card_names_the_age_buckets_where_the_range_held_less_often():
    from faceattrs.evaluation.model_card import _range_by_age_line

    report = {"age bucket": {"0-12": {"coverage": 0.97}, "40-59": {"coverage": 0.833}, "60+": {"coverage": 0.799}}}
    (line,) = _range_by_age_line(report)
    assert "83.3% for ages 40–59, 79.9% for ages 60+" in line and "0–12" not in line
    assert _range_by_age_line({"age bucket": {"0-12": {"coverage": 0.9}}}) == []
