"""scikit-learn estimators over distributed training (Analytics Zoo's nnframes, sklearn style).

``NNClassifier``, ``NNRegressor`` and the general ``NNEstimator`` wrap a PyTorch or Keras model
and train it on the Workbench cluster; they work with numpy, pandas and Dask data and inside
scikit-learn's ``Pipeline`` and ``GridSearchCV``::

    import workbench as wb
    from workbench.ml import NNClassifier

    clf = NNClassifier(make_model, optimizer_kwargs={"lr": 0.01}, epochs=5)
    clf.fit(X_train, y_train)            # starts wb.init() if no context is live
    clf.score(X_test, y_test)
"""

from workbench.ml.estimators import NNClassifier, NNEstimator, NNRegressor

__all__ = ["NNEstimator", "NNClassifier", "NNRegressor"]
