"""Malformed input across the public API fails fast, with an error that names the problem.

``BAD_INPUTS`` is one table of bad calls to ``wb.init``, the data readers, ``fit``, ``evaluate``,
``predict``, ``save`` and ``load``. Each must raise exactly the given exception type, with a
message naming what is wrong (the column, path, argument, file or shape), within seconds, and
must leave every file as it was: nothing partially written, no staging or ``.tmp`` leftovers,
no directory made for a fit that never started.

``AWKWARD_INPUTS`` holds inputs that look irregular but are valid (empty partitions, X and y
chunked differently): they must succeed and train on, evaluate and predict every row.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shutil  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import cached_property  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import workbench as wb  # noqa: E402
from workbench.data import MissingPathError  # noqa: E402
from workbench.train.metrics import Metric  # noqa: E402
from workbench.train.snapshots import SnapshotError  # noqa: E402

#: Seconds a bad call may take before it counts as hanging.
FAST = 20.0
ROWS = 96


def linear(inputs: int = 4, outputs: int = 2) -> Callable[[], torch.nn.Module]:
    return lambda: torch.nn.Linear(inputs, outputs)


def classifier(model: Callable[[], torch.nn.Module] | None = None) -> wb.Estimator:
    return wb.Estimator.from_torch(model or linear(), loss="cross_entropy", metrics=["accuracy"])


def truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def keras_model():
    import keras

    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])


class Inputs:
    """Small data, saved models and damaged files shared by the cases of this module.

    Everything a case may touch lies under ``root``. The cached properties are made on first
    use (``Case.needs``), before the test records the state of ``root``.
    """

    def __init__(self, root: Path):
        self.root = root
        rng = np.random.default_rng(0)
        self.X = rng.normal(size=(ROWS, 4)).astype(np.float32)
        self.y = np.arange(ROWS) % 2  # both classes among the first rows
        self.table = pd.DataFrame(self.X, columns=["a", "b", "c", "d"]).assign(y=self.y)
        self.features = ["a", "b", "c", "d"]

        self.a_file = root / "afile"  # a regular file where a directory is expected
        self.a_file.write_text("not a directory")
        self.parquet = root / "train.parquet"
        self.table.to_parquet(self.parquet)
        self.garbage_parquet = root / "garbage.parquet"
        self.garbage_parquet.write_bytes(b"\x00garbage, not parquet\xff" * 20)
        self.dataset = root / "dataset"  # a Parquet directory with one file cut short
        self.dataset.mkdir()
        self.table.iloc[:48].to_parquet(self.dataset / "part-0.parquet")
        self.table.iloc[48:].to_parquet(self.dataset / "part-1.parquet")
        truncate(self.dataset / "part-1.parquet")
        self.garbage_csv = root / "garbage.csv"
        self.garbage_csv.write_bytes(b"\x00\x01\xff\xfe not text \xc3\x28" * 20)
        self.empty_csv = root / "empty.csv"
        self.empty_csv.write_text("")
        self.saved = root / "saved"  # an unfitted PyTorch estimator: no cluster needed
        classifier().save(self.saved)

    def copy(self, source: Path, name: str, damage: Callable[[Path], None]) -> Path:
        target = self.root / name
        shutil.copytree(source, target)
        damage(target)
        return target

    @cached_property
    def estimator(self) -> wb.Estimator:
        return classifier()

    @cached_property
    def snapshot(self) -> Path:
        """The checkpoint_dir of a one-epoch fit (3 steps on 2 workers)."""
        classifier().fit(self.table, self.features, "y", epochs=1, batch_size=32, checkpoint_dir=self.root / "snapshot",
                         verbose=False)
        return self.root / "snapshot"

    @cached_property
    def snapshot_damaged_shard(self) -> Path:
        return self.copy(self.snapshot, "snapshot-shard", lambda d: truncate(next(d.glob("step-*/shard-0000.npz"))))

    @cached_property
    def snapshot_damaged_manifest(self) -> Path:
        return self.copy(self.snapshot, "snapshot-manifest", lambda d: truncate(next(d.glob("step-*/manifest.json"))))

    @cached_property
    def saved_truncated_weights(self) -> Path:
        return self.copy(self.saved, "saved-truncated", lambda d: truncate(d / "weights.pt"))

    @cached_property
    def saved_torchscript_weights(self) -> Path:
        return self.copy(self.saved, "saved-torchscript",
                         lambda d: torch.jit.script(torch.nn.Linear(4, 2)).save(str(d / "weights.pt")))

    @cached_property
    def torchscript_file(self) -> Path:
        torch.jit.script(torch.nn.Linear(4, 2)).save(str(self.root / "model.pt"))
        return self.root / "model.pt"

    @cached_property
    def keras_file(self) -> Path:
        keras_model().save(self.root / "model.keras")
        return self.root / "model.keras"

    @cached_property
    def keras_directory(self) -> Path:
        """A directory another tool wrote: a Keras model file, no workbench.json."""
        (self.root / "keras-export").mkdir()
        keras_model().save(self.root / "keras-export" / "model.keras")
        return self.root / "keras-export"

    @cached_property
    def saved_keras(self) -> Path:
        wb.Estimator.from_keras(keras_model, loss="mse").save(self.root / "saved-keras")
        return self.root / "saved-keras"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Inputs:
    return Inputs(tmp_path_factory.mktemp("bad-input"))


def free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def files_under(root: Path) -> dict[str, Any]:
    """Every file (size, modification time) and folder under ``root``.

    A folder's own modification time is left out: checking that a checkpoint_dir is writable
    adds and removes a probe file there.
    """
    state = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        state[str(path.relative_to(root))] = "folder" if path.is_dir() else (stat.st_size, stat.st_mtime_ns)
    return state


@dataclass(frozen=True)
class Case:
    call: Callable[[Inputs], Any]
    error: type[BaseException]
    message: str
    cluster: str | None = None  # "context": a 2-worker cluster; "none": no live context
    needs: tuple[str, ...] = ()  # Inputs properties to make first
    check: Callable[[Inputs], None] | None = None  # more to assert after the error


def case(id: str, call, error, message, **options) -> Any:
    return pytest.param(Case(call, error, message, **options), id=id)


def no_context_left(_: Inputs) -> None:
    assert wb.current() is None, "a failed wb.init() left a context behind"


def fit(ns: Inputs, data: Any = None, feature_cols: Any = "default", label_cols: Any = "y", model=None, **options):
    """``classifier(model).fit`` of the module's table (or ``data``) with small, valid settings."""
    settings = {"epochs": 1, "batch_size": 32, "verbose": False, **options}
    data = ns.table if data is None else data
    if feature_cols == "default":
        feature_cols = ns.features if isinstance(data, (pd.DataFrame, str)) else None
        label_cols = label_cols if feature_cols is not None else None
    return classifier(model).fit(data, feature_cols, label_cols, **settings)


def empty_frame(ns: Inputs):
    frame = wb.data.from_pandas(ns.table, npartitions=4)
    return frame[frame["a"] > 100]  # every partition filtered empty


def with_nan(ns: Inputs, column: str, row: int) -> pd.DataFrame:
    table = ns.table.astype({column: np.float64})
    table.loc[row, column] = np.nan
    return table


BAD_INPUTS = [
    # -- wb.init -----------------------------------------------------------------------------------
    case("init-unreachable-address", lambda ns: wb.init(ns.address, timeout=1), ConnectionError,
         r"could not reach a Dask scheduler at tcp://127\.0\.0\.1:\d+ within 1 s", cluster="none", check=no_context_left),
    case("init-unknown-cluster-name", lambda ns: wb.init("kubernetes-please"), ValueError,
         r"unknown cluster 'kubernetes-please' \(from cluster argument\)"),
    case("init-zero-workers", lambda ns: wb.init(workers=0), ValueError, r"workers must be a positive integer, got 0"),
    case("init-zero-workers-while-a-context-runs", lambda ns: wb.init(workers=0), ValueError,
         r"workers must be a positive integer, got 0", cluster="context"),
    case("init-zero-threads", lambda ns: wb.init(threads_per_worker=0), ValueError,
         r"threads_per_worker must be a positive integer, got 0"),
    case("init-bad-memory-limit", lambda ns: wb.init(memory_limit="lots"), ValueError,
         r"memory_limit must be .*got 'lots'"),
    case("init-negative-memory-limit", lambda ns: wb.init(memory_limit=-5), ValueError, r"memory_limit must be .*got -5"),
    # -- readers -----------------------------------------------------------------------------------
    case("read-parquet-missing-path", lambda ns: wb.data.read_parquet(ns.root / "missing.parquet"), MissingPathError,
         r"read_parquet: no such file or directory: '.*missing\.parquet'"),
    case("read-csv-missing-path", lambda ns: wb.data.read_csv(ns.root / "missing-*.csv"), MissingPathError,
         r"read_csv: no such file or directory: '.*missing-\*\.csv'"),
    case("read-parquet-unknown-column", lambda ns: wb.data.read_parquet(ns.parquet, columns=["a", "nope"]), ValueError,
         r"column\(s\) \['nope'\] not found in '.*train\.parquet'; available: \['a', 'b', 'c', 'd', 'y'\]"),
    case("read-parquet-garbage-bytes", lambda ns: wb.data.read_parquet(ns.garbage_parquet), ValueError,
         r"read_parquet: .*garbage\.parquet is not a Parquet file"),
    case("read-parquet-directory-with-truncated-file", lambda ns: wb.data.read_parquet(ns.dataset), ValueError,
         r"read_parquet: .*dataset/part-1\.parquet is not a Parquet file"),
    case("read-csv-garbage-bytes", lambda ns: wb.data.read_csv(ns.garbage_csv), ValueError,
         r"read_csv: '.*garbage\.csv' cannot be read as CSV \(UnicodeDecodeError"),
    case("read-csv-empty-file", lambda ns: wb.data.read_csv(ns.empty_csv), ValueError, r"read_csv: '.*empty\.csv' holds no data"),
    # -- fit: data that does not fit the model or the loss -------------------------------------------
    case("fit-feature-width-mismatch", lambda ns: fit(ns, model=linear(inputs=3)), ValueError,
         r"the model does not accept the training features \(batch shape \(4,\), dtype float32\)", cluster="context"),
    case("fit-label-above-class-range", lambda ns: fit(ns, ns.table.assign(y=ns.y + 5)), ValueError,
         r"the loss 'CrossEntropyLoss' .* labels \(shape \(\), values 5\.\.6\).*out of bounds", cluster="context"),
    case("fit-negative-label", lambda ns: fit(ns, ns.table.assign(y=ns.y - 1)), ValueError,
         r"the loss 'CrossEntropyLoss' .* values -1\.\.0\).*out of bounds", cluster="context"),
    case("fit-fractional-class-label", lambda ns: fit(ns, ns.table.assign(y=ns.y + 0.5)), ValueError,
         r"the loss 'CrossEntropyLoss' .*takes class indices \(whole numbers 0\.\.classes-1\) as labels, got [01]\.5",
         cluster="context"),
    case("fit-non-numeric-feature", lambda ns: fit(ns, ns.table.assign(b="text")), TypeError,
         r"feature column 'b' has dtype \w+, which is not numeric", cluster="context"),
    case("fit-missing-feature-column", lambda ns: fit(ns, feature_cols=["a", "b", "e"]), ValueError,
         r"feature column\(s\) \['e'\] not found; available: \['a', 'b', 'c', 'd', 'y'\]", cluster="context"),
    case("fit-missing-label-column", lambda ns: fit(ns, label_cols="label"), ValueError,
         r"label column\(s\) \['label'\] not found", cluster="context"),
    case("fit-without-labels", lambda ns: fit(ns, label_cols=None), ValueError,
         r"fit\(\) needs labels: give label_cols", cluster="context"),
    case("fit-nan-feature", lambda ns: fit(ns, with_nan(ns, "c", 50)), ValueError,
         r"feature column 'c' has NaN \(1 row\(s\) in one partition, first at index 50\)", cluster="context"),
    case("fit-nan-label", lambda ns: fit(ns, with_nan(ns, "y", 7)), ValueError,
         r"label column 'y' has NaN \(1 row\(s\) in one partition, first at index 7\)", cluster="context"),
    case("fit-every-partition-empty", lambda ns: fit(ns, empty_frame(ns)), ValueError,
         r"the data has no rows \(all its 4 partition\(s\) are empty\)", cluster="context"),
    case("fit-x-y-length-mismatch", lambda ns: fit(ns, (da.from_array(ns.X, chunks=30), da.from_array(ns.y[:90], chunks=45))),
         ValueError, r"X has 96 rows but y has 90", cluster="context"),
    case("fit-damaged-parquet-path", lambda ns: fit(ns, str(ns.garbage_parquet)), ValueError,
         r"garbage\.parquet is not a Parquet file", cluster="context"),
    # -- fit: arguments -------------------------------------------------------------------------------
    case("fit-batch-size-zero", lambda ns: fit(ns, batch_size=0), ValueError, r"batch_size must be a positive integer, got 0",
         cluster="context"),
    case("fit-batch-size-negative", lambda ns: fit(ns, batch_size=-1), ValueError,
         r"batch_size must be a positive integer, got -1", cluster="context"),
    case("fit-batch-size-below-workers", lambda ns: fit(ns, batch_size=1), ValueError,
         r"batch_size=1 is smaller than the 2 workers", cluster="context"),
    case("fit-epochs-zero", lambda ns: fit(ns, epochs=0), ValueError, r"epochs must be a positive integer, got 0",
         cluster="context"),
    case("fit-epochs-negative", lambda ns: fit(ns, epochs=-1), ValueError, r"epochs must be a positive integer, got -1",
         cluster="context"),
    case("fit-snapshot-every-zero", lambda ns: fit(ns, snapshot_every=0), ValueError,
         r"snapshot_every must be a positive integer, got 0", cluster="context"),
    case("fit-on-nonfinite-unknown", lambda ns: fit(ns, on_nonfinite="ignore"), ValueError,
         r"on_nonfinite must be 'raise' or 'skip', got 'ignore'", cluster="context"),
    case("fit-max-failures-negative", lambda ns: fit(ns, max_failures=-1), ValueError,
         r"max_failures must be an integer >= 0, got -1", cluster="context"),
    case("fit-resume-without-checkpoint-dir", lambda ns: fit(ns, resume=True), ValueError,
         r"resume=True needs the checkpoint_dir", cluster="context"),
    # -- fit: checkpoint_dir ---------------------------------------------------------------------------
    case("fit-checkpoint-dir-under-a-file", lambda ns: fit(ns, checkpoint_dir=ns.a_file / "checkpoints"), PermissionError,
         r"checkpoint_dir .*afile/checkpoints is not writable: .*Not a directory", cluster="context"),
    case("fit-checkpoint-dir-is-a-file", lambda ns: fit(ns, checkpoint_dir=ns.a_file), NotADirectoryError,
         r"checkpoint_dir .*afile is a file, not a directory", cluster="context"),
    case("fit-checkpoint-dir-in-proc", lambda ns: fit(ns, checkpoint_dir="/proc/workbench-checkpoints"), PermissionError,
         r"checkpoint_dir /proc/workbench-checkpoints is not writable", cluster="context"),
    case("fit-bad-labels-leave-no-new-checkpoint-dir",
         lambda ns: fit(ns, ns.table.assign(y=ns.y + 5), checkpoint_dir=ns.root / "new" / "checkpoints"), ValueError,
         r"values 5\.\.6\).*out of bounds", cluster="context"),
    case("fit-resume-truncated-snapshot-shard",
         lambda ns: fit(ns, checkpoint_dir=ns.snapshot_damaged_shard, resume=True), SnapshotError,
         r"snapshot file .*snapshot-shard/step-\d+/shard-0000\.npz is damaged", cluster="context",
         needs=("snapshot_damaged_shard",)),
    case("fit-resume-truncated-snapshot-manifest",
         lambda ns: fit(ns, checkpoint_dir=ns.snapshot_damaged_manifest, resume=True), SnapshotError,
         r"snapshot .*snapshot-manifest/step-\d+ is damaged \(JSONDecodeError", cluster="context",
         needs=("snapshot_damaged_manifest",)),
    case("fit-resume-snapshot-of-another-model",
         lambda ns: fit(ns, model=lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)),
                        checkpoint_dir=ns.snapshot, resume=True), SnapshotError,
         r"checkpoint_dir .*snapshot holds a snapshot of a different fit \(parameters: 10 there, 58 here\)",
         cluster="context", needs=("snapshot",)),
    # -- evaluate and predict --------------------------------------------------------------------------
    case("evaluate-feature-width-mismatch", lambda ns: ns.estimator.evaluate(ns.table.assign(e=1.0), ns.features + ["e"], "y"),
         ValueError, r"the model does not accept the evaluation features \(batch shape \(5,\)", cluster="context"),
    case("evaluate-label-above-class-range", lambda ns: ns.estimator.evaluate(ns.table.assign(y=ns.y + 5), ns.features, "y"),
         ValueError, r"the loss 'CrossEntropyLoss' .* values 5\.\.6\).*out of bounds", cluster="context"),
    case("evaluate-every-partition-empty", lambda ns: ns.estimator.evaluate(empty_frame(ns), ns.features, "y"), ValueError,
         r"the evaluation data has no rows", cluster="context"),
    case("evaluate-without-labels", lambda ns: ns.estimator.evaluate(ns.X), ValueError, r"evaluate\(\) needs labels",
         cluster="context"),
    case("predict-non-numeric-array", lambda ns: ns.estimator.predict(np.full((5, 4), "x")), TypeError,
         r"X has dtype <U1, which is not numeric", cluster="context"),
    case("predict-table-without-feature-cols", lambda ns: ns.estimator.predict(ns.table), ValueError,
         r"predict\(\) on a table needs feature_cols", cluster="context"),
    case("predict-missing-feature-column", lambda ns: ns.estimator.predict(ns.table, ["a", "b", "c", "e"]), ValueError,
         r"feature column\(s\) \['e'\] not found", cluster="context"),
    case("predict-feature-width-mismatch", lambda ns: ns.estimator.predict(np.ones((5, 7), np.float32)), ValueError,
         r"the model does not accept the prediction features \(batch shape \(7,\), dtype float32\)", cluster="context"),
    # -- save and load ----------------------------------------------------------------------------------
    case("save-under-a-file", lambda ns: ns.estimator.save(ns.a_file / "model"), NotADirectoryError,
         r"cannot save to .*afile/model: .*afile is a file, not a directory"),
    case("save-onto-a-file", lambda ns: ns.estimator.save(ns.a_file), FileExistsError,
         r"cannot save to .*afile: it is a file"),
    case("load-missing-directory", lambda ns: wb.Estimator.load(ns.root / "nowhere"), FileNotFoundError,
         r"no saved Workbench estimator at .*nowhere"),
    case("load-truncated-weights", lambda ns: wb.Estimator.load(ns.saved_truncated_weights, model=linear()), ValueError,
         r"cannot load .*saved-truncated/weights\.pt: ", needs=("saved_truncated_weights",)),
    case("load-torchscript-as-weights", lambda ns: wb.Estimator.load(ns.saved_torchscript_weights, model=linear()),
         ValueError, r"cannot load .*saved-torchscript/weights\.pt: .*TorchScript", needs=("saved_torchscript_weights",)),
    case("load-torchscript-file", lambda ns: wb.Estimator.load(ns.torchscript_file), ValueError,
         r"model\.pt is a file, not a directory written by Estimator\.save", needs=("torchscript_file",)),
    case("load-keras-file", lambda ns: wb.Estimator.load(ns.keras_file), ValueError,
         r"model\.keras is a file, not a directory written by Estimator\.save", needs=("keras_file",)),
    case("load-directory-of-a-keras-export", lambda ns: wb.Estimator.load(ns.keras_directory), FileNotFoundError,
         r"keras-export is not a saved Workbench estimator \(no workbench\.json\)", needs=("keras_directory",)),
    case("load-torch-directory-with-a-keras-model", lambda ns: wb.Estimator.load(ns.saved, model=keras_model()), TypeError,
         r"model is a Keras model \(Sequential\), but .* is PyTorch"),
    case("load-keras-directory-with-a-torch-module", lambda ns: wb.Estimator.load(ns.saved_keras, model=torch.nn.Linear(4, 2)),
         TypeError, r"model is a PyTorch model \(Linear\), but .* is Keras", needs=("saved_keras",)),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_fails_fast_with_a_clear_error(case: Case, inputs: Inputs, request):
    if case.cluster == "none":
        request.getfixturevalue("no_context")
        inputs.address = free_address()
    elif case.cluster == "context":
        request.getfixturevalue("context")
    for name in case.needs:
        getattr(inputs, name)
    before = files_under(inputs.root)

    started = time.monotonic()
    with pytest.raises(case.error, match=case.message) as raised:
        case.call(inputs)
    elapsed = time.monotonic() - started

    assert type(raised.value) is case.error, f"{type(raised.value).__name__}, not {case.error.__name__}: {raised.value}"
    assert elapsed < FAST, f"took {elapsed:.1f} s"
    assert files_under(inputs.root) == before, "files were written, changed or left behind"
    if case.check is not None:
        case.check(inputs)


def test_the_table_covers_enough_cases():
    assert len(BAD_INPUTS) >= 30
    assert len({param.id for param in BAD_INPUTS}) == len(BAD_INPUTS)


# -- irregular but valid input: nothing dropped ------------------------------------------------------


def row_metrics() -> list[Metric]:
    """Metrics counting the rows seen and adding up their labels (the row numbers).

    Made in a function so that cloudpickle sends the classes by value to the workers.
    """

    class Rows(Metric):
        name = "rows"

        def update(self, prediction, target):
            return np.array([len(target)], dtype=np.float64)

        def result(self, sums):
            return float(sums[0])

    class LabelSum(Metric):
        name = "label_sum"

        def update(self, prediction, target):
            return np.array([np.sum(target, dtype=np.float64)])

        def result(self, sums):
            return float(sums[0])

    return [Rows(), LabelSum()]


def numbered_table() -> pd.DataFrame:
    """Four features and the row number as the (regression) label."""
    rng = np.random.default_rng(1)
    table = pd.DataFrame(rng.normal(size=(ROWS, 4)).astype(np.float32), columns=["a", "b", "c", "d"])
    return table.assign(y=np.arange(ROWS, dtype=np.float32))


def filtered(keep: Callable[[pd.Series], pd.Series], npartitions: int = 6) -> tuple[Any, np.ndarray]:
    """A Dask frame of the numbered table with the rows ``keep`` rejects filtered out (partitions emptied)."""
    table = numbered_table()
    frame = wb.data.from_pandas(table, npartitions=npartitions)
    return frame[keep(frame["y"])], table.index[keep(table["y"])].to_numpy()


def some_partitions_empty():
    frame, kept = filtered(lambda y: (y < 16) | (y >= 64))  # partitions of 16 rows: 3 of 6 empty
    assert 0 in frame.map_partitions(len).compute().tolist()
    return frame, ["a", "b", "c", "d"], "y", kept


def only_the_last_partition_full():
    frame, kept = filtered(lambda y: y >= 80)
    return frame, ["a", "b", "c", "d"], "y", kept


def differently_chunked_arrays():
    table = numbered_table()
    features, labels = table[["a", "b", "c", "d"]].to_numpy(), table["y"].to_numpy()
    return (da.from_array(features, chunks=30), da.from_array(labels, chunks=50)), None, None, np.arange(ROWS)


def numpy_x_with_dask_y():
    table = numbered_table()
    features, labels = table[["a", "b", "c", "d"]].to_numpy(), table["y"].to_numpy()
    return (features, da.from_array(labels, chunks=7)), None, None, np.arange(ROWS)


AWKWARD_INPUTS = [
    pytest.param(some_partitions_empty, id="some-partitions-empty"),
    pytest.param(only_the_last_partition_full, id="only-the-last-partition-full"),
    pytest.param(differently_chunked_arrays, id="x-y-chunked-differently"),
    pytest.param(numpy_x_with_dask_y, id="numpy-x-dask-y"),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("make", AWKWARD_INPUTS)
def test_irregular_valid_input_uses_every_row(context, make):
    data, feature_cols, label_cols, rows = make()
    estimator = wb.Estimator.from_torch(linear(outputs=1), loss="mse", metrics=row_metrics())
    history = estimator.fit(data, feature_cols, label_cols, epochs=2, batch_size=8, verbose=False)
    assert history["rows"].tolist() == [len(rows)] * 2, "every row is trained on once per epoch"
    assert history["label_sum"].tolist() == [float(rows.sum())] * 2, "the rows trained on are the given ones"

    scores = estimator.evaluate(data, feature_cols, label_cols)
    assert (scores["rows"], scores["label_sum"]) == (len(rows), float(rows.sum()))

    if feature_cols is None:
        predicted = estimator.predict(data[0]).compute()
    else:
        predicted = estimator.predict(data, feature_cols).compute()
        np.testing.assert_array_equal(predicted.index.to_numpy(), rows)
    assert len(predicted) == len(rows)
