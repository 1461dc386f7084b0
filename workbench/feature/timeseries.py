"""Time series datasets: Analytics Zoo Chronos' ``TSDataset`` on pandas (local) or dask (distributed).

A :class:`TSDataset` holds one or several time series in a long table: a timestamp column
(``dt_col``), optionally a column naming the series of each row (``id_col``), numeric target
columns and numeric extra feature columns. Chained calls clean it (``deduplicate``, ``resample``,
``impute``), add calendar features (``gen_dt_feature``), scale it with a scikit-learn scaler, and
cut it into training windows with ``roll``::

    train, val, test = TSDataset.from_dataframe(frame, "time", "load", id_col="station",
                                                with_split=True, val_ratio=0.1, test_ratio=0.1)
    scaler = StandardScaler()
    train = train.impute("last").gen_dt_feature(["HOUR", "WEEKDAY"]).scale(scaler)
    test = test.impute("last").gen_dt_feature(["HOUR", "WEEKDAY"]).scale(scaler, fit=False)
    X, y = train.roll(lookback=24, horizon=3)

Layout. Every step works series by series, so a series is never split: a dask frame is
shuffled by ``id_col`` once, at creation, which puts all rows of one series in one partition
(a single series without ``id_col`` is brought to one partition: time series are usually long
but narrow). Each step is then a function of one partition, applied directly to a pandas
frame and with ``map_partitions`` to a dask frame, so local and distributed results are the
same. The shuffle is dask's task-based one: a lazy set is computed by several calls in a row
(``roll`` checks, then makes its arrays), and a P2P shuffle resubmitted while the scheduler
still holds the previous run's keys runs into key conflicts (dask/dask#9888).

Conventions (those of Chronos unless said otherwise):

- Rows are sorted by (id, time) within each partition: timestamps that come out of order are
  put in order, not refused. A pandas set holds its series in id order; a dask set holds them
  in the order of its partitions, which is why ``roll_index`` exists and ``to_pandas`` sorts.
- Only the named columns are kept; the timestamps are held as ``datetime64[ns]`` (text is
  parsed), and the targets and extra features as float64.
- Several rows at one timestamp in a series are kept until ``deduplicate()`` (exact copies) or
  ``resample()`` (merged) deals with them; ``roll`` and ``impute("linear")`` refuse them.
- Rows are never dropped without being asked for: errors name the column, the series and the
  timestamp at fault.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from workbench.arguments import as_list, check_positive_int
from workbench.feature.frames import (
    Frame,
    empty_partition,
    is_distributed,
    map_partitions,
    partition_results,
    partitions_to_arrays,
)

__all__ = ["TSDataset", "DT_FEATURES", "IMPUTE_MODES", "MERGE_MODES"]

#: Calendar features :meth:`TSDataset.gen_dt_feature` can add (Chronos' names) and how each is read
#: from the timestamps. WEEKDAY counts from Monday = 0; WEEKOFYEAR is the ISO week.
_DT_FEATURES: dict[str, Callable[[pd.Series], pd.Series]] = {
    "MINUTE": lambda times: times.dt.minute,
    "HOUR": lambda times: times.dt.hour,
    "DAY": lambda times: times.dt.day,
    "WEEKDAY": lambda times: times.dt.day_of_week,
    "WEEKOFYEAR": lambda times: times.dt.isocalendar().week,
    "DAYOFYEAR": lambda times: times.dt.day_of_year,
    "MONTH": lambda times: times.dt.month,
    "YEAR": lambda times: times.dt.year,
    "IS_WEEKEND": lambda times: times.dt.day_of_week >= 5,
}
DT_FEATURES: tuple[str, ...] = tuple(_DT_FEATURES)

#: How :meth:`TSDataset.impute` may fill a NaN: from the values around it, or with a constant.
IMPUTE_MODES = ("last", "const", "linear")

#: How :meth:`TSDataset.resample` merges the rows of one slot; a slot without rows is NaN
#: (also for "sum", unlike pandas' default of 0).
_MERGES: dict[str, Callable[[Any], pd.DataFrame]] = {
    "mean": lambda groups: groups.mean(),
    "max": lambda groups: groups.max(),
    "min": lambda groups: groups.min(),
    "sum": lambda groups: groups.sum(min_count=1),
}
MERGE_MODES: tuple[str, ...] = tuple(_MERGES)

#: Tolerance when turning a ratio of a series' rows into a row count (0.7 * 10 is 6.9999...).
_ROUNDING_SLACK = 1e-9
#: Items an error message lists before summarising the rest as a count.
_LISTED = 10


class TSDataset:
    """One or several time series in a pandas (local) or dask (distributed) frame.

    Build it with :meth:`from_dataframe` (or its Chronos name :meth:`from_pandas`). Every
    transform returns a new ``TSDataset``; lazy for a dask frame, except where a step needs the
    data (fitting a scaler, ``roll``'s checks, ``resample``'s report of cropped rows).

    Attributes:
        dt_col: the timestamp column.
        id_col: the column naming each row's series, or None for a single series.
        target_col, feature_col: the target and extra feature columns.
        scaler_: the fitted scaler this set is scaled with (a copy), or None.
    """

    def __init__(
        self,
        frame: Frame,
        dt_col: str,
        target_col: Sequence[str],
        id_col: str | None = None,
        feature_col: Sequence[str] = (),
        scaler: Any = None,
        scaled_col: Sequence[str] = (),
    ):
        """Internal: wraps a frame already laid out; use :meth:`from_dataframe`."""
        self._frame = frame
        self.dt_col = dt_col
        self.id_col = id_col
        self._target_col = list(target_col)
        self._feature_col = list(feature_col)
        self.scaler_ = scaler
        self._scaled_col = list(scaled_col)

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_dataframe(
        cls,
        df: Frame,
        dt_col: str,
        target_col: str | Sequence[str],
        id_col: str | None = None,
        extra_feature_col: str | Sequence[str] | None = None,
        with_split: bool = False,
        val_ratio: float = 0,
        test_ratio: float = 0.1,
    ) -> TSDataset | tuple[TSDataset, TSDataset, TSDataset]:
        """A dataset from a pandas frame (local) or a dask frame (distributed).

        Args:
            df: the long table, one row per (series, timestamp).
            dt_col: the timestamp column: datetimes, or text that ``pd.to_datetime`` parses.
            target_col: the numeric column(s) to forecast.
            id_col: the column naming each row's series; None for a single series.
            extra_feature_col: numeric columns used as inputs only.
            with_split: return ``(train, val, test)`` instead, cut by time within each series:
                of a series of ``n`` rows, the last ``int(n * test_ratio)`` go to test, the
                ``int(n * val_ratio)`` before them to validation, the rest to training.
            val_ratio, test_ratio: the shares of each series for validation and test.

        Raises:
            TypeError: ``df`` is not a pandas or dask DataFrame.
            ValueError: a column is missing or given two roles, a target or feature is not
                numeric, the timestamps are not timestamps (for a dask frame, text that does not
                parse is found when the data is computed), or a timestamp or id is missing.
        """
        if not isinstance(df, (pd.DataFrame, dd.DataFrame)):
            raise TypeError(f"TSDataset needs a pandas or dask DataFrame, got {type(df).__name__}")
        targets, features = as_list(target_col), as_list(extra_feature_col)
        _check_columns(df, dt_col, targets, id_col, features)
        if with_split:
            _check_ratios(val_ratio, test_ratio)
        columns = ([id_col] if id_col is not None else []) + [dt_col] + targets + features
        frame = df[columns]
        if is_distributed(frame) and id_col is not None:
            frame = frame.shuffle(on=id_col, shuffle_method="tasks")
        elif is_distributed(frame):
            frame = frame.repartition(npartitions=1)
        frame = map_partitions(frame, partial(_prepare, dt_col=dt_col, id_col=id_col,
                                                     value_col=targets + features))
        dataset = cls(frame, dt_col, targets, id_col, features)
        if not with_split:
            return dataset
        return tuple(
            dataset._with(map_partitions(frame, partial(
                _split_part, dt_col=dt_col, id_col=id_col, val_ratio=val_ratio, test_ratio=test_ratio, which=which)))
            for which in range(3)
        )

    #: Chronos' name for :meth:`from_dataframe` (which also takes a dask frame).
    from_pandas = from_dataframe

    # -- what the set holds ------------------------------------------------------------------

    @property
    def target_col(self) -> list[str]:
        """The target columns (a copy: the set does not change)."""
        return list(self._target_col)

    @property
    def feature_col(self) -> list[str]:
        """The extra feature columns, calendar features included (a copy)."""
        return list(self._feature_col)

    def get_feature_list(self) -> list[str]:
        """The extra feature columns (Chronos' accessor for :attr:`feature_col`)."""
        return self.feature_col

    def __len__(self) -> int:
        """Rows (computed for a dask frame)."""
        return int(len(self._frame))

    def __repr__(self) -> str:
        kind = "distributed" if is_distributed(self._frame) else "local"
        scaled = f", scaled by {type(self.scaler_).__name__}" if self.scaler_ is not None else ""
        return (f"<TSDataset ({kind}): dt_col={self.dt_col!r}, id_col={self.id_col!r}, "
                f"target_col={self._target_col}, feature_col={self._feature_col}{scaled}>")

    def to_pandas(self) -> pd.DataFrame:
        """The data as a pandas frame sorted by (id, time), computed for a dask frame."""
        if not is_distributed(self._frame):
            return self._frame.copy()
        return _sorted(self._frame.compute(), self.dt_col, self.id_col)

    # -- cleaning ----------------------------------------------------------------------------

    def deduplicate(self) -> TSDataset:
        """The set without exact duplicate rows (same series, time and values), first kept."""
        return self._with(self._map(_deduplicate))

    def impute(self, mode: str = "last", const_num: float = 0) -> TSDataset:
        """The set with NaN targets and features filled, series by series.

        Args:
            mode: "last": the last value before (then, for leading NaNs, the first value after,
                as Chronos' forward-then-backward fill); "const": ``const_num``; "linear":
                interpolated in time between the values around (leading and trailing NaNs take
                the nearest value).

        Raises:
            ValueError: an unknown mode; with "last" or "linear", a column without any value in
                a series, or ("linear") several rows at one timestamp (found when computed).
        """
        if mode not in IMPUTE_MODES:
            raise ValueError(f"impute: mode must be one of {list(IMPUTE_MODES)}, got {mode!r}")
        if isinstance(const_num, bool) or not isinstance(const_num, (int, float, np.number)):
            raise ValueError(f"impute: const_num must be a number, got {const_num!r}")
        return self._with(self._map(partial(
            _impute, dt_col=self.dt_col, id_col=self.id_col, columns=self._value_col, mode=mode, const_num=const_num)))

    def resample(
        self,
        interval: str | pd.Timedelta,
        start_time: Any = None,
        end_time: Any = None,
        merge_mode: str = "mean",
    ) -> TSDataset:
        """The set on a regular time grid, series by series.

        Slots are ``interval`` apart, aligned on ``start_time`` when given, else on the epoch
        (so "1h" slots start on the hour). The rows of a slot are merged with ``merge_mode``
        and labelled with the slot's start; a slot without rows gets NaN, for :meth:`impute`.
        Each series' grid runs from its first to its last slot, or from ``start_time`` to
        ``end_time`` (inclusive) when given. Rows outside that range are dropped and reported
        in a ``UserWarning`` (count per series); a dask set is computed once to count them.

        Args:
            interval: a fixed duration as a pandas offset alias ("1h", "15min", "1D"...).
            start_time, end_time: the grid's bounds (anything ``pd.Timestamp`` takes).
            merge_mode: "mean", "max", "min" or "sum".

        Raises:
            ValueError: a calendar interval ("MS", "W"), a bad mode or bounds, or a series
                with no row between ``start_time`` and ``end_time``.
        """
        step = _fixed_interval(interval)
        if merge_mode not in _MERGES:
            raise ValueError(f"resample: merge_mode must be one of {list(MERGE_MODES)}, got {merge_mode!r}")
        zone = empty_partition(self._frame)[self.dt_col].dt.tz
        start, end = _as_time(start_time, zone, "start_time"), _as_time(end_time, zone, "end_time")
        if start is not None and end is not None and start > end:
            raise ValueError(f"resample: start_time {start} is after end_time {end}")
        if start is not None or end is not None:
            self._report_cropped(start, end)
        return self._with(self._map(partial(
            _resample, dt_col=self.dt_col, id_col=self.id_col, value_col=self._value_col, step=step,
            start=start, end=end, merge_mode=merge_mode)))

    def _report_cropped(self, start: pd.Timestamp | None, end: pd.Timestamp | None) -> None:
        """Warn about the rows outside [start, end]; refuse a series that would be left empty."""
        counts = sorted(item for part in partition_results(self._frame, partial(
            _count_outside, dt_col=self.dt_col, id_col=self.id_col, start=start, end=end)) for item in part)
        emptied = [label for label, outside, rows in counts if outside == rows]
        if emptied:
            raise ValueError(f"resample: no row of {_listing(emptied)} lies between start_time {start} and "
                             f"end_time {end}")
        cropped = [f"{label}: {outside}" for label, outside, _ in counts if outside]
        if cropped:
            total = sum(outside for _, outside, _ in counts)
            warnings.warn(f"resample: {total} row(s) outside start_time {start} .. end_time {end} dropped "
                          f"({_listing(cropped)})", UserWarning, stacklevel=3)

    # -- features ----------------------------------------------------------------------------

    def gen_dt_feature(self, features: str | Sequence[str] | None = None) -> TSDataset:
        """The set with calendar features of the timestamps added as feature columns.

        Args:
            features: names from :data:`DT_FEATURES` (MINUTE, HOUR, DAY, WEEKDAY, WEEKOFYEAR,
                DAYOFYEAR, MONTH, YEAR, IS_WEEKEND); all of them by default. They are added
                as float64 columns of those names (IS_WEEKEND is 1.0 on Saturday and Sunday).
        """
        names = list(DT_FEATURES) if features is None else as_list(features)
        if not names:
            raise ValueError("gen_dt_feature: features names no feature (None adds them all)")
        unknown = [name for name in names if name not in _DT_FEATURES]
        if unknown:
            raise ValueError(f"gen_dt_feature: unknown feature(s) {unknown}; choose from {list(DT_FEATURES)}")
        if len(set(names)) < len(names):
            raise ValueError(f"gen_dt_feature: features {names} name one feature twice")
        taken = [name for name in names if name in self._frame.columns]
        if taken:
            raise ValueError(f"gen_dt_feature: the set already has column(s) {taken}")
        frame = self._map(partial(_add_dt_features, dt_col=self.dt_col, names=names))
        return self._with(frame, feature_col=self._feature_col + names)

    def scale(self, scaler: Any, fit: bool = True) -> TSDataset:
        """The set with its targets and features scaled by a scikit-learn scaler.

        Args:
            scaler: a scaler acting column by column (StandardScaler, MinMaxScaler,
                MaxAbsScaler, RobustScaler...). With ``fit=True`` it is fitted in place (as its
                own ``fit`` does) so that it can then scale a validation or test set with
                ``fit=False``; the new set keeps a copy in ``scaler_``.
            fit: fit the scaler on this set's target and feature columns first. For a dask set
                this computes the columns: partition by partition with ``partial_fit`` when
                the scaler has it, else all at once.

        Raises:
            ValueError: the set is already scaled, or (``fit=False``) the scaler is not fitted
                or was fitted on other columns.
        """
        from sklearn.utils.validation import check_is_fitted

        if self.scaler_ is not None:
            raise ValueError("scale: this set is already scaled; call unscale() first")
        if not (hasattr(scaler, "transform") and hasattr(scaler, "inverse_transform")):
            raise TypeError(f"scale: expected a scikit-learn scaler, got {type(scaler).__name__}")
        columns = self._value_col
        if fit:
            _fit_scaler(scaler, self._frame, columns)
        else:
            check_is_fitted(scaler)
            _check_fitted_columns(scaler, columns)
        fitted = copy.deepcopy(scaler)  # later refits of the caller's scaler must not change this set
        frame = self._map(partial(_apply_scaler, scaler=fitted, columns=columns, method="transform"))
        return self._with(frame, scaler=fitted, scaled_col=columns)

    def unscale(self) -> TSDataset:
        """The set back in its original units (the scaler's ``inverse_transform``)."""
        self._check_scaled("unscale")
        frame = self._map(partial(_apply_scaler, scaler=self.scaler_, columns=self._scaled_col,
                                  method="inverse_transform"))
        return self._with(frame, scaler=None, scaled_col=())

    def unscale_numpy(self, y: Any, target_col: str | Sequence[str] | None = None) -> np.ndarray:
        """Scaled targets or predictions (last axis: the targets) in the original units.

        Args:
            y: an array whose last axis holds the target columns, e.g. ``roll``'s
                ``(windows, horizon, n_targets)`` or a model's predictions of it.
            target_col: which targets the last axis holds, when ``roll`` was given a subset.

        Returns:
            A float64 array of ``y``'s shape.
        """
        self._check_scaled("unscale_numpy")
        targets = self._subset(target_col, self._target_col, "target_col", "unscale_numpy")
        values = np.asarray(y, dtype=np.float64)
        if values.ndim == 0 or values.shape[-1] != len(targets):
            raise ValueError(f"unscale_numpy: the last axis of y must hold the {len(targets)} target(s) {targets}, "
                             f"got shape {values.shape}")
        flat = values.reshape(-1, len(targets))
        if len(flat) == 0:
            return values.copy()
        # a column-by-column scaler maps each target by its own parameters; the other columns are placeholders
        full = pd.DataFrame(np.zeros((len(flat), len(self._scaled_col))), columns=self._scaled_col)
        full[targets] = flat
        restored = np.asarray(self.scaler_.inverse_transform(full), dtype=np.float64)
        return restored[:, [self._scaled_col.index(name) for name in targets]].reshape(values.shape)

    # -- windows -------------------------------------------------------------------------------

    def roll(
        self,
        lookback: int,
        horizon: int | Sequence[int],
        feature_col: str | Sequence[str] | None = None,
        target_col: str | Sequence[str] | None = None,
    ) -> tuple[np.ndarray | da.Array, np.ndarray | da.Array]:
        """Sliding windows ``(X, y)`` for a forecasting model, cut series by series.

        Window ``i`` of a series takes rows ``i .. i + lookback - 1`` as input and, for each
        horizon step ``s``, the targets of row ``i + lookback - 1 + s``. Unlike Chronos (whose
        ``roll`` stores the arrays for ``to_numpy``), the arrays are returned and the set is
        unchanged. A series of ``n`` rows
        gives ``n - lookback - max(steps) + 1`` windows; no window crosses two series. Windows
        come series by series in the set's order; :meth:`roll_index` tells which is which.
        For a dask set the checks compute the data once; the arrays are lazy, with known chunks.

        Args:
            lookback: input rows per window.
            horizon: ``h`` for steps 1..h, or a list of increasing steps (``[1, 3, 6]``).
            feature_col, target_col: subsets of the set's columns (default: all).

        Returns:
            ``X`` of shape ``(windows, lookback, n_targets + n_features)``, targets first, and
            ``y`` of shape ``(windows, len(steps), n_targets)``, both float32; numpy for a
            pandas set, dask arrays for a dask set.

        Raises:
            ValueError: NaN in a used column, several rows at one timestamp, or a series shorter
                than ``lookback + max(steps)`` (all such series are listed).
        """
        targets = self._subset(target_col, self._target_col, "target_col", "roll")
        features = self._subset(feature_col, self._feature_col, "feature_col", "roll", allow_empty=True)
        windows = _Windows.of(lookback, horizon)
        rows = self._window_counts(windows, targets + features)
        make = partial(_cut_windows, id_col=self.id_col, input_col=targets + features, target_col=targets,
                       windows=windows)
        shapes = [(lookback, len(targets) + len(features)), (len(windows.steps), len(targets))]
        x, y = partitions_to_arrays(self._frame, make, rows, shapes, np.float32)
        return x, y

    def roll_index(self, lookback: int, horizon: int | Sequence[int]) -> pd.DataFrame:
        """Which series and time each window of ``roll(lookback, horizon)`` forecasts.

        Returns:
            A pandas frame with a row per window, in ``roll``'s order: the id column (when the
            set has one) and ``dt_col``, the time of the window's first forecast step.
        """
        windows = _Windows.of(lookback, horizon)
        self._window_counts(windows, [])
        parts = partition_results(self._frame, partial(_window_index, dt_col=self.dt_col, id_col=self.id_col,
                                                       windows=windows))
        return pd.concat(parts, ignore_index=True)

    def _window_counts(self, windows: _Windows, columns: list[str]) -> list[int]:
        """Windows per partition, after checking every series can be cut (NaN in ``columns``)."""
        facts = partition_results(self._frame, partial(_series_facts, dt_col=self.dt_col, id_col=self.id_col,
                                                       columns=columns))
        every = sorted((item for part in facts for item in part), key=lambda item: item.label)
        if not every:
            raise ValueError("roll: the set has no rows")
        duplicated = [f"{item.label} at {item.duplicate_time}" for item in every if item.duplicate_time is not None]
        if duplicated:
            raise ValueError(f"roll: several rows share one timestamp in {_listing(duplicated)}; remove exact "
                             "duplicates with deduplicate() or merge rows with resample()")
        missing = [f"column {column!r} of {item.label}" for item in every for column in item.nan_columns]
        if missing:
            raise ValueError(f"roll: NaN values left in {_listing(missing)}; fill them with impute() first")
        short = [f"{item.label} has {item.rows}" for item in every if item.rows < windows.span]
        if short:
            raise ValueError(f"roll: lookback {windows.lookback} + horizon {windows.steps[-1]} needs "
                             f"{windows.span} rows per series; {_listing(short)}")
        return [sum(windows.count(item.rows) for item in part) for part in facts]

    # -- helpers -------------------------------------------------------------------------------

    @property
    def _value_col(self) -> list[str]:
        return self._target_col + self._feature_col

    def _map(self, function: Callable[[pd.DataFrame], pd.DataFrame]) -> Frame:
        return map_partitions(self._frame, function)

    def _with(self, frame: Frame, **changes: Any) -> TSDataset:
        """A new set over ``frame``, with this set's columns and scaler unless changed."""
        fields = {"dt_col": self.dt_col, "target_col": self._target_col, "id_col": self.id_col,
                  "feature_col": self._feature_col, "scaler": self.scaler_, "scaled_col": self._scaled_col}
        return TSDataset(frame, **{**fields, **changes})

    def _check_scaled(self, action: str) -> None:
        if self.scaler_ is None:
            raise ValueError(f"{action}: this set is not scaled (call scale() first)")

    @staticmethod
    def _subset(given: Any, available: list[str], name: str, action: str, allow_empty: bool = False) -> list[str]:
        """``given`` columns (all of ``available`` when None), checked to be among them."""
        if given is None:
            return list(available)
        chosen = as_list(given)
        unknown = [column for column in chosen if column not in available]
        if unknown:
            raise ValueError(f"{action}: {name} {unknown} not in this set's {name} {available}")
        if not chosen and not allow_empty:
            raise ValueError(f"{action}: {name} names no column")
        return chosen


# -- checks at creation ------------------------------------------------------------------------


def _check_columns(df: Frame, dt_col: str, targets: list[str], id_col: str | None, features: list[str]) -> None:
    if not targets:
        raise ValueError("TSDataset: target_col names no column")
    named = [dt_col] + targets + features + ([id_col] if id_col is not None else [])
    available = list(df.columns)
    missing = [column for column in named if column not in available]
    if missing:
        raise ValueError(f"TSDataset: column(s) {missing} not found; the frame has {available}")
    repeated = sorted({column for column in named if named.count(column) > 1}, key=named.index)
    if repeated:
        raise ValueError(f"TSDataset: column(s) {repeated} given more than one role among dt_col, target_col, "
                         "extra_feature_col and id_col")
    for role, columns in (("target", targets), ("extra feature", features)):
        for column in columns:
            dtype = df.dtypes[column]
            if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
                raise ValueError(f"TSDataset: {role} column {column!r} holds {dtype} values; targets and extra "
                                 "features must be numeric")


def _check_ratios(val_ratio: float, test_ratio: float) -> None:
    for name, ratio in (("val_ratio", val_ratio), ("test_ratio", test_ratio)):
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.number)) or not 0 <= ratio < 1:
            raise ValueError(f"TSDataset: {name} must be a number in [0, 1), got {ratio!r}")
    if val_ratio + test_ratio >= 1:
        raise ValueError(f"TSDataset: val_ratio + test_ratio must be below 1 to leave training rows, "
                         f"got {val_ratio} + {test_ratio}")


def _fixed_interval(interval: Any) -> pd.Timedelta:
    try:
        offset = pd.tseries.frequencies.to_offset(interval)
    except (TypeError, ValueError) as error:
        raise ValueError(f"resample: interval {interval!r} is not a pandas offset alias such as '1h' or "
                         "'15min'") from error
    if not isinstance(offset, pd.offsets.Tick) or pd.Timedelta(offset) <= pd.Timedelta(0):
        raise ValueError(f"resample: interval {interval!r} is not a fixed positive duration; use one such as "
                         "'1h', '15min' or '1D'")
    return pd.Timedelta(offset)


def _as_time(value: Any, zone: Any, name: str) -> pd.Timestamp | None:
    """``value`` as a nanosecond timestamp in the time zone of the set's timestamps."""
    if value is None:
        return None
    try:
        time = pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"resample: {name} {value!r} is not a timestamp") from error
    if (time.tz is None) != (zone is None):
        raise ValueError(f"resample: {name} {value!r} and the set's timestamps (time zone {zone}) must both "
                         "have a time zone or both have none")
    return (time.tz_convert(zone) if zone is not None else time).as_unit("ns")


# -- partition functions: each takes and returns one partition, sorted by (id, time) -------------


def _prepare(part: pd.DataFrame, dt_col: str, id_col: str | None, value_col: list[str]) -> pd.DataFrame:
    """Parsed timestamps, float64 values, rows sorted by (id, time); missing ids or times refused."""
    times = _as_timestamps(part[dt_col], dt_col)
    missing_times = int(times.isna().sum())
    if missing_times:
        raise ValueError(f"TSDataset: dt_col {dt_col!r} has {missing_times} missing timestamp(s)")
    if id_col is not None and part[id_col].isna().any():
        raise ValueError(f"TSDataset: id_col {id_col!r} has {int(part[id_col].isna().sum())} missing id(s); "
                         "every row needs the id of its series")
    part = part.assign(**{dt_col: times}, **{column: part[column].astype("float64") for column in value_col})
    return _sorted(part, dt_col, id_col)


def _as_timestamps(column: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        times = column
    elif pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        raise ValueError(f"TSDataset: dt_col {name!r} holds {column.dtype} values, not timestamps; convert it "
                         "with pd.to_datetime (unit= for epoch numbers)")
    else:
        try:
            times = pd.to_datetime(column)
        except (TypeError, ValueError) as error:
            raise ValueError(f"TSDataset: dt_col {name!r} holds values that are not timestamps: {error}") from error
    return times.dt.as_unit("ns")


def _sorted(part: pd.DataFrame, dt_col: str, id_col: str | None) -> pd.DataFrame:
    keys = ([id_col] if id_col is not None else []) + [dt_col]
    return part.sort_values(keys, kind="stable").reset_index(drop=True)


def _split_part(part: pd.DataFrame, dt_col: str, id_col: str | None, val_ratio: float, test_ratio: float,
                which: int) -> pd.DataFrame:
    """Rows of the training (0), validation (1) or test (2) share of each series."""
    if part.empty:
        return part
    groups = part.groupby(_series_keys(part, id_col), sort=False)
    position = groups.cumcount().to_numpy()
    size = groups[dt_col].transform("size").to_numpy()
    test_rows = np.floor(size * test_ratio + _ROUNDING_SLACK).astype(int)
    val_rows = np.floor(size * val_ratio + _ROUNDING_SLACK).astype(int)
    share = np.where(position < size - test_rows - val_rows, 0, np.where(position < size - test_rows, 1, 2))
    return part[share == which].reset_index(drop=True)


def _deduplicate(part: pd.DataFrame) -> pd.DataFrame:
    return part.drop_duplicates().reset_index(drop=True)


def _impute(part: pd.DataFrame, dt_col: str, id_col: str | None, columns: list[str], mode: str,
            const_num: float) -> pd.DataFrame:
    if mode == "const":
        return part.fillna({column: const_num for column in columns})
    if mode == "last":
        forward = _per_series(part[columns], part, id_col).ffill()
        filled = _per_series(forward, part, id_col).bfill()
    else:
        filled = _interpolate(part, dt_col, id_col, columns)
    for column in columns:
        empty = filled[column].isna()
        if empty.any():
            labels = [label for label, rows in _series_rows(part, id_col) if empty.iloc[rows].all()]
            raise ValueError(f"impute: column {column!r} has no value in {_listing(labels)}, so mode={mode!r} has "
                             "nothing to fill from; use mode='const'")
    return part.assign(**{column: filled[column] for column in columns})


def _interpolate(part: pd.DataFrame, dt_col: str, id_col: str | None, columns: list[str]) -> pd.DataFrame:
    """Values linear in time between known neighbours, nearest known value at the ends."""
    values = part[columns].to_numpy(dtype=np.float64, copy=True)
    for label, rows in _series_rows(part, id_col):
        times = part[dt_col].iloc[rows]
        duplicate = _first_duplicate(times)
        if duplicate is not None:
            raise ValueError(f"impute(mode='linear'): {label} has several rows at {duplicate}; remove exact "
                             "duplicates with deduplicate() or merge rows with resample()")
        seconds = (times - times.iloc[0]).dt.total_seconds().to_numpy()
        block = values[rows]
        for index in range(len(columns)):
            known = ~np.isnan(block[:, index])
            if known.any():
                block[~known, index] = np.interp(seconds[~known], seconds[known], block[known, index])
        values[rows] = block
    return pd.DataFrame(values, columns=columns, index=part.index)


def _resample(part: pd.DataFrame, dt_col: str, id_col: str | None, value_col: list[str], step: pd.Timedelta,
              start: pd.Timestamp | None, end: pd.Timestamp | None, merge_mode: str) -> pd.DataFrame:
    if part.empty:
        return part
    pieces = []
    for _, rows in _series_rows(part, id_col):
        series = part.iloc[rows]
        series = series[_within(series[dt_col], start, end)]
        times = series[dt_col]
        origin = start if start is not None else pd.Timestamp("1970-01-01", tz=times.dt.tz).as_unit("ns")
        slots = origin + ((times - origin) // step) * step
        merged = _MERGES[merge_mode](series[value_col].groupby(slots))
        grid = pd.date_range(start if start is not None else slots.iloc[0], end if end is not None else slots.iloc[-1],
                             freq=step, unit="ns")
        piece = merged.reindex(grid).rename_axis(dt_col).reset_index()
        if id_col is not None:
            piece.insert(0, id_col, series[id_col].iloc[np.zeros(len(piece), dtype=int)].to_numpy())
        pieces.append(piece)
    return pd.concat(pieces, ignore_index=True).astype(part.dtypes.to_dict())


def _within(times: pd.Series, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.Series:
    inside = pd.Series(True, index=times.index)
    if start is not None:
        inside &= times >= start
    if end is not None:
        inside &= times <= end
    return inside


def _count_outside(part: pd.DataFrame, dt_col: str, id_col: str | None, start: pd.Timestamp | None,
                   end: pd.Timestamp | None) -> list[tuple[str, int, int]]:
    """(series, rows outside [start, end], rows) for each series."""
    inside = _within(part[dt_col], start, end).to_numpy()
    return [(label, int((~inside[rows]).sum()), len(rows)) for label, rows in _series_rows(part, id_col)]


def _add_dt_features(part: pd.DataFrame, dt_col: str, names: list[str]) -> pd.DataFrame:
    times = part[dt_col]
    return part.assign(**{name: _DT_FEATURES[name](times).astype("float64") for name in names})


def _fit_scaler(scaler: Any, frame: Frame, columns: list[str]) -> None:
    """Fit ``scaler`` on the columns; a dask frame by partial_fit per partition where possible."""
    values = frame[columns]
    if not is_distributed(values):
        scaler.fit(values)
        return
    if not hasattr(scaler, "partial_fit"):
        scaler.fit(values.compute())
        return
    fitted = False
    for block in values.persist().to_delayed():  # one computation, then the partitions one at a time
        part = block.compute()
        if len(part):
            (scaler.partial_fit if fitted else scaler.fit)(part)  # fit first: it resets an earlier fit
            fitted = True
    if not fitted:
        raise ValueError("scale: the set has no rows to fit the scaler on")


def _check_fitted_columns(scaler: Any, columns: list[str]) -> None:
    names = getattr(scaler, "feature_names_in_", None)
    if names is not None and list(names) != columns:
        raise ValueError(f"scale: the scaler was fitted on columns {list(names)}, this set scales {columns}")
    width = getattr(scaler, "n_features_in_", len(columns))
    if width != len(columns):
        raise ValueError(f"scale: the scaler was fitted on {width} columns, this set scales {len(columns)}: {columns}")


def _apply_scaler(part: pd.DataFrame, scaler: Any, columns: list[str], method: str) -> pd.DataFrame:
    if part.empty:  # scikit-learn refuses zero rows
        return part
    values = np.asarray(getattr(scaler, method)(part[columns]), dtype=np.float64)
    return part.assign(**{column: values[:, index] for index, column in enumerate(columns)})


# -- windows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Windows:
    """The window shape ``roll`` cuts: ``lookback`` input rows, targets ``steps`` rows further."""

    lookback: int
    steps: tuple[int, ...]

    @classmethod
    def of(cls, lookback: int, horizon: int | Sequence[int]) -> _Windows:
        check_positive_int("lookback", lookback)
        if isinstance(horizon, (int, np.integer)) and not isinstance(horizon, bool):
            check_positive_int("horizon", horizon)
            return cls(int(lookback), tuple(range(1, int(horizon) + 1)))
        steps = list(horizon) if isinstance(horizon, (Sequence, np.ndarray)) and not isinstance(horizon, str) else []
        positive = all(isinstance(step, (int, np.integer)) and not isinstance(step, bool) and step >= 1
                       for step in steps)
        increasing = all(earlier < later for earlier, later in zip(steps, steps[1:]))
        if not (steps and positive and increasing):
            raise ValueError(f"horizon must be a positive integer or a list of increasing positive integers, "
                             f"got {horizon!r}")
        return cls(int(lookback), tuple(int(step) for step in steps))

    @property
    def span(self) -> int:
        """Rows one window covers."""
        return self.lookback + self.steps[-1]

    def count(self, rows: int) -> int:
        """Windows in a series of ``rows`` rows."""
        return max(0, rows - self.span + 1)

    @property
    def first_forecast(self) -> int:
        """Offset of a window's first forecast row from its first input row."""
        return self.lookback - 1 + self.steps[0]


class _SeriesFacts(NamedTuple):
    label: str
    rows: int
    duplicate_time: pd.Timestamp | None
    nan_columns: list[str]


def _series_facts(part: pd.DataFrame, dt_col: str, id_col: str | None, columns: list[str]) -> list[_SeriesFacts]:
    """What ``roll`` checks of each series: its length, a repeated timestamp, columns with NaN."""
    facts = []
    for label, rows in _series_rows(part, id_col):
        series = part.iloc[rows]
        nan_columns = [column for column in columns if series[column].isna().any()]
        facts.append(_SeriesFacts(label, len(rows), _first_duplicate(series[dt_col]), nan_columns))
    return facts


def _cut_windows(part: pd.DataFrame, id_col: str | None, input_col: list[str], target_col: list[str],
                 windows: _Windows) -> tuple[np.ndarray, np.ndarray]:
    inputs = part[input_col].to_numpy(dtype=np.float32)
    targets = part[target_col].to_numpy(dtype=np.float32)
    xs = [np.zeros((0, windows.lookback, len(input_col)), dtype=np.float32)]
    ys = [np.zeros((0, len(windows.steps), len(target_col)), dtype=np.float32)]
    for _, rows in _series_rows(part, id_col):
        count = windows.count(len(rows))
        series_inputs = inputs[rows[:count + windows.lookback - 1]]
        xs.append(sliding_window_view(series_inputs, windows.lookback, axis=0).transpose(0, 2, 1))
        series_targets = targets[rows]
        ys.append(np.stack([series_targets[windows.lookback - 1 + step:][:count] for step in windows.steps], axis=1))
    return np.concatenate(xs), np.concatenate(ys)


def _window_index(part: pd.DataFrame, dt_col: str, id_col: str | None, windows: _Windows) -> pd.DataFrame:
    first = windows.first_forecast
    chosen = [rows[first:first + windows.count(len(rows))] for _, rows in _series_rows(part, id_col)]
    positions = np.concatenate(chosen) if chosen else np.zeros(0, dtype=int)
    columns = ([id_col] if id_col is not None else []) + [dt_col]
    return part[columns].iloc[positions].reset_index(drop=True)


# -- series within a partition -------------------------------------------------------------------


def _series_keys(part: pd.DataFrame, id_col: str | None) -> Any:
    """Group keys putting each row in its series (one group when there is no id column)."""
    return part[id_col] if id_col is not None else np.zeros(len(part), dtype=int)


def _per_series(values: pd.DataFrame, part: pd.DataFrame, id_col: str | None) -> Any:
    """``values`` (rows of ``part``) grouped by series, for group-wise fills."""
    return values.groupby(_series_keys(part, id_col), sort=False)


def _series_rows(part: pd.DataFrame, id_col: str | None) -> list[tuple[str, np.ndarray]]:
    """(name for messages, row positions) of each series in the partition, in row order."""
    if id_col is None:
        return [("the series", np.arange(len(part)))] if len(part) else []
    groups = part.groupby(id_col, sort=False).indices
    return [(f"series {_plain(key)!r}", rows) for key, rows in sorted(groups.items(), key=lambda item: item[1][0])]


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for readable messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _first_duplicate(times: pd.Series) -> pd.Timestamp | None:
    repeated = times[times.duplicated()]
    return repeated.iloc[0] if len(repeated) else None


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    return shown if len(items) <= _LISTED else f"{shown} (and {len(items) - _LISTED} more)"
