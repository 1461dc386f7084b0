"""Sharding across the life of a cluster: no context yet, and a worker that dies."""

from __future__ import annotations

import os
import signal

import numpy as np
import pandas as pd
import pytest

import workbench as wb


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(101), "y": np.arange(101) % 3})


def all_ids(shards) -> list[int]:
    per_shard = shards.client.gather(shards.map(lambda s: [int(i) for x, _ in s.batches(7) for i in x[:, 0]]))
    return sorted(sum(per_shard, []))


def test_sharding_needs_a_context(table, no_context):
    with pytest.raises(RuntimeError, match=r"call wb.init\(\)"):
        wb.data.shard(table, label_cols="y")


def test_shards_survive_a_killed_worker_by_recomputing_from_lineage(table, no_context):
    """Data persisted from lineage (not scattered) comes back after its worker dies."""
    with wb.init(workers=2) as ctx:
        shards = wb.data.shard(wb.data.from_pandas(table, npartitions=4), feature_cols=["id"], label_cols="y")
        victim = shards.workers[0]
        pid = ctx.client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
        ctx.client.wait_for_workers(2, timeout=60)  # the nanny restarts it
        assert all_ids(shards) == list(range(101))
