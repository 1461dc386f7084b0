"""Readers: files and in-memory data to Dask collections, with clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench.data import MissingPathError


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=90), "b": rng.integers(0, 9, size=90), "y": rng.random(90) > 0.5})


def test_read_csv_glob_reads_every_file(tmp_path, table, context):
    for i in range(3):
        table.iloc[i * 30 : (i + 1) * 30].to_csv(tmp_path / f"part-{i}.csv", index=False)
    frame = wb.data.read_csv(str(tmp_path / "part-*.csv"))
    assert frame.npartitions == 3
    pd.testing.assert_frame_equal(frame.compute().reset_index(drop=True), table, check_dtype=False)


def test_read_parquet_directory_and_column_selection(tmp_path, table, context):
    table.to_parquet(tmp_path / "data.parquet")
    frame = wb.data.read_parquet(tmp_path, columns=["a", "y"])
    assert list(frame.columns) == ["a", "y"]
    np.testing.assert_allclose(frame["a"].compute().to_numpy(), table["a"].to_numpy())


def test_unknown_columns_are_named(tmp_path, table):
    table.to_parquet(tmp_path / "data.parquet")
    with pytest.raises(ValueError, match=r"column\(s\) \['nope'\] not found.*available: \['a', 'b', 'y'\]"):
        wb.data.read_parquet(tmp_path / "data.parquet", columns=["a", "nope"])
    table.to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(ValueError, match=r"\['z'\] not found"):
        wb.data.read_csv(tmp_path / "data.csv", columns="z")


@pytest.mark.parametrize("reader", [wb.data.read_csv, wb.data.read_parquet])
def test_missing_paths_are_named(tmp_path, reader):
    missing = tmp_path / "absent.file"
    with pytest.raises(MissingPathError, match="absent.file"):
        reader(missing)
    with pytest.raises(ValueError, match=r"no-match-\*"):  # also a ValueError
        reader(str(tmp_path / "no-match-*"))
    with pytest.raises(FileNotFoundError):
        reader([tmp_path / "absent.file"])


def test_empty_csv_is_refused_with_its_path(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.csv.*holds no data"):
        wb.data.read_csv(empty)


def test_from_pandas_keeps_row_order_and_splits_per_core(context):
    frame = pd.DataFrame({"x": np.arange(50.0)}, index=np.random.default_rng(1).permutation(50))
    distributed = wb.data.from_pandas(frame)
    assert distributed.npartitions == sum(w.cores for w in context.workers)
    pd.testing.assert_frame_equal(distributed.compute(), frame)


def test_from_pandas_refuses_bad_input():
    with pytest.raises(ValueError, match="no rows"):
        wb.data.from_pandas(pd.DataFrame({"x": []}))
    with pytest.raises(TypeError, match="pandas DataFrame"):
        wb.data.from_pandas({"x": [1]})


def test_from_numpy_chunks_only_the_sample_axis(context):
    images = np.arange(101 * 4 * 4, dtype=np.float32).reshape(101, 4, 4)
    array = wb.data.from_numpy(images)
    assert array.numblocks == (2, 1, 1)
    assert array.chunks[1:] == ((4,), (4,))
    np.testing.assert_array_equal(array.compute(), images)
    assert wb.data.from_numpy(images, rows_per_chunk=10).numblocks[0] == 11


def test_from_numpy_refuses_bad_input():
    with pytest.raises(ValueError, match="no rows"):
        wb.data.from_numpy(np.empty((0, 3)))
    with pytest.raises(ValueError, match="scalar"):
        wb.data.from_numpy(np.float32(1.0))
    with pytest.raises(ValueError, match="rows_per_chunk must be a positive integer"):
        wb.data.from_numpy(np.ones((4, 2)), rows_per_chunk=0)
