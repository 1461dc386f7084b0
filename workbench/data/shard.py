"""Sharding training data across the workers of a cluster.

:func:`shard` persists a Dask collection on the workers from its lineage (never with
``client.scatter``: scattered data cannot be recomputed when a worker dies), then cuts the
rows into one contiguous, balanced shard per worker (sizes differ by at most one row). Row
``i`` of the data always lands in the same shard for the same number of workers, so training
is reproducible; which worker holds a shard is chosen to move as little data as possible, and
data moves between workers, never through the driver.

Code running on a worker gets its shard as a :class:`LocalShard`, which yields seeded,
per-epoch shuffled mini-batches of numpy arrays.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed

from workbench.arguments import as_list, check_positive_int
from workbench.data.arrays import block_pair_to_arrays, check_columns, frame_to_arrays
from workbench.data.readers import from_numpy, from_pandas, read_csv, read_parquet

if TYPE_CHECKING:
    from distributed import Client, Future

    from workbench.context import Context

__all__ = ["shard", "reshard", "Shards", "LocalShard", "as_collection", "as_dask_array", "partition_arrays"]

Batch = tuple[np.ndarray, "np.ndarray | None"]


class LocalShard:
    """The rows one worker trains on, with seeded per-epoch shuffling into mini-batches."""

    def __init__(self, features: np.ndarray, labels: np.ndarray | None, rank: int, num_shards: int):
        self.features = features
        self.labels = labels
        self.rank = rank
        self.num_shards = num_shards

    @property
    def n_rows(self) -> int:
        return len(self.features)

    def __len__(self) -> int:
        return self.n_rows

    def take(self, rows: np.ndarray) -> Batch:
        """Features and labels of the given local rows, in that order."""
        return self.features[rows], None if self.labels is None else self.labels[rows]

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        """How many batches :meth:`batches` yields per epoch."""
        check_positive_int("batch_size", batch_size)
        full, rest = divmod(self.n_rows, batch_size)
        return full + (1 if rest and not drop_last else 0)

    def batches(
        self,
        batch_size: int,
        *,
        epoch: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """Yield ``(features, labels)`` mini-batches covering the shard once.

        The order is a permutation drawn from ``(seed, epoch, rank)``, so every epoch sees a
        new order and a rerun with the same seed sees the same one. With ``drop_last`` the
        ``n_rows % batch_size`` rows left over are skipped for this epoch only (a different
        subset each epoch).
        """
        steps = self.num_batches(batch_size, drop_last)
        order = (
            np.random.default_rng([seed, epoch, self.rank]).permutation(self.n_rows)
            if shuffle
            else np.arange(self.n_rows)
        )
        for step in range(steps):
            yield self.take(order[step * batch_size : (step + 1) * batch_size])

    def __repr__(self) -> str:
        labels = "none" if self.labels is None else f"{self.labels.shape} {self.labels.dtype}"
        return (
            f"<LocalShard {self.rank}/{self.num_shards}: features {self.features.shape} "
            f"{self.features.dtype}, labels {labels}>"
        )


class Shards:
    """Training data persisted on the cluster as one balanced shard per worker.

    Attributes:
        workers: the worker each shard belongs to (one shard per worker); pinned tasks run there.
        rows: number of rows in each shard.
    """

    def __init__(self, client: Client, futures: list[Future], workers: list[str], rows: list[int]):
        self.client = client
        self.futures = futures
        self.workers = workers
        self.rows = rows

    @property
    def n_rows(self) -> int:
        return sum(self.rows)

    @property
    def num_shards(self) -> int:
        return len(self.futures)

    def map(self, function: Callable[..., Any], *args: Any, rank_args: Sequence[tuple] | None = None,
            pinned: bool = False, **kwargs: Any) -> list[Future]:
        """Run ``function(local_shard, *rank_args[rank], *args, **kwargs)`` once per shard.

        Each call runs where its shard lives; ``pinned`` calls run on ``workers[rank]`` and
        nowhere else (they wait, or are cancelled, if that worker is gone). Returns one future
        per shard, in shard order.
        """
        holders = {} if pinned else self.client.who_has(self.futures)
        return [
            self.client.submit(
                _call_on_shard,
                function,
                future,
                rank,
                self.num_shards,
                *(rank_args[rank] if rank_args is not None else ()),
                *args,
                workers=list(holders.get(future.key) or [self.workers[rank]]),
                allow_other_workers=not pinned,
                pure=False,
                **kwargs,
            )
            for rank, future in enumerate(self.futures)
        ]

    def release(self) -> None:
        """Drop the shards from worker memory."""
        for future in self.futures:
            future.release()
        self.futures = []

    def __repr__(self) -> str:
        return f"<Shards {self.num_shards} shards, {self.n_rows} rows: {self.rows}>"


def shard(
    data: Any,
    feature_cols: str | Sequence[str] | None = None,
    label_cols: str | Sequence[str] | None = None,
    *,
    allow_nan: bool = False,
    context: Context | None = None,
) -> Shards:
    """Persist training data on the workers as one balanced shard per worker.

    Args:
        data: a Dask or pandas DataFrame, or a Parquet/CSV path; or ``(X, y)``, a pair of Dask
            or numpy arrays whose first axis is the sample axis; or ``X`` alone.
        feature_cols: for tables, the feature columns (default: every column that is not a
            label). Scalar columns are stacked into ``(n, k)``; one array-valued column keeps
            its per-row shape.
        label_cols: for tables, the label column(s); none means unlabelled data.
        allow_nan: keep NaN values instead of raising ``ValueError``.
        context: the Workbench context to use (default: the current one).

    Returns:
        The persisted :class:`Shards`; errors in the data (NaN, ragged arrays, mismatched
        lengths) are raised here, naming the column.
    """
    from workbench.context import current, scheduler_workers

    context = context or current()
    if context is None:
        raise RuntimeError("no Workbench context: call wb.init() before sharding data")
    parts = partition_arrays(data, feature_cols, label_cols, allow_nan)
    client = context.client
    partitions = client.compute(parts)
    lengths = client.gather(client.map(_row_count, partitions, pure=False))
    # the shards keep the partitions' lineage; the partitions leave memory once this returns
    return _place(partitions, lengths, client, sorted(scheduler_workers(client)))


def reshard(shards: Shards, workers: Sequence[str]) -> Shards:
    """The same rows, in the same order, cut into one balanced shard per worker of ``workers``.

    The new shards are assembled from the old ones where they live; an old shard lost with
    its worker is recomputed from its lineage first. The old shards are released.
    """
    placed = _place(shards.futures, shards.rows, shards.client, list(workers))
    shards.release()
    return placed


def as_collection(data: Any) -> Any:
    """Paths become Dask DataFrames (CSV by suffix, else Parquet); pandas becomes Dask."""
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        return read_csv(path) if path.lower().endswith((".csv", ".csv.gz")) else read_parquet(path)
    if isinstance(data, pd.DataFrame):
        return from_pandas(data)
    return data


def partition_arrays(data: Any, feature_cols: Any, label_cols: Any, allow_nan: bool = False) -> list:
    """Delayed ``(features, labels)`` numpy pairs, one per partition of ``data``, in order."""
    data = as_collection(data)
    if isinstance(data, dd.DataFrame):
        return _table_partitions(data, as_list(feature_cols), as_list(label_cols), allow_nan)
    if feature_cols is not None or label_cols is not None:
        raise ValueError("feature_cols and label_cols apply to tables; arrays come as (X, y)")
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"expected (X, y), got a sequence of {len(data)} items")
        return _array_partitions(data[0], data[1], allow_nan)
    if isinstance(data, (np.ndarray, da.Array)):
        return _array_partitions(data, None, allow_nan)
    raise TypeError(
        f"cannot shard {type(data).__name__}: expected a Dask/pandas DataFrame, a path, "
        "(X, y) arrays, or an array X"
    )


def _table_partitions(frame: dd.DataFrame, features: list, labels: list, allow_nan: bool) -> list:
    both = sorted(set(features) & set(labels))
    if both:
        raise ValueError(f"column(s) {both} are given both as features and as labels")
    if not features:
        features = [c for c in frame.columns if c not in labels]
        if not features:
            raise ValueError(f"no feature columns: every column of {list(frame.columns)} is a label")
    check_columns(frame.columns, frame.dtypes, features, "feature")
    check_columns(frame.columns, frame.dtypes, labels, "label")
    convert = delayed(frame_to_arrays, pure=True)
    return [
        convert(part, features, labels, allow_nan)
        for part in frame[features + labels].to_delayed()
    ]


def _array_partitions(features: Any, labels: Any, allow_nan: bool) -> list:
    features = as_dask_array(features, "X")
    if labels is None:
        label_blocks = [None] * features.numblocks[0]
    else:
        labels = as_dask_array(labels, "y")
        if labels.shape[0] != features.shape[0]:
            raise ValueError(f"X has {features.shape[0]} rows but y has {labels.shape[0]}")
        labels = labels.rechunk((features.chunks[0],) + labels.shape[1:])
        label_blocks = list(labels.to_delayed().ravel())
    feature_blocks = features.rechunk((features.chunks[0],) + features.shape[1:]).to_delayed().ravel()
    convert = delayed(block_pair_to_arrays, pure=True)
    return [convert(x, y, allow_nan) for x, y in zip(feature_blocks, label_blocks)]


def as_dask_array(values: Any, name: str) -> da.Array:
    """``values`` as a numeric Dask array with known row chunks and at least one row."""
    if isinstance(values, np.ndarray):
        values = from_numpy(values)
    if not isinstance(values, da.Array):
        raise TypeError(f"{name} must be a numpy or Dask array, got {type(values).__name__}")
    if values.ndim == 0:
        raise ValueError(f"{name} must have a sample axis, got a scalar")
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
        raise TypeError(f"{name} has dtype {values.dtype}, which is not numeric")
    if np.isnan(values.shape[0]):
        values = values.compute_chunk_sizes()
    if values.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    return values


def _place(partitions: list[Future], lengths: list[int], client: Client, workers: list[str]) -> Shards:
    """Assemble one balanced, contiguous row range of the partitions on each worker."""
    from distributed import wait

    total = sum(lengths)
    if total == 0:
        raise ValueError(f"the data has no rows (all its {len(lengths)} partition(s) are empty)")
    if not workers:
        raise RuntimeError("the cluster has no workers to hold the data")
    if total < len(workers):
        raise ValueError(f"only {total} rows for {len(workers)} workers; every worker needs at least one")

    pieces = _plan_pieces(lengths, len(workers))
    holders = client.who_has(partitions)
    placement = _choose_workers(pieces, [holders.get(p.key, ()) for p in partitions], workers)
    shards = [
        client.submit(
            _assemble_shard,
            [partitions[index] for index, _, _ in rank_pieces],
            [(start, stop) for _, start, stop in rank_pieces],
            workers=[worker],
            allow_other_workers=True,
            pure=False,
        )
        for rank_pieces, worker in zip(pieces, placement)
    ]
    wait(shards)
    for future in shards:
        future.result()  # raise the first assembly error, if any
    rows = [int(sum(stop - start for _, start, stop in rank_pieces)) for rank_pieces in pieces]
    # a shard computed elsewhere moves to its worker with the first task there: one shard per worker
    return Shards(client, shards, placement, rows)


def _plan_pieces(lengths: list[int], num_shards: int) -> list[list[tuple[int, int, int]]]:
    """Cut rows ``0..total`` into ``num_shards`` contiguous ranges of near-equal size.

    Returns, per shard, the ``(partition index, start, stop)`` slices that make it up.
    """
    total = sum(lengths)
    bounds = [rank * total // num_shards for rank in range(num_shards + 1)]
    offsets = [0, *itertools.accumulate(lengths)]
    plan = []
    for rank in range(num_shards):
        low, high = bounds[rank], bounds[rank + 1]
        plan.append(
            [
                (index, max(low, begin) - begin, min(high, end) - begin)
                for index, (begin, end) in enumerate(zip(offsets[:-1], offsets[1:]))
                if begin < high and end > low
            ]
        )
    return plan


def _choose_workers(pieces: list, holders: list, workers: list[str]) -> list[str]:
    """Give each shard to a distinct worker, preferring the one already holding most of it."""
    free = list(workers)
    chosen = []
    for rank_pieces in pieces:
        local_rows = {w: 0 for w in free}
        for index, start, stop in rank_pieces:
            for worker in holders[index]:
                if worker in local_rows:
                    local_rows[worker] += stop - start
        best = max(free, key=lambda w: (local_rows[w], -free.index(w)))
        free.remove(best)
        chosen.append(best)
    return chosen


def _row_count(pair: Batch) -> int:
    return len(pair[0])


def _assemble_shard(parts: list[Batch], ranges: list[tuple[int, int]]) -> Batch:
    features = np.concatenate([p[0][start:stop] for p, (start, stop) in zip(parts, ranges)])
    if parts[0][1] is None:
        return features, None
    labels = np.concatenate([p[1][start:stop] for p, (start, stop) in zip(parts, ranges)])
    return features, labels


def _call_on_shard(function: Callable, pair: Batch, rank: int, num_shards: int, *args, **kwargs):
    return function(LocalShard(pair[0], pair[1], rank, num_shards), *args, **kwargs)


