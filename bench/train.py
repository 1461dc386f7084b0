"""Training throughput: Estimator.fit on 2 workers vs PyTorch DDP (gloo, 2 processes) and vs
a plain single-process loop using the same 2 threads. Same model, data and global batch.
The Keras row compares ``Estimator.from_keras`` with Keras' own ``model.fit`` in one process
with 2 threads (there is no DDP for Keras).

Each run trains WARMUP_EPOCHS then one timed epoch; prints samples/s (median of REPEATS runs)
and the ratios Workbench / DDP and Workbench / single process (higher is better; bar >= 0.8x DDP).

``python bench/train.py dashboard`` measures the TrainingDashboard's cost instead: the same
fit (mlp) with and without the dashboard callback (its widget built as showing it builds it,
so widgets, streams and the Bokeh curves update; no browser), alternating, and prints the
median time ratio (bar < 1.02x).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
import warnings

import numpy as np

import workbench as wb
from common import run_gloo_ranks

GLOBAL_BATCH, WARMUP_EPOCHS, REPEATS = 256, 1, 3


def mlp():
    import torch

    return torch.nn.Sequential(  # 512 -> 2048 -> 2048 -> 10: about 5.2M parameters
        torch.nn.Linear(512, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 10)
    )


def cnn():
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 5 * 5, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10),
    )


def keras_mlp():
    import keras

    return keras.Sequential([
        keras.Input((512,)), keras.layers.Dense(2048, activation="relu"),
        keras.layers.Dense(2048, activation="relu"), keras.layers.Dense(10),
    ])


MODELS = {"mlp": (mlp, (512,), 8192), "cnn": (cnn, (1, 28, 28), 8192), "keras-mlp": (keras_mlp, (512,), 8192)}


def dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    _, shape, rows = MODELS[name]
    rng = np.random.default_rng(0)
    return rng.normal(size=(rows,) + shape).astype(np.float32), rng.integers(0, 10, rows)


def epoch_loop(model, optimizer, features, labels, batch: int, order: np.ndarray) -> float:
    """One epoch of a plain torch loop; returns seconds."""
    import torch

    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for i in range(0, len(order), batch):
        rows = order[i : i + batch]
        optimizer.zero_grad()
        loss_fn(model(torch.from_numpy(features[rows])), torch.from_numpy(labels[rows])).backward()
        optimizer.step()
    return time.perf_counter() - start


def single_process(name: str) -> float:
    import torch

    torch.set_num_threads(2)
    features, labels = dataset(name)
    model = MODELS[name][0]()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = np.random.default_rng(0).permutation(len(features))
    for _ in range(WARMUP_EPOCHS):
        epoch_loop(model, optimizer, features, labels, GLOBAL_BATCH, order)
    return len(features) / epoch_loop(model, optimizer, features, labels, GLOBAL_BATCH, order)


def ddp_rank(rank: int, name: str) -> float:
    import torch
    import torch.distributed as dist

    features, labels = dataset(name)
    half = len(features) // 2
    features, labels = features[rank * half : (rank + 1) * half], labels[rank * half : (rank + 1) * half]
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(MODELS[name][0]())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = np.random.default_rng(rank).permutation(len(features))
    for _ in range(WARMUP_EPOCHS):
        epoch_loop(model, optimizer, features, labels, GLOBAL_BATCH // 2, order)
    dist.barrier()
    seconds = epoch_loop(model, optimizer, features, labels, GLOBAL_BATCH // 2, order)
    return 2 * len(features) / seconds


def keras_single_process(name: str) -> float:
    """Keras' model.fit in a fresh process with 2 threads (TensorFlow fixes threads at start)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_keras_fit, (name,))


def _keras_fit(name: str) -> float:
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    features, labels = dataset(name)
    model = MODELS[name][0]()
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(features, labels, batch_size=GLOBAL_BATCH, epochs=WARMUP_EPOCHS, verbose=0)
    start = time.perf_counter()
    model.fit(features, labels, batch_size=GLOBAL_BATCH, epochs=1, verbose=0)
    return len(features) / (time.perf_counter() - start)


def workbench(name: str) -> float:
    features, labels = dataset(name)
    if name.startswith("keras"):
        import keras

        estimator = wb.Estimator.from_keras(MODELS[name][0], optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                                            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    else:
        import torch

        estimator = wb.Estimator.from_torch(MODELS[name][0], optimizer=torch.optim.SGD,
                                            optimizer_kwargs={"lr": 0.01, "momentum": 0.9}, loss="cross_entropy")
    history = estimator.fit((features, labels), epochs=WARMUP_EPOCHS + 1, batch_size=GLOBAL_BATCH, verbose=False)
    return float(history["samples_per_s"].iloc[-1])


def dashboard_overhead(repeats: int = 5) -> None:
    """Seconds of the mlp fit with / without a TrainingDashboard, median of ``repeats`` pairs."""
    import torch

    from workbench.widgets.dashboard import TrainingDashboard

    features, labels = dataset("mlp")
    seconds: dict[bool, list[float]] = {False: [], True: []}
    with wb.init(workers=2, threads_per_worker=1):
        for _ in range(repeats):
            for with_dashboard in (False, True):
                estimator = wb.Estimator.from_torch(mlp, optimizer=torch.optim.SGD, optimizer_kwargs={"lr": 0.01},
                                                    loss="cross_entropy")
                callbacks = []
                if with_dashboard:
                    callbacks.append(TrainingDashboard())
                    callbacks[0].widget  # what showing it builds: from then on its live curves redraw too
                start = time.perf_counter()
                estimator.fit((features, labels), epochs=2, batch_size=GLOBAL_BATCH, log_every=1,
                              callbacks=callbacks, progress=None)
                seconds[with_dashboard].append(time.perf_counter() - start)
    plain, shown = statistics.median(seconds[False]), statistics.median(seconds[True])
    print(f"fit (mlp, 2 epochs, log_every=1), median of {repeats}: without dashboard {plain:.2f} s, "
          f"with {shown:.2f} s, ratio {shown / plain:.3f}x")


def main() -> None:
    # the in-memory arrays travel inside the task graph (their lineage); dask warns about the size
    warnings.filterwarnings("ignore", message="Sending large graph")
    if sys.argv[1:] == ["dashboard"]:
        dashboard_overhead()
        return
    names = sys.argv[1:] or list(MODELS)
    results = {}
    with wb.init(workers=2, threads_per_worker=1):
        for name in names:
            results[name] = [statistics.median(workbench(name) for _ in range(REPEATS))]
    for name in names:
        if name.startswith("keras"):
            results[name] += [math.nan, statistics.median(keras_single_process(name) for _ in range(REPEATS))]
        else:
            results[name].append(statistics.median(run_gloo_ranks(ddp_rank, name) for _ in range(REPEATS)))
            results[name].append(statistics.median(single_process(name) for _ in range(REPEATS)))
    print(f"training throughput, global batch {GLOBAL_BATCH}, samples/s (median of {REPEATS})")
    print(f"  {'model':<9} {'workbench':>10} {'DDP gloo':>10} {'1 process':>10} {'vs DDP':>8} {'vs 1 proc':>10}")
    for name, (ours, ddp, single) in results.items():
        versus_ddp = "-" if math.isnan(ddp) else f"{ours / ddp:.2f}x"
        print(f"  {name:<9} {ours:>10.0f} {ddp:>10.0f} {single:>10.0f} {versus_ddp:>8} {ours / single:>9.2f}x")


if __name__ == "__main__":
    main()
