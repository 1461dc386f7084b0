"""Evaluation and prediction as plain Dask tasks, one per partition, with fixed weights.

The weights travel once per computation as a :class:`Weights` object in the task graph; each
worker process builds a replica for them once and reuses it for every partition it handles.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd

from workbench.train.worker import evaluate_batches

__all__ = ["Weights", "predict_arrays", "predict_frame", "evaluate_part", "evaluate_shard"]

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


def predict_arrays(features: np.ndarray, weights: Weights, batch_size: int) -> np.ndarray:
    """Model outputs for every row of ``features``, in order, batch by batch."""
    replica = weights.replica()
    outputs = [replica.predict(features[i : i + batch_size]) for i in range(0, len(features), batch_size)]
    return np.concatenate(outputs) if outputs else replica.predict(features[:0])


def predict_frame(
    frame: pd.DataFrame, weights: Weights, to_arrays, batch_size: int, columns: list[str]
) -> pd.DataFrame:
    """One partition's predictions as a DataFrame with the partition's index."""
    features, _ = to_arrays(frame)
    output = predict_arrays(features, weights, batch_size).reshape(len(frame), -1)
    return pd.DataFrame(output, index=frame.index, columns=columns)


def evaluate_part(pair: tuple, weights: Weights, metrics: list, batch_size: int) -> dict[str, Any]:
    """Loss and metric sums of one partition."""
    features, labels = pair
    batches = ((features[i : i + batch_size], labels[i : i + batch_size]) for i in range(0, len(features), batch_size))
    return evaluate_batches(weights.replica(), metrics, batches)


def evaluate_shard(local_shard: Any, weights: Weights, metrics: list, batch_size: int) -> dict[str, Any]:
    """Loss and metric sums of one persisted shard (validation during fit)."""
    return evaluate_batches(weights.replica(), metrics, local_shard.batches(batch_size, shuffle=False))
