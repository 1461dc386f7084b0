"""Anomaly detection by forecasting: Analytics Zoo's ``AnomalyDetector``.

The idea of Analytics Zoo's anomaly-detection example: train a model to forecast a series one
step ahead from the window before each point; where the forecast misses by far, the point is
anomalous. The model learns the usual patterns (daily and weekly cycles, trend) from the series
itself, so no labels are needed, as long as anomalies are rare enough not to be learned.

:class:`AnomalyDetector` is that model, an :class:`~workbench.models.forecasting.LSTMForecaster`
for one target one step ahead, and :func:`detect_anomalies` the rule turning forecast errors into
flags: either the ``anomaly_size`` largest absolute errors, or the errors above a threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.models.forecasting import LSTMForecaster

__all__ = ["AnomalyDetector", "detect_anomalies"]


def detect_anomalies(y_true: Any, y_pred: Any, anomaly_size: int | None = None,
                     threshold: float | Any = None) -> np.ndarray:
    """Flag the points where a forecast misses the truth by far; give exactly one rule.

    Args:
        y_true: the observed values (any shape).
        y_pred: the forecasts, of the same shape.
        anomaly_size: flag this many points: those with the largest absolute error (ties
            go to the earlier point).
        threshold: flag the points whose absolute error exceeds it: a number, or an array of
            ``y_true``'s shape giving each point its own bound.

    Returns:
        A boolean mask of ``y_true``'s shape, True at anomalies (``np.flatnonzero(mask)`` gives
        their positions in a 1-D series).

    Raises:
        ValueError: both or neither rule, shapes that differ, non-finite values, a negative
            or too large ``anomaly_size``, or a threshold that is negative, NaN or of another shape.

    Example::

        import numpy as np
        from workbench.models.anomaly import detect_anomalies

        truth = np.array([1.0, 2.0, 9.0, 4.0, 0.0])
        forecast = np.array([1.1, 2.0, 3.0, 4.2, 5.0])
        print(np.flatnonzero(detect_anomalies(truth, forecast, anomaly_size=1)))  # [2]
        print(np.flatnonzero(detect_anomalies(truth, forecast, threshold=1.0)))  # [2 4]
    """
    if (anomaly_size is None) == (threshold is None):
        raise ValueError("detect_anomalies: give exactly one of anomaly_size and threshold")
    truth, forecast = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if truth.shape != forecast.shape:
        raise ValueError(f"detect_anomalies: y_true has shape {truth.shape} but y_pred has {forecast.shape}")
    if not (np.isfinite(truth).all() and np.isfinite(forecast).all()):
        raise ValueError("detect_anomalies: y_true and y_pred must be finite (found NaN or infinity)")
    error = np.abs(truth - forecast)
    if anomaly_size is not None:
        return _largest(error, anomaly_size)
    bound = np.asarray(threshold, dtype=np.float64)
    if bound.shape not in ((), error.shape):
        raise ValueError(f"detect_anomalies: threshold must be a number or an array of y_true's shape "
                         f"{error.shape}, got shape {bound.shape}")
    if not (bound >= 0).all():
        raise ValueError("detect_anomalies: threshold must be >= 0 everywhere (found a negative value or NaN)")
    return error > bound


def _largest(error: np.ndarray, count: Any) -> np.ndarray:
    """A mask of ``error``'s shape, True at its ``count`` largest values."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 0 <= count <= error.size:
        raise ValueError(f"detect_anomalies: anomaly_size must be an integer from 0 to the {error.size} points, "
                         f"got {count!r}")
    flagged = np.zeros(error.size, dtype=bool)
    flagged[np.argsort(-error.ravel(), kind="stable")[:count]] = True
    return flagged.reshape(error.shape)


class AnomalyDetector(LSTMForecaster):
    """An LSTM forecasting one series one step ahead, which flags the points it forecasts worst.

    Train it with ``fit((X, y))`` on the windows ``TSDataset.roll(lookback=past_seq_len,
    horizon=1)`` cuts from the series itself (scaled), then :meth:`detect` the anomalies among
    the points those windows forecast; ``roll_index`` tells their timestamps.

    Args:
        past_seq_len: time steps per window (``roll``'s ``lookback``).
        input_feature_num: features per time step: the series first, then extra features
            such as calendar features.
        hidden_dim, layer_num, dropout, lr, seed: as for :class:`LSTMForecaster`.

    Example::

        import numpy as np
        from sklearn.preprocessing import StandardScaler
        import workbench as wb
        from workbench.datasets.timeseries import nyc_taxi_like
        from workbench.feature import TSDataset
        from workbench.models.anomaly import AnomalyDetector

        wb.init()
        taxi = nyc_taxi_like(days=14, anomalies=4)
        series = TSDataset.from_pandas(taxi, "timestamp", "value").scale(StandardScaler())
        x, y = series.roll(lookback=48, horizon=1)
        detector = AnomalyDetector(past_seq_len=48, lr=0.01).fit((x, y), epochs=5, batch_size=32)
        flagged = detector.detect(x, y, anomaly_size=int(taxi["is_anomaly"].sum()))
        times = series.roll_index(lookback=48, horizon=1)["timestamp"]
        print(times[flagged].tolist())
    """

    def __init__(self, past_seq_len: int, input_feature_num: int = 1, hidden_dim: int = 32, layer_num: int = 1,
                 dropout: float = 0.1, lr: float = 1e-3, seed: int = 0):
        super().__init__(past_seq_len, input_feature_num, output_target_num=1, future_seq_len=1,
                         hidden_dim=hidden_dim, layer_num=layer_num, dropout=dropout, lr=lr, seed=seed)

    def detect(self, x: Any, y: Any, anomaly_size: int | None = None, threshold: float | Any = None) -> np.ndarray:
        """Which windows' next points are anomalies, by :func:`detect_anomalies` on this model's forecasts.

        Args:
            x: windows ``(n, past_seq_len, input_feature_num)``.
            y: the points they forecast, ``(n, 1, 1)`` as ``roll`` cuts them (or ``(n,)``).
            anomaly_size, threshold: the rule, as for :func:`detect_anomalies` (a per-point
                threshold has shape ``(n,)``).

        Returns:
            A boolean mask of shape ``(n,)``.
        """
        forecast = self.predict(x).reshape(-1)
        observed = np.asarray(y, dtype=np.float64)
        if observed.size != len(forecast) or observed.shape[0] != len(forecast):
            raise ValueError(f"detect: y must hold one point per window of X ({len(forecast)}), "
                             f"got shape {observed.shape}")
        return detect_anomalies(observed.reshape(-1), forecast, anomaly_size=anomaly_size, threshold=threshold)
