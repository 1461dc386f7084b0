"""The taxi-like series (shape, seasonality, trend, injected anomalies and their marks) and the real series."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from workbench.datasets.timeseries import co2, nyc_taxi_like, sunspots
from workbench.feature import TSDataset

NOISE_SD = 450  # the documented noise: 3% of the mean level of 15000


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, end) positions of each run of True in ``mask``, the end excluded."""
    edges = np.diff(np.r_[0, mask.astype(int), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def test_shape_columns_and_regular_timestamps():
    taxi = nyc_taxi_like(days=10)
    assert list(taxi.columns) == ["timestamp", "value", "is_anomaly"]
    assert len(taxi) == 10 * 48
    assert taxi["value"].dtype == np.int64 and taxi["is_anomaly"].dtype == bool
    assert taxi["timestamp"].iloc[0] == pd.Timestamp("2014-07-01")
    assert (taxi["timestamp"].diff().dropna() == pd.Timedelta("30min")).all()
    assert len(nyc_taxi_like(days=3, freq="1h", anomalies=1)) == 72
    assert (taxi["value"] >= 0).all()


def test_seeded_and_deterministic():
    pd.testing.assert_frame_equal(nyc_taxi_like(seed=4), nyc_taxi_like(seed=4))
    assert not nyc_taxi_like(seed=4)["value"].equals(nyc_taxi_like(seed=5)["value"])


def test_daily_weekly_and_trend_patterns():
    taxi = nyc_taxi_like(days=56, anomalies=0)
    by_hour = taxi.groupby(taxi["timestamp"].dt.hour)["value"].mean()
    assert by_hour.idxmax() in (18, 19, 20) and by_hour.idxmin() in (3, 4, 5, 6)
    assert by_hour.max() > 2.5 * by_hour.min()
    by_day = taxi.groupby(taxi["timestamp"].dt.day_of_week)["value"].mean()
    assert by_day.idxmax() == 4 and by_day.idxmin() == 0  # Friday busiest, Monday quietest
    first_four_weeks, last_four_weeks = taxi["value"].iloc[:len(taxi) // 2], taxi["value"].iloc[len(taxi) // 2:]
    assert 1.03 < last_four_weeks.mean() / first_four_weeks.mean() < 1.07  # half of a 10% rise


def test_anomalies_are_marked_exactly_where_the_series_was_changed():
    taxi = nyc_taxi_like(days=28, anomalies=9, seed=2)
    clean = nyc_taxi_like(days=28, anomalies=0, seed=2)  # the same noise, drawn before the anomalies
    marked = taxi["is_anomaly"].to_numpy()
    assert not clean["is_anomaly"].any()
    np.testing.assert_array_equal(taxi["value"][~marked], clean["value"][~marked])
    change = np.abs(taxi["value"][marked] - clean["value"][marked])
    assert (change > 3 * NOISE_SD).all()  # every marked point stands out of the noise
    lengths = [end - first for first, end in runs(marked)]
    assert len(lengths) == 9 and max(lengths) <= 12
    assert not marked[:48].any()  # the first day stays clean


def test_every_kind_of_anomaly_is_injected():
    taxi = nyc_taxi_like(days=28, anomalies=6, seed=1)
    clean = nyc_taxi_like(days=28, anomalies=0, seed=1)
    kinds = []
    for first, end in runs(taxi["is_anomaly"].to_numpy()):
        ratio = taxi["value"].iloc[first:end].to_numpy() / clean["value"].iloc[first:end].to_numpy()
        if end - first >= 4:
            kinds.append("level_shift")
            assert np.allclose(ratio, ratio.mean(), atol=0.01) and 0.3 <= abs(ratio.mean() - 1) <= 0.5
        elif (ratio > 1).all():
            kinds.append("spike")
        else:
            kinds.append("dip")
            assert (ratio <= 0.41).all()
    assert sorted(kinds) == ["dip", "dip", "level_shift", "level_shift", "spike", "spike"]


def test_the_series_feeds_a_tsdataset():
    dataset = TSDataset.from_pandas(nyc_taxi_like(days=4), "timestamp", "value")
    x, y = dataset.roll(lookback=48, horizon=2)
    assert x.shape == (4 * 48 - 49, 48, 1) and y.shape == (4 * 48 - 49, 2, 1)


@pytest.mark.parametrize("options, message", [
    ({"days": 0}, "days must be a positive integer, got 0"),
    ({"anomalies": -1}, "anomalies must be an integer >= 0, got -1"),
    ({"anomalies": 2.5}, "anomalies must be an integer >= 0"),
    ({"freq": "MS"}, "freq must be a fixed duration"),
    ({"freq": "7h"}, "freq must be a positive duration that divides a day, got '7h'"),
    ({"days": 2, "anomalies": 4}, "4 anomalies do not fit in 96 points"),
])
def test_bad_arguments_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        nyc_taxi_like(**options)


def test_sunspots_are_the_yearly_series():
    pytest.importorskip("statsmodels")
    spots = sunspots()
    assert list(spots.columns) == ["timestamp", "value"] and len(spots) == 309
    assert spots["timestamp"].iloc[0] == pd.Timestamp("1700-01-01")
    assert spots["timestamp"].iloc[-1] == pd.Timestamp("2008-01-01")
    assert spots["value"].iloc[:3].tolist() == [5.0, 11.0, 16.0]


def test_co2_is_weekly_with_its_gaps_kept():
    pytest.importorskip("statsmodels")
    carbon = co2()
    assert list(carbon.columns) == ["timestamp", "value"] and len(carbon) == 2284
    assert carbon["timestamp"].iloc[0] == pd.Timestamp("1958-03-29")
    assert (carbon["timestamp"].diff().dropna() == pd.Timedelta("7D")).all()
    assert carbon["value"].isna().sum() == 59 and carbon["value"].iloc[0] == 316.1
    filled = TSDataset.from_pandas(carbon, "timestamp", "value").impute("linear").to_pandas()
    assert filled["value"].notna().all()


@pytest.mark.parametrize("loader", [sunspots, co2])
def test_real_series_name_the_missing_package(monkeypatch, loader):
    monkeypatch.setitem(sys.modules, f"statsmodels.datasets.{loader.__name__}", None)  # as if not installed
    with pytest.raises(ImportError, match=rf"{loader.__name__}\(\) .* statsmodels, which is not installed"):
        loader()
