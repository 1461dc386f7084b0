"""What runs on each worker: the synchronous training loop.

A worker keeps one model replica per training job in this process between tasks (so the
model is built once per shard layout). A task trains a run of steps on rows the driver
planned (:mod:`workbench.train.plan`): every step it computes the gradient of its local
mini-batch, weighted by the batch's share of the global batch, pushes it to the parameter
server and pulls the new parameters straight into the replica. Every ``log_every`` steps it
reports its loss on a Dask event topic, which the driver turns into the per-step metrics
stream.

A non-finite loss or gradient stops the fit (:class:`NonFiniteError`, naming the step, the
worker and the rows of the batch); with ``on_nonfinite="skip"`` the batch contributes nothing
and is counted instead.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.data.shard import LocalShard
from workbench.train.metrics import Metric
from workbench.train.parameter_server import ShardConnections, StepAborted

__all__ = ["TrainJob", "NonFiniteError", "train_steps", "evaluate_batches", "drop_job"]


class NonFiniteError(FloatingPointError):
    """A training step produced a NaN or infinite loss or gradient."""


@dataclass
class TrainJob:
    """Everything a worker needs to take part in a fit on one shard layout."""

    job_id: str
    backend: Any
    metrics: list[Metric]
    batch_sizes: list[int]  # local batch size of each rank
    offsets: list[int]  # global row number of each rank's first row
    server: tuple  # ParameterServer.connect_args()
    log_every: int
    topic: str
    on_nonfinite: str = "raise"  # or "skip"


class _Participant:
    """A worker's replica and parameter-server connections for one job."""

    def __init__(self, job: TrainJob):
        from distributed import get_worker

        self.replica = job.backend.build(threads=get_worker().state.nthreads)
        # to skip a bad batch its gradient must be checked before any of it leaves
        eager = job.on_nonfinite != "skip"
        self.connections = ShardConnections(*job.server, self.replica.flat_params, eager=eager)
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


def train_steps(
    local_shard: LocalShard,
    rows: np.ndarray,
    job: TrainJob,
    first_step: int,
    global_batches: list[int],
    buffers: np.ndarray | None,
    epoch: int,
) -> dict[str, Any]:
    """Train steps ``first_step, first_step + 1, ...``, one per entry of ``global_batches``.

    Args:
        local_shard: this rank's rows.
        rows: the local rows to train on, in order, this rank's batch size per step (the
            rank contributes nothing to steps past the end of ``rows``).
        job: the fit's settings for the current shard layout.
        first_step: the optimizer step number of the first step.
        global_batches: samples of all ranks together at each step (the gradient weights).
        buffers: model buffers to start from (None: keep the replica's).
        epoch: the epoch the steps belong to (for the reports).

    Returns:
        Loss and metric sums of the rows trained on, batches skipped, seconds, and the
        replica's buffers.
    """
    from distributed import get_worker

    worker = get_worker()
    participant = _participant(job)
    replica = participant.replica
    if buffers is not None and buffers.size:
        replica.set_buffers(buffers)
    rank = local_shard.rank
    size = job.batch_sizes[rank]
    totals = _Totals(job.metrics)
    window = _Totals([])
    skipped = 0
    start = window_start = time.perf_counter()
    try:
        for index, global_batch in enumerate(global_batches):
            step = first_step + index
            batch_rows = rows[index * size : (index + 1) * size]
            participant.connections.start(step, replica.flat_grad)
            if len(batch_rows):
                features, labels = local_shard.take(batch_rows)
                loss, output = replica.train_step(features, labels, len(batch_rows) / global_batch)
                if _finite(loss, replica.flat_grad):
                    totals.add(loss, output, labels)
                    window.add(loss, output, labels)
                elif job.on_nonfinite == "skip":
                    replica.zero_grad()
                    skipped += 1
                else:
                    rows_ids = job.offsets[rank] + batch_rows
                    raise NonFiniteError(_describe_fault(loss, step, epoch, worker.address, rank, rows_ids))
            else:
                replica.zero_grad()  # this rank has no rows left this epoch: it contributes nothing
            participant.connections.finish()
            replica.params_changed()
            if (index + 1) % job.log_every == 0 or index + 1 == len(global_batches):
                now = time.perf_counter()
                worker.log_event(
                    job.topic,
                    {  # plain Python numbers: event messages must be msgpack-serialisable
                        "rank": int(rank),
                        "epoch": int(epoch),
                        "step": int(step),
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
    result.update(skipped=skipped, seconds=time.perf_counter() - start, buffers=replica.get_buffers())
    return result


def _finite(loss: float, grad: np.ndarray) -> bool:
    """Whether the loss and every gradient value are finite (a float64 sum keeps NaN and inf)."""
    return math.isfinite(loss) and math.isfinite(float(np.add.reduce(grad, dtype=np.float64)))


def _describe_fault(loss: float, step: int, epoch: int, worker: str, rank: int, row_ids: np.ndarray) -> str:
    what = f"loss ({loss})" if not math.isfinite(loss) else "gradient (the loss is finite)"
    shown = ", ".join(str(i) for i in np.sort(row_ids)[:8]) + (", ..." if len(row_ids) > 8 else "")
    return (
        f"non-finite {what} at step {step} (epoch {epoch}) on worker {worker} (rank {rank}), in the batch of "
        f"{len(row_ids)} training rows {shown} (row numbers in the order of the data, {int(row_ids.min())}.."
        f"{int(row_ids.max())}); look for NaN/inf or extreme values there, lower the learning rate, or pass "
        "on_nonfinite='skip' to skip such batches"
    )


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
