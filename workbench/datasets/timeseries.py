"""Time series for forecasting and anomaly detection: a generated taxi-demand series and two real ones.

Analytics Zoo's anomaly-detection use case watches New York taxi demand (passengers every 30
minutes, from the Numenta Anomaly Benchmark) for unusual moments: a marathon, a holiday, a
snowstorm. That file cannot be shipped, so :func:`nyc_taxi_like` writes a series with the same
shape, offline and seeded, with the anomalies *known*: they are injected, and marked.

How :func:`nyc_taxi_like` makes its series, one point per ``freq`` from 2014-07-01 00:00:

1. Seasonality and trend: ``15000 * trend * daily(hour) * weekly(weekday)``, where ``trend``
   rises linearly from 1.0 to 1.1 over the series, ``daily`` is a smooth day profile made of
   two harmonics (busiest around 19:30 at about 1.5, quietest around 04:30 at about 0.5), and
   ``weekly`` scales each day of the week (Friday 1.08 busiest, Monday 0.92 quietest).
2. Noise: independent Gaussian noise of standard deviation 450 (3% of the mean level). It is
   drawn before the anomalies, so the same ``seed`` with ``anomalies=0`` gives the series
   without its anomalies.
3. Anomalies: the series after its first day (left clean, so that a detector looking one day
   back can score every anomaly) is cut into ``anomalies`` equal segments, and one anomaly is
   placed at a random position in each, at least 2 points from the segment's ends, so that
   anomalies never touch. Their kinds are spikes, dips and level shifts in numbers as equal
   as the count allows, in a random order:

   - spike: 1 or 2 points raised by 50% to 100% of the mean level (7,500 to 15,000);
   - dip: 1 to 3 points dropped to 10% to 40% of their value;
   - level shift: 4 to 12 points (2 to 6 hours at 30 minutes) scaled by 1 + 30% to 50%, up or down.

4. The values are rounded to whole passengers and clipped at zero.

``is_anomaly`` is True exactly at the points an anomaly changed. :func:`sunspots` and
:func:`co2` load real series bundled with ``statsmodels`` (which is then needed).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np
import pandas as pd

from workbench.arguments import check_positive_int

__all__ = ["nyc_taxi_like", "sunspots", "co2", "ANOMALY_KINDS"]

#: The kinds of anomaly :func:`nyc_taxi_like` injects.
ANOMALY_KINDS = ("spike", "dip", "level_shift")

_START = pd.Timestamp("2014-07-01")
_MEAN_LEVEL = 15000.0
_TREND = 0.1
_NOISE = 0.03
#: Demand factor of each day of the week, Monday first.
_WEEKLY = np.array([0.92, 0.97, 1.0, 1.03, 1.08, 1.06, 0.94])
#: Points each kind of anomaly lasts: (fewest, most).
_DURATIONS = {"spike": (1, 2), "dip": (1, 3), "level_shift": (4, 12)}
#: Points kept clear around each anomaly within its segment, so that two never touch.
_GAP = 2


def nyc_taxi_like(days: int = 28, freq: str = "30min", seed: int = 0, anomalies: int = 8) -> pd.DataFrame:
    """A taxi-demand series with daily and weekly seasonality, a trend, noise and marked anomalies.

    The module docstring describes how the series is made.

    Args:
        days: days the series covers.
        freq: the time between two points: a fixed duration that divides a day ("30min", "1h").
        seed: seed of the noise and of the anomalies' kinds, positions, lengths and sizes.
        anomalies: anomalies to inject (0 for a clean series).

    Returns:
        A frame with ``timestamp`` (datetime64), ``value`` (int64 passengers) and
        ``is_anomaly`` (bool), one row per point.

    Raises:
        ValueError: a bad ``days``, ``freq`` or ``anomalies``, or more anomalies than fit.
    """
    check_positive_int("days", days)
    if isinstance(anomalies, bool) or not isinstance(anomalies, (int, np.integer)) or anomalies < 0:
        raise ValueError(f"anomalies must be an integer >= 0, got {anomalies!r}")
    per_day = _points_per_day(freq)
    rng = np.random.default_rng(seed)
    times = pd.date_range(_START, periods=days * per_day, freq=freq)
    values = _seasonal_level(times) + rng.normal(0.0, _NOISE * _MEAN_LEVEL, len(times))
    is_anomaly = np.zeros(len(times), dtype=bool)
    for kind, start, length in _anomaly_layout(len(times), per_day, anomalies, rng):
        points = slice(start, start + length)
        values[points] = _distort(kind, values[points], rng)
        is_anomaly[points] = True
    passengers = np.clip(np.round(values), 0, None).astype(np.int64)
    return pd.DataFrame({"timestamp": times, "value": passengers, "is_anomaly": is_anomaly})


def sunspots() -> pd.DataFrame:
    """Yearly sunspot numbers, 1700 to 2008 (309 points), as bundled with ``statsmodels``.

    The source is the NOAA National Geophysical Data Center's yearly sunspot series
    (``statsmodels.datasets.sunspots``). Its cycle of about 11 years makes it a classic
    forecasting benchmark.

    Returns:
        A frame with ``timestamp`` (January 1st of each year) and ``value`` (float64).

    Raises:
        ImportError: ``statsmodels`` is not installed.
    """
    data = _statsmodels_dataset("sunspots").load_pandas().data
    years = data["YEAR"].astype(int).astype(str)
    return pd.DataFrame({"timestamp": pd.to_datetime(years, format="%Y"), "value": data["SUNACTIVITY"].astype(float)})


def co2() -> pd.DataFrame:
    """Weekly atmospheric CO2 at Mauna Loa (ppmv), March 1958 to December 2001, from ``statsmodels``.

    The source is Keeling and Whorf's flask samples of the Scripps network
    (``statsmodels.datasets.co2``): a rising trend with a yearly cycle. Of its 2284 weeks, 59
    have no measurement and are NaN: fill them, e.g. with ``TSDataset.impute``.

    Returns:
        A frame with ``timestamp`` (each week's Saturday) and ``value`` (float64, NaN where missing).

    Raises:
        ImportError: ``statsmodels`` is not installed.
    """
    data = _statsmodels_dataset("co2").load_pandas().data
    return pd.DataFrame({"timestamp": data.index, "value": data["co2"].to_numpy(dtype=float)})


def _points_per_day(freq: str) -> int:
    try:
        step = pd.Timedelta(freq)
    except ValueError as error:
        raise ValueError(f"freq must be a fixed duration such as '30min' or '1h', got {freq!r}") from error
    day = pd.Timedelta(days=1)
    if step <= pd.Timedelta(0) or day % step:
        raise ValueError(f"freq must be a positive duration that divides a day, got {freq!r}")
    return day // step


def _seasonal_level(times: pd.DatetimeIndex) -> np.ndarray:
    """The expected demand at each time: mean level x trend x daily profile x weekly factor."""
    hour = times.hour + times.minute / 60
    daily = 1 + 0.45 * np.cos(2 * np.pi * (hour - 18) / 24) + 0.15 * np.cos(4 * np.pi * (hour - 9) / 24)
    trend = 1 + _TREND * np.linspace(0, 1, len(times))
    return _MEAN_LEVEL * trend * np.asarray(daily) * _WEEKLY[times.day_of_week]


def _anomaly_layout(points: int, per_day: int, count: int, rng: np.random.Generator) -> list[tuple[str, int, int]]:
    """(kind, first point, length) of each anomaly: one per equal segment after the first day."""
    if count == 0:
        return []
    segment = (points - per_day) // count
    longest = max(most for _, most in _DURATIONS.values())
    if segment < longest + 2 * _GAP:
        raise ValueError(f"{count} anomalies do not fit in {points} points: each needs {longest + 2 * _GAP} "
                         f"points after the first day; ask for fewer anomalies or more days")
    kinds = rng.permutation(np.resize(np.array(ANOMALY_KINDS), count))
    layout = []
    for index, kind in enumerate(kinds):
        fewest, most = _DURATIONS[str(kind)]
        length = int(rng.integers(fewest, most + 1))
        offset = int(rng.integers(_GAP, segment - length - _GAP + 1))
        layout.append((str(kind), per_day + index * segment + offset, length))
    return layout


def _distort(kind: str, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``values`` (one anomaly's points) changed as ``kind`` says, by a random amount."""
    if kind == "spike":
        return values + rng.uniform(0.5, 1.0) * _MEAN_LEVEL
    if kind == "dip":
        return values * rng.uniform(0.1, 0.4)
    direction = rng.choice([-1.0, 1.0])
    return values * (1 + direction * rng.uniform(0.3, 0.5))


def _statsmodels_dataset(name: str) -> ModuleType:
    """``statsmodels.datasets.<name>``, or an ImportError saying that ``<name>()`` needs statsmodels."""
    try:
        return importlib.import_module(f"statsmodels.datasets.{name}")
    except ImportError as error:
        raise ImportError(f"{name}() loads a series bundled with statsmodels, which is not installed: "
                          "pip install statsmodels") from error
