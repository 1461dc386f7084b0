"""What each worker trains on in an epoch, and how far the epoch has got (the data position).

Training rows are numbered globally, ``0 .. n-1`` in the order of the data; rank *r* of a
shard layout holds the contiguous range that starts at ``offsets[r]``. The driver keeps, for
the epoch in progress, a boolean mask of the rows already trained on. An :class:`EpochPlan`
gives every rank the rows of its range not yet trained on, in a seeded random order; after
*k* steps a rank has consumed the first ``k * batch_size`` rows of its order.

Because a plan is made from the mask, the same code starts an epoch (nothing consumed), and
finishes one after a worker loss or a restart over whatever layout is current: every row is
trained on exactly once per epoch whatever happens in between.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

__all__ = ["EpochPlan", "local_batch_sizes"]


def local_batch_sizes(global_batch: int, num_ranks: int) -> list[int]:
    """Split the global batch over ranks; the first ``global_batch % num_ranks`` get one more."""
    base, extra = divmod(global_batch, num_ranks)
    return [base + (1 if rank < extra else 0) for rank in range(num_ranks)]


@dataclass
class EpochPlan:
    """The rows each rank trains on, step by step, for the rest of an epoch.

    Attributes:
        orders: per rank, indices into its shard (local row numbers) in training order.
        offsets: global row number of each rank's first row.
        batch_sizes: local batch size of each rank (they add up to the global batch).
    """

    orders: list[np.ndarray]
    offsets: list[int]
    batch_sizes: list[int]

    @classmethod
    def remaining(
        cls,
        consumed: np.ndarray,
        shard_rows: list[int],
        batch_sizes: list[int],
        *,
        seed: int,
        epoch: int,
        attempt: int = 0,
        shuffle: bool = True,
    ) -> EpochPlan:
        """Plan the rows not yet ``consumed`` over shards of ``shard_rows`` rows.

        The order of each rank is a permutation drawn from ``(seed, epoch, rank, attempt)``
        (for attempt 0 the order of :meth:`LocalShard.batches`): each epoch sees a new order
        and a rerun with the same seed sees the same one.
        """
        if len(consumed) != sum(shard_rows):
            raise ValueError(f"the data position covers {len(consumed)} rows but the data has {sum(shard_rows)}")
        offsets = [0, *itertools.accumulate(shard_rows)][:-1]
        orders = []
        for rank, (offset, rows) in enumerate(zip(offsets, shard_rows)):
            pending = np.flatnonzero(~consumed[offset : offset + rows])
            if shuffle:
                key = [seed, epoch, rank] + ([attempt] if attempt else [])  # LocalShard.batches' order first
                pending = np.random.default_rng(key).permutation(pending)
            orders.append(pending)
        return cls(orders, offsets, list(batch_sizes))

    @property
    def steps(self) -> int:
        """Synchronous steps to train every planned row (the rank with most batches decides)."""
        return max((-(-len(order) // size) for order, size in zip(self.orders, self.batch_sizes)), default=0)

    def rows(self, rank: int, start: int, stop: int) -> np.ndarray:
        """Local row numbers rank ``rank`` trains on in steps ``start .. stop - 1``."""
        size = self.batch_sizes[rank]
        return self.orders[rank][start * size : stop * size]

    def global_batch_sizes(self, start: int, stop: int) -> list[int]:
        """Samples all ranks together train on at each step ``start .. stop - 1``."""
        return [
            sum(max(0, min(size, len(order) - step * size)) for order, size in zip(self.orders, self.batch_sizes))
            for step in range(start, stop)
        ]

    def mark_consumed(self, consumed: np.ndarray, start: int, stop: int) -> None:
        """Set the mask entries of the rows trained on in steps ``start .. stop - 1``."""
        for rank, offset in enumerate(self.offsets):
            consumed[offset + self.rows(rank, start, stop)] = True
