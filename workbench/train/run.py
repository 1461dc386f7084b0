"""One ``fit`` on the cluster, carried through lost and added workers.

The run trains epoch by epoch. An epoch is planned from the rows it has not consumed yet
(:mod:`workbench.train.plan`) and trained in segments of synchronous steps, one task per rank
per segment (:func:`~workbench.train.worker.train_steps`). Segments end at the snapshot
points (every ``snapshot_every`` steps, and each epoch end), where the run commits a
:class:`~workbench.train.snapshots.Snapshot`.

While tasks run, the driver follows the metrics stream and watches the scheduler's list of
workers. When a worker of the run is gone (the surviving ranks' steps fail within moments,
as their streams to it break), the run rolls back to the last snapshot, cuts the data into
new shards over the workers alive (a shard lost with its worker is recomputed from its
lineage), starts new parameter-server shards from the snapshot, and plans the rest of the
epoch from the rows the snapshot had not consumed: no row is trained twice or left out of an
epoch. Workers that joined are taken the same way at the next epoch start, without rollback.

Setting ``estimator.stop_training`` (a callback, the dashboard's Stop button) ends the fit at
the next snapshot point, or at once while a segment runs: the segment is dropped and the
estimator ends with the last snapshot, as after any interrupted fit. Its history holds the
epochs completed.

The global batch size stays what ``fit`` was given whatever the number of workers (each
worker's share changes), so the optimizer sees the same batches and the learning rate needs
no rescaling.
"""

from __future__ import annotations

import math
import queue
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from workbench.context import scheduler_workers
from workbench.data.shard import Shards, reshard
from workbench.train.callbacks import CallbackList
from workbench.train.inference import Weights, evaluate_shard
from workbench.train.parameter_server import ParameterServer, StepAborted
from workbench.train.plan import EpochPlan, local_batch_sizes
from workbench.train.snapshots import Snapshot
from workbench.train.worker import TrainJob, drop_job, train_steps

__all__ = ["FitSettings", "TrainingRun", "TrainingFailed", "empty_totals"]

#: Seconds between two looks at the scheduler's worker list (and the metrics stream) while waiting.
_WATCH_INTERVAL = 0.25
#: After a transport error, how long the scheduler gets to report the worker it lost.
_LOSS_GRACE = 10.0
#: How long a recovery waits for at least one worker to be alive.
_WORKER_WAIT = 60.0
#: Errors a lost worker causes in the surviving ranks and in calls to it.
_TRANSPORT_ERRORS = (StepAborted, OSError, EOFError, TimeoutError)


class TrainingFailed(RuntimeError):
    """The fit gave up (too many worker losses, or no worker left); the estimator holds the
    last snapshot."""


class _Stopped(Exception):
    """``estimator.stop_training`` was set while a segment ran (handled inside the run)."""


class _WorkersLost(Exception):
    """Workers of the run are gone (handled inside the run)."""

    def __init__(self, workers: set[str]):
        super().__init__(f"lost workers {sorted(workers)}")
        self.workers = workers


@dataclass
class FitSettings:
    """The arguments of ``fit`` the run needs."""

    epochs: int
    batch_size: int
    shuffle: bool
    seed: int
    log_every: int
    snapshot_every: int | None
    max_failures: int
    on_nonfinite: str


def empty_totals(num_metrics: int) -> dict[str, Any]:
    """Sums of an epoch before its first step."""
    return {"loss_sum": 0.0, "samples": 0, "skipped": 0, "metric_sums": [None] * num_metrics}


class TrainingRun:
    """Drives one fit; see the module docstring.

    Args:
        estimator: the :class:`~workbench.train.estimator.Estimator` (its model, optimizer,
            metrics, and the attributes the run keeps up to date).
        data, validation: the persisted training and validation shards.
        store: where snapshots go (:mod:`workbench.train.snapshots`).
        fingerprint: what identifies this fit's model and data in a snapshot.
        settings: the fit's arguments.
        callbacks: the fit's callbacks.
    """

    def __init__(self, estimator: Any, data: Shards, validation: Shards | None, store: Any,
                 fingerprint: dict[str, Any], settings: FitSettings, callbacks: CallbackList):
        self.estimator = estimator
        self.client = data.client
        self.layout = data
        self.validation = validation
        self.store = store
        self.fingerprint = fingerprint
        self.settings = settings
        self.callbacks = callbacks
        self.max_ranks = min(settings.batch_size, data.n_rows)
        self.failures = 0
        self.known_lost: set[str] = set()
        self.last_watch = 0.0
        self.server: ParameterServer | None = None
        self.stream: _MetricsStream | None = None
        self.running: list = []

    # -- the run --------------------------------------------------------------------------------

    def run(self, start: Snapshot, start_stored: bool) -> None:
        """Train from ``start`` until ``settings.epochs`` epochs of this fit are done.

        ``start_stored``: whether ``start`` is a snapshot already in the store (a resume).
        """
        self.last, self.last_stored = start, start_stored
        self.events = list(start.events)
        self._restore(start)
        self.begun_epoch = start.epoch if start.consumed.any() else None  # on_epoch_begin was called
        self.epoch_started = time.perf_counter()
        self.callbacks.on_train_begin({"epochs": self.settings.epochs, "epochs_done": start.epochs_done})
        try:
            self._start_layout()
            lost: _WorkersLost | None = None
            while True:
                try:
                    if lost is not None:
                        self._recover(lost)
                        lost = None
                    self._train()
                    break
                except _WorkersLost as error:
                    lost = error if lost is None else _WorkersLost(lost.workers | error.workers)
        except _Stopped:  # drop the segment in flight: the estimator ends with the last snapshot,
            self._close()  # read from the store, as the shards may already have moved past it
        except BaseException as error:
            self._close()
            self._restore_estimator()  # keep the last snapshot's weights
            self.callbacks.on_train_failed(error)
            raise
        self._parameters()  # fetched while the shards are up, rather than read back from the store
        self._close()
        self._restore_estimator()
        self.callbacks.on_train_end({"epochs": len(self.live.history), "events": len(self.events)})

    def _train(self) -> None:
        settings = self.settings
        while self.live.epochs_done < settings.epochs and not self.estimator.stop_training:
            if self.plan is None:
                if not self.live.consumed.any():
                    self._take_joined_workers()
                self.plan = EpochPlan.remaining(
                    self.live.consumed, self.layout.rows, self.job.batch_sizes, seed=settings.seed,
                    epoch=self.live.epoch, attempt=self.attempt, shuffle=settings.shuffle,
                )
                self.plan_done = 0
                self.estimator.steps_per_epoch = self.plan.steps
            if self.begun_epoch != self.live.epoch:
                self.begun_epoch = self.live.epoch
                self.epoch_started = time.perf_counter()
                self.server.call_all("set_epoch", self.live.epoch)
                self.callbacks.on_epoch_begin(self.live.epoch)
            while self.plan_done < self.plan.steps:
                stop = self._segment_stop()
                self._run_segment(stop)
                if stop < self.plan.steps:
                    self._commit()
                    if self.estimator.stop_training:
                        return
            self._end_epoch()

    def _segment_stop(self) -> int:
        """The step of the plan where the next snapshot is due (or the plan's end)."""
        every = self.settings.snapshot_every
        if every is None:
            return self.plan.steps
        return min(self.plan.steps, self.plan_done + every - self.live.step % every)

    def _run_segment(self, stop: int) -> None:
        plan, start = self.plan, self.plan_done
        rows = [(plan.rows(rank, start, stop),) for rank in range(self.layout.num_shards)]
        self.running = self.layout.map(
            train_steps, self.job, self.live.step + 1, plan.global_batch_sizes(start, stop),
            self.pending_buffers, self.live.epoch, rank_args=rows, pinned=True,
        )
        results = self._follow(self.running, stoppable=True)
        self.running = []
        self.pending_buffers = None
        totals = self.live.totals
        for result in results:
            totals["loss_sum"] += result["loss_sum"]
            totals["samples"] += result["samples"]
            totals["skipped"] += result["skipped"]
            totals["metric_sums"] = [
                mine if theirs is None else theirs if mine is None else mine + theirs
                for mine, theirs in zip(totals["metric_sums"], result["metric_sums"])
            ]
        plan.mark_consumed(self.live.consumed, start, stop)
        self.live.step += stop - start
        self.estimator.step_ = self.live.step
        self.plan_done = stop
        if self.live.buffers.size:
            self.live.buffers = average_buffers([r["buffers"] for r in results])

    def _end_epoch(self) -> None:
        """Snapshot the finished epoch, validate, log it, and snapshot the next epoch's start."""
        self._commit()
        live = self.live
        seconds = time.perf_counter() - self.epoch_started
        logs = {"epoch": live.epoch, **self.estimator._summarise([live.totals])}
        if self.validation is not None:
            scores = self._validate()
            logs.update({f"val_{name}": value for name, value in self.estimator._summarise(scores).items()})
        logs.update(samples_per_s=live.totals["samples"] / seconds, time=seconds, workers=self.layout.num_shards)
        if self.settings.on_nonfinite == "skip":
            logs["skipped_batches"] = live.totals["skipped"]
        live.history.append(logs)
        live.epochs_done += 1
        live.epoch += 1
        live.consumed[:] = False
        live.totals = empty_totals(len(self.estimator.metrics))
        self.estimator.epochs_ = live.epoch
        self.pending_buffers = live.buffers
        self.plan, self.attempt = None, 0
        self._commit()
        self.callbacks.on_epoch_end(logs["epoch"], logs)

    def _validate(self) -> list[dict]:
        params, _ = self._parameters()
        weights = self.client.scatter(Weights(self.estimator.backend, params, self.live.buffers),
                                      broadcast=True, hash=False)
        futures = self.validation.map(evaluate_shard, weights, self.estimator.metrics, self.settings.batch_size)
        return self._follow(futures)

    # -- snapshots ------------------------------------------------------------------------------

    def _commit(self) -> None:
        """Snapshot the live state (the parameters are written only when they changed)."""
        snapshot = self.live.copy()
        snapshot.events = list(self.events)
        snapshot.lr_override = self.estimator._lr_override
        unchanged = self.last_stored and self.last.step == snapshot.step
        if unchanged:
            snapshot.params, snapshot.state = self.last.params, self.last.state
        self.store.commit(snapshot, None if unchanged else self.server, self.fingerprint)
        self.last, self.last_stored = snapshot, True

    def _parameters(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The last snapshot's parameters, kept on the driver once fetched."""
        if self.last.params is None:
            if self.server is not None and self.live.step == self.last.step:
                gathered = self.server.snapshot()  # the shards hold exactly the snapshot's values
                self.last.params, self.last.state = gathered["params"], gathered["state"]
            else:
                self.last.params, self.last.state = self.store.parameters(self.last)
        return self.last.params, self.last.state

    def _restore(self, snapshot: Snapshot) -> None:
        """Make ``snapshot`` the live state (the parameter server is started separately)."""
        self.live = replace(snapshot.copy(), params=None, state=None, stored=None)
        self.plan, self.attempt = None, 1 if snapshot.consumed.any() else 0
        self.pending_buffers = snapshot.buffers
        estimator = self.estimator
        estimator.step_, estimator.epochs_ = snapshot.step, snapshot.epoch
        estimator._lr_override = snapshot.lr_override

    def _restore_estimator(self) -> None:
        """Give the estimator the last snapshot's weights, state and history."""
        import pandas as pd

        params, state = self._parameters()
        estimator = self.estimator
        estimator._replica.load_params(params)
        if self.last.buffers.size:
            estimator._replica.set_buffers(self.last.buffers)
        estimator.optimizer_state_ = state
        estimator.step_, estimator.epochs_ = self.last.step, self.last.epoch
        estimator._lr_override = self.last.lr_override
        history = pd.DataFrame(self.last.history)
        estimator.history_ = history.set_index("epoch") if len(history) else history
        estimator.events_ = pd.DataFrame(self.events)

    # -- shard layouts and failures ---------------------------------------------------------------

    def _start_layout(self) -> None:
        """Parameter-server shards from the last snapshot on the current layout's workers."""
        params, state = self._parameters()
        estimator, settings = self.estimator, self.settings
        self.server = ParameterServer(
            self.client, params, self.layout.workers, estimator.optimizer.get_config(), estimator.clip_norm,
            self.last.step, state, wait=self._wait,
        )
        if estimator._lr_override is not None:
            self.server.call_all("set_learning_rate", estimator._lr_override)
        job_id = uuid.uuid4().hex
        offsets = [0, *np.cumsum(self.layout.rows)[:-1].tolist()]
        self.job = TrainJob(
            job_id=job_id, backend=estimator.backend, metrics=estimator.metrics,
            batch_sizes=local_batch_sizes(settings.batch_size, self.layout.num_shards), offsets=offsets,
            server=self.server.connect_args(), log_every=settings.log_every, topic=f"workbench-train-{job_id}",
            on_nonfinite=settings.on_nonfinite,
        )
        self.stream = _MetricsStream(self.client, self.job.topic, self.layout.num_shards, self._step_learning_rate)
        self.server.call_all("set_epoch", self.live.epoch)
        estimator._server = self.server
        estimator.workers_ = list(self.layout.workers)

    def _step_learning_rate(self, step: int, epoch: int) -> float:
        """The learning rate the parameter server used at ``step`` (computed here, no call)."""
        override = self.estimator._lr_override
        return override if override is not None else self.estimator.optimizer.learning_rate(step, epoch)

    def _close(self, lost: set[str] | frozenset = frozenset()) -> None:
        """Stop the current layout's shards, tasks and replicas (on the workers still there)."""
        self.estimator._server = None
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        if self.server is None:
            return
        server, self.server = self.server, None
        alive = set(server.workers) - set(lost) - self.known_lost
        try:
            server.close(alive=alive if lost or self.running else None)
            if self.running:
                self.client.cancel(self.running)
                self.running = []
            self.client.run(drop_job, self.job.job_id, workers=sorted(alive), on_error="ignore")
        except (*_TRANSPORT_ERRORS, _WorkersLost, RuntimeError):
            pass  # another worker went away meanwhile (its actors raise RuntimeError): recovery finds it

    def _recover(self, lost: _WorkersLost) -> None:
        """Roll back to the last snapshot and go on over the workers still alive."""
        detected, started = time.time(), time.perf_counter()
        self.known_lost |= lost.workers
        self.failures += 1
        event = {
            "time": detected, "kind": "workers_lost", "workers": sorted(lost.workers), "epoch": self.live.epoch,
            "rolled_back_to_step": self.last.step,
            "steps_replayed": max(self.stream.last_step if self.stream else 0, self.live.step) - self.last.step,
        }
        self._close(lost.workers)
        if self.failures > self.settings.max_failures:
            raise TrainingFailed(self._give_up(f"lost workers {self.failures} times, more than "
                                               f"max_failures={self.settings.max_failures}"))
        self._restore(self.last)
        self._relayout(self._alive_workers(wait=True))
        event.update(recovery_s=time.perf_counter() - started, workers_now=self.layout.num_shards)
        self._record(event)

    def _take_joined_workers(self) -> None:
        """At an epoch start, grow the layout onto workers that joined since it was made."""
        workers = self._alive_workers()
        joined = sorted(set(workers) - set(self.layout.workers))
        if not joined or self.layout.num_shards >= self.max_ranks:
            return
        self._close()
        self._relayout(workers)
        self._record({"time": time.time(), "kind": "workers_joined", "workers": joined, "epoch": self.live.epoch,
                      "workers_now": self.layout.num_shards})

    def _relayout(self, workers: list[str]) -> None:
        self.layout = reshard(self.layout, workers[: self.max_ranks])
        self._start_layout()

    def _record(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.callbacks.on_workers_changed(event)

    def _give_up(self, reason: str) -> str:
        where = f"step {self.last.step}, epoch {self.last.epoch}"
        if self.store.url is None:
            how = "pass checkpoint_dir= to fit to be able to resume a fit in a new session"
        else:
            how = f"continue with fit(..., checkpoint_dir={self.store.url!r}, resume=True)"
        return f"training {reason}; the estimator holds the last snapshot ({where}); {how}"

    # -- waiting while watching the workers -----------------------------------------------------------

    def _alive_workers(self, wait: bool = False) -> list[str]:
        deadline = time.monotonic() + (_WORKER_WAIT if wait else 0)
        while True:
            workers = sorted(set(scheduler_workers(self.client)) - self.known_lost)
            if workers or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        if not workers:
            raise TrainingFailed(self._give_up(f"has no worker left (waited {_WORKER_WAIT:.0f} s)"))
        return workers

    def _check_workers(self, force: bool = False) -> None:
        """Raise ``_WorkersLost`` if a worker of the layout left (looks at most every 0.25 s)."""
        now = time.monotonic()
        if not force and now - self.last_watch < _WATCH_INTERVAL:
            return
        self.last_watch = now
        alive = set(scheduler_workers(self.client))
        lost = set(self.layout.workers) - alive - self.known_lost
        if lost:
            raise _WorkersLost(lost)

    def _wait(self, calls: list) -> list:
        """Results of futures or actor calls, unless a worker of the run is lost meanwhile."""
        results, errors = [], []
        for call in calls:
            while not _done_within(call, _WATCH_INTERVAL):
                self._check_workers()  # e.g. a result lost with its worker never comes
            try:
                results.append(call.result())
            except Exception as error:  # noqa: BLE001 - the root cause is chosen below
                errors.append(error)
        self._raise_failure(errors)
        return results

    def _follow(self, futures: list, stoppable: bool = False) -> list:
        """Like :meth:`_wait` for tasks, passing the metrics stream to the callbacks meanwhile.

        With ``stoppable``, raise ``_Stopped`` as soon as ``estimator.stop_training`` is set
        (e.g. by a callback fed from the stream) while the tasks still run.
        """
        from distributed import wait

        while True:
            try:
                wait(futures, timeout=_WATCH_INTERVAL)
            except TimeoutError:
                pass
            if self.stream is not None:
                self.stream.drain(self.callbacks)
            if stoppable and self.estimator.stop_training and not all(f.status == "finished" for f in futures):
                raise _Stopped
            self._raise_failure([error for error in map(_exception, futures) if error is not None])
            if all(future.status == "finished" for future in futures):
                return self._wait(futures)
            self._check_workers()  # the task of a lost worker stays pending: it is pinned there

    def _raise_failure(self, errors: list[BaseException]) -> None:
        """Raise the root cause of failed calls: a lost worker if there is one, else the error."""
        if not errors:
            return
        root = next((e for e in errors if not isinstance(e, _TRANSPORT_ERRORS)), None)
        if root is not None:
            raise root
        deadline = time.monotonic() + _LOSS_GRACE
        while time.monotonic() < deadline:  # the scheduler may learn of the loss a moment later
            self._check_workers(force=True)
            time.sleep(0.1)
        raise errors[0]


def _exception(call: Any) -> BaseException | None:
    """The error of a failed future or actor call; None while it runs or when it succeeded."""
    if hasattr(call, "status"):  # a task future
        if call.status != "error":
            return None
        try:
            error = call.exception(timeout=1)
        except TimeoutError:
            error = None
        # None: the scheduler has reset the task since (a dependency moved); still a failure
        return error or StepAborted("a training task failed and was reset by the scheduler")
    if not call.done():
        return None
    try:
        call.result()
    except BaseException as error:  # an actor call re-raises its error
        return error
    return None


def average_buffers(replicas: list[np.ndarray]) -> np.ndarray:
    """Mean of each buffer value over replicas; values all replicas agree on stay bit-identical
    (a float32 mean of equal numbers can move by one ulp, e.g. frozen Keras weights)."""
    stacked = np.stack(replicas)
    mean = stacked.mean(axis=0, dtype=np.float64).astype(np.float32)
    same = (stacked == stacked[0]).all(axis=0)
    mean[same] = stacked[0][same]
    return mean


class _MetricsStream:
    """Worker loss reports (a Dask event topic) merged into one per-step stream for callbacks.

    ``learning_rate(step, epoch)`` gives the learning rate of a step, for the logs.
    """

    def __init__(self, client, topic: str, num_ranks: int, learning_rate: Callable[[int, int], float]):
        self.client = client
        self.topic = topic
        self.num_ranks = num_ranks
        self.learning_rate = learning_rate
        self.events: queue.Queue = queue.Queue()
        self.pending: dict[int, list[dict]] = {}
        self.last_step = 0
        client.subscribe_topic(topic, lambda event: self.events.put(event[1]))

    def drain(self, callbacks: CallbackList) -> None:
        """Pass every complete step report received so far to the callbacks."""
        while True:
            try:
                self._add(self.events.get_nowait(), callbacks)
            except queue.Empty:
                return

    def _add(self, report: dict, callbacks: CallbackList) -> None:
        reports = self.pending.setdefault(report["step"], [])
        reports.append(report)
        if len(reports) < self.num_ranks:
            return
        del self.pending[report["step"]]
        self.last_step = max(self.last_step, report["step"])
        reports.sort(key=lambda r: r["rank"])
        samples = sum(r["samples"] for r in reports)
        seconds = max(r["seconds"] for r in reports)
        callbacks.on_batch_end(
            report["step"],
            {
                "epoch": report["epoch"],
                "loss": sum(r["loss_sum"] for r in reports) / samples if samples else math.nan,
                "samples_per_s": samples / seconds if seconds else math.nan,
                "rank_samples_per_s": [r["samples"] / r["seconds"] if r["seconds"] else math.nan for r in reports],
                "lr": self.learning_rate(report["step"], report["epoch"]),
            },
        )

    def close(self) -> None:
        self.client.unsubscribe_topic(self.topic)


def _done_within(call: Any, seconds: float) -> bool:
    """Whether a future or actor call has finished (succeeded or failed) after waiting up to ``seconds``.

    Its outcome is read again by the caller: deciding from the exception raised here would take
    a call that finishes just after the timeout for one that failed with a TimeoutError.
    """
    try:
        call.result(timeout=seconds)
    except Exception:  # noqa: BLE001 - a failure or the timeout; done() tells which
        pass
    return call.done()
