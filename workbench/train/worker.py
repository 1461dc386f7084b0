"""What runs on each worker: the synchronous training loop and the inference tasks.

A worker keeps one model replica per training job in this process between epochs (so the
model is built once per fit). Every step of an epoch it computes the gradient of its local
mini-batch, weighted by the batch's share of the global batch, pushes it to the parameter
server and pulls the new parameters straight into the replica. Every ``log_every`` steps it
reports its loss on a Dask event topic, which the driver turns into the per-step metrics
stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.data.shard import LocalShard
from workbench.train.metrics import Metric
from workbench.train.parameter_server import ShardConnections, StepAborted

__all__ = ["TrainJob", "local_batch_sizes", "steps_per_epoch", "step_sizes", "train_epoch", "evaluate_shard", "drop_job"]


@dataclass
class TrainJob:
    """Everything a worker needs to take part in one fit (sent with every epoch task)."""

    job_id: str
    backend: Any
    metrics: list[Metric]
    batch_sizes: list[int]  # local batch size of each rank
    shard_rows: list[int]  # rows in each rank's shard
    server: tuple  # ParameterServer.connect_args()
    seed: int
    shuffle: bool
    log_every: int
    topic: str
    steps: int = field(init=False)

    def __post_init__(self) -> None:
        self.steps = steps_per_epoch(self.shard_rows, self.batch_sizes)


def local_batch_sizes(global_batch: int, num_ranks: int) -> list[int]:
    """Split the global batch over ranks; the first ``global_batch % num_ranks`` get one more."""
    base, extra = divmod(global_batch, num_ranks)
    return [base + (1 if rank < extra else 0) for rank in range(num_ranks)]


def steps_per_epoch(rows: list[int], batch_sizes: list[int]) -> int:
    """Synchronous steps in an epoch: enough for the rank with the most batches."""
    return max(-(-n // b) for n, b in zip(rows, batch_sizes))


def step_sizes(rows: list[int], batch_sizes: list[int], step: int) -> list[int]:
    """How many samples each rank contributes at ``step`` (0-based, within the epoch)."""
    return [max(0, min(b, n - step * b)) for n, b in zip(rows, batch_sizes)]


class _Participant:
    """A worker's replica and parameter-server connections for one job."""

    def __init__(self, job: TrainJob):
        from distributed import get_worker

        self.replica = job.backend.build(threads=get_worker().state.nthreads)
        self.connections = ShardConnections(*job.server, self.replica.flat_params)
        self.replica.params_changed()  # the connections filled flat_params from the shards
        self.replica.watch_gradients(self.connections.bounds, self.connections.slice_ready)

    def close(self) -> None:
        self.connections.close()


_participants: dict[str, _Participant] = {}


def _participant(job: TrainJob) -> _Participant:
    if job.job_id not in _participants:
        _participants[job.job_id] = _Participant(job)
    return _participants[job.job_id]


def drop_job(job_id: str) -> None:
    """Release this process's replica and connections of a finished job."""
    participant = _participants.pop(job_id, None)
    if participant is not None:
        participant.close()


def train_epoch(
    local_shard: LocalShard, job: TrainJob, epoch: int, first_step: int, buffers: np.ndarray | None
) -> dict[str, Any]:
    """Run one epoch of synchronous steps on this worker's shard; return its sums."""
    from distributed import get_worker

    worker = get_worker()
    participant = _participant(job)
    replica = participant.replica
    if buffers is not None and buffers.size:
        replica.set_buffers(buffers)
    rank = local_shard.rank
    batches = local_shard.batches(job.batch_sizes[rank], epoch=epoch, seed=job.seed, shuffle=job.shuffle)
    totals = _Totals(job.metrics)
    window = _Totals([])
    start = window_start = time.perf_counter()
    try:
        for step in range(job.steps):
            global_samples = sum(step_sizes(job.shard_rows, job.batch_sizes, step))
            batch = next(batches, None)
            participant.connections.start(first_step + step + 1, replica.flat_grad)
            if batch is None:
                replica.zero_grad()  # this rank ran out of rows: it contributes nothing this step
            else:
                features, labels = batch
                loss, output = replica.train_step(features, labels, len(features) / global_samples)
                totals.add(loss, output, labels)
                window.add(loss, output, labels)
            participant.connections.finish()
            replica.params_changed()
            if (step + 1) % job.log_every == 0 or step + 1 == job.steps:
                now = time.perf_counter()
                worker.log_event(
                    job.topic,
                    {  # plain Python numbers: event messages must be msgpack-serialisable
                        "rank": int(rank),
                        "epoch": int(epoch),
                        "step": int(first_step + step + 1),
                        "loss_sum": float(window.loss_sum),
                        "samples": int(window.samples),
                        "seconds": float(now - window_start),
                    },
                )
                window, window_start = _Totals([]), now
    except StepAborted:
        raise
    except BaseException as error:  # e.g. bad labels in a batch: no other rank may wait forever
        participant.connections.abort(error)
        raise
    result = totals.as_dict()
    result.update(seconds=time.perf_counter() - start, buffers=replica.get_buffers())
    return result


def evaluate_shard(local_shard: LocalShard, job: TrainJob, batch_size: int, buffers: np.ndarray | None) -> dict:
    """Loss and metric sums of the job's current parameters on this worker's shard."""
    replica = _participant(job).replica
    if buffers is not None and buffers.size:
        replica.set_buffers(buffers)
    return evaluate_batches(replica, job.metrics, local_shard.batches(batch_size, shuffle=False))


def evaluate_batches(replica: Any, metrics: list[Metric], batches) -> dict[str, Any]:
    """Sums of loss and metrics over ``(features, labels)`` batches."""
    totals = _Totals(metrics)
    for features, labels in batches:
        output = replica.predict(features)
        totals.add(replica.loss_value(output, labels), output, labels)
    return totals.as_dict()


class _Totals:
    """Running sums of loss (per sample) and metric states."""

    def __init__(self, metrics: list[Metric]):
        self.metrics = metrics
        self.loss_sum = 0.0
        self.samples = 0
        self.metric_sums: list[np.ndarray | None] = [None] * len(metrics)

    def add(self, mean_loss: float, output: np.ndarray, labels: np.ndarray) -> None:
        self.loss_sum += mean_loss * len(output)
        self.samples += len(output)
        for index, metric in enumerate(self.metrics):
            sums = metric.update(output, labels)
            current = self.metric_sums[index]
            self.metric_sums[index] = sums if current is None else current + sums

    def as_dict(self) -> dict[str, Any]:
        return {"loss_sum": self.loss_sum, "samples": self.samples, "metric_sums": self.metric_sums}
