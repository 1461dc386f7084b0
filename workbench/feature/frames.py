"""The same partition function on a pandas frame (local) or a dask frame (distributed).

Feature sets hold either kind of frame and express every step as a function of one partition.
Running that function directly on a pandas frame, or with ``map_partitions`` on a dask frame,
is what makes local and distributed results identical.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Union

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.dataframe.utils import make_meta

__all__ = [
    "Frame", "is_distributed", "map_partitions", "frame_to_array",
    "empty_partition", "partition_results", "partitions_to_arrays",
]

#: A feature set's table: pandas for local work, dask for distributed work.
Frame = Union[pd.DataFrame, dd.DataFrame]


def is_distributed(frame: Frame) -> bool:
    return isinstance(frame, dd.DataFrame)


def frame_to_array(
    frame: Frame,
    function: Callable[[pd.DataFrame], np.ndarray],
    row_shape: tuple[int, ...],
    dtype: Any,
) -> np.ndarray | da.Array:
    """An array of shape ``(rows, *row_shape)`` made partition by partition with ``function``.

    ``function`` keeps the rows of its partition (one array row per table row). Local frames give
    a numpy array; dask frames a dask array chunked like the partitions, with known chunk sizes
    (the Estimator shards by them), counted in one parallel pass.
    """
    (array,) = partitions_to_arrays(frame, partial(_one_output, function), partition_results(frame, len),
                                    [row_shape], dtype)
    return array


def _one_output(function: Callable[[pd.DataFrame], np.ndarray], part: pd.DataFrame) -> tuple[np.ndarray]:
    return (function(part),)


def _checked(values: np.ndarray, rows: int, row_shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """The block made by a partition function, verified against the shape it promised."""
    values = np.asarray(values, dtype=dtype)
    if values.shape != (rows, *row_shape):
        raise ValueError(f"a partition made an array of shape {values.shape}, expected {(rows, *row_shape)}")
    return values


def empty_partition(frame: Frame) -> pd.DataFrame:
    """An empty pandas frame with ``frame``'s columns and dtypes (for dask: its ``meta``)."""
    if is_distributed(frame):
        return make_meta(frame)
    return frame.iloc[:0]


def map_partitions(frame: Frame, function: Callable[[pd.DataFrame], pd.DataFrame]) -> Frame:
    """``function`` applied to each partition (lazily for dask), the output schema taken from an empty one.

    Dask would otherwise infer the schema from made-up rows, which fails for functions that
    check their input's values (made-up text is no timestamp). ``function`` must accept an
    empty frame; a problem it finds in the schema alone is raised here, before any computing.
    """
    if not is_distributed(frame):
        return function(frame)
    return frame.map_partitions(function, meta=function(empty_partition(frame)))


def partition_results(frame: Frame, function: Callable[[pd.DataFrame], Any]) -> list:
    """``function`` of every partition, computed in parallel (a pandas frame is one partition)."""
    if not is_distributed(frame):
        return [function(frame)]
    return list(dask.compute(*[dask.delayed(function)(part) for part in frame.to_delayed()]))


def partitions_to_arrays(
    frame: Frame,
    function: Callable[[pd.DataFrame], tuple[np.ndarray, ...]],
    rows: list[int],
    row_shapes: list[tuple[int, ...]],
    dtype: Any,
) -> tuple[np.ndarray | da.Array, ...]:
    """Arrays made partition by partition when a partition gives any number of rows.

    ``function(partition)`` returns one array per entry of ``row_shapes``, each with ``rows[i]``
    rows for partition ``i`` (known beforehand, e.g. from :func:`partition_results`; a pandas
    frame is one partition). Local frames give numpy arrays; dask frames give dask arrays with
    known chunks whose blocks share one call of ``function`` per partition.
    """
    if not is_distributed(frame):
        (count,) = rows
        return tuple(_checked(values, count, shape, dtype) for values, shape in zip(function(frame), row_shapes))
    parts = frame.to_delayed()
    if len(rows) != len(parts):
        raise ValueError(f"got row counts for {len(rows)} partitions, the frame has {len(parts)}")
    outputs = [dask.delayed(function)(part) for part in parts]
    arrays = []
    for index, shape in enumerate(row_shapes):
        blocks = [
            da.from_delayed(dask.delayed(_checked)(output[index], count, shape, dtype), shape=(count, *shape), dtype=dtype)
            for output, count in zip(outputs, rows)
        ]
        arrays.append(da.concatenate(blocks, axis=0) if blocks else da.empty((0, *shape), dtype=dtype))
    return tuple(arrays)

