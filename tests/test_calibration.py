import numpy as np
import pytest

from faceattrs.calibration import QuantileAgeInterval, age_median, fit_temperature, nll, softmax


def test_the_median_is_the_whole_age_with_the_least_expected_absolute_error():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (200, 117))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ages = np.arange(117)
    expected_abs_error = p @ np.abs(ages[:, None] - ages[None, :])  # (faces, candidate age)
    best = expected_abs_error.min(1)
    chosen = expected_abs_error[np.arange(200), age_median(logits).astype(int)]
    np.testing.assert_allclose(chosen, best, rtol=1e-9)


def test_a_long_right_tail_pulls_the_mean_but_not_the_median():
    p = np.full(117, 1e-9)
    p[25], p[26], p[27], p[80] = 0.3, 0.3, 0.2, 0.2
    logits = np.log(p)[None, :]
    assert age_median(logits)[0] == 26
    assert (np.exp(logits) / np.exp(logits).sum()) @ np.arange(117) > 35


def test_temperature_scaling_lowers_the_nll_of_overconfident_logits_and_keeps_the_class():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 4000)
    logits = 8.0 * np.eye(5)[labels] + rng.normal(0, 4, (4000, 5))  # right 80% of the time, sure 99% of it
    fit, held = slice(0, 2000), slice(2000, None)
    t = fit_temperature(logits[fit], labels[fit])
    assert t > 1
    assert nll(logits[held], labels[held], t) < nll(logits[held], labels[held]) - 0.1
    np.testing.assert_array_equal(softmax(logits, t).argmax(1), logits.argmax(1))


def test_the_quantile_range_covers_new_faces_and_always_holds_the_age_shown():
    rng = np.random.default_rng(3)
    centre = rng.integers(2, 90, 6000)
    spread = rng.uniform(2, 9, 6000)
    logits = -0.5 * ((np.arange(117) - centre[:, None]) / spread[:, None]) ** 2
    too_sure = np.round(centre + rng.normal(0, 0.6 * spread))  # narrower than the network believes: level > 5%
    interval = QuantileAgeInterval.fit(logits[:3000], too_sure[:3000], coverage=0.9)
    assert interval.level > 0.05
    low, high = interval.bounds_for(logits[3000:])
    # the fitted level does not step the coverage by whole years: close to the asked rate on new faces
    assert 0.88 <= ((too_sure[3000:] >= low) & (too_sure[3000:] <= high)).mean() <= 0.92
    in_fit = interval.bounds_for(logits[:3000])
    assert ((too_sure[:3000] >= in_fit[0]) & (too_sure[:3000] <= in_fit[1])).mean() >= 0.9  # the conformal count
    shown = age_median(logits[3000:])
    assert np.all((low <= shown) & (shown <= high)) and np.all(low >= 0)
    peaked = np.full((1, 117), -50.0)
    peaked[0, 3] = 0.0  # a toddler the network is sure of: Q05 = Q95 = 3
    low, high = QuantileAgeInterval(coverage=0.9, level=0.05).bounds_for(peaked)
    assert (low[0], high[0]) == (3.0, 3.0)


def test_a_model_folders_range_is_read_back_and_older_ranges_are_refused():
    interval = QuantileAgeInterval(coverage=0.9, level=0.0806)
    assert QuantileAgeInterval.from_metadata({"coverage": 0.9, "level": 0.0806}) == interval
    with pytest.raises(ValueError, match="predates version 17"):
        QuantileAgeInterval.from_metadata({"delta": -1.0, "coverage": 0.9, "level": 0.05, "kind": "quantile"})
    with pytest.raises(ValueError, match="predates version 17"):
        QuantileAgeInterval.from_metadata({"q": 1.2, "coverage": 0.9, "sigma_floor": 0.5})
