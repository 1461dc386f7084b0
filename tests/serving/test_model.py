"""InferenceModel: every model format behind one checked, thread-safe predict; ONNX optimization; batch inference."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.serving import AccuracyLossError, InferenceModel, Signature, SignatureError

from ..train.conftest import make_keras_mlp, make_mlp

FEATURES = ["f0", "f1", "f2", "f3"]


def classification_table(rows: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(rows, 4)).astype(np.float32), columns=FEATURES)
    table["label"] = (table["f0"] > 0).astype(np.int64) + (table["f1"] > 0.5).astype(np.int64)
    return table


@pytest.fixture(scope="module")
def trained(tmp_path_factory, _module_cluster):
    """A torch MLP fitted on a table by 2 workers and saved; (estimator, directory, table)."""
    wb.init(workers=2)
    table = classification_table()
    est = wb.Estimator.from_torch(make_mlp, optimizer=torch.optim.Adam, optimizer_kwargs={"lr": 0.02},
                                  loss="cross_entropy", metrics=["accuracy"])
    est.fit(table, feature_cols=FEATURES, label_cols="label", epochs=4, batch_size=64, progress=None)
    directory = tmp_path_factory.mktemp("served") / "mlp"
    est.save(directory)
    return est, directory, table


def features_of(table: pd.DataFrame) -> np.ndarray:
    return table[FEATURES].to_numpy()


# -- loading every format ------------------------------------------------------------------------


def test_a_saved_estimator_serves_its_own_predictions_with_its_recorded_signature(trained):
    est, directory, table = trained
    model = InferenceModel.load(directory, model=make_mlp)

    assert model.backend == "torch"
    assert model.signature == est.signature_
    assert [(s.name, s.shape, s.dtype) for s in model.signature.inputs] == [("features", (None, 4), "float32")]
    assert model.signature.outputs[0].shape == (None, 3) and model.signature.columns == tuple(FEATURES)
    expected = est.predict(table, feature_cols=FEATURES).compute().to_numpy()
    np.testing.assert_array_equal(model.predict(features_of(table)), expected)
    records = table[FEATURES].head(3).to_dict(orient="records")  # rows by column name, as a client sends them
    np.testing.assert_allclose(model.predict(model.signature.records_to_batch(records)), expected[:3], atol=1e-5)


def test_loading_refuses_pickled_code_unless_trusted_or_given(trained):
    _, directory, _ = trained
    with pytest.raises(ValueError, match="model.pkl holds pickled Python code"):
        InferenceModel.load(directory)
    assert InferenceModel.load(directory, trust_code=True).backend == "torch"


def test_a_saved_keras_estimator_and_a_keras_file_serve_with_their_signatures(context, tmp_path):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(256, 4)).astype(np.float32), rng.integers(0, 3, 256)
    est = wb.Estimator.from_keras(make_keras_mlp, optimizer="adam", loss="sparse_categorical_crossentropy")
    est.fit((X, y), epochs=1, batch_size=64, progress=None)
    est.save(tmp_path / "keras-estimator")
    expected = est.predict(X).compute()

    from_directory = InferenceModel.load(tmp_path / "keras-estimator")
    assert from_directory.backend == "keras" and from_directory.signature == est.signature_
    np.testing.assert_allclose(from_directory.predict(X), expected, atol=1e-5)

    est.model_.save(tmp_path / "model.keras")
    from_file = InferenceModel.load(tmp_path / "model.keras", concurrency=2)
    assert [(s.shape, s.dtype) for s in from_file.signature.inputs] == [((None, 4), "float32")]
    np.testing.assert_allclose(from_file.predict(X[:7]), expected[:7], atol=1e-5)

    accelerated = InferenceModel.load(tmp_path / "model.keras", backend="onnxruntime")  # through tf2onnx
    assert accelerated.backend == "onnxruntime" and accelerated.signature == from_file.signature
    np.testing.assert_allclose(accelerated.predict(X), expected, atol=1e-5)


def test_a_torchscript_file_needs_a_signature_then_serves(tmp_path):
    torch.manual_seed(0)
    module = make_mlp().eval()
    torch.jit.save(torch.jit.script(module), tmp_path / "mlp.pt")
    X = np.random.default_rng(2).normal(size=(9, 4)).astype(np.float32)

    with pytest.raises(SignatureError, match=r"mlp\.pt: .*signature=Signature\.from_example"):
        InferenceModel.load(tmp_path / "mlp.pt")
    model = InferenceModel.load(tmp_path / "mlp.pt", signature=Signature.from_example(X))
    accelerated = InferenceModel.load(tmp_path / "mlp.pt", signature=Signature.from_example(X), backend="onnxruntime")
    with torch.no_grad():
        expected = module(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(model.predict(X), expected, atol=1e-6)
    np.testing.assert_allclose(accelerated.predict(X), expected, atol=1e-5)


def test_an_onnx_file_from_elsewhere_serves_with_the_graphs_names_and_shapes(tmp_path):
    torch.manual_seed(0)
    module = make_mlp().eval()
    X = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)
    torch.onnx.export(module, (torch.from_numpy(X),), str(tmp_path / "mlp.onnx"), input_names=["pixels"],
                      output_names=["scores"], dynamic_shapes=({0: torch.export.Dim("n", min=1)},), dynamo=True)

    model = InferenceModel.load(tmp_path / "mlp.onnx")
    assert model.backend == "onnxruntime"
    assert [(s.name, s.shape, s.dtype) for s in model.signature.inputs] == [("pixels", (None, 4), "float32")]
    with torch.no_grad():
        np.testing.assert_allclose(model.predict({"pixels": X}), module(torch.from_numpy(X)).numpy(), atol=1e-5)


def test_bad_arguments_are_named():
    module, signature = make_mlp(), Signature.from_example(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="backend must be one of"):
        InferenceModel(module, signature, backend="tensorrt")
    with pytest.raises(ValueError, match="a torch model runs with backend 'torch' or 'onnxruntime', not 'keras'"):
        InferenceModel(module, signature, backend="keras")
    with pytest.raises(ValueError, match="concurrency must be a positive integer"):
        InferenceModel(module, signature, concurrency=0)
    with pytest.raises(TypeError, match="cannot serve a str"):
        InferenceModel("model.pt", signature)
    with pytest.raises(FileNotFoundError, match="no model at"):
        InferenceModel.load("/nonexistent/model")


# -- every batch is checked -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (np.zeros((3, 5), np.float32), r"input 'features': expected shape \(batch, 4\), got \(3, 5\)"),
        (np.zeros(4, np.float32), r"expected shape \(batch, 4\), got \(4\)"),
        (np.array([["a", "b", "c", "d"]]), "expected dtype float32, got <U1"),
        ([[1.0, 2.0], [3.0]], "not a rectangular array"),
        (np.array([[0.0, np.nan, 0.0, 0.0]]), "contains NaN or infinite values"),
        (np.array([[1e39, 0.0, 0.0, 0.0]]), "contains NaN or infinite values \\(as float32\\)"),
        ({"pixels": np.zeros((1, 4))}, r"missing \['features'\]; unknown \['pixels'\]"),
    ],
    ids=["width", "no-batch-dimension", "strings", "ragged", "nan", "overflow", "name"],
)
def test_a_batch_that_does_not_fit_the_signature_is_refused_naming_what_differs(batch, message):
    model = InferenceModel(make_mlp(), Signature.from_example(np.zeros((1, 4), np.float32)))
    with pytest.raises(SignatureError, match=message):
        model.predict(batch)


def test_records_must_have_exactly_the_models_columns(trained):
    signature = trained[0].signature_
    row = {"f0": 0.1, "f1": 0.2, "f2": 0.3, "f3": 0.4}
    assert signature.records_to_batch([row]) == [[0.1, 0.2, 0.3, 0.4]]
    with pytest.raises(SignatureError, match=r"record 1: missing field\(s\) \['f3'\]"):
        signature.records_to_batch([row, {"f0": 1, "f1": 1, "f2": 1}])
    with pytest.raises(SignatureError, match=r"record 0: unknown field\(s\) \['colour'\]"):
        signature.records_to_batch([{**row, "colour": "red"}])
    with pytest.raises(SignatureError, match="no records"):
        signature.records_to_batch([])
    with pytest.raises(SignatureError, match="not trained on named columns"):
        Signature.from_example(np.zeros((1, 4))).records_to_batch([row])


def test_integers_and_float64_are_converted_but_floats_never_become_integer_ids():
    ids = Signature.from_example(np.zeros((1, 2), np.int64))
    embedding = torch.nn.Sequential(torch.nn.Embedding(10, 3), torch.nn.Flatten())
    model = InferenceModel(embedding, ids)
    assert model.predict([[1, 2], [3, 4]]).shape == (2, 6)
    with pytest.raises(SignatureError, match="expected dtype int64, got float64"):
        model.predict([[1.5, 2.0]])
    floats = InferenceModel(make_mlp(), Signature.from_example(np.zeros((1, 4), np.float32)))
    assert floats.predict([[1, 2, 3, 4]]).dtype == np.float32  # JSON integers into a float model


# -- concurrency ------------------------------------------------------------------------------------


class CountsCallers(torch.nn.Module):
    """An MLP that records how many calls run at the same time (each lasts 20 ms)."""

    def __init__(self):
        super().__init__()
        self.mlp = make_mlp()
        self.lock, self.running, self.most = threading.Lock(), 0, 0

    def forward(self, x):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)
        with self.lock:
            self.running -= 1
        return self.mlp(x)


def test_predict_from_many_threads_runs_at_most_concurrency_batches_and_answers_each_its_own():
    torch.manual_seed(0)
    module = CountsCallers()
    model = InferenceModel(module, Signature.from_example(np.zeros((1, 4), np.float32)), concurrency=2)
    batches = [np.full((i % 5 + 1, 4), i, np.float32) for i in range(24)]
    with torch.no_grad():
        expected = [module.mlp(torch.from_numpy(batch)).numpy() for batch in batches]
    answers: dict[int, np.ndarray] = {}

    def client(indices):
        for i in indices:
            answers[i] = model.predict(batches[i])

    threads = [threading.Thread(target=client, args=(range(k, 24, 6),)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert module.most == 2
    for i, batch_expected in enumerate(expected):
        np.testing.assert_allclose(answers[i], batch_expected, atol=1e-6)


# -- ONNX Runtime, quantization, and the accuracy check -----------------------------------------


def test_optimize_exports_to_onnx_runtime_reports_the_change_and_writes_a_servable_file(trained, tmp_path):
    est, directory, table = trained
    model = InferenceModel.load(directory, model=make_mlp)
    X, y = features_of(table), table["label"].to_numpy()

    optimized = model.optimize((X, y), path=tmp_path / "mlp.onnx")
    report = optimized.optimization_report_
    accuracy = est.evaluate(table, feature_cols=FEATURES, label_cols="label")["accuracy"]
    assert optimized.backend == "onnxruntime" and report.metric == "accuracy" and report.rows == len(X)
    assert report.before == pytest.approx(accuracy) and abs(report.change) <= 1 / len(X)
    assert report.max_abs_difference < 1e-4 and report.speedup > 0
    np.testing.assert_allclose(optimized.predict(X), model.predict(X), atol=1e-4)

    reloaded = InferenceModel.load(tmp_path / "mlp.onnx")  # the file keeps Workbench's signature
    assert reloaded.signature == model.signature and reloaded.signature.columns == tuple(FEATURES)
    np.testing.assert_allclose(reloaded.predict(X[:10]), optimized.predict(X[:10]), atol=1e-6)

    quantized = model.optimize((X, y), quantize="dynamic-int8", tolerance=0.05)
    assert quantized.optimization_report_.quantize == "dynamic-int8"
    assert quantized.optimization_report_.after >= accuracy - 0.05


def test_optimize_refuses_a_quantized_model_that_loses_accuracy():
    # weights 0.01 next to a weight of 1000 (on an input that is always 0): int8 rounds the small ones to 0
    layer = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.01, 0.0, 0.0, 1000.0], [0.0, 0.01, 0.0, 0.0]]))
    X = np.random.default_rng(4).normal(size=(400, 4)).astype(np.float32)
    X[:, 3] = 0.0
    model = InferenceModel(layer, Signature.from_example(X))

    with pytest.raises(AccuracyLossError, match="changes agreement with the original model from 1.0000 to 0") as caught:
        model.optimize(X, quantize="dynamic-int8", tolerance=0.01)
    assert caught.value.report.change < -0.2
    assert model.optimize(X).optimization_report_.after == 1.0  # unquantized ONNX keeps every answer


def test_optimize_arguments_are_checked():
    model = InferenceModel(make_mlp(), Signature.from_example(np.zeros((1, 4), np.float32)))
    X = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="quantize must be one of"):
        model.optimize(X, quantize="int4")
    with pytest.raises(ValueError, match="backend='onnxruntime'"):
        model.optimize(X, backend="openvino")
    with pytest.raises(ValueError, match="different numbers of rows"):
        model.optimize((X, np.zeros(3)))


# -- batch inference on the workers ----------------------------------------------------------------


def test_predict_dask_keeps_order_and_index_like_estimator_predict(trained):
    est, directory, table = trained
    model = InferenceModel.load(directory, model=make_mlp)
    frame = wb.data.from_pandas(table.set_index(table.index * 10), npartitions=3)
    expected = est.predict(frame, feature_cols=FEATURES).compute()

    predicted = model.predict_dask(frame, batch_size=50).compute()
    pd.testing.assert_frame_equal(predicted, expected)

    import dask.array as da

    X = da.from_array(features_of(table), chunks=(170, 4))  # uneven blocks
    np.testing.assert_array_equal(model.predict_dask(X).compute(), expected.to_numpy())
    with pytest.raises(ValueError, match="f3"):
        model.predict_dask(wb.data.from_pandas(table.drop(columns="f3")))


class RecordsUnpickling(torch.nn.Module):
    """An MLP that appends the process id to a file each time it is unpickled."""

    def __init__(self, log: Path):
        super().__init__()
        self.mlp, self.log = make_mlp(), log

    def forward(self, x):
        return self.mlp(x)

    def __setstate__(self, state):
        super().__setstate__(state)
        with open(self.log, "a") as file:
            file.write(f"{os.getpid()}\n")


def test_predict_dask_loads_the_model_once_per_worker_process(trained, tmp_path):
    log = tmp_path / "unpickled.txt"
    model = InferenceModel(RecordsUnpickling(log), Signature.from_example(np.zeros((1, 4), np.float32)))
    import dask.array as da

    X = da.from_array(np.ones((400, 4), np.float32), chunks=(20, 4))  # 20 blocks on 2 workers
    assert model.predict_dask(X).compute().shape == (400, 3)
    workers = {str(pid) for pid in wb.current().client.run(os.getpid).values()}
    loads_on_workers = [pid for pid in log.read_text().split() if pid in workers]
    assert 1 <= len(loads_on_workers) == len(set(loads_on_workers)) <= 2, loads_on_workers
