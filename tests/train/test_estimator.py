"""Estimator behaviour through the public API on a 2-worker cluster."""

from __future__ import annotations

import io

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.train import Callback, EarlyStopping, LearningRateScheduler, ModelCheckpoint, ProgressBar

from .conftest import make_mlp


@pytest.fixture
def table(classification) -> pd.DataFrame:
    features, labels = classification
    frame = pd.DataFrame(features, columns=["a", "b", "c", "d"])
    frame["y"] = labels
    return frame.set_index(np.random.default_rng(3).permutation(len(frame)) * 10)


def classifier(**kwargs) -> wb.Estimator:
    options = {"optimizer": torch.optim.Adam, "optimizer_kwargs": {"lr": 0.02}, "loss": "cross_entropy", "metrics": ["accuracy"]}
    return wb.Estimator.from_torch(make_mlp, **{**options, **kwargs})


def test_mlp_learns_a_classification_task(context, table):
    estimator = classifier()
    history = estimator.fit(wb.data.from_pandas(table, npartitions=3), ["a", "b", "c", "d"], "y",
                            epochs=10, batch_size=32, validation_data=table, verbose=False)
    assert list(history.columns) == ["loss", "accuracy", "val_loss", "val_accuracy", "samples_per_s", "time", "workers"]
    assert list(history.index) == list(range(10))
    assert history["val_accuracy"].iloc[-1] >= 0.95
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert (history["samples_per_s"] > 0).all()


def test_regression_reaches_the_expected_r2(context):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(2000, 3)).astype(np.float32)
    target = (features @ np.array([1.5, -2.0, 0.5]) + 0.1 * rng.normal(size=2000)).astype(np.float32)
    estimator = wb.Estimator.from_torch(lambda: torch.nn.Linear(3, 1), optimizer="adam",
                                        optimizer_kwargs={"lr": 0.05}, loss="mse", metrics=["r2", "mae"])
    estimator.fit((da.from_array(features, chunks=500), da.from_array(target, chunks=700)), epochs=8, batch_size=100, verbose=False)
    scores = estimator.evaluate((features, target))
    assert scores["r2"] > 0.99  # noise variance 0.01 against a target variance of about 6.5
    assert scores["mae"] < 0.15


def test_predict_keeps_row_count_order_and_index(context, table):
    estimator = classifier()
    estimator.fit(table, ["a", "b", "c", "d"], "y", epochs=1, batch_size=64, verbose=False)
    frame = wb.data.from_pandas(table, npartitions=4)
    predicted = estimator.predict(frame).compute()
    with torch.no_grad():
        expected = estimator.model_(torch.tensor(table[["a", "b", "c", "d"]].to_numpy())).numpy()
    assert list(predicted.columns) == ["prediction_0", "prediction_1", "prediction_2"]
    pd.testing.assert_index_equal(predicted.index, table.index)
    np.testing.assert_allclose(predicted.to_numpy(), expected, rtol=1e-5, atol=1e-6)

    array_prediction = estimator.predict(da.from_array(table[["a", "b", "c", "d"]].to_numpy(), chunks=250))
    assert array_prediction.shape == (len(table), 3)
    np.testing.assert_allclose(array_prediction.compute(), expected, rtol=1e-5, atol=1e-6)


def test_evaluate_matches_metrics_computed_by_hand(context, table):
    estimator = classifier()
    estimator.fit(table, ["a", "b", "c", "d"], "y", epochs=1, batch_size=64, verbose=False)
    scores = estimator.evaluate(table, batch_size=100)
    with torch.no_grad():
        output = estimator.model_(torch.tensor(table[["a", "b", "c", "d"]].to_numpy()))
    labels = torch.tensor(table["y"].to_numpy())
    assert scores["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(output, labels)), rel=1e-5)
    assert scores["accuracy"] == pytest.approx(float((output.argmax(1) == labels).double().mean()), abs=1e-12)


def test_save_load_round_trip_and_continued_training(context, table, tmp_path):
    estimator = classifier()
    estimator.fit(table, ["a", "b", "c", "d"], "y", epochs=2, batch_size=64, verbose=False)
    estimator.save(tmp_path / "model")
    restored = wb.Estimator.load(tmp_path / "model", model=make_mlp)

    np.testing.assert_array_equal(restored.get_weights(), estimator.get_weights())
    assert restored.step_ == estimator.step_ and restored.epochs_ == 2
    for name, value in estimator.optimizer_state_.items():
        np.testing.assert_array_equal(restored.optimizer_state_[name], value)
    pd.testing.assert_frame_equal(restored.history_, estimator.history_)
    np.testing.assert_allclose(restored.predict(table).compute().to_numpy(), estimator.predict(table).compute().to_numpy())

    history = restored.fit(table, epochs=1, batch_size=64, verbose=False, feature_cols=["a", "b", "c", "d"], label_cols="y")
    assert list(history.index) == [2] and restored.step_ == estimator.step_ + estimator.steps_per_epoch


def test_batchnorm_buffers_are_averaged_and_saved(context, table, tmp_path):
    def model():
        return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))

    estimator = wb.Estimator.from_torch(model, loss="cross_entropy", metrics=["accuracy"])
    estimator.fit(table.assign(a=table["a"] + 5.0), ["a", "b", "c", "d"], "y", epochs=2, batch_size=64, verbose=False)
    running_mean = estimator.model_[1].running_mean.clone()
    assert not torch.allclose(running_mean, torch.zeros(8)), "running statistics came back from the workers"
    estimator.save(tmp_path / "bn")
    torch.testing.assert_close(wb.Estimator.load(tmp_path / "bn", model=model).model_[1].running_mean, running_mean)


def test_callbacks_see_the_step_stream_and_control_training(context, table, tmp_path):
    class Recorder(Callback):
        def __init__(self):
            self.events = []

        def on_train_begin(self, logs=None):
            self.events.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            self.events.append(("epoch_begin", epoch))

        def on_batch_end(self, step, logs=None):
            self.events.append(("batch", step, logs["loss"]))

        def on_epoch_end(self, epoch, logs=None):
            self.events.append(("epoch_end", epoch, self.estimator.learning_rate))

        def on_train_end(self, logs=None):
            self.events.append("train_end")

    recorder = Recorder()
    stopper = EarlyStopping(monitor="loss", min_delta=10.0, patience=1)  # no epoch improves by 10
    checkpoints = ModelCheckpoint(str(tmp_path / "ckpt-{epoch}"), monitor="loss")
    schedule = LearningRateScheduler(lambda epoch, lr: 0.01 / (epoch + 1))
    estimator = classifier()
    history = estimator.fit(table, ["a", "b", "c", "d"], "y", epochs=10, batch_size=64, log_every=5,
                            callbacks=[recorder, stopper, checkpoints, schedule], verbose=False)

    assert len(history) == 3, "EarlyStopping ended the fit after patience ran out"
    steps = [e[1] for e in recorder.events if e[0] == "batch"]
    per_epoch = estimator.steps_per_epoch
    assert steps == sorted(steps) and steps[0] == 5 and steps[-1] == 3 * per_epoch
    assert all(np.isfinite(e[2]) for e in recorder.events if e[0] == "batch")
    learning_rates = [e[2] for e in recorder.events if e[0] == "epoch_end"]
    assert learning_rates == pytest.approx([0.01, 0.005, 0.01 / 3])
    assert recorder.events[0] == "train_begin" and recorder.events[-1] == "train_end"
    assert [p.rsplit("-", 1)[1] for p in checkpoints.saved] == ["0", "1", "2"]
    assert wb.Estimator.load(checkpoints.saved[-1], model=make_mlp).step_ == 3 * per_epoch


def test_progress_bar_reports_each_epoch(context, table):
    output = io.StringIO()
    classifier().fit(table, ["a", "b", "c", "d"], "y", epochs=2, batch_size=128, callbacks=[ProgressBar(output)], verbose=False)
    text = output.getvalue()
    assert "epoch 0" in text and "epoch 1" in text and "accuracy=" in text


def test_checkpoint_dir_keeps_the_two_newest_snapshots_and_resume_restores_them(context, table, tmp_path):
    estimator = classifier()
    estimator.fit(table, ["a", "b", "c", "d"], "y", epochs=2, batch_size=128, checkpoint_dir=tmp_path,
                  snapshot_every=4, verbose=False)
    assert estimator.steps_per_epoch == 10  # snapshots at steps 4, 8, 10 (epoch end), 12, 16, 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000000000016", "step-000000000020"]
    again = classifier()
    history = again.fit(table, ["a", "b", "c", "d"], "y", epochs=2, batch_size=128, checkpoint_dir=tmp_path,
                        resume=True, verbose=False)
    assert again.step_ == 20 and list(history.index) == [0, 1]
    np.testing.assert_array_equal(again.get_weights(), estimator.get_weights())


def test_parquet_path_input(context, table, tmp_path):
    table.to_parquet(tmp_path / "train.parquet")
    estimator = classifier()
    history = estimator.fit(str(tmp_path / "train.parquet"), ["a", "b", "c", "d"], "y", epochs=1, batch_size=64, verbose=False)
    assert len(history) == 1 and history["loss"].iloc[0] > 0


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"epochs": 0}, ValueError, "epochs must be a positive integer"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer"),
        ({"batch_size": 1}, ValueError, "batch_size=1 is smaller than the 2 workers"),
        ({"label_cols": "missing"}, ValueError, r"label column\(s\) \['missing'\] not found"),
    ],
)
def test_bad_fit_arguments(context, table, kwargs, error, message):
    options = {"feature_cols": ["a", "b", "c", "d"], "label_cols": "y", "verbose": False, **kwargs}
    with pytest.raises(error, match=message):
        classifier().fit(table, **options)


def test_bad_estimator_configuration():
    with pytest.raises(ValueError, match="(?i)unsupported optimizer.*sgd"):
        wb.Estimator.from_torch(make_mlp, optimizer=torch.optim.LBFGS)
    with pytest.raises(ValueError, match="reduction='mean'"):
        wb.Estimator.from_torch(make_mlp, loss=torch.nn.MSELoss(reduction="sum"))
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        wb.Estimator.from_torch(make_mlp, loss="hinge")
    with pytest.raises(ValueError, match="unknown metric 'f7'"):
        wb.Estimator.from_torch(make_mlp, metrics=["f7"])
    with pytest.raises(ValueError, match="no trainable parameters"):
        wb.Estimator.from_torch(lambda: torch.nn.ReLU())


def test_fit_needs_a_context(table, no_context):
    with pytest.raises(RuntimeError, match=r"call wb.init\(\)"):
        classifier().fit(table, ["a", "b", "c", "d"], "y")


@pytest.mark.parametrize(
    "frame_change, message",
    [
        (lambda t: t.assign(e=1.0), r"the model does not accept the training features \(batch shape \(5,\)"),
        (lambda t: t.assign(y=t["y"] + 7), r"the loss 'CrossEntropyLoss' or the metrics do not fit .*values 7\.\.\d.*out of bounds"),
    ],
)
def test_model_and_data_mismatch_is_caught_before_training(context, table, frame_change, message):
    frame = frame_change(table)
    columns = [c for c in frame.columns if c != "y"]
    with pytest.raises(ValueError, match=message):
        classifier().fit(frame, columns, "y", epochs=1, batch_size=64, verbose=False)


def test_a_failing_rank_stops_every_rank_with_the_root_cause(context, table):
    """Bad labels deep in one shard fail that rank mid-epoch; the others must not wait forever."""
    frame = table.copy()
    frame.iloc[-5:, frame.columns.get_loc("y")] = 9  # only in the last shard, past the dry-run rows
    with pytest.raises(IndexError, match="out of bounds"):
        classifier().fit(frame, ["a", "b", "c", "d"], "y", epochs=1, batch_size=64, verbose=False)
    estimator = classifier()  # the cluster is still usable
    assert len(estimator.fit(table, ["a", "b", "c", "d"], "y", epochs=1, batch_size=64, verbose=False)) == 1
