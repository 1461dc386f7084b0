"""Models and data shared by the training tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def make_mlp(inputs: int = 4, hidden: int = 16, outputs: int = 3) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, outputs))


@pytest.fixture
def classification() -> tuple[np.ndarray, np.ndarray]:
    """A learnable 3-class task on 4 features."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1200, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64) + (features[:, 1] > 0.5).astype(np.int64)
    return features, labels


def make_keras_mlp(inputs: int = 4, hidden: int = 16, outputs: int = 3):
    import keras

    return keras.Sequential(
        [keras.Input((inputs,)), keras.layers.Dense(hidden, activation="tanh"), keras.layers.Dense(outputs)]
    )
