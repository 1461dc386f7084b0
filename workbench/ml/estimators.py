"""scikit-learn estimators that train a neural network on the Workbench cluster.

The experience of Analytics Zoo's nnframes with scikit-learn's conventions: ``NNEstimator``,
``NNClassifier`` and ``NNRegressor`` wrap a PyTorch or Keras model, train it with
:class:`workbench.Estimator` (synchronous data-parallel training on every worker), and fit
into scikit-learn's tools: ``clone``, ``Pipeline``, ``GridSearchCV``, pickling.

``fit`` uses the current Workbench context, and calls ``wb.init()`` when none is live (so a
notebook can start with ``NNClassifier(...).fit(X, y)``). In-memory data (numpy, pandas)
gives numpy results, computed; Dask data gives lazy Dask results, in the input's order and,
for DataFrames, with its index.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin, is_classifier
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from workbench.ml.data import (
    compute_together,
    first_rows,
    map_rows,
    select_columns,
    training_data,
    validate_prediction,
    validate_training,
)
from workbench.ml.models import (
    ModelSpec,
    create_estimator,
    default_loss,
    estimator_from_files,
    estimator_to_files,
    inspect_model,
)

__all__ = ["NNEstimator", "NNClassifier", "NNRegressor"]


class NNEstimator(TransformerMixin, BaseEstimator):
    """A PyTorch or Keras model trained on the cluster, used as a scikit-learn estimator.

    ``predict`` gives the model's outputs (one value per sample for a single output);
    ``transform`` appends them to the data as a ``prediction`` column.

    Parameters:
        model: a ``torch.nn.Module`` or ``keras.Model`` (copied at fit, never changed), or a
            function returning one; the function may take ``n_features_in`` and ``n_outputs``
            keyword parameters, filled from the data at fit (outputs: label columns, or
            classes for a classifier). Classifier models output logits.
        optimizer, optimizer_kwargs, metrics, clip_norm: as for ``wb.Estimator.from_torch``.
        loss: the loss (a framework loss name or object); None is mean squared error, and
            for a classifier cross-entropy on logits.
        epochs, batch_size: passes over the data, and the global batch (split across workers).
        feature_cols, label_cols: DataFrame columns to train on, and the label columns (then
            ``fit(df)`` needs no ``y``), as in nnframes.
        seed: seed of the initial weights and of the per-epoch shuffling.
        verbose: show a progress bar while fitting.

    Attributes:
        estimator_: the fitted ``wb.Estimator`` (its ``model_`` holds the trained weights).
        history_: per-epoch loss and metrics of the fit.
        n_features_in_, feature_names_in_: the features seen by fit.
    """

    def __init__(
        self,
        model: Any,
        optimizer: Any = "adam",
        optimizer_kwargs: dict[str, Any] | None = None,
        loss: Any = None,
        epochs: int = 10,
        batch_size: int = 32,
        metrics: list | None = None,
        feature_cols: str | list[str] | None = None,
        label_cols: str | list[str] | None = None,
        clip_norm: float | None = None,
        seed: int = 0,
        verbose: bool = False,
    ):
        self.model = model
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.metrics = metrics
        self.feature_cols = feature_cols
        self.label_cols = label_cols
        self.clip_norm = clip_norm
        self.seed = seed
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any = None) -> NNEstimator:
        """Train the model on every worker of the current context (``wb.init()`` if none).

        Args:
            X: features: a numpy array, a pandas or Dask DataFrame, or a Dask array.
            y: labels, of the same length; None when ``label_cols`` names them in X.
        """
        X, y = select_columns(X, y, self.feature_cols, self.label_cols)
        X, y = validate_training(self, X, y)
        y, n_outputs = self._training_labels(y)
        spec = inspect_model(self.model, first_rows(X), self.n_features_in_, n_outputs)
        estimator = create_estimator(
            spec, self._loss_for(spec), optimizer=self.optimizer, optimizer_kwargs=self.optimizer_kwargs,
            metrics=self.metrics, clip_norm=self.clip_norm, seed=self.seed,
        )
        _ensure_context()
        data, feature_cols, label_cols = training_data(X, y)
        self.history_ = estimator.fit(data, feature_cols, label_cols, epochs=self.epochs, batch_size=self.batch_size,
                                      seed=self.seed, verbose=self.verbose)
        self.estimator_ = estimator
        return self

    def predict(self, X: Any) -> Any:
        """The model's outputs: ``(n,)`` for one output per sample, else ``(n, outputs)``.

        A Dask DataFrame gives a Series ``prediction`` (or a DataFrame ``prediction_0``, ...).
        """
        raw, in_memory = self._raw_predictions(X)
        if isinstance(raw, dd.DataFrame):
            predicted = raw[raw.columns[0]] if len(raw.columns) == 1 else raw
        else:
            predicted = raw[:, 0] if raw.shape[1:] == (1,) else raw
        return predicted.compute() if in_memory else predicted

    def transform(self, X: Any) -> Any:
        """X with the predictions appended (nnframes' ``NNModel.transform``).

        DataFrames get a ``prediction`` column (``prediction_0``, ... for several outputs)
        and keep their index; arrays get the predictions as last columns.
        """
        predicted = self.predict(X)
        if isinstance(X, dd.DataFrame):
            columns = predicted.to_frame() if isinstance(predicted, dd.Series) else predicted
            return X.assign(**{name: columns[name] for name in columns.columns})
        values = predicted if predicted.ndim == 2 else predicted[:, None]
        if isinstance(X, pd.DataFrame):
            names = ["prediction"] if values.shape[1] == 1 else [f"prediction_{i}" for i in range(values.shape[1])]
            return X.assign(**dict(zip(names, values.T)))
        if isinstance(X, da.Array):
            return da.concatenate([X, values], axis=1)
        return np.concatenate([np.asarray(X), values], axis=1)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "estimator_")

    def __getstate__(self) -> dict[str, Any]:
        """Pickle a fitted model through ``wb.Estimator.save`` (any framework, weights included)."""
        state = dict(super().__getstate__())
        if "estimator_" in state:
            state["estimator_"] = estimator_to_files(state["estimator_"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "estimator_" in state:
            state = {**state, "estimator_": estimator_from_files(state["estimator_"])}
        super().__setstate__(state)

    def _training_labels(self, y: Any) -> tuple[Any, int]:
        """Labels as the model trains on them, and how many outputs they need."""
        return y, 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))

    def _loss_for(self, spec: ModelSpec) -> Any:
        """The loss to train ``spec``'s model with."""
        return default_loss(spec.framework, is_classifier(self), spec.output_width) if self.loss is None else self.loss

    def _raw_predictions(self, X: Any) -> tuple[Any, bool]:
        """Lazy model outputs for X, and whether X was in memory (results are computed then)."""
        check_is_fitted(self)
        X, in_memory = validate_prediction(self, X)
        feature_cols = list(X.columns) if isinstance(X, dd.DataFrame) else None
        return self.estimator_.predict(X, feature_cols), in_memory

    def _score(self, metric: Any, X: Any, y: Any, sample_weight: Any) -> float:
        """``metric`` of the predictions, with Dask predictions and labels computed together."""
        X, y = select_columns(X, y, self.feature_cols, self.label_cols)
        predicted, y = compute_together(self.predict(X), y)
        return float(metric(y, predicted, sample_weight=sample_weight))


class NNRegressor(RegressorMixin, NNEstimator):
    """An :class:`NNEstimator` for regression: mean squared error by default, ``score`` is R²."""

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """R² of the predictions (labels from ``label_cols`` when y is None)."""
        return self._score(r2_score, X, y, sample_weight)


class NNClassifier(ClassifierMixin, NNEstimator):
    """An :class:`NNEstimator` for classification, like nnframes' ``NNClassifier``.

    Labels may be any sortable values: ``classes_`` holds them sorted, and the model trains on
    their indices. The model outputs one logit per class (or a single logit for two classes):
    ``predict_proba`` is their softmax (sigmoid), ``predict`` the most likely class, ``score``
    the accuracy.

    Attributes:
        classes_: the class labels seen in fit, sorted.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = False
        return tags

    def predict(self, X: Any) -> Any:
        """The most likely class of each sample (a Series ``prediction`` for a Dask DataFrame)."""
        raw, in_memory = self._raw_predictions(X)
        predicted = map_rows(raw, partial(_labels, classes=self.classes_), "prediction")
        return predicted.compute() if in_memory else predicted

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, columns in ``classes_`` order (named by class for a Dask DataFrame)."""
        raw, in_memory = self._raw_predictions(X)
        probabilities = map_rows(raw, _probabilities, list(self.classes_))
        return probabilities.compute() if in_memory else probabilities

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Accuracy of the predictions (labels from ``label_cols`` when y is None)."""
        return self._score(accuracy_score, X, y, sample_weight)

    def _training_labels(self, y: Any) -> tuple[Any, int]:
        """Class indices 0..k-1 for the labels, and k (for Dask labels: one pass to find the classes)."""
        if isinstance(y, np.ndarray):
            check_classification_targets(y)
            self.classes_, encoded = np.unique(y, return_inverse=True)
        else:
            if y.ndim != 1:
                raise ValueError(f"a classifier needs one label per sample, got labels of {y.ndim} dimensions")
            uniques = y.unique(split_out=1) if isinstance(y, dd.Series) else da.unique(y)  # no shuffle
            self.classes_ = np.unique(np.asarray(uniques.compute()))
            check_classification_targets(self.classes_)
            encoded = _encode(y, self.classes_)
        if len(self.classes_) < 2:
            raise ValueError(f"a classifier needs at least 2 classes in y, got 1 class: {self.classes_[0]!r}")
        return encoded, len(self.classes_)

    def _loss_for(self, spec: ModelSpec) -> Any:
        """The loss, once the model is known to give one logit per class (or one for two classes)."""
        classes = len(self.classes_)
        if spec.output_width != classes and not (spec.output_width == 1 and classes == 2):
            raise ValueError(
                f"the model gives {spec.output_width} outputs per sample, but y has {classes} classes: "
                f"it needs one logit per class{' (or a single logit)' if classes == 2 else ''}"
            )
        return super()._loss_for(spec)


def _ensure_context() -> None:
    """Start a Workbench context (``wb.init()``) when none is live; refuse inside a Dask task."""
    from distributed import get_worker

    from workbench.context import current, init

    if current() is not None:
        return
    try:
        get_worker()
    except ValueError:  # on the driver, as it should be
        init()
        return
    raise RuntimeError(
        "fit() ran inside a Dask task (e.g. dask_ml's GridSearchCV on the distributed scheduler): NN "
        "estimators train on the cluster from the driver; run dask_ml's search with scheduler='sync', "
        "or use sklearn's GridSearchCV"
    )


def _encode(y: Any, classes: np.ndarray) -> Any:
    """Dask labels as class indices, lazily."""
    if isinstance(y, dd.Series):
        return y.map_partitions(_encode_partition, classes, meta=(y.name, np.int64))
    return y.map_blocks(partial(np.searchsorted, classes), dtype=np.int64)


def _encode_partition(labels: pd.Series, classes: np.ndarray) -> pd.Series:
    return pd.Series(np.searchsorted(classes, labels.to_numpy()).astype(np.int64), index=labels.index, name=labels.name)


def _probabilities(logits: np.ndarray) -> np.ndarray:
    logits = logits.reshape(len(logits), int(np.prod(logits.shape[1:])))
    if logits.shape[1] == 1:
        positive = expit(logits[:, 0])
        return np.column_stack([1 - positive, positive])
    return softmax(logits, axis=1)


def _labels(logits: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return classes[_probabilities(logits).argmax(axis=1)]
