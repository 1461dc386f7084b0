"""TSDataset through its public API: hand-computed results on tiny frames, scikit-learn as the
reference for scaling, local against distributed, and a forecasting model trained end to end."""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

import workbench as wb
from workbench.feature import TSDataset


def hours(*offsets: float, start: str = "2024-01-01") -> list[pd.Timestamp]:
    return [pd.Timestamp(start) + pd.Timedelta(hours=h) for h in offsets]


def frame(rows: list[tuple]) -> pd.DataFrame:
    """A long table from (id, hour offset, y, f) rows."""
    ids, offsets, targets, features = zip(*rows)
    return pd.DataFrame({"id": ids, "time": hours(*offsets), "y": targets, "f": features})


def by_series(dataset: TSDataset, column: str) -> dict[str, list[float]]:
    table = dataset.to_pandas()
    return {key: group[column].tolist() for key, group in table.groupby("id")}


@pytest.fixture
def two_series() -> TSDataset:
    """Series a: y 1..6, f 10..60; series b: y 101..105, f -1..-5; hourly; rows shuffled."""
    rows = [("a", h, h + 1.0, 10.0 * (h + 1)) for h in range(6)] + [("b", h, 101.0 + h, -1.0 - h) for h in range(5)]
    table = frame(rows).sample(frac=1, random_state=3)
    return TSDataset.from_pandas(table, "time", "y", id_col="id", extra_feature_col="f")


# -- creation ---------------------------------------------------------------------------------------


def test_creation_sorts_by_series_and_time_and_keeps_the_named_columns():
    table = pd.DataFrame({
        "note": ["x", "y", "z", "w"],
        "when": ["2024-01-01 02:00", "2024-01-01 00:00", "2024-01-01 01:00", "2023-12-31 23:00"],
        "station": ["s2", "s1", "s1", "s2"],
        "load": [3, 1, 2, 4],
    })
    dataset = TSDataset.from_dataframe(table, "when", "load", id_col="station")
    result = dataset.to_pandas()
    # out-of-order timestamps are sorted (documented), not refused; text times are parsed
    assert list(result.columns) == ["station", "when", "load"]
    assert result["station"].tolist() == ["s1", "s1", "s2", "s2"]
    assert result["when"].tolist() == [pd.Timestamp("2024-01-01 00:00"), pd.Timestamp("2024-01-01 01:00"),
                                       pd.Timestamp("2023-12-31 23:00"), pd.Timestamp("2024-01-01 02:00")]
    assert result["load"].tolist() == [1.0, 2.0, 4.0, 3.0]
    assert result["when"].dtype == "datetime64[ns]" and result["load"].dtype == "float64"
    assert len(dataset) == 4
    assert dataset.target_col == ["load"] and dataset.feature_col == [] and dataset.get_feature_list() == []
    assert list(table["note"]) == ["x", "y", "z", "w"], "the input frame is left alone"


def test_a_single_series_needs_no_id(two_series):
    table = two_series.to_pandas()
    single = TSDataset.from_pandas(table[table["id"] == "a"].drop(columns="id"), "time", ["y", "f"])
    assert single.id_col is None and single.target_col == ["y", "f"]
    x, y = single.roll(lookback=5, horizon=1)
    np.testing.assert_array_equal(x[0], [[1, 10], [2, 20], [3, 30], [4, 40], [5, 50]])
    np.testing.assert_array_equal(y[0], [[6, 60]])
    assert single.roll_index(5, 1)["time"].tolist() == hours(5)


@pytest.mark.parametrize(("change", "arguments", "error", "message"), [
    (None, {"target_col": "temp"}, ValueError, r"\['temp'\] not found; the frame has \['id', 'time', 'y', 'f'\]"),
    (None, {"extra_feature_col": ["f", "g"], "id_col": "station"}, ValueError, r"\['g', 'station'\] not found"),
    (None, {"target_col": ["y", "f"], "extra_feature_col": "f"}, ValueError, r"\['f'\] given more than one role"),
    (None, {"target_col": []}, ValueError, "target_col names no column"),
    (None, {"dt_col": "f", "extra_feature_col": None}, ValueError, "dt_col 'f' holds float64 values, not timestamps"),
    ({"time": ["2024-01-01", "soon", "2024-01-03"]}, {}, ValueError,
     "dt_col 'time' holds values that are not timestamps"),
    ({"y": ["low", "high", "low"]}, {}, ValueError, "target column 'y' holds .* values; .* must be numeric"),
    ({"f": [True, False, True]}, {}, ValueError, "extra feature column 'f' holds bool values"),
    ({"time": [pd.Timestamp("2024-01-01"), pd.NaT, pd.Timestamp("2024-01-03")]}, {}, ValueError,
     "dt_col 'time' has 1 missing timestamp"),
    ({"id": ["a", None, "a"]}, {}, ValueError, "id_col 'id' has 1 missing id"),
    (None, {"with_split": True, "val_ratio": 0.5, "test_ratio": 0.5}, ValueError,
     "val_ratio \\+ test_ratio must be below 1"),
    (None, {"with_split": True, "test_ratio": -0.1}, ValueError, r"test_ratio must be a number in \[0, 1\), got -0.1"),
])
def test_bad_input_names_the_problem(change, arguments, error, message):
    table = frame([("a", 0, 1.0, 2.0), ("a", 1, 2.0, 3.0), ("a", 2, 3.0, 4.0)])
    if change:
        table = table.assign(**change)
    options = {"dt_col": "time", "target_col": "y", "id_col": "id", "extra_feature_col": "f", **arguments}
    with pytest.raises(error, match=message):
        TSDataset.from_pandas(table, **options)


def test_creation_refuses_what_is_not_a_dataframe():
    with pytest.raises(TypeError, match="pandas or dask DataFrame, got ndarray"):
        TSDataset.from_dataframe(np.zeros((3, 2)), "time", "y")


# -- cleaning ---------------------------------------------------------------------------------------


@pytest.fixture
def holes() -> TSDataset:
    """Series a at hours 0, 1, 3, 4 (uneven) and b at hours 0..3, with NaN at the ends and inside."""
    nan = np.nan
    rows = [("a", 0, 0.0, nan), ("a", 1, nan, 1.0), ("a", 3, 30.0, nan), ("a", 4, nan, 4.0),
            ("b", 0, nan, 7.0), ("b", 1, 5.0, nan), ("b", 2, nan, nan), ("b", 3, 9.0, 8.0)]
    return TSDataset.from_pandas(frame(rows), "time", "y", id_col="id", extra_feature_col="f")


def test_impute_last_fills_forward_then_the_leading_gap_backward_within_each_series(holes):
    imputed = holes.impute("last")
    # b's leading NaN takes b's first value (5), never a's last one
    assert by_series(imputed, "y") == {"a": [0, 0, 30, 30], "b": [5, 5, 5, 9]}
    assert by_series(imputed, "f") == {"a": [1, 1, 1, 4], "b": [7, 7, 7, 8]}
    assert by_series(holes, "y")["a"][1] != by_series(holes, "y")["a"][1], "the original set is unchanged"


def test_impute_const_and_linear(holes):
    assert by_series(holes.impute("const", const_num=-1), "y") == {"a": [0, -1, 30, -1], "b": [-1, 5, -1, 9]}
    linear = holes.impute("linear")
    # a at hour 1 lies a third of the way (in time) from hour 0 to hour 3; ends take the nearest value
    assert by_series(linear, "y") == {"a": [0, 10, 30, 30], "b": [5, 5, 7, 9]}
    assert by_series(linear, "f") == {"a": [1, 1, 3, 4], "b": pytest.approx([7, 7 + 1 / 3, 7 + 2 / 3, 8])}


def test_impute_refuses_a_series_without_any_value(holes):
    table = holes.to_pandas()
    table.loc[table["id"] == "b", "f"] = np.nan
    empty_b = TSDataset.from_pandas(table, "time", "y", id_col="id", extra_feature_col="f")
    for mode in ("last", "linear"):
        with pytest.raises(ValueError, match=f"column 'f' has no value in series 'b', so mode='{mode}'.*mode='const'"):
            empty_b.impute(mode)
    assert by_series(empty_b.impute("const"), "f")["b"] == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="mode must be one of \\['last', 'const', 'linear'\\], got 'mean'"):
        holes.impute("mean")


def test_deduplicate_removes_exact_copies_and_roll_names_the_remaining_duplicate_time():
    rows = [("a", 0, 1.0, 0.0), ("a", 1, 2.0, 0.0), ("a", 1, 2.0, 0.0), ("a", 2, 3.0, 0.0),
            ("b", 0, 5.0, 0.0), ("b", 1, 6.0, 0.0), ("b", 1, 7.0, 0.0), ("b", 2, 8.0, 0.0)]
    dataset = TSDataset.from_pandas(frame(rows), "time", "y", id_col="id", extra_feature_col="f")
    deduplicated = dataset.deduplicate()
    assert len(deduplicated) == 7
    assert by_series(deduplicated, "y") == {"a": [1, 2, 3], "b": [5, 6, 7, 8]}
    with pytest.raises(ValueError, match=r"share one timestamp in series 'b' at 2024-01-01 01:00:00; .*"
                                         r"deduplicate\(\).*resample\(\)"):
        deduplicated.roll(1, 1)
    with pytest.raises(ValueError, match="series 'b' has several rows at 2024-01-01 01:00:00"):
        deduplicated.impute("linear")
    assert by_series(deduplicated.resample("1h"), "y") == {"a": [1, 2, 3], "b": [5, 6.5, 8]}


def test_resample_merges_each_slot_and_leaves_empty_slots_nan():
    # a: 10:30, 10:45, 11:15, 13:00 -> slots 10:00 (mean of 2), 11:00, 12:00 (empty), 13:00
    times = ["2024-01-01 10:30", "2024-01-01 10:45", "2024-01-01 11:15", "2024-01-01 13:00",
             "2024-01-01 10:00", "2024-01-01 11:59"]
    table = pd.DataFrame({"id": ["a"] * 4 + ["b"] * 2, "time": times,
                          "y": [1.0, 3.0, 5.0, 7.0, 10.0, 20.0], "f": [1.0, 1.0, 1.0, 1.0, 2.0, np.nan]})
    dataset = TSDataset.from_pandas(table, "time", "y", id_col="id", extra_feature_col="f")
    hourly = dataset.resample("1h")
    assert by_series(hourly, "time") == {"a": hours(10, 11, 12, 13), "b": hours(10, 11)}
    np.testing.assert_array_equal(by_series(hourly, "y")["a"], [2, 5, np.nan, 7])
    np.testing.assert_array_equal(by_series(hourly, "f")["b"], [2, np.nan])
    summed = dataset.resample("1h", merge_mode="sum")
    np.testing.assert_array_equal(by_series(summed, "y")["a"], [4, 5, np.nan, 7])  # empty slot: NaN, not 0
    np.testing.assert_array_equal(by_series(summed, "f")["b"], [2, np.nan])
    assert by_series(dataset.resample("2h", merge_mode="max"), "y") == {"a": [5, 7], "b": [20]}


def test_resample_start_and_end_extend_the_grid_and_report_cropped_rows():
    table = frame([("a", 1, 1.0, 0.0), ("a", 2, 2.0, 0.0), ("b", 0, 3.0, 0.0), ("b", 2, 5.0, 0.0), ("b", 4, 4.0, 0.0)])
    dataset = TSDataset.from_pandas(table, "time", "y", id_col="id", extra_feature_col="f")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extended = dataset.resample("1h", start_time="2024-01-01 00:00", end_time="2024-01-01 04:00")
    np.testing.assert_array_equal(by_series(extended, "y")["a"], [np.nan, 1, 2, np.nan, np.nan])
    np.testing.assert_array_equal(by_series(extended, "y")["b"], [3, np.nan, 5, np.nan, 4])
    assert by_series(extended, "time")["b"] == hours(0, 1, 2, 3, 4)
    with pytest.warns(UserWarning, match=r"3 row\(s\) outside .* dropped \(series 'a': 1, series 'b': 2\)"):
        cropped = dataset.resample("1h", start_time="2024-01-01 01:30", end_time="2024-01-01 03:30")
    # slots are aligned on start_time and run up to end_time, included
    assert by_series(cropped, "time") == {"a": hours(1.5, 2.5, 3.5), "b": hours(1.5, 2.5, 3.5)}
    np.testing.assert_array_equal(by_series(cropped, "y")["a"], [2, np.nan, np.nan])
    np.testing.assert_array_equal(by_series(cropped, "y")["b"], [5, np.nan, np.nan])
    with pytest.raises(ValueError, match="no row of series 'a' lies between"):
        dataset.resample("1h", start_time="2024-01-01 03:00")
    with pytest.raises(ValueError, match="'MS' is not a fixed positive duration"):
        dataset.resample("MS")
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        dataset.resample("1h", merge_mode="median")


def test_gen_dt_feature_for_known_dates():
    times = ["2024-03-09 13:45", "2023-01-01 00:05", "2024-12-30 23:59"]  # a Saturday, a Sunday, a Monday
    table = pd.DataFrame({"time": times, "y": [1.0, 2.0, 3.0]})
    dataset = TSDataset.from_pandas(table, "time", "y").gen_dt_feature()
    expected = pd.DataFrame({
        "MINUTE": [5, 45, 59], "HOUR": [0, 13, 23], "DAY": [1, 9, 30], "WEEKDAY": [6, 5, 0],
        "WEEKOFYEAR": [52, 10, 1],  # ISO weeks: 2023-01-01 is in 2022's week 52, 2024-12-30 in 2025's week 1
        "DAYOFYEAR": [1, 69, 365], "MONTH": [1, 3, 12], "YEAR": [2023, 2024, 2024], "IS_WEEKEND": [1, 1, 0],
    }, dtype="float64")
    pd.testing.assert_frame_equal(dataset.to_pandas()[list(expected.columns)], expected)
    assert dataset.feature_col == list(expected.columns)
    some = TSDataset.from_pandas(table, "time", "y").gen_dt_feature(["HOUR", "IS_WEEKEND"])
    assert some.feature_col == ["HOUR", "IS_WEEKEND"] and some.to_pandas()["HOUR"].tolist() == [0, 13, 23]
    with pytest.raises(ValueError, match=r"unknown feature\(s\) \['HOURS'\]; choose from \['MINUTE'"):
        some.gen_dt_feature("HOURS")
    with pytest.raises(ValueError, match=r"already has column\(s\) \['HOUR'\]"):
        some.gen_dt_feature("HOUR")


# -- windows and splits -------------------------------------------------------------------------------


def test_roll_cuts_exact_windows_per_series(two_series):
    x, y = two_series.roll(lookback=2, horizon=2)
    # a (6 rows) gives 6 - 2 - 2 + 1 = 3 windows, b (5 rows) 2; none spans both series
    expected_x = [[[1, 10], [2, 20]], [[2, 20], [3, 30]], [[3, 30], [4, 40]],
                  [[101, -1], [102, -2]], [[102, -2], [103, -3]]]
    expected_y = [[[3], [4]], [[4], [5]], [[5], [6]], [[103], [104]], [[104], [105]]]
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_array_equal(x, expected_x)
    np.testing.assert_array_equal(y, expected_y)
    index = two_series.roll_index(2, 2)
    assert index["id"].tolist() == ["a", "a", "a", "b", "b"]
    assert index["time"].tolist() == hours(2, 3, 4, 2, 3)  # the time of each window's first forecast


def test_roll_with_a_horizon_list_and_column_subsets(two_series):
    x, y = two_series.roll(lookback=1, horizon=[2, 4], feature_col=[])
    # a: 6 - 1 - 4 + 1 = 2 windows, b: 1; y holds steps 2 and 4 after the last input row
    np.testing.assert_array_equal(x, [[[1]], [[2]], [[101]]])
    np.testing.assert_array_equal(y, [[[3], [5]], [[4], [6]], [[103], [105]]])
    assert two_series.roll_index(1, [2, 4])["time"].tolist() == hours(2, 3, 2)
    table = two_series.to_pandas()
    both = TSDataset.from_pandas(table, "time", ["f", "y"], id_col="id")
    x, y = both.roll(lookback=4, horizon=1, target_col=["y", "f"])
    np.testing.assert_array_equal(x[-1], [[101, -1], [102, -2], [103, -3], [104, -4]])  # the given target order
    np.testing.assert_array_equal(y[-1], [[105, -5]])
    with pytest.raises(ValueError, match=r"horizon must be a positive integer or a list of increasing"):
        two_series.roll(1, [3, 2])
    with pytest.raises(ValueError, match="lookback must be a positive integer, got 0"):
        two_series.roll(0, 1)
    with pytest.raises(ValueError, match=r"feature_col \['g'\] not in this set's feature_col \['f'\]"):
        two_series.roll(1, 1, feature_col="g")


def test_roll_refuses_nan_and_series_too_short(two_series, holes):
    with pytest.raises(ValueError, match=r"NaN values left in column 'y' of series 'a', column 'f' of series 'a', "
                                         r".*impute\(\)"):
        holes.roll(1, 1)
    holes.impute("last").roll(1, 1, feature_col=[])  # imputed: accepted
    with pytest.raises(ValueError, match=r"lookback 5 \+ horizon 1 needs 6 rows per series; series 'b' has 5$"):
        two_series.roll(5, 1)
    with pytest.raises(ValueError, match="needs 9 rows per series; series 'a' has 6, series 'b' has 5"):
        two_series.roll(8, 1)


def test_with_split_cuts_each_series_by_time(two_series):
    table = pd.concat([two_series.to_pandas(), frame([("c", h, float(h), 0.0) for h in range(20)])])
    train, val, test = TSDataset.from_pandas(table, "time", "y", id_col="id", extra_feature_col="f",
                                             with_split=True, val_ratio=0.2, test_ratio=0.1)
    # of n rows: int(0.1 n) test rows at the end, int(0.2 n) validation rows before them
    sizes = {name: part.to_pandas().groupby("id").size().to_dict() for name, part in
             (("train", train), ("val", val), ("test", test))}
    assert sizes == {"train": {"a": 5, "b": 4, "c": 14}, "val": {"a": 1, "b": 1, "c": 4}, "test": {"c": 2}}
    assert by_series(val, "y")["c"] == [14, 15, 16, 17] and by_series(test, "y")["c"] == [18, 19]
    assert train.feature_col == ["f"] and test.target_col == ["y"]
    no_val = TSDataset.from_pandas(table, "time", "y", id_col="id", with_split=True)[1]
    assert len(no_val) == 0


# -- scaling ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make_scaler", [StandardScaler, MinMaxScaler])
def test_scale_and_unscale_match_scikit_learn(make_scaler):
    rng = np.random.default_rng(0)
    rows = [(key, h, rng.normal(5, 3), rng.uniform(0, 100)) for key in "abc" for h in range(12)]
    train, _, test = TSDataset.from_pandas(frame(rows), "time", "y", id_col="id", extra_feature_col="f",
                                           with_split=True, test_ratio=0.25)
    train_table, test_table = train.to_pandas(), test.to_pandas()
    scaler = make_scaler()
    scaled_train = train.scale(scaler)
    reference = make_scaler().fit(train_table[["y", "f"]])
    np.testing.assert_allclose(scaled_train.to_pandas()[["y", "f"]], reference.transform(train_table[["y", "f"]]))
    scaled_test = test.scale(scaler, fit=False)  # the scaler fitted on train, in place
    np.testing.assert_allclose(scaled_test.to_pandas()[["y", "f"]], reference.transform(test_table[["y", "f"]]))
    np.testing.assert_allclose(scaled_test.unscale().to_pandas()[["y", "f"]], test_table[["y", "f"]])
    assert scaled_test.unscale().scaler_ is None

    _, scaled_y = scaled_test.roll(lookback=1, horizon=2)
    _, raw_y = test.roll(lookback=1, horizon=2)
    np.testing.assert_allclose(scaled_test.unscale_numpy(scaled_y), raw_y, rtol=1e-5)

    two_targets = TSDataset.from_pandas(frame(rows), "time", ["y", "f"], id_col="id").scale(make_scaler())
    _, scaled_f = two_targets.roll(lookback=2, horizon=1, target_col="f")
    _, raw_f = TSDataset.from_pandas(frame(rows), "time", ["y", "f"], id_col="id").roll(2, 1, target_col="f")
    np.testing.assert_allclose(two_targets.unscale_numpy(scaled_f, target_col="f"), raw_f, rtol=1e-5)

    scaler.fit(pd.DataFrame({"y": [0.0, 1.0], "f": [0.0, 1.0]}))  # a later refit of the caller's scaler...
    np.testing.assert_allclose(scaled_test.unscale_numpy(scaled_y), raw_y, rtol=1e-5)  # ...leaves the set alone


def test_scale_refuses_what_it_cannot_apply(two_series):
    with pytest.raises(NotFittedError):
        two_series.scale(StandardScaler(), fit=False)
    other = StandardScaler().fit(pd.DataFrame({"y": [1.0, 2.0], "g": [3.0, 4.0]}))
    with pytest.raises(ValueError, match=r"fitted on columns \['y', 'g'\], this set scales \['y', 'f'\]"):
        two_series.scale(other, fit=False)
    scaled = two_series.scale(StandardScaler())
    with pytest.raises(ValueError, match=r"already scaled; call unscale\(\) first"):
        scaled.scale(StandardScaler())
    with pytest.raises(ValueError, match=r"not scaled \(call scale\(\) first\)"):
        two_series.unscale_numpy(np.zeros((2, 1, 1)))
    with pytest.raises(ValueError, match=r"last axis of y must hold the 1 target\(s\) \['y'\], got shape \(2, 1, 2\)"):
        scaled.unscale_numpy(np.zeros((2, 1, 2)))
    with pytest.raises(TypeError, match="expected a scikit-learn scaler, got str"):
        two_series.scale("standard")


# -- local and distributed ----------------------------------------------------------------------------------


def interleaved_series(seed: int = 0) -> pd.DataFrame:
    """Four hourly series of different lengths with holes, an exact duplicate row and a half-hour
    row, their rows shuffled so that every partition of a dask frame holds pieces of each."""
    rng = np.random.default_rng(seed)
    rows = [(key, h + (0.5 if h == 7 else 0), rng.normal(10 * k, 1 + k), rng.uniform(0, 5))
            for k, key in enumerate(["north", "south", "east", "west"]) for h in range(30 + 4 * k)]
    table = frame(rows)
    table.loc[rng.choice(len(table), 15, replace=False), "y"] = np.nan
    table.loc[rng.choice(len(table), 10, replace=False), "f"] = np.nan
    table = pd.concat([table, table.iloc[[5]]])
    return table.sample(frac=1, random_state=seed).reset_index(drop=True)


def windows_in_time_order(dataset: TSDataset, lookback: int, horizon) -> tuple[np.ndarray, np.ndarray]:
    """roll's windows, computed, ordered by (series, first forecast time) through roll_index."""
    x, y = dataset.roll(lookback, horizon)
    index = dataset.roll_index(lookback, horizon)
    order = np.lexsort((index["time"].to_numpy(), index["id"].to_numpy()))
    return np.asarray(x)[order], np.asarray(y)[order]


def test_local_and_distributed_give_the_same_results(context):
    table = interleaved_series()
    results = {}
    for kind, data in (("local", table), ("distributed", wb.data.from_pandas(table, npartitions=3))):
        train, _, test = TSDataset.from_dataframe(data, "time", "y", id_col="id", extra_feature_col="f",
                                                  with_split=True, test_ratio=0.25)
        steps = [lambda d: d.deduplicate(), lambda d: d.resample("1h"), lambda d: d.impute("linear"),
                 lambda d: d.gen_dt_feature(["HOUR", "WEEKDAY"])]
        for step in steps:
            train, test = step(train), step(test)
        standard, robust = StandardScaler(), RobustScaler()
        scaled_train = train.scale(standard)
        scaled_test = test.scale(standard, fit=False)
        x, y = scaled_train.roll(3, [1, 2])
        assert isinstance(x, da.Array if kind == "distributed" else np.ndarray)
        if kind == "distributed":
            assert all(part["id"].nunique() == 4 for part in dask.compute(*data.to_delayed())), "series interleaved"
            assert not any(np.isnan(rows) for rows in x.chunks[0]) and sum(x.chunks[0]) == x.shape[0] == y.shape[0]
        results[kind] = {
            "train": scaled_train.to_pandas(), "test": scaled_test.to_pandas(),
            "scaler": (standard.mean_, standard.scale_), "robust": train.scale(robust).scaler_.center_,
            "windows": windows_in_time_order(scaled_train, 3, [1, 2]),
            "test windows": windows_in_time_order(scaled_test, 2, 1),
        }
    local, distributed = results["local"], results["distributed"]
    # training rows: n - int(0.25 n) of 31 (a duplicate, later removed), 34, 38 and 42 rows
    assert local["train"].groupby("id").size().to_dict() == {"north": 23, "south": 26, "east": 29, "west": 32}
    for name in ("train", "test"):
        pd.testing.assert_frame_equal(distributed[name], local[name], check_exact=False, rtol=1e-9)
    for name in ("scaler", "windows", "test windows"):
        for got, expected in zip(distributed[name], local[name]):
            np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(distributed["robust"], local["robust"])


def test_distributed_errors_name_the_problem(context):
    table = interleaved_series().drop_duplicates().astype({"time": str})
    table.loc[3, "time"] = "yesterday"
    dataset = TSDataset.from_dataframe(wb.data.from_pandas(table, npartitions=2), "time", "y", id_col="id")
    with pytest.raises(ValueError, match="dt_col 'time' holds values that are not timestamps"):
        dataset.to_pandas()
    numbers = wb.data.from_pandas(table.assign(time=np.arange(len(table))), npartitions=2)
    with pytest.raises(ValueError, match="dt_col 'time' holds int64 values, not timestamps"):
        TSDataset.from_dataframe(numbers, "time", "y", id_col="id")
    sound = TSDataset.from_dataframe(wb.data.from_pandas(interleaved_series().drop_duplicates(), npartitions=3),
                                     "time", "y", id_col="id").impute("last")
    with pytest.raises(ValueError, match=r"needs 36 rows per series; .*series 'north' has 30.*series 'south' has 34"):
        sound.roll(35, 1)


# -- end to end ---------------------------------------------------------------------------------------------


def window_mlp():
    """An MLP over a flattened window of 24 hours x (load, HOUR), forecasting the next hour."""
    import torch

    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1),
                               torch.nn.Unflatten(1, (1, 1)))


def test_a_model_trained_on_rolled_windows_beats_the_last_value_forecast(context, tmp_path):
    rng = np.random.default_rng(7)
    tables = []
    for key, base, amplitude, phase in (("s1", 10, 1, 0), ("s2", 20, 2, 5), ("s3", 5, 3, 11)):
        hour = np.arange(480)
        load = base + amplitude * np.sin(2 * np.pi * (hour + phase) / 24) + rng.normal(0, 0.15 * amplitude, 480)
        load[rng.choice(480, 10, replace=False)] = np.nan
        tables.append(pd.DataFrame({"station": key, "time": pd.Timestamp("2024-05-01") + pd.to_timedelta(hour, "h"),
                                    "load": load}))
    table = pd.concat(tables)
    first_days = table["time"] < pd.Timestamp("2024-05-11")  # two files, each holding part of every series
    table[first_days].to_csv(tmp_path / "load-1.csv", index=False)
    table[~first_days].to_csv(tmp_path / "load-2.csv", index=False)

    data = wb.data.read_csv(str(tmp_path / "load-*.csv"))
    train, _, test = TSDataset.from_dataframe(data, "time", "load", id_col="station", with_split=True,
                                              val_ratio=0.1, test_ratio=0.2)
    train, test = (part.impute("linear").gen_dt_feature("HOUR") for part in (train, test))
    scaler = StandardScaler()
    scaled_train, scaled_test = train.scale(scaler), test.scale(scaler, fit=False)
    x, y = scaled_train.roll(lookback=24, horizon=1)
    x_test, y_test = (np.asarray(array) for array in scaled_test.roll(lookback=24, horizon=1))
    assert x.shape[1:] == (24, 2) and y_test.shape == (3 * (96 - 24), 1, 1)

    estimator = wb.Estimator.from_torch(window_mlp, optimizer="adam", optimizer_kwargs={"lr": 0.005}, loss="mse")
    estimator.fit((x, y), epochs=25, batch_size=32, verbose=False)
    predicted = scaled_test.unscale_numpy(np.asarray(estimator.predict(x_test)).reshape(y_test.shape))
    actual = scaled_test.unscale_numpy(y_test)
    last_value = scaled_test.unscale_numpy(x_test[:, -1:, :1])
    np.testing.assert_allclose(actual, np.asarray(test.roll(lookback=24, horizon=1)[1]), rtol=1e-5)
    model_error = np.mean((predicted - actual) ** 2)
    naive_error = np.mean((last_value - actual) ** 2)
    assert model_error < 0.6 * naive_error, (model_error, naive_error)
