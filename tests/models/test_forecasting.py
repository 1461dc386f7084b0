"""Forecasters and the anomaly detector on taxi-like series: quality after a distributed fit, reloading, errors.

Anomalies are matched event by event: an injected anomaly (a run of consecutive ``is_anomaly``
points) is *found* when a flagged point lies within ``TOLERANCE`` points of it; a flagged point
is *right* when it lies within ``TOLERANCE`` points of an injected anomaly. Recall is the share
of anomalies found, precision the share of flagged points that are right. The tolerance
accepts the points just after an anomaly, whose windows still hold it, as pointing at it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import StandardScaler

import workbench as wb
from workbench.datasets.timeseries import nyc_taxi_like
from workbench.feature import TSDataset
from workbench.models.anomaly import AnomalyDetector, detect_anomalies
from workbench.models.forecasting import (
    LSTMForecaster,
    LSTMForecastNet,
    Seq2Seq,
    Seq2SeqForecaster,
    TCNForecaster,
    TCNForecastNet,
)

LOOKBACK = 48  # one day of half hours
HORIZON = 3
TOLERANCE = 2  # points (an hour) either side of an injected anomaly
FORECASTERS = [LSTMForecaster, Seq2SeqForecaster, TCNForecaster]


@pytest.fixture(scope="module")
def seasonal_windows() -> dict[str, np.ndarray]:
    """Scaled (X, y) windows of a clean taxi-like series with an HOUR feature: 11 days to train, 3 to test."""
    train, _, test = TSDataset.from_pandas(nyc_taxi_like(days=14, anomalies=0, seed=3), "timestamp", "value",
                                           with_split=True, test_ratio=0.2)
    train, test = (part.gen_dt_feature("HOUR") for part in (train, test))
    scaler = StandardScaler()
    x, y = train.scale(scaler).roll(lookback=LOOKBACK, horizon=HORIZON)
    x_test, y_test = test.scale(scaler, fit=False).roll(lookback=LOOKBACK, horizon=HORIZON)
    return {"x": x, "y": y, "x_test": x_test, "y_test": y_test}


def forecaster(kind: type, **options):
    return kind(past_seq_len=LOOKBACK, input_feature_num=2, output_target_num=1, future_seq_len=HORIZON, **options)


# -- forecasting quality and reloading -----------------------------------------------------------------


@pytest.mark.parametrize("kind", FORECASTERS, ids=lambda kind: kind.__name__)
def test_forecaster_beats_the_last_value_forecast(context, seasonal_windows, kind):
    windows = seasonal_windows
    model = forecaster(kind, lr=0.01).fit((windows["x"], windows["y"]), epochs=10, batch_size=32)
    scores = model.evaluate((windows["x_test"], windows["y_test"]), metrics=["mse", "mae"])
    last_value = np.repeat(windows["x_test"][:, -1:, :1], HORIZON, axis=1)
    naive_mse = float(np.mean((last_value - windows["y_test"]) ** 2))
    assert scores["mse"] < 0.4 * naive_mse, (scores, naive_mse)
    assert model.history_["loss"].iloc[-1] < model.history_["loss"].iloc[0]
    np.testing.assert_allclose(scores["mae"], np.mean(np.abs(model.predict(windows["x_test"]) - windows["y_test"])),
                               rtol=1e-5)


@pytest.mark.parametrize("kind", FORECASTERS, ids=lambda kind: kind.__name__)
def test_saved_forecaster_reloads_with_identical_predictions(context, seasonal_windows, tmp_path, kind):
    windows = seasonal_windows
    model = forecaster(kind, lr=0.01, seed=5).fit((windows["x"], windows["y"]), epochs=1, batch_size=64)
    model.save(tmp_path / "model")
    reloaded = kind.load(tmp_path / "model")
    assert reloaded.get_params() == model.get_params()
    expected = model.predict(windows["x_test"])
    assert expected.shape == (len(windows["x_test"]), HORIZON, 1)
    np.testing.assert_array_equal(reloaded.predict(windows["x_test"]), expected)
    # the directory is a plain saved estimator too, whose network rebuilds from its config without trust_code
    estimator = wb.Estimator.load(tmp_path / "model")
    np.testing.assert_array_equal(estimator.predict(windows["x_test"]).compute(), expected)
    reloaded.fit((windows["x"], windows["y"]), epochs=1, batch_size=64)  # training goes on from the saved state
    assert reloaded.estimator_.epochs_ == 2


def test_forecaster_trains_on_a_distributed_dataset_and_takes_lazy_windows(context):
    table = wb.data.from_pandas(nyc_taxi_like(days=6, anomalies=0, seed=1), npartitions=2)
    x, y = TSDataset.from_dataframe(table, "timestamp", "value").scale(StandardScaler()).roll(LOOKBACK, 1)
    model = LSTMForecaster(past_seq_len=LOOKBACK, input_feature_num=1, output_target_num=1, lr=0.01)
    model.fit((x, y), epochs=2, batch_size=32, validation_data=(x, y))
    assert "val_loss" in model.history_.columns
    np.testing.assert_allclose(model.predict(x), model.predict(np.asarray(x)))


def test_load_refuses_another_forecaster_and_a_directory_without_one(context, seasonal_windows, tmp_path):
    windows = seasonal_windows
    forecaster(LSTMForecaster).fit((windows["x"][:64], windows["y"][:64]), batch_size=64).save(tmp_path / "lstm")
    with pytest.raises(ValueError, match="holds a LSTMForecaster, not a TCNForecaster"):
        TCNForecaster.load(tmp_path / "lstm")
    with pytest.raises(FileNotFoundError, match="forecaster.json is missing"):
        LSTMForecaster.load(tmp_path)


# -- anomaly detection -----------------------------------------------------------------------------------


def events(is_anomaly: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) position of each run of anomalous points."""
    edges = np.diff(np.r_[0, is_anomaly.astype(int), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def recall_and_precision(flagged: np.ndarray, is_anomaly: np.ndarray) -> tuple[float, float]:
    """Event-wise recall and precision within TOLERANCE points (see the module docstring)."""
    near_an_anomaly = np.zeros(len(is_anomaly), dtype=bool)
    found = []
    for first, last in events(is_anomaly):
        around = slice(max(0, first - TOLERANCE), last + TOLERANCE + 1)
        near_an_anomaly[around] = True
        found.append(flagged[around].any())
    return float(np.mean(found)), float(near_an_anomaly[flagged].mean())


def test_matching_counts_events_and_tolerates_nearby_flags():
    truth = np.zeros(30, dtype=bool)
    truth[[5, 6, 20]] = True  # two events
    flagged = np.zeros(30, dtype=bool)
    flagged[[8, 14]] = True  # 8 is within 2 points of the first event, 14 of none
    assert recall_and_precision(flagged, truth) == (0.5, 0.5)


def test_anomaly_detector_finds_the_injected_anomalies(context):
    taxi = nyc_taxi_like(days=28, anomalies=8, seed=0)
    series = TSDataset.from_pandas(taxi, "timestamp", "value").scale(StandardScaler())
    x, y = series.roll(lookback=LOOKBACK, horizon=1)
    detector = AnomalyDetector(past_seq_len=LOOKBACK, lr=0.01).fit((x, y), epochs=10, batch_size=32)
    forecast_times = series.roll_index(lookback=LOOKBACK, horizon=1)["timestamp"]
    is_anomaly = taxi.set_index("timestamp").loc[forecast_times, "is_anomaly"].to_numpy()
    assert len(events(is_anomaly)) == 8  # the first day, only ever input, holds none

    flagged = detector.detect(x, y, anomaly_size=int(is_anomaly.sum()))
    recall, precision = recall_and_precision(flagged, is_anomaly)
    assert recall >= 0.8 and precision >= 0.5, (recall, precision)
    assert flagged.sum() == is_anomaly.sum()

    # the threshold rule on the same errors: anything flagged misses by more than any unflagged point
    errors = np.abs(detector.predict(x).reshape(-1).astype(np.float64) - y.reshape(-1).astype(np.float64))
    by_threshold = detector.detect(x, y, threshold=float(errors[~flagged].max()))
    np.testing.assert_array_equal(by_threshold, flagged)


def test_detect_anomalies_flags_the_largest_errors():
    truth = np.array([1.0, 2.0, 9.0, 4.0, 0.0, 3.0])
    forecast = np.array([1.1, 2.0, 3.0, 4.2, 5.0, 3.0])  # errors 0.1, 0, 6, 0.2, 5, 0
    assert np.flatnonzero(detect_anomalies(truth, forecast, anomaly_size=2)).tolist() == [2, 4]
    assert np.flatnonzero(detect_anomalies(truth, forecast, anomaly_size=4)).tolist() == [0, 2, 3, 4]
    # ties go to the earlier point
    assert np.flatnonzero(detect_anomalies(truth, forecast, anomaly_size=5)).tolist() == [0, 1, 2, 3, 4]
    assert not detect_anomalies(truth, forecast, anomaly_size=0).any()
    mask = detect_anomalies(truth.reshape(3, 2), forecast.reshape(3, 2), anomaly_size=1)
    assert mask.shape == (3, 2) and np.flatnonzero(mask).tolist() == [2]


def test_detect_anomalies_takes_a_threshold_or_one_per_point():
    truth = np.array([1.0, 2.0, 9.0, 4.0, 0.0])
    forecast = np.array([1.1, 2.0, 3.0, 4.2, 5.0])
    assert np.flatnonzero(detect_anomalies(truth, forecast, threshold=1.0)).tolist() == [2, 4]
    assert np.flatnonzero(detect_anomalies(truth, forecast, threshold=5.0)).tolist() == [2]  # strictly above
    per_point = np.array([0.05, 1.0, 10.0, 1.0, 1.0])
    assert np.flatnonzero(detect_anomalies(truth, forecast, threshold=per_point)).tolist() == [0, 4]


@pytest.mark.parametrize("options, message", [
    ({}, "exactly one of anomaly_size and threshold"),
    ({"anomaly_size": 1, "threshold": 1.0}, "exactly one of anomaly_size and threshold"),
    ({"anomaly_size": 4}, r"anomaly_size must be an integer from 0 to the 3 points, got 4"),
    ({"anomaly_size": -1}, "anomaly_size must be an integer"),
    ({"anomaly_size": 1.5}, "anomaly_size must be an integer"),
    ({"threshold": -1.0}, "threshold must be >= 0"),
    ({"threshold": float("nan")}, "threshold must be >= 0"),
    ({"threshold": [1.0, 2.0]}, r"threshold must be a number or an array of y_true's shape \(3,\)"),
])
def test_detect_anomalies_refuses_bad_rules(options, message):
    with pytest.raises(ValueError, match=message):
        detect_anomalies([1.0, 2.0, 3.0], [1.0, 2.0, 2.0], **options)


def test_detect_anomalies_refuses_mismatched_or_missing_values():
    with pytest.raises(ValueError, match=r"y_true has shape \(3,\) but y_pred has \(2,\)"):
        detect_anomalies([1.0, 2.0, 3.0], [1.0, 2.0], anomaly_size=1)
    with pytest.raises(ValueError, match="must be finite"):
        detect_anomalies([1.0, np.nan], [1.0, 2.0], threshold=1.0)


# -- networks ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize("bridge", ["dense", "pass"])
def test_seq2seq_forecasts_each_future_step_from_the_bridged_states(rnn_type, bridge):
    model = Seq2Seq(input_feature_num=3, output_feature_num=2, future_seq_len=4, rnn_type=rnn_type,
                    hidden_size=8, bridge=bridge)
    assert model(torch.randn(5, 12, 3)).shape == (5, 4, 2)
    bridge_parameters = sum(parameter.numel() for parameter in model.bridge.parameters())
    states = 2 if rnn_type == "lstm" else 1  # an LSTM hands over h and c, a GRU h
    assert bridge_parameters == (states * (8 * 8 + 8) if bridge == "dense" else 0)


def test_seq2seq_starts_decoding_from_the_last_observed_targets():
    model = Seq2Seq(input_feature_num=2, output_feature_num=1, future_seq_len=2, hidden_size=4, bridge="pass").eval()
    with torch.no_grad():
        for parameter in model.encoder.parameters():
            parameter.zero_()  # the encoder's final states no longer depend on the window
        window = torch.randn(1, 6, 2)
        other_history, other_last_target = window.clone(), window.clone()
        other_history[0, :, 1] += 1.0
        other_history[0, :-1, 0] += 1.0
        other_last_target[0, -1, 0] += 1.0
        assert torch.equal(model(window), model(other_history))
        assert not torch.equal(model(window), model(other_last_target))


def test_tcn_forecast_ignores_inputs_beyond_its_receptive_field():
    torch.manual_seed(0)
    model = TCNForecastNet(input_feature_num=1, output_target_num=1, num_channels=[16, 16], kernel_size=2,
                           dropout=0.0).eval()
    receptive_field = 1 + 2 * (2 - 1) * (2 ** 2 - 1)  # 7 steps
    window = torch.randn(1, 20, 1)
    far_changed, near_changed = window.clone(), window.clone()
    far_changed[0, : 20 - receptive_field] += 5.0
    near_changed[0, 20 - receptive_field] += 5.0
    with torch.no_grad():
        assert torch.equal(model(window), model(far_changed))
        assert not torch.equal(model(window), model(near_changed))


def test_network_configs_hold_json_integers_whatever_the_integer_type():
    model = LSTMForecastNet(np.int64(2), np.int32(1), future_seq_len=np.int64(3), dropout=np.float32(0.25))
    assert model.config == {"input_feature_num": 2, "output_target_num": 1, "future_seq_len": 3,
                            "hidden_dim": 32, "layer_num": 1, "dropout": 0.25}
    assert TCNForecastNet(1, 1, num_channels=(np.int64(4),)).config["num_channels"] == [4]


# -- bad input --------------------------------------------------------------------------------------------


def test_windows_of_the_wrong_shape_are_refused_by_name(context, seasonal_windows):
    x, y = seasonal_windows["x"], seasonal_windows["y"]
    model = forecaster(LSTMForecaster)
    with pytest.raises(ValueError, match=r"predict: this LSTMForecaster is not fitted"):
        model.predict(x)
    with pytest.raises(ValueError, match=r"data's X must have shape \(windows, past_seq_len=48, input_feature_num=2\)"
                                         r".*got \(\d+, 24, 2\)"):
        model.fit((x[:, :24], y))
    with pytest.raises(ValueError, match=r"got \(\d+, 48, 1\)"):
        model.fit((x[:, :, :1], y))
    with pytest.raises(ValueError, match=r"data's y must have shape \(windows, future_seq_len=3, output_target_num=1"):
        model.fit((x, y[:, :1]))
    with pytest.raises(ValueError, match=r"X has \d+ windows but y has 10"):
        model.fit((x, y[:10]))
    with pytest.raises(ValueError, match="validation_data's X must have shape"):
        model.fit((x, y), validation_data=(x[:, :, :1], y))
    with pytest.raises(TypeError, match=r"data must be an \(X, y\) pair of arrays"):
        model.fit(x)
    model.fit((x[:64], y[:64]), batch_size=64)
    with pytest.raises(ValueError, match=r"X must have shape .* got \(64, 48\)"):
        model.predict(x[:64, :, 0])
    with pytest.raises(ValueError, match=r"LSTMForecastNet takes windows of shape \(batch, time, 2\), got \(1, 48, 3"):
        model.estimator_.model_(torch.zeros(1, 48, 3))


def test_detect_refuses_targets_that_do_not_match_the_windows(context, seasonal_windows):
    x = seasonal_windows["x"][:64, :, :1]
    detector = AnomalyDetector(past_seq_len=LOOKBACK).fit((x, x[:, -1:, :]), batch_size=64)
    with pytest.raises(ValueError, match=r"detect: y must hold one point per window of X \(64\), got shape \(64, 2\)"):
        detector.detect(x, np.zeros((64, 2)), anomaly_size=1)
    with pytest.raises(ValueError, match="exactly one of anomaly_size and threshold"):
        detector.detect(x, x[:, -1:, :])


@pytest.mark.parametrize("build, error, message", [
    (lambda: LSTMForecaster(0, 1, 1), ValueError, "past_seq_len must be a positive integer, got 0"),
    (lambda: TCNForecaster(24, 1, 1, future_seq_len=2.0), ValueError, "future_seq_len must be a positive integer"),
    (lambda: Seq2SeqForecaster(24, 1, 1, lr=0), ValueError, "lr must be a positive number, got 0"),
    (lambda: LSTMForecaster(24, 1, 1, seed="a"), ValueError, "seed must be an integer"),
    (lambda: LSTMForecastNet(1, 1, dropout=1.0), ValueError, r"dropout must be a number in \[0, 1\), got 1.0"),
    (lambda: LSTMForecastNet(1, 1, hidden_dim=0), ValueError, "hidden_dim must be a positive integer"),
    (lambda: Seq2Seq(2, 1, 3, rnn_type="rnn"), ValueError, r"rnn_type must be one of \['lstm', 'gru'\], got 'rnn'"),
    (lambda: Seq2Seq(2, 1, 3, bridge="attention"), ValueError, r"bridge must be one of \['dense', 'pass'\]"),
    (lambda: Seq2Seq(1, 2, 3), ValueError, r"output_feature_num \(2\) cannot exceed input_feature_num \(1\)"),
    (lambda: TCNForecastNet(1, 1, num_channels=[]), ValueError, "num_channels must be a non-empty list"),
    (lambda: TCNForecastNet(1, 1, num_channels=[8, 0]), ValueError, r"num_channels\[1\] must be a positive integer"),
    (lambda: TCNForecastNet(1, 1, kernel_size=0), ValueError, "kernel_size must be a positive integer"),
])
def test_bad_arguments_are_named(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_network_arguments_of_a_forecaster_are_checked_when_it_fits(context, seasonal_windows):
    windows = seasonal_windows
    model = forecaster(Seq2SeqForecaster, rnn_type="transformer")
    with pytest.raises(ValueError, match="rnn_type must be one of"):
        model.fit((windows["x"], windows["y"]))


def test_evaluate_refuses_unknown_or_no_metrics(context, seasonal_windows):
    windows = seasonal_windows
    model = forecaster(TCNForecaster).fit((windows["x"][:64], windows["y"][:64]), batch_size=64)
    with pytest.raises(ValueError, match="unknown metric 'mape'"):
        model.evaluate((windows["x"][:64], windows["y"][:64]), metrics=["mape"])
    with pytest.raises(ValueError, match="metrics names no metric"):
        model.evaluate((windows["x"][:64], windows["y"][:64]), metrics=[])
    assert pd.Series(model.evaluate((windows["x"][:64], windows["y"][:64]), metrics=["rmse", "r2"])).notna().all()
