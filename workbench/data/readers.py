"""Readers that turn files and in-memory data into Dask collections.

Every reader checks its input up front (missing paths, empty data, unknown columns) and
raises an error that names the path or column, instead of failing later inside a task.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import dask.array as da
import dask.config
import dask.dataframe as dd
import numpy as np
import pandas as pd

__all__ = ["MissingPathError", "read_parquet", "read_csv", "from_pandas", "from_numpy"]

#: Upper bound of one chunk/partition made from in-memory data.
_TARGET_CHUNK_BYTES = 64 * 2**20
#: First and last four bytes of a Parquet file (PARE: an encrypted footer).
_PARQUET_MAGIC = (b"PAR1", b"PARE")


class MissingPathError(FileNotFoundError, ValueError):
    """A path (or glob) given to a reader matches no file.

    It is both a ``FileNotFoundError`` and a ``ValueError`` so either idiom catches it.
    """


def read_parquet(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    columns: str | Sequence[str] | None = None,
    **kwargs: Any,
) -> dd.DataFrame:
    """Read Parquet files (a file, a directory, a glob, or any fsspec URL) lazily.

    Args:
        path: where the data lies.
        columns: the columns to load (all by default); unknown names raise ``ValueError``.
        **kwargs: passed to :func:`dask.dataframe.read_parquet`.
    """
    paths = _existing_paths(path, reader="read_parquet")
    _check_parquet_files(paths)
    try:
        frame = dd.read_parquet(paths if len(paths) > 1 else paths[0], **kwargs)
    except ValueError as error:  # pyarrow's ArrowInvalid, re-raised by dask with a note in front
        raise ValueError(f"read_parquet: cannot read {_show(path)}: {error.__cause__ or error}") from error
    return _select_columns(frame, columns, source=path)


def read_csv(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    columns: str | Sequence[str] | None = None,
    **kwargs: Any,
) -> dd.DataFrame:
    """Read CSV files (a file, a glob, or any fsspec URL) lazily.

    Args:
        path: where the data lies.
        columns: the columns to keep (all by default); unknown names raise ``ValueError``.
        **kwargs: passed to :func:`dask.dataframe.read_csv` (and on to pandas).
    """
    paths = _existing_paths(path, reader="read_csv")
    try:
        frame = dd.read_csv(paths, **kwargs)
    except pd.errors.EmptyDataError as error:
        raise ValueError(f"read_csv: {_show(path)} holds no data ({error})") from error
    except (UnicodeDecodeError, pd.errors.ParserError) as error:
        raise ValueError(
            f"read_csv: {_show(path)} cannot be read as CSV ({type(error).__name__}: {error}); "
            "check the file, or pass encoding=, sep=, ... for its format"
        ) from error
    return _select_columns(frame, columns, source=path)


def from_pandas(frame: pd.DataFrame, npartitions: int | None = None) -> dd.DataFrame:
    """Split a pandas DataFrame into a Dask DataFrame, keeping its row order and dtypes.

    Args:
        frame: the data; must have at least one row.
        npartitions: number of partitions (default: one per worker core, and no partition
            above 64 MiB).
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"from_pandas expects a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise ValueError("from_pandas: the DataFrame has no rows")
    if npartitions is None:
        npartitions = _default_partitions(len(frame), int(frame.memory_usage(deep=False).sum()))
    # dask would turn object columns into text, destroying array-valued columns (one array per row)
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_pandas(frame, npartitions=npartitions, sort=False)


def from_numpy(array: np.ndarray, rows_per_chunk: int | None = None) -> da.Array:
    """Wrap a numpy array as a Dask array chunked along its first axis only.

    Args:
        array: at least 1-D with at least one row.
        rows_per_chunk: rows in each chunk (default: one chunk per worker core, and no chunk
            above 64 MiB). Samples are never split across chunks.
    """
    array = np.asarray(array)
    if array.ndim == 0:
        raise ValueError("from_numpy: expected an array with at least one dimension, got a scalar")
    if array.shape[0] == 0:
        raise ValueError(f"from_numpy: the array has no rows (shape {array.shape})")
    if rows_per_chunk is None:
        rows_per_chunk = math.ceil(array.shape[0] / _default_partitions(array.shape[0], array.nbytes))
    elif isinstance(rows_per_chunk, bool) or not isinstance(rows_per_chunk, int) or rows_per_chunk < 1:
        raise ValueError(f"rows_per_chunk must be a positive integer, got {rows_per_chunk!r}")
    return da.from_array(array, chunks=(rows_per_chunk,) + array.shape[1:])


def _default_partitions(rows: int, nbytes: int) -> int:
    """One partition per worker core, more if a partition would exceed the target size."""
    from dask.system import CPU_COUNT

    from workbench.context import current

    context = current()
    cores = sum(w.cores for w in context.workers) if context is not None else CPU_COUNT
    by_size = math.ceil(nbytes / _TARGET_CHUNK_BYTES)
    return max(1, min(rows, max(cores, by_size)))


def _existing_paths(path: Any, reader: str) -> list[str]:
    """Expand globs and check that every path exists, on any fsspec filesystem."""
    import fsspec

    given = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not given:
        raise ValueError(f"{reader}: no path given")
    found: list[str] = []
    for item in given:
        text = os.fspath(item)
        filesystem, _, matches = fsspec.core.get_fs_token_paths(text)
        existing = [m for m in matches if filesystem.exists(m)]
        if not existing:
            raise MissingPathError(f"{reader}: no such file or directory: {text!r}")
        protocol = filesystem.protocol if isinstance(filesystem.protocol, str) else filesystem.protocol[0]
        found.extend(m if protocol == "file" else f"{protocol}://{m}" for m in existing)
    return found


def _check_parquet_files(paths: list[str]) -> None:
    """Refuse a local file that is not Parquet (damaged, cut short, another format), naming it.

    A Parquet file starts and ends with a magic number; without this check a bad file in a
    directory fails later, in a task, with an error that does not say which file. Files on
    remote filesystems are left to the reading tasks (a check costs a request per file there).
    """
    for path in paths:
        if "://" in path:
            continue
        for file in [path] if os.path.isfile(path) else _dataset_files(path):
            size = os.path.getsize(file)
            with open(file, "rb") as handle:
                head = handle.read(4)
                handle.seek(max(0, size - 4))
                tail = handle.read(4)
            if size < 12 or head not in _PARQUET_MAGIC or tail not in _PARQUET_MAGIC:
                raise ValueError(
                    f"read_parquet: {file} is not a Parquet file ({size} bytes without Parquet's "
                    "header and footer: damaged, cut short, or another format)"
                )


def _dataset_files(directory: str) -> list[str]:
    """The files of a Parquet dataset directory, skipping names that start with '.' or '_' as pyarrow does."""
    found = []
    for root, folders, files in os.walk(directory):
        folders[:] = sorted(f for f in folders if not f.startswith((".", "_")))
        found.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith((".", "_")))
    return found


def _select_columns(frame: dd.DataFrame, columns: Any, source: Any) -> dd.DataFrame:
    if columns is None:
        return frame
    wanted = [columns] if isinstance(columns, str) else list(columns)
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ValueError(
            f"column(s) {missing} not found in {_show(source)}; available: {list(frame.columns)}"
        )
    return frame[wanted]


def _show(path: Any) -> str:
    return repr(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else repr(list(path))
