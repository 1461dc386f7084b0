"""Data layer throughput: sharding a table onto 2 workers, and mini-batch iteration there.

Anchors (same machine, same run):
- shard(): a contiguous numpy copy of the table on the driver (what a single-process loop
  does before training);
- batches on 2 workers in parallel vs the same shuffled batching of one numpy array in one
  process. Iteration on workers should approach 2x with 2 cores (it runs where the data is).
"""

from __future__ import annotations

import statistics
import time
import warnings

import numpy as np
import pandas as pd

import workbench as wb

ROWS, FEATURES, BATCH, REPEATS = 1_000_000, 32, 256, 5


def epoch_rows(local_shard) -> tuple[int, float]:
    start = time.perf_counter()
    rows = sum(len(x) for x, _ in local_shard.batches(BATCH, epoch=1))
    return rows, time.perf_counter() - start


def single_process_epoch(features: np.ndarray, labels: np.ndarray) -> float:
    start = time.perf_counter()
    order = np.random.default_rng(0).permutation(len(features))
    for step in range(0, len(features), BATCH):
        rows = order[step : step + BATCH]
        features[rows], labels[rows]
    return time.perf_counter() - start


def main() -> None:
    # an in-memory table travels inside the task graph (its lineage); dask warns about its size
    warnings.filterwarnings("ignore", message="Sending large graph")
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.random((ROWS, FEATURES), dtype=np.float32), columns=[f"f{i}" for i in range(FEATURES)])
    table["y"] = rng.integers(0, 10, ROWS)
    columns = [c for c in table.columns if c != "y"]

    with wb.init(workers=2) as ctx:
        shard_times, driver_times, worker_rates, local_rates = [], [], [], []
        for _ in range(REPEATS):
            start = time.perf_counter()
            shards = wb.data.shard(table, feature_cols=columns, label_cols="y")
            shard_times.append(time.perf_counter() - start)

            start = time.perf_counter()
            features, labels = np.ascontiguousarray(table[columns].to_numpy()), table["y"].to_numpy()
            driver_times.append(time.perf_counter() - start)

            results = ctx.client.gather(shards.map(epoch_rows))
            worker_rates.append(sum(rows for rows, _ in results) / max(seconds for _, seconds in results))
            local_rates.append(ROWS / single_process_epoch(features, labels))
            shards.release()

    shard_s, driver_s = statistics.median(shard_times), statistics.median(driver_times)
    worker_rate, local_rate = statistics.median(worker_rates), statistics.median(local_rates)
    megabytes = table.memory_usage().sum() / 2**20
    print(f"data layer: {ROWS:,} rows x {FEATURES} float32 features ({megabytes:.0f} MiB), medians of {REPEATS}")
    print(f"  shard() onto 2 workers           {shard_s:8.2f} s    numpy copy on the driver {driver_s:.2f} s")
    print(f"  batches/epoch on 2 workers       {worker_rate / 1e6:8.2f} M rows/s")
    print(f"  same batching, one process       {local_rate / 1e6:8.2f} M rows/s   ratio {worker_rate / local_rate:.2f}x")


if __name__ == "__main__":
    main()
