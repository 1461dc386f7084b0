"""Fault injection for the fault-tolerance tests: a task that counts rows, worker kills, slow snapshots.

Importable by worker processes (the model, loss and metrics travel to them by reference).
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
from distributed.diagnostics.plugin import WorkerPlugin
from fsspec.implementations.local import LocalFileSystem

import workbench as wb
from workbench.train import Callback
from workbench.train.metrics import Accuracy, Metric

from .conftest import make_mlp

ROWS = 3000
BATCH = 60


def rows_with_ids(rows: int = ROWS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The 3-class task of the training tests, with each row's number as a fifth column."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64) + (features[:, 1] > 0.5).astype(np.int64)
    return np.column_stack([features, np.arange(rows, dtype=np.float32)]), labels


class EchoIds(torch.nn.Module):
    """An MLP on the first four columns whose last output echoes the row number."""

    def __init__(self):
        super().__init__()
        self.mlp = make_mlp()

    def forward(self, x):
        return torch.cat([self.mlp(x[:, :4]), x[:, 4:5]], dim=1)


def echo_loss(output, target):
    return torch.nn.functional.cross_entropy(output[:, :3], target.long())


class EchoAccuracy(Accuracy):
    def update(self, prediction, target):
        return super().update(prediction[:, :3], target)


class RowsNotOnce(Metric):
    """How many rows of the data were trained on other than exactly once (from the echoed ids)."""

    name = "rows_not_once"

    def __init__(self, rows: int = ROWS):
        self.rows = rows

    def update(self, prediction, target):
        return np.bincount(np.rint(prediction[:, 3]).astype(np.int64), minlength=self.rows).astype(np.float64)

    def result(self, sums):
        return float(np.count_nonzero(sums != 1))


def estimator() -> wb.Estimator:
    return wb.Estimator.from_torch(EchoIds, optimizer="adam", optimizer_kwargs={"lr": 0.01}, loss=echo_loss,
                                   metrics=[EchoAccuracy(), RowsNotOnce()])


def worker_pids(client) -> dict[str, int]:
    return client.run(os.getpid)


class KillAt(Callback):
    """SIGKILL a worker process (by PID) when the metrics stream reaches ``step``."""

    def __init__(self, step: int, choose_worker):
        self.step = step
        self.choose_worker = choose_worker  # (estimator) -> worker address
        self.killed: str | None = None
        self.killed_at: float | None = None

    def on_batch_end(self, step, logs=None):
        if self.killed is None and step >= self.step:
            address = self.choose_worker(self.estimator)
            os.kill(worker_pids(wb.current().client)[address], signal.SIGKILL)
            self.killed, self.killed_at = address, time.time()


class SlowFileSystem(LocalFileSystem):
    """The local disk as ``slowfile://``; in the snapshot of step ``from_step`` each
    parameter-shard file takes a second to write and is announced first with a marker file
    naming the writing process, so that a test can kill a worker in the middle of a snapshot."""

    protocol = "slowfile"
    announce_dir: str | None = None
    from_step = 0

    def pipe_file(self, path, value, **kwargs):
        folder, name = os.path.split(path)
        step = int(re.search(r"step-(\d+)", folder).group(1)) if "step-" in folder else -1
        if ".shard-" in name and self.announce_dir and step == self.from_step:
            Path(self.announce_dir, f"{os.getpid()}-{step}").touch()
            time.sleep(1.0)
        return super().pipe_file(path, value, **kwargs)


def use_slow_snapshots(announce_dir: str, from_step: int) -> None:
    SlowFileSystem.announce_dir, SlowFileSystem.from_step = announce_dir, from_step
    import fsspec

    fsspec.register_implementation("slowfile", SlowFileSystem, clobber=True)


class SlowSnapshots(WorkerPlugin):
    """Installs :class:`SlowFileSystem` in every worker, including ones that join later."""

    def __init__(self, announce_dir: str, from_step: int):
        self.announce_dir, self.from_step = announce_dir, from_step

    def setup(self, worker):
        use_slow_snapshots(self.announce_dir, self.from_step)


def kill_first_announced_writer(announce_dir: Path, stop: threading.Event) -> list[tuple[int, float]]:
    """In a thread: SIGKILL the first process that announces a snapshot write.

    Returns a list that receives ``(pid, time of the kill)``.
    """
    killed: list[tuple[int, float]] = []

    def watch():
        while not stop.is_set():
            markers = sorted(announce_dir.iterdir())
            if markers:
                pid = int(markers[0].name.split("-")[0])
                os.kill(pid, signal.SIGKILL)
                killed.append((pid, time.time()))
                return
            time.sleep(0.01)

    threading.Thread(target=watch, daemon=True).start()
    return killed
