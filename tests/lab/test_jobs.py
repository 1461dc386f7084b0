"""Job records: what the jobs panel learns of a fit, from a real fit on a local cluster."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.lab.channel import ChannelError
from workbench.lab.jobs import DETAIL_POINTS, SPARKLINE_POINTS, JobBook
from workbench.train import callbacks
from workbench.train.callbacks import Callback, add_fit_observer, fit_observers

from ..train.faults import KillAt


def data(rows: int = 1024):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def estimator() -> wb.Estimator:
    return wb.Estimator.from_torch(lambda: torch.nn.Linear(4, 2), optimizer="sgd", loss="cross_entropy",
                                   metrics=["accuracy"])


def test_a_finished_fit_is_summarised_with_its_progress_loss_and_metrics(context):
    book = JobBook()
    record = book.new_record()
    assert book.all() == []  # listed once the fit begins
    estimator().fit(data(), epochs=2, batch_size=8, log_every=1, progress=None, callbacks=[record],
                    validation_data=data(256))
    (listed,) = book.all()
    summary = listed.summary()
    assert summary["name"] == "Linear" and summary["status"] == "finished" and summary["error"] is None
    assert summary["epoch"] == summary["epochs"] == 2 and summary["progress"] == 1.0
    assert summary["steps_per_epoch"] == 128 and summary["step"] == 256 and summary["workers"] == 2
    assert set(summary["metrics"]) == {"accuracy", "val_loss", "val_accuracy"}
    assert summary["ended"] >= summary["started"]
    assert len(summary["sparkline"]) == SPARKLINE_POINTS  # 256 reports, sampled evenly
    assert summary["sparkline"][-1] == summary["loss"] == record.steps["loss"][-1]

    detail = listed.detail()
    assert detail["steps"]["step"] == list(range(1, 257))  # under DETAIL_POINTS: every report
    assert [row["epoch"] for row in detail["epochs_log"]] == [0, 1] and detail["events"] == []
    assert book.find(summary["id"]) is listed
    with pytest.raises(ChannelError, match="is finished, not running") as refused:
        listed.stop()
    assert refused.value.status == 409
    with pytest.raises(ChannelError, match="no job 'nope'"):
        book.find("nope")


def test_stop_ends_a_running_fit(context):
    class StopFromThePanel(Callback):  # what the channel thread does, at the third report
        def on_batch_end(self, step, logs=None):
            if step == 3:
                assert record.stop()["status"] == "stopping"

    record = JobBook().new_record()
    fitted = estimator()
    fitted.fit(data(), epochs=50, batch_size=8, log_every=1, progress=None, callbacks=[record, StopFromThePanel()])
    summary = record.summary()
    assert summary["status"] == "stopped" and summary["epoch"] < 50 and 0 < summary["progress"] < 1


def test_a_killed_worker_is_a_failure_the_job_recovered_from(context):
    record = JobBook().new_record()
    killer = KillAt(20, lambda fitted: fitted.workers_[1])
    estimator().fit(data(), epochs=2, batch_size=8, log_every=1, progress=None, callbacks=[killer, record],
                    snapshot_every=10)
    detail = record.detail()
    assert detail["status"] == "finished" and detail["failures_recovered"] == 1
    assert [(event["kind"], event["workers"]) for event in detail["events"]][0] == ("workers_lost", [killer.killed])


def test_a_failed_fit_names_its_error_and_a_nan_loss_is_null(context):
    class Diverge(Callback):
        def on_batch_end(self, step, logs=None):
            logs["loss"] = math.nan  # as reported by a diverging fit
            if step == 4:
                raise FloatingPointError("diverged")

    record = JobBook().new_record()
    with pytest.raises(FloatingPointError):
        estimator().fit(data(), epochs=1, batch_size=8, log_every=1, progress=None, callbacks=[Diverge(), record])
    summary = record.summary()
    assert summary["status"] == "failed" and summary["error"] == "FloatingPointError: diverged"
    assert summary["loss"] is None and summary["sparkline"] == []


def test_long_fits_send_at_most_detail_points_steps():
    record = JobBook().new_record()
    record.steps = {name: [float(i) for i in range(5 * DETAIL_POINTS)] for name in record.steps}
    record.estimator = estimator()
    steps = record.detail()["steps"]
    assert len(steps["step"]) == DETAIL_POINTS and steps["step"][0] == 0 and steps["step"][-1] == 5 * DETAIL_POINTS - 1


def test_fit_observers_give_every_fit_a_fresh_callback(context, monkeypatch):
    monkeypatch.setattr(callbacks, "_observer_factories", [])  # this process's fits stay unobserved after
    book = JobBook()
    add_fit_observer(book.new_record)
    add_fit_observer(book.new_record)  # once only
    assert len(fit_observers()) == 1 and fit_observers()[0] is not fit_observers()[0]
    estimator().fit(data(256), epochs=1, batch_size=32, progress=None)
    estimator().fit(data(256), epochs=1, batch_size=32, progress=None)
    assert [job.summary()["status"] for job in book.all()] == ["finished", "finished"]
