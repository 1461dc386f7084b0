"""Gradient synchronisation: Workbench's parameter server vs torch.distributed all-reduce (gloo).

One synchronisation of the same bytes with 2 worker processes on this machine: for gloo an
``all_reduce`` of a float32 tensor (2 processes), for Workbench a push of the gradient slices
to the 2 parameter-server shards and a pull of the updated parameters (plain SGD update).
Prints medians and the ratio Workbench / gloo (lower is better; the bar is <= 1.5x).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import workbench as wb
from common import run_gloo_ranks
from workbench.train.optimizers import SGD
from workbench.train.parameter_server import ParameterServer, ShardConnections

SIZES_MB = (4, 40)
WARMUP, STEPS = 5, 30


def gloo_rank(rank: int, elements: int) -> float:
    import torch
    import torch.distributed as dist

    tensor = torch.ones(elements)
    times = []
    for step in range(WARMUP + STEPS):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(tensor)
        if step >= WARMUP:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def workbench_rank(elements: int, connect_args: tuple) -> float:
    params = np.empty(elements, np.float32)
    connections = ShardConnections(*connect_args, params)
    grad = np.full(elements, 1e-3, np.float32)
    times = []
    for step in range(1, WARMUP + STEPS + 1):
        start = time.perf_counter()
        connections.push_pull(step, grad)
        if step > WARMUP:
            times.append(time.perf_counter() - start)
    connections.close()
    return statistics.median(times)


def workbench_seconds(ctx: wb.Context, elements: int) -> float:
    workers = [w.address for w in ctx.workers]
    server = ParameterServer(ctx.client, np.zeros(elements, np.float32), workers, SGD(lr=0.1).get_config())
    try:
        ranks = [
            ctx.client.submit(workbench_rank, elements, server.connect_args(), workers=[w], pure=False)
            for w in workers
        ]
        return max(ctx.client.gather(ranks))
    finally:
        server.close()


def main() -> None:
    rows = []
    with wb.init(workers=2) as ctx:
        for megabytes in SIZES_MB:
            elements = megabytes * 2**20 // 4
            rows.append((megabytes, workbench_seconds(ctx, elements)))
    print(f"gradient sync, 2 processes, median of {STEPS} steps")
    print(f"  {'size':>6}  {'workbench':>10}  {'gloo':>10}  {'ratio':>6}")
    for megabytes, ours in rows:
        gloo = run_gloo_ranks(gloo_rank, megabytes * 2**20 // 4)
        print(f"  {megabytes:>4}MB  {ours * 1e3:>8.2f}ms  {gloo * 1e3:>8.2f}ms  {ours / gloo:>5.2f}x")


if __name__ == "__main__":
    main()
