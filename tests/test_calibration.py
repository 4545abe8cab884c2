import numpy as np

from faceattrs.calibration import AGE_POINTS, age_mean_sigma, age_median


def test_the_median_is_the_whole_age_with_the_least_expected_absolute_error():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (200, 117))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ages = np.arange(117)
    expected_abs_error = p @ np.abs(ages[:, None] - ages[None, :])  # (faces, candidate age)
    best = expected_abs_error.min(1)
    chosen = expected_abs_error[np.arange(200), age_median(logits).astype(int)]
    np.testing.assert_allclose(chosen, best, rtol=1e-9)
    mean, _ = age_mean_sigma(logits)
    assert np.all(expected_abs_error[np.arange(200), np.round(mean).astype(int)] >= best - 1e-12)


def test_a_long_right_tail_pulls_the_mean_but_not_the_median():
    p = np.full(117, 1e-9)
    p[25], p[26], p[27], p[80] = 0.3, 0.3, 0.2, 0.2
    logits = np.log(p)[None, :]
    assert age_median(logits)[0] == 26
    assert AGE_POINTS["mean"](logits)[0] > 35
    assert set(AGE_POINTS) == {"mean", "median"}
