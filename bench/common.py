"""Helpers shared by the benchmarks: running a function as 2 torch.distributed (gloo) ranks."""

from __future__ import annotations

import os
import socket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rank_main(rank: int, port: int, target, args: tuple, results) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        result = target(rank, *args)
        if rank == 0:
            results.put(result)
    finally:
        dist.destroy_process_group()


def run_gloo_ranks(target, *args):
    """Run ``target(rank, *args)`` in 2 fresh processes joined by gloo; return rank 0's result."""
    import torch.multiprocessing as mp

    spawn = mp.get_context("spawn")
    results = spawn.Queue()
    port = free_port()
    ranks = [spawn.Process(target=_rank_main, args=(rank, port, target, args, results)) for rank in range(2)]
    for process in ranks:
        process.start()
    result = results.get(timeout=600)
    for process in ranks:
        process.join()
    return result
