"""Gradient synchronisation: Workbench's parameter server vs torch.distributed all-reduce (gloo).

One synchronisation of the same bytes with 2 worker processes on this machine: for gloo an
``all_reduce`` of a float32 tensor (2 processes), for Workbench a push of the gradient slices
to the 2 parameter-server shards and a pull of the updated parameters (plain SGD update).
Prints medians and the median of the per-round ratios Workbench / gloo (lower is better; the
bar is <= 1.5x). Rounds alternate the two, since this machine's speed drifts.
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
WARMUP, STEPS, ROUNDS = 5, 30, 3


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
    ours = {size: [] for size in SIZES_MB}
    gloo = {size: [] for size in SIZES_MB}
    for _ in range(ROUNDS):  # interleaved, so a noisy moment hits both sides alike
        with wb.init(workers=2) as ctx:  # no idle Dask cluster beside gloo's processes
            for megabytes in SIZES_MB:
                ours[megabytes].append(workbench_seconds(ctx, megabytes * 2**20 // 4))
        for megabytes in SIZES_MB:
            gloo[megabytes].append(run_gloo_ranks(gloo_rank, megabytes * 2**20 // 4))
    print(f"gradient sync, 2 processes: medians over {ROUNDS} rounds of {STEPS} steps")
    print(f"  {'size':>6}  {'workbench':>10}  {'gloo':>10}  {'ratio':>6}")
    for megabytes in SIZES_MB:
        mine, theirs = statistics.median(ours[megabytes]), statistics.median(gloo[megabytes])
        ratio = statistics.median(a / b for a, b in zip(ours[megabytes], gloo[megabytes]))
        print(f"  {megabytes:>4}MB  {mine * 1e3:>8.2f}ms  {theirs * 1e3:>8.2f}ms  {ratio:>5.2f}x")


if __name__ == "__main__":
    main()
