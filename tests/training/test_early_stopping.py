import numpy as np
import pytest

from faceattrs.training.early_stopping import PatienceStop, PercentileStop


def test_percentile_distance_hand_computed():
    true = np.array([10, 20, 30, 40, 50], float)
    # numpy linear percentiles of true: 25th=20, 50th=30, 75th=40, 95th=48
    pred = np.array([12, 22, 33, 41, 60], float)
    # of pred: 25th=22, 50th=33, 75th=41, 95th=56.2 -> |2|+|3|+|1|+|8.2| = 14.2
    assert PercentileStop().distance(pred, true) == pytest.approx(14.2)


def test_percentile_rule_stops_at_or_below_threshold():
    true = np.array([10, 20, 30, 40, 50], float)
    rule = PercentileStop(threshold=11)
    metrics: dict = {}
    assert not rule.should_stop(0, metrics, np.array([12, 22, 33, 41, 60.0]), true)  # 14.2 > 11
    assert metrics["percentile_distance"] == pytest.approx(14.2)
    assert rule.should_stop(1, {}, true + 2.75, true)  # exactly 11 -> stop (<=)
    assert rule.history == pytest.approx([14.2, 11.0])


def test_percentile_rule_does_not_stop_on_a_constant_prediction():
    true = np.arange(1, 90, dtype=float)
    assert not PercentileStop().should_stop(0, {}, np.full_like(true, 30.0), true)


def test_percentile_rule_needs_age_predictions():
    with pytest.raises(ValueError, match="age predictions"):
        PercentileStop().should_stop(0, {}, None, None)


def test_patience_max_mode_and_state_round_trip():
    rule = PatienceStop("val_macro_f1", mode="max", patience=2)
    stops = [rule.should_stop(e, {"val_macro_f1": v}, None, None) for e, v in enumerate([0.5, 0.6, 0.55, 0.58])]
    assert stops == [False, False, False, True] and rule.best_epoch == 1
    clone = PatienceStop("val_macro_f1", mode="max", patience=2)
    clone.load_state_dict(rule.state_dict())
    assert (clone.best_epoch, clone.best_value) == (1, 0.6)
