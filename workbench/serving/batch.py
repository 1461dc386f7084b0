"""Batch inference: an InferenceModel mapped over a Dask collection on the workers.

The model is one key of the task graph that every block's task depends on, so it is unpickled
once per worker process (not once per task); each block or partition is predicted
``batch_size`` rows at a time, and the result keeps the input's row order (and index, for tables).
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import dask
import numpy as np
import pandas as pd

from workbench.arguments import check_positive_int
from workbench.data.arrays import check_columns, frame_to_arrays
from workbench.data.shard import as_collection, as_dask_array
from workbench.train.inference import output_frame, predict_in_batches, prediction_columns

__all__ = ["predict_collection"]


def predict_collection(model: Any, data: Any, batch_size: int) -> Any:
    """``model.predict`` over a Dask array (blocks of rows) or a Dask DataFrame (its signature's columns)."""
    import dask.array as da
    import dask.dataframe as dd

    check_positive_int("batch_size", batch_size)
    if len(model.signature.inputs) != 1:
        raise ValueError(f"predict_dask serves one-input models; this one has inputs {model.signature.input_names}")
    spec = model.signature.inputs[0]
    data = as_collection(data)
    sample = _single_output(model.predict(np.zeros((1, *(1 if n is None else n for n in spec.shape[1:])),
                                                   dtype=spec.dtype)))
    shared_model = dask.delayed(model, name=f"inference-model-{uuid.uuid4().hex}", traverse=False)
    if isinstance(data, dd.DataFrame):
        columns = model.signature.columns
        if columns is None:
            raise ValueError("the model was not trained on named columns: give predict_dask a Dask array")
        check_columns(data.columns, data.dtypes, list(columns), "feature")
        to_arrays = partial(frame_to_arrays, feature_cols=list(columns), label_cols=[], allow_nan=False)
        names, meta = prediction_columns(sample)
        return data.map_partitions(_predict_frame, shared_model, to_arrays, batch_size, names, meta=meta)
    data = as_dask_array(data, "X")
    data = data.rechunk((data.chunks[0],) + data.shape[1:])
    blocks = [
        da.from_delayed(dask.delayed(_predict_rows, pure=True)(block, shared_model, batch_size),
                        shape=(rows,) + sample.shape[1:], dtype=sample.dtype)
        for block, rows in zip(data.to_delayed().ravel(), data.chunks[0])
    ]
    return da.concatenate(blocks)


def _predict_rows(features: np.ndarray, model: Any, batch_size: int) -> np.ndarray:
    return predict_in_batches(lambda rows: _single_output(model.predict(rows)), features, batch_size)


def _predict_frame(frame: pd.DataFrame, model: Any, to_arrays, batch_size: int, columns: list[str]) -> pd.DataFrame:
    features, _ = to_arrays(frame)
    return output_frame(_predict_rows(features, model, batch_size), frame.index, columns)


def _single_output(output: Any) -> np.ndarray:
    if isinstance(output, dict):
        raise ValueError(f"predict_dask serves one-output models; this one has outputs {list(output)}")
    return output
