"""Two worker processes, synchronous SGD: equal to single-process training on the same global batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench as wb

from .test_estimator_equivalence import distributed_weights, reference_weights


@pytest.mark.parametrize(
    "rows, global_batch",
    [(250, 30), (203, 31), (60, 3)],  # even; uneven last batches; one rank runs out of rows first
)
def test_two_workers_equal_single_process_global_batches(context, classification, rows, global_batch):
    features, labels = classification[0][:rows], classification[1][:rows]
    kwargs = {"lr": 0.05, "momentum": 0.9}
    ours = distributed_weights(features, labels, global_batch, torch.optim.SGD, kwargs, 2)
    theirs = reference_weights(features, labels, 2, global_batch, lambda p: torch.optim.SGD(p, **kwargs), 2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_two_workers_with_adam_and_clipping(context, classification):
    features, labels = classification[0][:256], classification[1][:256]
    ours = distributed_weights(features, labels, 32, "adam", {"lr": 0.01}, 1, clip_norm=0.5)
    theirs = reference_weights(features, labels, 2, 32, lambda p: torch.optim.Adam(p, lr=0.01), 1, clip_norm=0.5)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
