"""Distributed training gives the same weights as a careful single-process PyTorch loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.data import LocalShard
from workbench.train.plan import local_batch_sizes

from .conftest import make_mlp

STEPS_EPOCHS = 2


def reference_weights(features, labels, ranks, global_batch, optimizer_factory, epochs, clip_norm=None):
    """Plain torch: each step trains on the union of every rank's local batch for that step."""
    torch.manual_seed(0)
    model = make_mlp()
    optimizer = optimizer_factory(model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    bounds = [r * len(features) // ranks for r in range(ranks + 1)]
    shards = [LocalShard(features[lo:hi], labels[lo:hi], r, ranks) for r, (lo, hi) in enumerate(zip(bounds, bounds[1:]))]
    sizes = local_batch_sizes(global_batch, ranks)
    for epoch in range(epochs):
        iterators = [s.batches(b, epoch=epoch, seed=0) for s, b in zip(shards, sizes)]
        steps = max(s.num_batches(b) for s, b in zip(shards, sizes))
        for _ in range(steps):
            batches = [b for b in (next(it, None) for it in iterators) if b is not None]
            x = torch.from_numpy(np.concatenate([b[0] for b in batches]))
            y = torch.from_numpy(np.concatenate([b[1] for b in batches]))
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            optimizer.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()


def distributed_weights(features, labels, global_batch, optimizer, optimizer_kwargs, epochs, clip_norm=None):
    estimator = wb.Estimator.from_torch(
        make_mlp, optimizer=optimizer, optimizer_kwargs=optimizer_kwargs, loss="cross_entropy", clip_norm=clip_norm
    )
    estimator.fit((features, labels), epochs=epochs, batch_size=global_batch, verbose=False)
    return estimator.get_weights()


OPTIMIZERS = [
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (torch.optim.Adam, {"lr": 0.01, "weight_decay": 1e-4}),
    (torch.optim.AdamW, {"lr": 0.01}),
    (torch.optim.RMSprop, {"lr": 0.005, "momentum": 0.5, "centered": True}),
    (torch.optim.Adagrad, {"lr": 0.05}),
]


@pytest.mark.parametrize("optimizer, kwargs", OPTIMIZERS, ids=lambda o: getattr(o, "__name__", ""))
def test_one_worker_equals_a_plain_torch_loop(one_worker, classification, optimizer, kwargs):
    features, labels = classification[0][:300], classification[1][:300]
    ours = distributed_weights(features, labels, 32, optimizer, kwargs, STEPS_EPOCHS)
    theirs = reference_weights(features, labels, 1, 32, lambda p: optimizer(p, **kwargs), STEPS_EPOCHS)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_one_worker_with_gradient_clipping(one_worker, classification):
    features, labels = classification[0][:300], classification[1][:300]
    ours = distributed_weights(features, labels, 32, torch.optim.SGD, {"lr": 0.5}, 1, clip_norm=0.1)
    theirs = reference_weights(features, labels, 1, 32, lambda p: torch.optim.SGD(p, lr=0.5), 1, clip_norm=0.1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
