"""Metrics that add up across batches and workers.

Each metric turns a batch of predictions and targets (numpy arrays) into a small vector of
sums; sums from any number of batches and workers are added, and :meth:`Metric.result` turns
the total into the value. So a metric over a whole dataset is exact, not a mean of means.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["Metric", "Accuracy", "MeanSquaredError", "MeanAbsoluteError", "RootMeanSquaredError", "R2", "FunctionMetric", "get_metrics"]


class Metric:
    """Base class: ``update`` gives the sums of one batch, ``result`` the value of a total."""

    name: str = "metric"

    def update(self, prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def result(self, sums: np.ndarray) -> float:
        raise NotImplementedError


class Accuracy(Metric):
    """Share of correct predictions.

    Several outputs per sample: the arg-max is the predicted class. One output per sample: it
    is the positive class when above ``threshold`` (0.5 for probabilities, 0 for logits).
    """

    name = "accuracy"

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold

    def update(self, prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
        if prediction.ndim > 1 and prediction.shape[-1] > 1:
            predicted = prediction.argmax(axis=-1)
        else:
            predicted = (prediction.reshape(len(prediction)) > self.threshold).astype(np.int64)
        correct = predicted.reshape(len(predicted)) == np.asarray(target).reshape(len(target))
        return np.array([correct.sum(), len(correct)], dtype=np.float64)

    def result(self, sums: np.ndarray) -> float:
        return float(sums[0] / sums[1]) if sums[1] else float("nan")


class _ErrorMetric(Metric):
    """Mean of an element-wise error over all outputs."""

    def error(self, difference: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def update(self, prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
        difference = _as_float(prediction) - _as_float(target).reshape(np.shape(prediction))
        return np.array([self.error(difference).sum(), difference.size], dtype=np.float64)

    def result(self, sums: np.ndarray) -> float:
        return float(sums[0] / sums[1]) if sums[1] else float("nan")


class MeanSquaredError(_ErrorMetric):
    name = "mse"

    def error(self, difference: np.ndarray) -> np.ndarray:
        return difference**2


class MeanAbsoluteError(_ErrorMetric):
    name = "mae"

    def error(self, difference: np.ndarray) -> np.ndarray:
        return np.abs(difference)


class RootMeanSquaredError(MeanSquaredError):
    name = "rmse"

    def result(self, sums: np.ndarray) -> float:
        return float(np.sqrt(super().result(sums)))


class R2(Metric):
    """Coefficient of determination over all outputs (1 - SSE / total sum of squares)."""

    name = "r2"

    def update(self, prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
        target = _as_float(target).reshape(np.shape(prediction))
        residual = _as_float(prediction) - target
        return np.array([target.size, target.sum(), (target**2).sum(), (residual**2).sum()], dtype=np.float64)

    def result(self, sums: np.ndarray) -> float:
        count, total, total_sq, sse = sums
        variation = total_sq - total**2 / count if count else 0.0
        return float(1.0 - sse / variation) if variation > 0 else float("nan")


class FunctionMetric(Metric):
    """A user function ``f(prediction, target) -> float`` (a batch mean), averaged over samples."""

    def __init__(self, function: Callable[[np.ndarray, np.ndarray], float], name: str | None = None):
        self.function = function
        self.name = name or getattr(function, "__name__", "metric")

    def update(self, prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.array([float(self.function(prediction, target)) * len(prediction), len(prediction)])

    def result(self, sums: np.ndarray) -> float:
        return float(sums[0] / sums[1]) if sums[1] else float("nan")


_BY_NAME: dict[str, Callable[[], Metric]] = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "rmse": RootMeanSquaredError,
    "r2": R2,
}


def get_metrics(metrics: Sequence[Any] | None, logits: bool = False) -> list[Metric]:
    """Resolve metric names, :class:`Metric` objects and functions.

    ``logits`` says a single output is a logit, which moves the accuracy threshold to 0.
    """
    resolved = []
    for metric in metrics or []:
        if isinstance(metric, Metric):
            resolved.append(metric)
        elif isinstance(metric, str):
            key = metric.lower()
            if key not in _BY_NAME:
                raise ValueError(f"unknown metric {metric!r}; known: {sorted(set(_BY_NAME))}, or pass a function")
            made = _BY_NAME[key]()
            if isinstance(made, Accuracy) and logits:
                made.threshold = 0.0
            resolved.append(made)
        elif callable(metric):
            resolved.append(FunctionMetric(metric))
        else:
            raise TypeError(f"a metric must be a name, a Metric or a function, not {type(metric).__name__}")
    names = [m.name for m in resolved]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"metric names must be unique, got {duplicated} more than once")
    return resolved


def _as_float(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)
