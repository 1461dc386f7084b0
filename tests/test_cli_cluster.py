"""The same user code on an embedded cluster and on a cluster started from the command line."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from distributed import Client

import workbench as wb

pytestmark = pytest.mark.usefixtures("no_context")


def user_code() -> tuple[int, float]:
    """What a notebook does, unchanged between laptop and cluster."""
    ctx = wb.init()
    table = pd.DataFrame({"x1": np.arange(200.0), "x2": np.ones(200), "y": np.arange(200) % 2})
    frame = wb.data.from_pandas(table)
    shards = wb.data.shard(frame, feature_cols=["x1", "x2"], label_cols="y")
    per_worker = ctx.client.gather(shards.map(lambda s: sum(float(x[:, 0].sum()) for x, _ in s.batches(32))))
    return len(per_worker), sum(per_worker)


def test_user_code_on_the_embedded_cluster():
    assert user_code() == (2, float(sum(range(200))))


def test_user_code_on_a_command_line_cluster(cli_cluster, monkeypatch):
    address, worker_processes = cli_cluster
    monkeypatch.setenv("WORKBENCH_CLUSTER", address)  # what the cluster kernel will set

    with Client(address) as probe:
        probe.wait_for_workers(2, timeout=60)
    assert user_code() == (2, float(sum(range(200))))

    ctx = wb.current()
    assert ctx.kind == "address" and ctx.scheduler_address == address
    assert set(ctx.client.run(os.getpid).values()) == {p.pid for p in worker_processes}
    wb.stop()
    assert all(p.poll() is None for p in worker_processes), "stop() leaves an external cluster running"
