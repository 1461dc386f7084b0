"""Training jobs as the JupyterLab extension lists them: one :class:`JobRecord` per ``fit``.

A :class:`JobRecord` is an ordinary callback, added to every fit of a kernel that reports to a
JupyterLab server (:func:`workbench.train.callbacks.add_fit_observer`). Its hooks run on the
kernel's main thread and append to the record; the channel thread reads it (:meth:`JobRecord.summary`,
:meth:`JobRecord.detail`) and may ask it to stop (:meth:`JobRecord.stop`), so every access
holds the record's lock. The kernel keeps its last :data:`KEPT_JOBS` jobs (:class:`JobBook`).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from typing import Any

from workbench.lab.channel import ChannelError
from workbench.train.callbacks import Callback

__all__ = ["JobBook", "JobRecord", "KEPT_JOBS"]

KEPT_JOBS = 50
SPARKLINE_POINTS = 64
DETAIL_POINTS = 2000
STEP_SERIES = ("step", "loss", "samples_per_s", "lr")
#: Epoch log keys that are bookkeeping or shown on their own, not metrics.
_NOT_METRICS = ("epoch", "time", "workers", "loss", "samples_per_s")


class JobRecord(Callback):
    """What the jobs panel shows of one fit: status, progress, the loss stream, the epoch logs."""

    def __init__(self, book: JobBook):
        self.book = book
        self.id = uuid.uuid4().hex[:12]
        self.lock = threading.Lock()
        self.name = "fit"
        self.status = "running"
        self.error: str | None = None
        self.failures_recovered = 0
        self.epochs: int | None = None
        self.epochs_done = 0  # including those of the fit this one resumes
        self.epoch_first_step = 0
        self.workers = 0
        self.started = time.time()
        self.ended: float | None = None
        self.steps: dict[str, list[float]] = {name: [] for name in STEP_SERIES}
        self.epochs_log: list[dict[str, float]] = []
        self.events: list[dict[str, Any]] = []

    # -- the fit's hooks (main thread) -----------------------------------------------------------

    def on_train_begin(self, logs=None):
        logs = logs or {}
        with self.lock:
            self.name = type(self.estimator.model_).__name__
            self.epochs = logs.get("epochs")
            self.epochs_done = logs.get("epochs_done", 0)
            self.epoch_first_step = self.estimator.step_
        self.book.add(self)

    def on_epoch_begin(self, epoch, logs=None):
        with self.lock:
            self.epoch_first_step = self.estimator.step_
            self.workers = len(self.estimator.workers_ or [])

    def on_batch_end(self, step, logs=None):
        with self.lock:
            self.steps["step"].append(step)
            for name in STEP_SERIES[1:]:
                self.steps[name].append(_number(logs[name]))

    def on_epoch_end(self, epoch, logs=None):
        with self.lock:
            self.epochs_log.append({key: _number(value) for key, value in (logs or {}).items()
                                    if isinstance(value, (int, float))})
            self.epochs_done += 1

    def on_workers_changed(self, event):
        with self.lock:
            step = event.get("rolled_back_to_step", self.steps["step"][-1] if self.steps["step"] else 0)
            self.events.append({"kind": event["kind"], "step": step, "workers": [str(w) for w in event["workers"]]})
            self.failures_recovered += event["kind"] == "workers_lost"
            self.workers = len(self.estimator.workers_ or [])

    def on_train_end(self, logs=None):
        with self.lock:
            self.status = "stopped" if self.estimator.stop_training else "finished"
            self.ended = time.time()

    def on_train_failed(self, error):
        with self.lock:
            if isinstance(error, KeyboardInterrupt):  # the kernel was interrupted
                self.status = "stopped"
            else:
                self.status, self.error = "failed", f"{type(error).__name__}: {error}"
            self.ended = time.time()

    # -- the channel's requests (channel thread) -------------------------------------------------

    def stop(self) -> dict[str, Any]:
        """End the fit at its next check (as the dashboard's Stop button does)."""
        with self.lock:
            if self.status != "running":
                raise ChannelError(409, f"job {self.id} is {self.status}, not running")
            self.estimator.stop_training = True
            self.status = "stopping"
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """The job as one row of the jobs panel (see the REST API in :mod:`workbench.lab.handlers`)."""
        with self.lock:
            losses = self.steps["loss"]
            last_epoch = self.epochs_log[-1] if self.epochs_log else {}
            return {
                "id": self.id, "name": self.name, "status": self.status, "error": self.error,
                "failures_recovered": self.failures_recovered,
                "epoch": self.epochs_done, "epochs": self.epochs,
                "step": int(self.steps["step"][-1]) if self.steps["step"] else self.epoch_first_step,
                "steps_per_epoch": self.estimator.steps_per_epoch,
                "progress": self._progress(),
                "loss": losses[-1] if losses else None,
                "metrics": {key: value for key, value in last_epoch.items() if key not in _NOT_METRICS},
                "samples_per_s": self.steps["samples_per_s"][-1] if losses else None,
                "workers": self.workers, "started": self.started, "ended": self.ended,
                "sparkline": [value for value in _evenly(losses, SPARKLINE_POINTS) if value is not None],
            }

    def detail(self) -> dict[str, Any]:
        """The summary plus the series the job view draws (at most :data:`DETAIL_POINTS` steps)."""
        summary = self.summary()
        with self.lock:
            rows = _evenly(list(range(len(self.steps["step"]))), DETAIL_POINTS)
            steps = {name: [values[i] for i in rows] for name, values in self.steps.items()}
            return {**summary, "steps": steps, "epochs_log": list(self.epochs_log), "events": list(self.events)}

    def _progress(self) -> float:
        if self.status == "finished":
            return 1.0
        per_epoch = self.estimator.steps_per_epoch
        if not self.epochs or not per_epoch:
            return 0.0
        in_epoch = (self.steps["step"][-1] - self.epoch_first_step) / per_epoch if self.steps["step"] else 0.0
        return min(1.0, (self.epochs_done + min(max(in_epoch, 0.0), 1.0)) / self.epochs)


class JobBook:
    """The jobs of this kernel, newest first; the oldest go beyond :data:`KEPT_JOBS`."""

    def __init__(self):
        self.jobs: deque[JobRecord] = deque(maxlen=KEPT_JOBS)
        self.lock = threading.Lock()

    def new_record(self) -> JobRecord:
        """A record for the next fit (listed once the fit begins)."""
        return JobRecord(self)

    def add(self, record: JobRecord) -> None:
        with self.lock:
            self.jobs.appendleft(record)

    def all(self) -> list[JobRecord]:
        with self.lock:
            return list(self.jobs)

    def find(self, job_id: str) -> JobRecord:
        """The job with that id; a 404 :class:`ChannelError` when this kernel has none."""
        for record in self.all():
            if record.id == job_id:
                return record
        raise ChannelError(404, f"no job {job_id!r}")


def _number(value: Any) -> float | None:
    """A float for JSON: NaN and infinities (a diverged loss) become None."""
    value = float(value)
    return value if math.isfinite(value) else None


def _evenly(values: list, count: int) -> list:
    """At most ``count`` items of ``values``, evenly spaced, always keeping the last."""
    if len(values) <= count:
        return list(values)
    stride = (len(values) - 1) / (count - 1)
    return [values[round(i * stride)] for i in range(count)]
