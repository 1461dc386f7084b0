"""scikit-learn style data (numpy, pandas, Dask) into wb.Estimator, and its predictions back.

In-memory data goes through scikit-learn's own validation (its error messages, its
feature-name rules), so NN estimators behave like any other estimator on numpy and pandas.
Dask data is checked from its metadata only and stays lazy: the engine checks the values
(NaN, lengths, dtypes) where the data lives, and names the column at fault.

Models read floating-point features: integer and boolean features become float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.utils import get_tags
from sklearn.utils.validation import validate_data

from workbench.data.arrays import check_columns, frame_to_arrays
from workbench.arguments import as_list
from workbench.data.readers import from_numpy

__all__ = [
    "select_columns", "validate_training", "validate_prediction", "training_data", "first_rows", "map_rows",
    "compute_together",
]

_FLOATS = (np.float32, np.float64)  # kept as they are; anything else becomes float32
_TABLES = (pd.DataFrame, dd.DataFrame)


def select_columns(X: Any, y: Any, feature_cols: Any, label_cols: Any) -> tuple[Any, Any]:
    """Features and labels of a DataFrame picked by column (labels by ``label_cols``, not ``y``)."""
    if feature_cols is None and label_cols is None:
        return X, y
    if not isinstance(X, _TABLES):
        raise ValueError(f"feature_cols and label_cols select DataFrame columns, but X is a {type(X).__name__}")
    features, labels = as_list(feature_cols), as_list(label_cols)
    if labels:
        if y is not None:
            raise ValueError("give the labels either as y or as label_cols, not both")
        missing = [c for c in labels if c not in X.columns]
        if missing:  # any dtype: a classifier's labels may be text
            raise ValueError(f"label column(s) {missing} not found; available: {list(X.columns)}")
        y = X[labels[0] if len(labels) == 1 else labels]
    features = features or [c for c in X.columns if c not in labels]
    check_columns(X.columns, X.dtypes, features, "feature")
    return X[features], y


def validate_training(estimator: Any, X: Any, y: Any) -> tuple[Any, Any]:
    """Checked features and labels: numpy arrays for in-memory data, else Dask collections.

    Sets ``n_features_in_`` and, for string column names, ``feature_names_in_`` on the
    estimator, as scikit-learn's ``validate_data`` does.
    """
    if y is None:
        raise ValueError(
            f"{type(estimator).__name__} requires y to be passed, but the target y is None "
            "(for a DataFrame, name the label columns with label_cols)"
        )
    if not dask.is_dask_collection(X):
        y = y.compute() if dask.is_dask_collection(y) else y
        return validate_data(  # a single sample is refused with sklearn's message, as most estimators do
            estimator, X, y, dtype=_FLOATS, allow_nd=True, ensure_min_samples=2,
            multi_output=get_tags(estimator).target_tags.multi_output, y_numeric=not is_classifier(estimator),
        )
    X = _float_features(X)
    _set_features_seen(estimator, X)
    if not dask.is_dask_collection(y):
        y = from_numpy(np.asarray(y))
    if isinstance(X, dd.DataFrame) and isinstance(y, da.Array):
        X = X.to_dask_array(lengths=True)
    elif isinstance(X, da.Array) and isinstance(y, (dd.Series, dd.DataFrame)):
        y = y.to_dask_array(lengths=True)
    return X, y


def validate_prediction(estimator: Any, X: Any) -> tuple[Any, bool]:
    """Checked features to predict on, and whether they were in memory (then results are too).

    A DataFrame gives the feature columns seen in fit, by name (other columns, such as the
    label, are ignored).
    """
    columns = as_list(estimator.feature_cols) or list(getattr(estimator, "feature_names_in_", []))
    if isinstance(X, _TABLES) and columns:
        check_columns(X.columns, X.dtypes, columns, "feature")
        X = X[columns]
    if not dask.is_dask_collection(X):
        return validate_data(estimator, X, reset=False, dtype=_FLOATS, allow_nd=True), True
    X = _float_features(X)
    count = _feature_count(X)
    if count != estimator.n_features_in_:
        raise ValueError(
            f"X has {count} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    return X, False


def training_data(X: Any, y: Any) -> tuple[Any, list | None, list | None]:
    """``(data, feature_cols, label_cols)`` for ``wb.Estimator.fit`` from checked X and y."""
    if not isinstance(X, dd.DataFrame):
        return (X, y), None, None
    labels = y.to_frame() if isinstance(y, dd.Series) else y
    names = list(labels.columns)
    if not all(isinstance(n, str) for n in names) or set(names) & set(X.columns):
        names = [f"__label_{i}__" for i in range(len(names))]  # y's own names are unusable
        labels = labels.rename(columns=dict(zip(labels.columns, names)))
    return X.assign(**{n: labels[n] for n in names}), list(X.columns), names


def first_rows(X: Any) -> np.ndarray:
    """The first sample of checked features, as numpy (to try the model on)."""
    if isinstance(X, np.ndarray):
        return X[:1]
    if isinstance(X, da.Array):
        return X[:1].compute()
    return frame_to_arrays(X.head(1, npartitions=-1), list(X.columns), [], allow_nan=True)[0]


def map_rows(raw: Any, function: Callable[[np.ndarray], np.ndarray], columns: Any) -> Any:
    """``function`` applied lazily to each block of raw model outputs (wb.Estimator.predict's).

    ``function`` maps an ``(m, outputs)`` numpy block to ``(m,)`` or ``(m, k)``. For a Dask
    DataFrame the result keeps its index: a Series named ``columns`` or a DataFrame with
    ``columns``; for a Dask array, an array.
    """
    if isinstance(raw, dd.DataFrame):
        return raw.map_partitions(_frame_rows, function, columns, meta=_frame_rows(raw._meta, function, columns))
    meta = function(np.zeros((0,) + raw.shape[1:], raw.dtype))
    if meta.ndim == 1:
        return raw.map_blocks(function, drop_axis=1, dtype=meta.dtype, meta=meta)
    return raw.map_blocks(function, chunks=(raw.chunks[0], meta.shape[1:]), dtype=meta.dtype, meta=meta)


def compute_together(predicted: Any, labels: Any) -> tuple[Any, Any]:
    """Predictions and labels computed in one pass; Dask tables become arrays beside a Dask array.

    (Dask computes DataFrame expressions and array graphs together only as arrays.)
    """
    if isinstance(predicted, da.Array) or isinstance(labels, da.Array):
        predicted, labels = (c.to_dask_array() if isinstance(c, (dd.Series, dd.DataFrame)) else c
                             for c in (predicted, labels))
    return dask.compute(predicted, labels)


def _frame_rows(part: pd.DataFrame, function: Callable, columns: Any) -> pd.Series | pd.DataFrame:
    values = function(part.to_numpy())
    if values.ndim == 1:
        return pd.Series(values, index=part.index, name=columns)
    return pd.DataFrame(values, index=part.index, columns=columns)


def _float_features(X: Any) -> Any:
    """Integer and boolean features as float32, lazily; other dtypes are left to the engine's checks."""
    if isinstance(X, da.Array):
        return X.astype(np.float32) if X.dtype.kind in "iub" else X
    casts = {
        c: np.float32 for c, dtype in X.dtypes.items()
        if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
    }
    return X.astype(casts) if casts else X


def _set_features_seen(estimator: Any, X: Any) -> None:
    """``n_features_in_`` and ``feature_names_in_`` of Dask features, as validate_data sets them."""
    estimator.n_features_in_ = _feature_count(X)
    names = list(X.columns) if isinstance(X, dd.DataFrame) else []
    if names and all(isinstance(n, str) for n in names):
        estimator.feature_names_in_ = np.asarray(names, dtype=object)
    elif hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_


def _feature_count(X: Any) -> int:
    if isinstance(X, dd.DataFrame):
        return len(X.columns)
    if X.ndim < 2:
        raise ValueError(f"Expected 2D array, got {X.ndim}D array instead: reshape your data, e.g. X.reshape(-1, 1)")
    return X.shape[1]
