"""Sharding training data across real worker processes."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest

import workbench as wb


def sample_ids(local_shard, batch_size=7, epoch=0):
    """Worker-side: the id (first feature) of every row the shard yields in one epoch."""
    return [int(i) for x, _ in local_shard.batches(batch_size, epoch=epoch) for i in x[:, 0]]


def gather(shards, function, *args, **kwargs):
    return shards.client.gather(shards.map(function, *args, **kwargs))


@pytest.fixture
def table() -> pd.DataFrame:
    n = 101
    rng = np.random.default_rng(0)
    return pd.DataFrame({"id": np.arange(n), "a": rng.normal(size=n), "b": rng.normal(size=n), "y": np.arange(n) % 3})


def test_dataframe_shards_are_balanced_complete_and_on_distinct_workers(context, table):
    frame = wb.data.from_pandas(table, npartitions=3)  # partitions of 34/34/33 rows for 2 workers
    shards = wb.data.shard(frame, feature_cols=["id", "a", "b"], label_cols="y")

    assert shards.num_shards == 2 and shards.n_rows == 101
    assert sorted(shards.rows) == [50, 51]
    assert sorted(shards.workers) == sorted(w.address for w in context.workers)
    per_worker = gather(shards, sample_ids)
    assert sorted(sum(per_worker, [])) == list(range(101)), "every row exactly once"
    ran_on = shards.client.gather(shards.map(lambda s: __import__("distributed").get_worker().address))
    assert ran_on == shards.workers, "each function runs where its shard lives"


def test_batches_carry_labels_and_shapes(context, table):
    shards = wb.data.shard(table, feature_cols=["id", "a", "b"], label_cols=["y"])

    def describe(local_shard):
        batches = list(local_shard.batches(16))
        x, y = batches[0]
        labels_match = all(np.array_equal(xb[:, 0].astype(int) % 3, yb) for xb, yb in batches)
        return x.shape, y.shape, [len(b[0]) for b in batches], labels_match, local_shard.num_batches(16)

    for x_shape, y_shape, sizes, labels_match, steps in gather(shards, describe):
        assert x_shape == (16, 3) and y_shape == (16,)
        assert labels_match and len(sizes) == steps and sum(sizes) in (50, 51) and sizes[-1] < 16


def test_shuffling_is_seeded_and_changes_per_epoch(context, table):
    shards = wb.data.shard(table, feature_cols=["id", "a"], label_cols="y")
    first, again, next_epoch = (gather(shards, sample_ids, epoch=e) for e in (0, 0, 1))
    assert first == again
    assert first != next_epoch
    assert [sorted(ids) for ids in first] == [sorted(ids) for ids in next_epoch]

    def unshuffled_and_dropped(local_shard):
        kept = [len(x) for x, _ in local_shard.batches(8, shuffle=False, drop_last=True)]
        ordered = [int(v) for x, _ in local_shard.batches(8, shuffle=False) for v in x[:, 0]]
        return kept, ordered == sorted(ordered), local_shard.num_batches(8, drop_last=True)

    for kept, ordered, steps in gather(shards, unshuffled_and_dropped):
        assert ordered and set(kept) == {8} and len(kept) == steps


def test_same_rows_land_in_the_same_shard_on_every_run(context, table):
    first = gather(wb.data.shard(table, feature_cols=["id"], label_cols="y"), sample_ids)
    second = gather(wb.data.shard(wb.data.from_pandas(table, npartitions=5), feature_cols=["id"], label_cols="y"), sample_ids)
    assert [sorted(ids) for ids in first] == [sorted(ids) for ids in second]


def test_array_valued_column_keeps_its_per_row_shape(context):
    images = np.random.default_rng(2).random((20, 4, 4)).astype(np.float32)
    table = pd.DataFrame({"image": list(images), "label": np.arange(20) % 2})
    shards = wb.data.shard(table, feature_cols="image", label_cols="label")
    shapes = gather(shards, lambda s: (s.features.shape, s.features.dtype.name))
    assert shapes == [((10, 4, 4), "float32")] * 2


def test_parquet_list_column_and_mixed_features(context, tmp_path):
    table = pd.DataFrame({"vec": [[float(i), i + 0.5] for i in range(12)], "s": np.arange(12.0), "y": np.arange(12)})
    table.to_parquet(tmp_path / "t.parquet")
    frame = wb.data.read_parquet(tmp_path / "t.parquet")
    shards = wb.data.shard(frame, feature_cols=["vec", "s"], label_cols="y")
    rows = np.concatenate(gather(shards, lambda s: s.features))
    expected = np.column_stack([np.arange(12.0), np.arange(12.0) + 0.5, np.arange(12.0)])
    np.testing.assert_array_equal(rows[np.argsort(rows[:, 2])], expected)


@pytest.mark.parametrize("kind", ["dask", "numpy"])
def test_array_pair_with_unaligned_chunks(context, kind):
    x = np.arange(60, dtype=np.float64).reshape(30, 2)
    y = np.arange(30)
    if kind == "dask":
        x, y = da.from_array(x, chunks=(7, 1)), da.from_array(y, chunks=11)
    shards = wb.data.shard((x, y))
    pairs = gather(shards, lambda s: [(int(a[0]) // 2, int(b)) for a, b in zip(s.features, s.labels)])
    rows = sum(pairs, [])
    assert sorted(rows) == [(i, i) for i in range(30)], "features stay paired with their labels"


def test_unlabelled_array(context):
    shards = wb.data.shard(np.ones((10, 3)))
    assert gather(shards, lambda s: [y for _, y in s.batches(4)]) == [[None, None]] * 2


@pytest.mark.parametrize(
    "make_frame, kwargs, error, message",
    [
        (lambda t: t, {"feature_cols": ["a", "missing"]}, ValueError, r"feature column\(s\) \['missing'\] not found"),
        (lambda t: t, {"label_cols": "target"}, ValueError, r"label column\(s\) \['target'\] not found"),
        (lambda t: t.assign(s=t["id"].astype(str)), {"feature_cols": ["a", "s"]}, TypeError, "feature column 's' has dtype .*not numeric"),
        (lambda t: t.assign(c=pd.Categorical(t["y"])), {"feature_cols": ["c"]}, TypeError, "feature column 'c'"),
        (lambda t: t.assign(a=t["a"].where(t["id"] != 57)), {"feature_cols": ["a"], "label_cols": "y"}, ValueError, r"feature column 'a' has NaN \(1 row\(s\) in one partition, first at index 57\)"),
        (lambda t: t.assign(y=t["a"].where(t["id"] % 10 != 3)), {"feature_cols": ["a"], "label_cols": "y"}, ValueError, r"label column 'y' has NaN \(\d+ row\(s\) in one partition, first at index 3\)"),
        (lambda t: t.assign(n=pd.array([1] * 100 + [None], dtype="Int64")), {"feature_cols": ["n"]}, ValueError, "feature column 'n' has NaN"),
        (lambda t: t.assign(o=[np.ones(2)] * 100 + [np.ones(3)]), {"feature_cols": ["o"]}, ValueError, "feature column 'o' holds arrays of different shapes"),
        (lambda t: t.assign(o=[np.ones(2)] * 100 + ["text"]), {"feature_cols": ["o"]}, TypeError, "feature column 'o' holds str values"),
        (lambda t: t, {"feature_cols": ["a", "y"], "label_cols": "y"}, ValueError, r"\['y'\] are given both as features and as labels"),
        (lambda t: t.iloc[:1], {"label_cols": "y"}, ValueError, "only 1 rows for 2 workers"),
        (lambda t: t[["y"]], {"label_cols": "y"}, ValueError, "no feature columns"),
    ],
)
def test_bad_tables_get_errors_naming_the_problem(context, table, make_frame, kwargs, error, message):
    with pytest.raises(error, match=message):
        wb.data.shard(make_frame(table), **kwargs)


def test_nan_is_kept_when_allowed(context, table):
    shards = wb.data.shard(table.assign(a=np.nan), feature_cols=["a"], label_cols="y", allow_nan=True)
    assert np.isnan(np.concatenate(gather(shards, lambda s: s.features))).all()


@pytest.mark.parametrize(
    "data, error, message",
    [
        ((np.ones((10, 2)), np.ones(9)), ValueError, "X has 10 rows but y has 9"),
        ((np.array([["a", "b"]] * 4), np.ones(4)), TypeError, "X has dtype <U1, which is not numeric"),
        ((np.ones((4, 2)), np.array([1.0, np.nan, 2, 3])), ValueError, r"y has NaN \(1 row\(s\)"),
        ((np.ones(3),), ValueError, r"expected \(X, y\)"),
        ({"x": [1, 2]}, TypeError, "cannot shard dict"),
        ((np.ones((0, 2)), np.ones(0)), ValueError, "no rows"),
    ],
)
def test_bad_arrays_get_errors_naming_the_problem(context, data, error, message):
    with pytest.raises(error, match=message):
        wb.data.shard(data)


def test_batch_size_is_checked(context, table):
    shards = wb.data.shard(table, feature_cols=["a"], label_cols="y")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        gather(shards, lambda s: list(s.batches(0)))
