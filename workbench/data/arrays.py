"""Turning table columns and array blocks into the numpy arrays a model trains on.

A feature may be several scalar columns (stacked into ``(n, k)``), or one array-valued column
(lists or ndarrays per row, stacked into ``(n, *shape)``); mixing both flattens each to
``(n, -1)`` and concatenates. Checks that need only the schema run on the driver
(:func:`check_columns`); checks that need values (NaN, ragged arrays) run where the data is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["check_columns", "frame_to_arrays", "block_pair_to_arrays"]


def check_columns(columns: pd.Index, dtypes: pd.Series, wanted: Sequence[str], role: str) -> None:
    """Fail early on unknown or non-numeric columns, naming them."""
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise ValueError(f"{role} column(s) {missing} not found; available: {list(columns)}")
    for name in wanted:
        dtype = dtypes[name]
        if not (_is_numeric(dtype) or _may_hold_arrays(dtype)):
            hint = (
                " (if it held one array per row, dask's dataframe.convert-string turned them into "
                "text: build the frame with wb.data.from_pandas)"
                if pd.api.types.is_string_dtype(dtype)
                else ""
            )
            raise TypeError(
                f"{role} column {name!r} has dtype {dtype}, which is not numeric; encode it first "
                f"(e.g. categories to integer codes, text with a tokenizer){hint}"
            )


def frame_to_arrays(
    frame: pd.DataFrame,
    feature_cols: Sequence[str],
    label_cols: Sequence[str],
    allow_nan: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """One partition of a table as ``(features, labels)``; labels are None without label columns."""
    features = _stack([_column_values(frame, c, "feature", allow_nan) for c in feature_cols], 2)
    if not label_cols:
        return features, None
    labels = _stack([_column_values(frame, c, "label", allow_nan) for c in label_cols], 1)
    return features, labels


def block_pair_to_arrays(
    features: np.ndarray, labels: np.ndarray | None, allow_nan: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """One row block of an ``(X, y)`` array pair, checked."""
    if labels is not None and len(features) != len(labels):
        raise ValueError(f"X block has {len(features)} rows but the y block has {len(labels)}")
    for name, values in (("X", features), ("y", labels)):
        if values is not None and not allow_nan:
            _reject_nan(values, f"{name} has", where=lambda row: f"row {row} of this block")
    return features, labels


def _column_values(frame: pd.DataFrame, name: str, role: str, allow_nan: bool) -> np.ndarray:
    column = frame[name]
    if _is_numeric(column.dtype):
        values = column.to_numpy(dtype=_numpy_dtype(column), na_value=np.nan)
    else:
        values = _stack_cells(column, f"{role} column {name!r}")
    if not allow_nan:
        _reject_nan(
            values, f"{role} column {name!r} has", where=lambda row: f"index {column.index[row]!r}"
        )
    return values


def _numpy_dtype(column: pd.Series) -> np.dtype:
    """The numpy dtype of a numeric column; nullable integers with missing values become float."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype):
        return dtype
    numpy_dtype = np.dtype(getattr(dtype, "numpy_dtype", np.float64))
    if column.hasnans and numpy_dtype.kind in "iub":
        return np.dtype(np.float64)
    return numpy_dtype


def _stack_cells(column: pd.Series, what: str) -> np.ndarray:
    """Stack an array-valued column (lists/ndarrays per row) into ``(n, *shape)``."""
    cells = column.tolist()
    if not cells:
        return np.empty((0,), dtype=np.float64)
    shapes = set()
    for position, cell in enumerate(cells):
        if cell is None or isinstance(cell, (str, bytes)) or np.ndim(cell) == 0:
            raise TypeError(
                f"{what} holds {type(cell).__name__} values (at index {column.index[position]!r}); "
                "a feature column must be numeric or hold a numeric array per row"
            )
        shapes.add(np.shape(cell))
    if len(shapes) > 1:
        raise ValueError(f"{what} holds arrays of different shapes {sorted(shapes)}; pad or resize them first")
    stacked = np.asarray(cells)
    if not (np.issubdtype(stacked.dtype, np.number) or stacked.dtype == np.bool_):
        raise TypeError(f"{what} holds arrays of dtype {stacked.dtype}, which is not numeric")
    return stacked


def _stack(parts: list[np.ndarray], scalar_ndim: int) -> np.ndarray:
    """Combine per-column arrays into one array.

    A single column keeps its own shape, except a scalar feature column becomes ``(n, 1)``
    (``scalar_ndim=2``); several scalar columns become ``(n, k)``; otherwise each column is
    flattened to ``(n, -1)`` and concatenated.
    """
    if len(parts) == 1:
        only = parts[0]
        return only.reshape(-1, 1) if only.ndim == 1 and scalar_ndim == 2 else only
    if all(p.ndim == 1 for p in parts):
        return np.column_stack(parts)
    return np.concatenate([p.reshape(len(p), -1) for p in parts], axis=1)


def _reject_nan(values: np.ndarray, what: str, where) -> None:
    if values.dtype.kind not in "fc" or values.size == 0:  # an empty partition holds no NaN
        return
    bad_rows = np.flatnonzero(np.isnan(values.reshape(len(values), -1)).any(axis=1))
    if bad_rows.size:
        raise ValueError(
            f"{what} NaN ({bad_rows.size} row(s) in one partition, first at {where(bad_rows[0])}); "
            "fill or drop them first, or pass allow_nan=True"
        )


def _is_numeric(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def _may_hold_arrays(dtype) -> bool:
    """Object columns may hold per-row arrays (checked on the values); Arrow lists do."""
    if dtype == np.dtype(object):
        return True
    arrow_type = getattr(dtype, "pyarrow_dtype", None)
    if arrow_type is None:
        return False
    import pyarrow as pa

    return pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type)
