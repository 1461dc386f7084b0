"""Evaluation and prediction as plain Dask tasks, one per partition, with fixed weights.

The weights travel once per computation as a :class:`Weights` object in the task graph; each
worker process builds a replica for them once and reuses it for every partition it handles.
"""

from __future__ import annotations

import math
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from workbench.train.worker import evaluate_batches

__all__ = ["Weights", "model_output", "check_loss", "predict_in_batches", "predict_arrays", "prediction_columns",
           "output_frame", "predict_frame", "evaluate_part", "evaluate_shard"]

_CACHE_SIZE = 2
_replicas: OrderedDict[str, Any] = OrderedDict()


class Weights:
    """A model definition plus one set of trained weights, identified by a token."""

    def __init__(self, backend: Any, params: np.ndarray, buffers: np.ndarray):
        self.backend = backend
        self.params = params
        self.buffers = buffers
        self.token = uuid.uuid4().hex

    def replica(self) -> Any:
        """This process's replica with these weights (built on first use)."""
        if self.token not in _replicas:
            replica = self.backend.build()
            replica.load_params(self.params)
            if self.buffers.size:
                replica.set_buffers(self.buffers)
            _replicas[self.token] = replica
            while len(_replicas) > _CACHE_SIZE:
                _replicas.popitem(last=False)
        return _replicas[self.token]


def model_output(replica: Any, features: np.ndarray, role: str) -> np.ndarray:
    """The model's output for a few rows; a model that rejects them raises ``ValueError`` naming their shape."""
    try:
        return replica.predict(features)
    except Exception as error:
        raise ValueError(
            f"the model does not accept the {role} features (batch shape {features.shape[1:]}, "
            f"dtype {features.dtype}): {type(error).__name__}: {error}"
        ) from error


def check_loss(replica: Any, metrics: list, loss_name: str, output: np.ndarray, labels: np.ndarray) -> None:
    """Run loss and metrics on a few rows' output; a mismatch raises ``ValueError`` naming shapes and label values."""
    try:
        replica.loss_value(output, labels)
        for metric in metrics:
            metric.update(output, labels)
    except Exception as error:
        raise ValueError(
            f"the loss {loss_name!r} or the metrics do not fit the model output "
            f"(shape {output.shape[1:]}) and the labels (shape {labels.shape[1:]}, values "
            f"{labels.min()}..{labels.max()}): {type(error).__name__}: {error}"
        ) from error


def predict_in_batches(predict: Callable[[np.ndarray], np.ndarray], features: np.ndarray,
                       batch_size: int) -> np.ndarray:
    """``predict`` over every row of ``features``, in order, ``batch_size`` rows at a time."""
    outputs = [predict(features[i : i + batch_size]) for i in range(0, len(features), batch_size)]
    return np.concatenate(outputs) if outputs else predict(features[:0])


def predict_arrays(features: np.ndarray, weights: Weights, batch_size: int) -> np.ndarray:
    """Model outputs for every row of ``features``, in order, batch by batch."""
    return predict_in_batches(weights.replica().predict, features, batch_size)


def prediction_columns(sample: np.ndarray) -> tuple[list[str], pd.DataFrame]:
    """Column names for outputs like ``sample`` (``prediction``, or ``prediction_0``, ... for
    several values per row) and the empty DataFrame describing them (Dask's ``meta``)."""
    width = math.prod(sample.shape[1:])
    names = ["prediction"] if width == 1 else [f"prediction_{i}" for i in range(width)]
    return names, pd.DataFrame({name: pd.Series(dtype=sample.dtype) for name in names})


def output_frame(output: np.ndarray, index: pd.Index, columns: list[str]) -> pd.DataFrame:
    """Outputs, one row per input row, as a DataFrame with the input's index."""
    output = output.reshape(len(output), math.prod(output.shape[1:]))  # -1 fails for an empty partition
    return pd.DataFrame(output, index=index, columns=columns)


def predict_frame(
    frame: pd.DataFrame, weights: Weights, to_arrays, batch_size: int, columns: list[str]
) -> pd.DataFrame:
    """One partition's predictions as a DataFrame with the partition's index."""
    features, _ = to_arrays(frame)
    return output_frame(predict_arrays(features, weights, batch_size), frame.index, columns)


def evaluate_part(pair: tuple, weights: Weights, metrics: list, batch_size: int) -> dict[str, Any]:
    """Loss and metric sums of one partition (its first rows checked first, for a clear error)."""
    features, labels = pair
    if labels is None:
        raise ValueError("evaluate() needs labels: give label_cols for a table, or (X, y) arrays")
    if len(features):
        replica = weights.replica()
        check_loss(replica, metrics, weights.backend.loss_name, model_output(replica, features[:8], "evaluation"),
                   labels[:8])
    batches = ((features[i : i + batch_size], labels[i : i + batch_size]) for i in range(0, len(features), batch_size))
    return evaluate_batches(weights.replica(), metrics, batches)


def evaluate_shard(local_shard: Any, weights: Weights, metrics: list, batch_size: int) -> dict[str, Any]:
    """Loss and metric sums of one persisted shard (validation during fit)."""
    return evaluate_batches(weights.replica(), metrics, local_shard.batches(batch_size, shuffle=False))
