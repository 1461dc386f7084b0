"""NaN/inf losses or gradients: a clear stop naming the step, worker and rows, or skipped batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.train import NonFiniteError

POISON_ROW = 777


@pytest.fixture
def poisoned() -> tuple[np.ndarray, np.ndarray]:
    """A regression task where one row's huge (finite) feature overflows the squared error."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1200, 4)).astype(np.float32)
    targets = features.sum(axis=1, keepdims=True)
    features[POISON_ROW, 0] = 1e30
    return features, targets


def regressor() -> wb.Estimator:
    return wb.Estimator.from_torch(lambda: torch.nn.Linear(4, 1), optimizer="sgd", optimizer_kwargs={"lr": 0.01},
                                   loss="mse")


def test_a_non_finite_loss_stops_the_fit_naming_step_worker_and_rows(context, poisoned):
    estimator = regressor()
    with pytest.raises(NonFiniteError) as caught:
        estimator.fit(poisoned, epochs=2, batch_size=64, verbose=False)
    message = str(caught.value)
    assert "non-finite loss" in message and "at step " in message and "(epoch 0)" in message
    assert any(worker.address in message for worker in context.workers)
    assert f" {POISON_ROW}" in message or f"{POISON_ROW}," in message
    assert np.isfinite(estimator.get_weights()).all(), "the estimator keeps the last good snapshot"


def test_skip_drops_only_the_poisoned_batch_and_counts_it(context, poisoned):
    estimator = regressor()
    history = estimator.fit(poisoned, epochs=3, batch_size=64, on_nonfinite="skip", verbose=False)
    assert list(history["skipped_batches"]) == [1, 1, 1]
    assert np.isfinite(estimator.get_weights()).all()
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
