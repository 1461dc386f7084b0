"""TrainingDashboard: fed by a real fit's callbacks, throttled, replayable, stoppable, saved to HTML."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.train import Callback
from workbench.widgets.dashboard import TrainingDashboard

from ..conftest import running_context

ROWS, BATCH = 640, 32  # 20 steps per epoch


def make_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(ROWS, 4)).astype(np.float32)
    return features, (features[:, 0] + features[:, 1] > 0).astype(np.int64)


def classifier() -> wb.Estimator:
    return wb.Estimator.from_torch(make_model, optimizer="sgd", optimizer_kwargs={"lr": 0.1},
                                   loss="cross_entropy", metrics=["accuracy"])


class FakeClock:
    """A clock the test advances by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def fitted(_module_cluster, data) -> tuple[wb.Estimator, TrainingDashboard]:
    running_context(2)
    estimator, dashboard = classifier(), TrainingDashboard()
    estimator.fit(data, epochs=3, batch_size=BATCH, validation_data=data, log_every=2,
                  callbacks=[dashboard], progress=None)
    return estimator, dashboard


def test_dashboard_draws_every_logged_step_and_epoch(fitted):
    estimator, dashboard = fitted
    steps = dashboard.step_data
    assert steps["step"].tolist() == list(range(2, 3 * ROWS // BATCH + 1, 2))  # log_every=2
    assert steps["epoch"].tolist() == [(s - 1) // (ROWS // BATCH) for s in steps["step"]]
    assert (steps["samples_per_s"] > 0).all() and steps["loss"].notna().all()
    assert np.allclose(steps["lr"], 0.1)
    epochs = dashboard.epoch_data.set_index("epoch")
    pd.testing.assert_frame_equal(epochs[estimator.history_.columns], estimator.history_, check_names=False)
    assert set(dashboard.workers) == set(estimator.workers_)
    assert all(info["status"] == "alive" and info["samples_per_s"] > 0 for info in dashboard.workers.values())
    assert "epoch 3/3" in dashboard.status.value and "done" in dashboard.status.value
    assert dashboard.progress.value == dashboard.progress.max == ROWS // BATCH
    assert dashboard.stop_button.disabled


def test_updates_are_throttled_and_flushed_at_epoch_end(context):
    clock = FakeClock()
    dashboard = TrainingDashboard(max_updates_per_s=4, clock=clock)
    dashboard.set_estimator(classifier())
    dashboard.on_train_begin({"epochs": 1})
    for step in range(1, 1001):  # 1000 reports in one second
        clock.now = step / 1001  # the last report comes just before a render is due
        dashboard.on_batch_end(step, {"epoch": 0, "loss": 1 / step, "samples_per_s": 100.0,
                                      "rank_samples_per_s": [50.0, 50.0], "lr": 0.01})
    assert dashboard.renders <= 1 + 4 + 1  # train begin, 4 a second, rounding at the edges
    assert len(dashboard.step_data) < 1000  # the last reports wait for the next render
    dashboard.on_epoch_end(0, {"epoch": 0, "loss": 0.5})
    assert dashboard.step_data["step"].tolist() == list(range(1, 1001))
    assert dashboard.step_data["loss"].iloc[-1] == 1 / 1000


def test_bad_throttle_is_rejected():
    with pytest.raises(ValueError, match="max_updates_per_s"):
        TrainingDashboard(max_updates_per_s=0)


def test_replay_draws_a_finished_history(fitted):
    estimator, _ = fitted
    replayed = TrainingDashboard.replay(estimator.history_, estimator.events_)
    pd.testing.assert_frame_equal(replayed.epoch_data.set_index("epoch"), estimator.history_, check_names=False)
    assert "epoch 3/3" in replayed.status.value
    plotted = replayed.curves.epochs
    assert set(plotted) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert np.allclose(plotted["val_loss"].data["value"], estimator.history_["val_loss"])


def test_replay_rejects_what_is_not_a_history():
    with pytest.raises(TypeError, match="history must be a pandas DataFrame"):
        TrainingDashboard.replay([0.5, 0.4])
    with pytest.raises(ValueError, match="'epoch' and 'loss'"):
        TrainingDashboard.replay(pd.DataFrame({"accuracy": [0.5]}))


class ClickStopAt(Callback):
    """Clicks the dashboard's Stop button when the stream reaches ``step``."""

    def __init__(self, dashboard: TrainingDashboard, step: int):
        self.dashboard, self.step = dashboard, step

    def on_batch_end(self, step, logs=None):
        if step >= self.step and not self.dashboard.stop_button.disabled:
            self.dashboard.stop_button.click()


def test_stop_button_ends_the_fit_at_the_last_snapshot(context, data):
    estimator, dashboard = classifier(), TrainingDashboard()
    per_epoch = ROWS // BATCH
    stop_at = per_epoch + 7  # in the second epoch, past its snapshot at step 25
    history = estimator.fit(data, epochs=20, batch_size=BATCH, log_every=1, snapshot_every=5,
                            callbacks=[ClickStopAt(dashboard, stop_at), dashboard], progress=None)
    assert estimator.stop_training and dashboard.stop_button.disabled
    assert list(history.index) == [0]  # the second epoch did not finish
    assert estimator.epochs_ == 1
    assert estimator.step_ % 5 == 0 and per_epoch < estimator.step_ < 2 * per_epoch
    assert "stopped" in dashboard.status.value
    # the estimator is usable: its weights are the snapshot's, and fitting again goes on from there
    assert math.isfinite(estimator.evaluate(data)["loss"])
    steps_before = estimator.step_
    again = estimator.fit(data, epochs=1, batch_size=BATCH, progress=None)
    assert len(again) == 1 and estimator.step_ == steps_before + per_epoch


def test_save_writes_a_standalone_html_file(fitted, tmp_path):
    _, dashboard = fitted
    dashboard.widget  # shown in a notebook first: its curves are then also in the widget's document
    path = dashboard.save(tmp_path / "training.html")
    page = path.read_text()
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "<script></script>", page, flags=re.S)  # code removed
    assert "<script></script>" in markup and not re.search(r"\b(src|href)=", markup)  # bokeh's JS is inline
    assert "cdn.bokeh.org" not in page
    assert "Bokeh" in page and "loss per step" in page and "val_accuracy" in page
    history_loss = f"{dashboard.epoch_data['loss'].iloc[-1]:.6f}"
    assert history_loss in page  # the epoch table


def test_fit_rejects_an_unknown_progress(context, data):
    with pytest.raises(ValueError, match="progress must be one of"):
        classifier().fit(data, progress="fancy")


def test_fit_shows_nothing_outside_a_notebook_and_a_terminal(context, data, capsys):
    classifier().fit(data, epochs=1, batch_size=BATCH)
    assert capsys.readouterr().err == ""
