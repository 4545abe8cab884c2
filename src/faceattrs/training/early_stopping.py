"""Pluggable early-stopping rules for the training engine.

Each rule sees the validation outcome of every epoch and answers "stop now?".
Rules keep their state in plain JSON-able dicts so a resumed run continues
exactly where it stopped.

>>> import numpy as np
>>> rule = PercentileStop(threshold=11)
>>> true = np.arange(100.0)
>>> rule.distance(true + 2, true)  # each of the 4 percentiles is off by 2
8.0
>>> rule.should_stop(0, {}, true + 2, true)
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class StoppingRule(Protocol):
    #: when true, the engine restores the weights of :attr:`best_epoch` at the end
    restores_best: bool
    best_epoch: int | None

    def should_stop(
        self,
        epoch: int,
        metrics: dict[str, float],
        val_age_pred: np.ndarray | None,
        val_age_true: np.ndarray | None,
    ) -> bool: ...

    def is_best(self) -> bool: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class PercentileStop:
    """The course project's rule, exactly.

    After each epoch, take the 25th, 50th, 75th and 95th percentiles of the
    predicted and of the true validation ages; stop when the sum of the four
    absolute differences is at most ``threshold`` (default 11). The weights of
    the stopping epoch are kept (no restoring).
    """

    threshold: float = 11.0
    percentiles: tuple[float, ...] = (25, 50, 75, 95)
    restores_best: bool = False
    best_epoch: int | None = None
    history: list[float] = field(default_factory=list)

    def distance(self, predicted: np.ndarray, true: np.ndarray) -> float:
        """Sum over the percentiles of |percentile(predicted) - percentile(true)|."""
        p = np.percentile(np.asarray(predicted, float), self.percentiles)
        t = np.percentile(np.asarray(true, float), self.percentiles)
        return float(np.abs(p - t).sum())

    def should_stop(self, epoch, metrics, val_age_pred, val_age_true) -> bool:
        if val_age_pred is None or val_age_true is None:
            raise ValueError("PercentileStop needs age predictions")
        distance = self.distance(val_age_pred, val_age_true)
        metrics["percentile_distance"] = distance
        self.history.append(distance)
        return distance <= self.threshold

    def is_best(self) -> bool:
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state["history"])


@dataclass
class PatienceStop:
    """Stop when ``metric`` has not improved for ``patience`` epochs; restore the best weights.

    ``mode`` is ``"min"`` for errors (age MAE) and ``"max"`` for scores (macro-F1).

    >>> rule = PatienceStop("val_mae", mode="min", patience=2)
    >>> [rule.should_stop(e, {"val_mae": m}, None, None) for e, m in enumerate([5, 4, 4.5, 4.2])]
    [False, False, False, True]
    >>> rule.best_epoch
    1
    """

    metric: str
    mode: str = "min"
    patience: int = 3
    min_delta: float = 0.0
    restores_best: bool = True
    best_epoch: int | None = None
    best_value: float | None = None
    _improved: bool = False

    def _better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        if self.mode == "min":
            return value < self.best_value - self.min_delta
        return value > self.best_value + self.min_delta

    def should_stop(self, epoch, metrics, val_age_pred, val_age_true) -> bool:
        value = float(metrics[self.metric])
        self._improved = self._better(value)
        if self._improved:
            self.best_value, self.best_epoch = value, epoch
        assert self.best_epoch is not None
        return epoch - self.best_epoch >= self.patience

    def is_best(self) -> bool:
        return self._improved

    def state_dict(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "best_value": self.best_value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_epoch, self.best_value = state["best_epoch"], state["best_value"]
