"""NN estimators inside scikit-learn's Pipeline and hyper-parameter searches."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pytest
import torch
from dask_ml.model_selection import GridSearchCV as DaskGridSearchCV
from dask_ml.preprocessing import StandardScaler
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

import workbench as wb
from workbench.ml import NNClassifier

from .conftest import FEATURES, mlp


def test_pipeline_with_a_dask_ml_scaler_on_a_dask_dataframe(context, table):
    shifted = table.assign(a=table["a"] * 100 + 50)  # the scaler has work to do
    frame = wb.data.from_pandas(shifted, npartitions=3)
    pipeline = make_pipeline(StandardScaler(), NNClassifier(mlp, optimizer_kwargs={"lr": 0.05}, epochs=6))
    pipeline.fit(frame[FEATURES], frame["y"])

    predicted = pipeline.predict(frame[FEATURES])
    assert isinstance(predicted, dd.Series)
    assert (predicted.compute().to_numpy() == shifted["y"].to_numpy()).mean() >= 0.9
    assert pipeline.score(frame[FEATURES], frame["y"]) >= 0.9
    np.testing.assert_array_equal(pipeline.predict(shifted[FEATURES]), predicted.compute().to_numpy())


def test_grid_search_clones_fits_and_refits_the_best(context, three_classes):
    features, labels = three_classes
    search = GridSearchCV(NNClassifier(mlp, epochs=3), {"optimizer_kwargs": [{"lr": 0.0001}, {"lr": 0.05}]}, cv=2)
    search.fit(features, labels)
    assert search.best_params_ == {"optimizer_kwargs": {"lr": 0.05}}
    assert search.best_estimator_.score(features, labels) >= 0.85
    assert not hasattr(search.estimator, "estimator_"), "the searched estimator itself stays unfitted"


def test_dask_ml_grid_search_runs_with_the_sync_scheduler(context, three_classes):
    """dask_ml's search fits on the driver with scheduler='sync' (training itself is distributed)."""
    features, labels = three_classes
    search = DaskGridSearchCV(NNClassifier(mlp, epochs=2, optimizer_kwargs={"lr": 0.05}), {"batch_size": [32, 64]},
                              cv=2, scheduler="sync")
    search.fit(features, labels)
    assert set(search.cv_results_["param_batch_size"]) == {32, 64}
    assert search.best_estimator_.score(features, labels) >= 0.8


def test_clone_copies_a_module_parameter():
    module = torch.nn.Linear(4, 3)
    cloned = clone(NNClassifier(module)).model
    assert cloned is not module
    torch.testing.assert_close(cloned.weight, module.weight)


def test_fit_inside_a_dask_task_is_refused(context, three_classes):
    """dask_ml's search on the distributed scheduler would fit on a worker: refused with the way out."""
    features, labels = three_classes
    future = context.client.submit(lambda: NNClassifier(lambda: torch.nn.Linear(4, 3)).fit(features, labels))
    with pytest.raises(RuntimeError, match="inside a Dask task.*scheduler='sync'"):
        future.result()
