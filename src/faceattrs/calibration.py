"""Calibrated outputs: temperature-scaled probabilities and conformal age ranges.

Both are fitted on the validation part only and applied at serving time
with numpy alone.

* **Temperature scaling** (Guo et al., 2017): one scalar ``T`` per classifier,
  ``softmax(logits / T)``, chosen to minimise the validation negative
  log-likelihood. It changes confidence, never the predicted class.
* **Conformal quantile age range**: the network's age distribution gives its
  ``level`` and ``1 - level`` quantiles ``Q_low`` and ``Q_high`` (whole years).
  The ranges ``[Q_low, Q_high]`` shrink as ``level`` grows, so each validation
  face has a largest level whose range still holds its age,
  ``min(CDF(age), 1 - CDF(age - 1))``; the level is the split-conformal quantile
  of those scores, so the range holds the true age for ``coverage`` of faces drawn
  like the validation faces (nested conformal sets, Gupta et al., 2022). The range
  follows the distribution's shape: narrow for toddlers, wide for the elderly,
  and lopsided where the network's doubt is.
* **The age shown** is the median of the network's distribution over whole
  years: the point that minimises the expected absolute error in years (the
  mean minimises the squared error).

>>> import numpy as np
>>> softmax(np.array([[0.0, np.log(3.0)]]))
array([[0.25, 0.75]])
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / T)``."""
    p = softmax(logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.05, 20] that minimises the NLL of ``labels``.

    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 3, 2000)
    >>> sharp = 10.0 * np.eye(3)[labels] + rng.normal(0, 4, (2000, 3))  # over-confident logits
    >>> fit_temperature(sharp, labels) > 1
    True
    """
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(
        lambda log_t: nll(logits, labels, math.exp(log_t)),
        bounds=(math.log(0.05), math.log(20.0)),
        method="bounded",
    )
    return float(math.exp(result.x))


def expected_calibration_error(proba: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: the confidence-weighted gap between confidence and accuracy.

    >>> expected_calibration_error(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1]))
    0.4
    """
    confidence = proba.max(1)
    correct = proba.argmax(1) == labels
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        mask = (confidence > low) & (confidence <= high)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return round(float(ece), 12)


def age_median(age_logits: np.ndarray) -> np.ndarray:
    """The median of the network's age distribution: the smallest whole age whose cumulative probability reaches 1/2.

    Labels are whole years, so the point with the least expected absolute error is a whole year.

    >>> age_median(np.log(np.array([[0.1, 0.3, 0.2, 0.4]])))  # mean 1.9, median 2
    array([2.])
    """
    cumulative = softmax(age_logits).cumsum(axis=1)
    return (cumulative >= 0.5 - 1e-9).argmax(axis=1).astype(np.float64)


def age_quantiles(age_logits: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The distribution's ``level`` and ``1 - level`` quantiles in whole years (smallest age whose CDF reaches it).

    >>> age_quantiles(np.log(np.array([[0.1, 0.3, 0.2, 0.4]])), 0.25)
    (array([1.]), array([3.]))
    """
    cumulative = softmax(age_logits).cumsum(axis=1)
    low = (cumulative >= level - 1e-9).argmax(axis=1)
    high = (cumulative >= 1 - level - 1e-9).argmax(axis=1)
    return low.astype(np.float64), high.astype(np.float64)


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """The split-conformal quantile: the ceil((n + 1) * coverage)-th smallest score."""
    scores = np.sort(np.asarray(scores, np.float64))
    k = math.ceil((len(scores) + 1) * coverage)
    if k > len(scores):
        return float("inf")
    return float(scores[k - 1])


@dataclass(frozen=True)
class QuantileAgeInterval:
    """``[Q_level, Q_(1-level)]`` of the age distribution, never excluding its median.

    >>> QuantileAgeInterval.from_metadata({"coverage": 0.9, "level": 0.08, "delta": 0.0, "kind": "quantile"})
    QuantileAgeInterval(coverage=0.9, level=0.08)
    """

    coverage: float
    level: float

    @classmethod
    def from_metadata(cls, config: dict) -> QuantileAgeInterval:
        """The range a model folder's ``calibration.age_interval`` describes.

        Folders before version 17 widened a fixed level by ``delta`` years; they are no longer read.
        """
        if config.get("delta", 0) != 0 or "level" not in config:
            raise ValueError("the model folder's age range predates version 17; rebuild it with `faceattrs build`")
        return cls(float(config["coverage"]), float(config["level"]))

    @classmethod
    def fit(
        cls, age_logits: np.ndarray, age: np.ndarray, coverage: float = 0.9, age_high: np.ndarray | None = None
    ) -> QuantileAgeInterval:
        """Fit ``level`` on validation faces.

        With ``age_high``, face i is labelled with the age group ``age[i] .. age_high[i]`` and its
        range counts as holding the label when the two overlap (FairFace's groups beside UTKFace's
        exact ages, whose ``age_high`` is ``age``).

        >>> rng = np.random.default_rng(0)
        >>> centre = rng.integers(20, 80, 4000); spread = rng.uniform(1, 8, 4000)
        >>> logits = -0.5 * ((np.arange(117) - centre[:, None]) / spread[:, None]) ** 2
        >>> age = np.round(centre + rng.normal(0, 1.5 * spread))  # wider than the network believes
        >>> interval = QuantileAgeInterval.fit(logits[:2000], age[:2000], coverage=0.9)
        >>> interval.level < 0.05  # the range reaches further into the tails to make up for it
        True
        >>> low, high = interval.bounds_for(logits[2000:])
        >>> 0.88 <= float(((age[2000:] >= low) & (age[2000:] <= high)).mean()) <= 0.92
        True
        >>> groups = QuantileAgeInterval.fit(logits[:2000], age[:2000] - 5, coverage=0.9, age_high=age[:2000] + 4)
        >>> groups.level > interval.level  # a 10-year group is easier to overlap than one year
        True
        """
        cumulative = softmax(age_logits).cumsum(axis=1)
        last = cumulative.shape[1] - 1
        rows = np.arange(len(cumulative))
        low = np.asarray(age).astype(np.int64)
        high = low if age_high is None else np.asarray(age_high).astype(np.int64)
        inside = (high >= 0) & (low <= last)  # a label off the network's scale is in no range
        below = np.where(low > 0, cumulative[rows, np.clip(low - 1, 0, last)], 0.0)
        # the range overlaps the label at every level up to this one
        largest_level = np.where(inside, np.minimum(cumulative[rows, np.clip(high, 0, last)], 1 - below), 0.0)
        level = -conformal_quantile(-largest_level, coverage)
        # A face whose score equals the level sits on a strict bound of age_quantiles: step just below it.
        return cls(coverage, float(np.clip(level - 1e-6, 0.0, 0.5)))

    def bounds_for(self, age_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low, high = age_quantiles(age_logits, self.level)
        median = age_median(age_logits)
        return np.clip(np.minimum(low, median), 0, None), np.maximum(high, median)
