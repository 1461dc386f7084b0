"""NNClassifier / NNRegressor / NNEstimator on numpy, pandas and Dask data, on a 2-worker cluster."""

from __future__ import annotations

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

import workbench as wb
from workbench.ml import NNClassifier, NNEstimator, NNRegressor

from .conftest import FEATURES, mlp


def classifier(**params) -> NNClassifier:
    return NNClassifier(mlp, **{"optimizer_kwargs": {"lr": 0.05}, "epochs": 6, **params})


def test_classifier_learns_from_numpy_and_decodes_its_labels(context, three_classes):
    features, labels = three_classes
    clf = classifier().fit(features, labels)

    assert list(clf.classes_) == ["high", "low", "mid"]
    assert clf.n_features_in_ == 4 and not hasattr(clf, "feature_names_in_")
    assert list(clf.history_.index) == list(range(6)) and clf.history_["loss"].iloc[-1] < clf.history_["loss"].iloc[0]
    probabilities = clf.predict_proba(features)
    predicted = clf.predict(features)
    assert isinstance(probabilities, np.ndarray) and probabilities.shape == (400, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(predicted, clf.classes_[probabilities.argmax(axis=1)])
    assert clf.score(features, labels) >= 0.9


def test_pandas_and_dask_inputs_give_the_same_model(context, table):
    """A label column (nnframes style) or X and y, in memory or lazy: the same data, the same fit."""
    on_pandas = classifier().fit(table[FEATURES], table["y"])
    on_dask = classifier(label_cols="y").fit(wb.data.from_pandas(table, npartitions=3))
    np.testing.assert_array_equal(on_pandas.estimator_.get_weights(), on_dask.estimator_.get_weights())
    assert list(on_pandas.feature_names_in_) == list(on_dask.feature_names_in_) == FEATURES

    frame = wb.data.from_pandas(table, npartitions=4)
    lazy = on_dask.predict(frame)
    assert isinstance(lazy, dd.Series) and lazy.name == "prediction"
    computed = lazy.compute()
    pd.testing.assert_index_equal(computed.index, table.index)
    expected = on_pandas.predict(table[["d", "c", "b", "a"]].assign(y=0))  # picked by name; other columns ignored
    assert isinstance(expected, np.ndarray)
    np.testing.assert_array_equal(computed.to_numpy(), expected)
    probabilities = on_dask.predict_proba(frame).compute()
    assert list(probabilities.columns) == ["high", "low", "mid"]
    np.testing.assert_allclose(probabilities.to_numpy(), on_pandas.predict_proba(table), rtol=1e-6)
    assert on_dask.score(frame) == pytest.approx(on_pandas.score(table[FEATURES], table["y"]))


def test_dask_arrays_train_and_predict_lazily(context, three_classes):
    features, labels = three_classes
    X, y = da.from_array(features, chunks=150), da.from_array(labels, chunks=110)
    clf = classifier(epochs=2).fit(X, y)
    lazy = clf.predict(X)
    assert isinstance(lazy, da.Array) and lazy.shape == (400,)
    np.testing.assert_array_equal(lazy.compute(), clf.predict(features))
    assert clf.predict_proba(X).shape == (400, 3)
    assert clf.score(X, y) == pytest.approx(clf.score(features, labels))


def test_binary_classifier_with_a_single_logit(context, three_classes):
    features, labels = three_classes
    positive = labels == "high"
    clf = NNClassifier(lambda: torch.nn.Linear(4, 1), optimizer_kwargs={"lr": 0.1}, epochs=4).fit(features, positive)
    assert clf.estimator_.backend.loss_name == "BCEWithLogitsLoss"
    probabilities = clf.predict_proba(features)
    with torch.no_grad():
        logits = clf.estimator_.model_(torch.from_numpy(features)).numpy()[:, 0]
    np.testing.assert_allclose(probabilities[:, 1], 1 / (1 + np.exp(-logits)), rtol=1e-5)
    assert clf.predict(features).dtype == bool and clf.score(features, positive) > 0.9


def test_regressor_reaches_a_high_r2_on_a_linear_task(context):
    rng = np.random.default_rng(2)
    features = rng.normal(size=(400, 3)).astype(np.float32)
    target = features @ np.array([1.5, -2.0, 0.5]) + 0.1 * rng.normal(size=400)
    X, y = da.from_array(features, chunks=100), dd.from_pandas(pd.Series(target, name="target"), npartitions=3)
    reg = NNRegressor(lambda n_features_in: torch.nn.Linear(n_features_in, 1), optimizer_kwargs={"lr": 0.05}, epochs=8)
    reg.fit(X, y)  # a Dask array and a Dask Series
    assert reg.predict(X).shape == (400,) and reg.predict(features).dtype == np.float32
    assert reg.score(X, y) > 0.98  # noise variance 0.01 against a target variance of about 6.5


def test_transform_appends_the_prediction_column_and_keeps_the_index(context, table):
    clf = classifier(epochs=2, label_cols="y").fit(table)
    frame = wb.data.from_pandas(table, npartitions=3)
    transformed = clf.transform(frame)
    assert isinstance(transformed, dd.DataFrame)
    result = transformed.compute()
    assert list(result.columns) == [*FEATURES, "y", "prediction"]
    pd.testing.assert_index_equal(result.index, table.index)
    pd.testing.assert_frame_equal(result, clf.transform(table))
    np.testing.assert_array_equal(result["prediction"].to_numpy(), clf.predict(table))

    outputs = NNEstimator(lambda: torch.nn.Linear(4, 2), epochs=1).fit(table[FEATURES], table[["a", "b"]])
    assert list(outputs.transform(frame).columns) == [*FEATURES, "y", "prediction_0", "prediction_1"]
    with pytest.warns(UserWarning, match="does not have valid feature names"):  # sklearn's rule for arrays
        assert outputs.transform(table[FEATURES].to_numpy()).shape == (400, 6)


def test_a_module_instance_is_copied_never_trained_in_place(context, three_classes):
    features, labels = three_classes
    module = torch.nn.Linear(4, 3)
    before = module.weight.detach().clone()
    clf = NNClassifier(module, optimizer_kwargs={"lr": 0.1}, epochs=1).fit(features, labels)
    torch.testing.assert_close(module.weight, before)
    assert clf.estimator_.model_ is not module
    assert not torch.equal(clf.estimator_.model_.weight, before)


def test_predict_refuses_bad_inputs(context, three_classes):
    features, labels = three_classes
    with pytest.raises(NotFittedError):
        classifier().predict(features)
    clf = classifier(epochs=1).fit(features, labels)
    for fewer_features in (features[:, :3], da.from_array(features[:, :3])):
        with pytest.raises(ValueError, match="X has 3 features, but NNClassifier is expecting 4 features"):
            clf.predict(fewer_features)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.predict(np.where(features > 2, np.nan, features))


def test_fit_refuses_bad_inputs_naming_the_problem(context, table, three_classes):
    features, labels = three_classes
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        classifier().fit(features, labels[:-5])
    with pytest.raises(ValueError, match="X has 400 rows but y has 395"):
        classifier().fit(da.from_array(features), da.from_array(labels[:-5]))
    with_nan = wb.data.from_pandas(table.assign(b=table["b"].where(table["b"] < 2)), npartitions=2)
    with pytest.raises(ValueError, match="feature column 'b' has NaN"):
        classifier(label_cols="y").fit(with_nan)
    with pytest.raises(ValueError, match="feature column.*'e'.* not found"):
        classifier(feature_cols=["a", "e"], label_cols="y").fit(table)
    with pytest.raises(ValueError, match="either as y or as label_cols"):
        classifier(label_cols="y").fit(table, table["y"])
    with pytest.raises(ValueError, match="select DataFrame columns, but X is a ndarray"):
        classifier(feature_cols=["a"]).fit(features, labels)
    with pytest.raises(ValueError, match="the model gives 2 outputs per sample, but y has 3 classes"):
        NNClassifier(lambda: torch.nn.Linear(4, 2)).fit(features, labels)
    with pytest.raises(ValueError, match="does not accept samples of shape"):
        NNClassifier(lambda: torch.nn.Linear(5, 3)).fit(features, labels)


def test_a_keras_model_function_trains_with_keras(context, three_classes):
    """The framework comes from what the function returns; Keras gets its cross-entropy on logits."""
    import keras

    def keras_mlp(n_features_in: int, n_outputs: int) -> keras.Model:
        return keras.Sequential([keras.Input((n_features_in,)), keras.layers.Dense(16, activation="tanh"),
                                 keras.layers.Dense(n_outputs)])

    features, labels = three_classes
    clf = NNClassifier(keras_mlp, optimizer_kwargs={"learning_rate": 0.05}, epochs=4).fit(features, labels)
    assert clf.estimator_.backend.name == "keras"
    assert clf.estimator_.backend.loss_name == "SparseCategoricalCrossentropy"
    assert clf.score(features, labels) >= 0.85
    np.testing.assert_allclose(clf.predict_proba(features[:5]).sum(axis=1), 1, rtol=1e-5)
