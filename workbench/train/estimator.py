"""The Estimator: fit, evaluate, predict, save and load a model on the Workbench cluster.

``fit`` shards the data over the workers, checks the model on a few rows, and hands over to a
:class:`~workbench.train.run.TrainingRun`: parameter-server shards on the workers, tasks
running the synchronous loop of :mod:`workbench.train.worker`, snapshots, and recovery from
lost workers. ``evaluate`` and ``predict`` are plain Dask tasks over the partitions of the
data with the trained weights.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd

from workbench.arguments import as_list, check_positive_int
from workbench.data.arrays import check_columns, frame_to_arrays
from workbench.data.shard import as_collection, as_dask_array, partition_arrays, shard
from workbench.jupyter import current_kernel
from workbench.train import checkpoint
from workbench.train.callbacks import Callback, CallbackList, ProgressBar, fit_observers
from workbench.train.inference import (
    Weights,
    check_loss,
    evaluate_part,
    model_output,
    predict_arrays,
    predict_frame,
    prediction_columns,
)
from workbench.train.metrics import get_metrics
from workbench.train.optimizers import SliceOptimizer, from_keras, get_optimizer, optimizer_from_config
from workbench.train.parameter_server import ParameterServer
from workbench.train.run import FitSettings, TrainingRun, empty_totals
from workbench.serving.signature import Signature
from workbench.train.snapshots import Snapshot, open_store

__all__ = ["Estimator"]


class Estimator:
    """Distributed data-parallel training of a model on the current Workbench context.

    Build one with :meth:`from_torch` or :meth:`from_keras`. Learned state: ``model_`` (the
    framework model holding the current weights), ``history_`` (per-epoch metrics of the last
    fit), ``events_`` (workers lost and joined during it: time, workers, steps replayed,
    recovery seconds), ``workers_`` (the training workers of the current or last fit: rank
    *n* and parameter shard *n* on ``workers_[n]``), ``step_`` (optimizer steps taken), ``optimizer_state_``
    (per-parameter optimizer state), ``signature_`` (a :class:`~workbench.serving.Signature`:
    the shape and dtype of the features and outputs the model was fitted on; saved with it, and
    checked on every request by :class:`~workbench.serving.InferenceModel`).
    """

    def __init__(self, backend: Any, optimizer: SliceOptimizer, metrics: list | None = None,
                 clip_norm: float | None = None, model: Any = None):
        if clip_norm is not None and not clip_norm > 0:
            raise ValueError(f"clip_norm must be positive, got {clip_norm!r}")
        self.backend = backend
        self.optimizer = optimizer
        self.metrics = get_metrics(metrics, logits=backend.logits)
        self.metric_specs = list(metrics or [])
        self.clip_norm = clip_norm
        self._replica = backend.wrap(model) if model is not None else backend.build()
        self.model_ = self._replica.module
        self.step_ = 0
        self.epochs_ = 0
        self.optimizer_state_: dict[str, np.ndarray] | None = None
        self.history_: pd.DataFrame | None = None
        self.events_: pd.DataFrame | None = None
        self.workers_: list[str] | None = None
        self.feature_cols_: list[str] | None = None
        self.label_cols_: list[str] | None = None
        self.signature_: Signature | None = None
        self.stop_training = False
        self.steps_per_epoch: int | None = None
        self._server: ParameterServer | None = None
        self._lr_override: float | None = None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_torch(
        cls,
        model: Any,
        optimizer: Any = "adam",
        optimizer_kwargs: dict[str, Any] | None = None,
        loss: Any = "mse",
        metrics: list | None = None,
        clip_norm: float | None = None,
        seed: int = 0,
    ) -> Estimator:
        """An estimator for a PyTorch model.

        Args:
            model: an ``nn.Module``, or a zero-argument function returning one (preferred: it is
                called on each worker). Initial weights come from the driver's instance, built
                under ``torch.manual_seed(seed)``.
            optimizer: a ``torch.optim`` class, a name ("sgd", "adam", "adamw", "adagrad",
                "rmsprop") or a ``workbench.train.optimizers`` object; it runs on the
                parameter-server shards with the same math.
            optimizer_kwargs: hyper-parameters for a class or name (``lr``, ``momentum``, ...).
            loss: "cross_entropy", "mse", "bce", "bce_with_logits", ... a torch loss module, or a
                function ``loss(output, target)`` returning the batch mean.
            metrics: names ("accuracy", "mse", "mae", "rmse", "r2"), Metric objects or functions.
            clip_norm: clip the global gradient norm to this value.
            seed: seed of the initial weights (for a model function).
        """
        import torch

        from workbench.train.backends.torch import TorchBackend

        backend = TorchBackend(model, loss)
        slice_optimizer = _resolve_optimizer(optimizer, optimizer_kwargs or {})
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            module = model if isinstance(model, torch.nn.Module) else None
            return cls(backend, slice_optimizer, metrics, clip_norm, model=module)

    @classmethod
    def from_keras(
        cls,
        model: Any,
        optimizer: Any = "adam",
        optimizer_kwargs: dict[str, Any] | None = None,
        loss: Any = "mse",
        metrics: list | None = None,
        clip_norm: float | None = None,
        seed: int = 0,
    ) -> Estimator:
        """An estimator for a Keras 3 model (TensorFlow backend), with :meth:`from_torch`'s contract.

        Args:
            model: a ``keras.Model`` (built: it has an ``Input``), or a zero-argument function
                returning one (preferred); the driver's instance is built after
                ``keras.utils.set_random_seed(seed)``.
            optimizer: a Keras optimizer object (its hyper-parameters map to the same slice
                optimizers, Keras math), a name ("sgd", "adam", ...) with ``optimizer_kwargs``
                in Keras' terms, or a ``workbench.train.optimizers`` object.
            loss: a Keras loss name ("sparse_categorical_crossentropy", "mse", ...), a
                ``keras.losses.Loss``, or ``loss(y_true, y_pred)``.
            metrics, clip_norm: as for :meth:`from_torch`.
        """
        from workbench.train.backends.keras import KerasBackend, import_keras

        keras = import_keras()
        backend = KerasBackend(model, loss)
        slice_optimizer = _resolve_keras_optimizer(keras, optimizer, optimizer_kwargs or {})
        keras.utils.set_random_seed(seed)
        module = model if isinstance(model, keras.Model) else None
        return cls(backend, slice_optimizer, metrics, clip_norm, model=module)

    # -- training ----------------------------------------------------------------------------

    def fit(
        self,
        data: Any,
        feature_cols: str | list[str] | None = None,
        label_cols: str | list[str] | None = None,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: Any = None,
        checkpoint_dir: str | os.PathLike | None = None,
        snapshot_every: int | None = None,
        resume: bool = False,
        max_failures: int = 3,
        on_nonfinite: str = "raise",
        callbacks: list[Callback] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        log_every: int = 10,
        progress: str | None = "auto",
        verbose: bool | None = None,
        allow_nan: bool = False,
    ) -> pd.DataFrame:
        """Train on every worker of the current context; returns the per-epoch history.

        The fit survives the loss of workers: it rolls back to its last snapshot and goes on
        over the workers left (``events_`` records what happened); workers that join are used
        from the next epoch. The global batch stays ``batch_size`` whatever the number of
        workers, so the learning rate needs no rescaling.

        Args:
            data: a Dask/pandas DataFrame, a Parquet/CSV path, or ``(X, y)`` arrays.
            feature_cols, label_cols: the columns, for tables.
            epochs: passes over the data (with ``resume``, of the fit being resumed).
            batch_size: the global batch, split across workers.
            validation_data: data evaluated after each epoch (``val_`` columns in the history).
            checkpoint_dir: where snapshots go (a local path or an fsspec URL); without it they
                stay in this process's memory (enough for worker loss, not for a restart).
            snapshot_every: steps between snapshots, besides each epoch end (None: epoch ends
                only). A lost worker costs the steps since the last snapshot.
            resume: continue the fit whose snapshots are in ``checkpoint_dir`` (same model and
                data), e.g. after a kernel restart; with none there, start afresh. Without
                ``resume`` a fit starts over and replaces the directory's snapshots.
            max_failures: worker losses the fit recovers from; one more raises
                :class:`~workbench.train.run.TrainingFailed`.
            on_nonfinite: "raise": a NaN/inf loss or gradient stops the fit with
                :class:`~workbench.train.worker.NonFiniteError` naming the step, the worker and
                the rows; "skip": such a batch contributes nothing and is counted
                (``skipped_batches`` in the history).
            callbacks: :class:`~workbench.train.callbacks.Callback` objects.
            shuffle, seed: per-epoch shuffling of each worker's shard.
            log_every: steps between metric reports (the per-step stream for callbacks).
            progress: how the fit shows its progress: "widget" (a
                :class:`~workbench.widgets.TrainingDashboard`, displayed in the notebook), "bar"
                (a tqdm :class:`~workbench.train.callbacks.ProgressBar` on stderr), None
                (nothing), or "auto": the dashboard inside a Jupyter kernel with ipywidgets
                installed, else the bar when stderr is a terminal, else nothing.
            verbose: the older switch, still honoured: False shows nothing whatever
                ``progress`` says; True means "bar" where ``progress`` is "auto".
            allow_nan: keep NaN values in the data instead of raising ``ValueError``.
        """
        from workbench.context import current

        check_positive_int("epochs", epochs)
        check_positive_int("batch_size", batch_size)
        check_positive_int("log_every", log_every)
        if snapshot_every is not None:
            check_positive_int("snapshot_every", snapshot_every)
        if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0:
            raise ValueError(f"max_failures must be an integer >= 0, got {max_failures!r}")
        if on_nonfinite not in ("raise", "skip"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
        if progress not in _PROGRESS:
            raise ValueError(f"progress must be one of {_PROGRESS}, got {progress!r}")
        context = current()
        if context is None:
            raise RuntimeError("no Workbench context: call wb.init() before fit()")
        store = open_store(checkpoint_dir)
        if resume and store.url is None:
            raise ValueError("resume=True needs the checkpoint_dir of the fit to resume")
        start = store.latest() if resume else None
        client = context.client
        shards = shard(data, feature_cols, label_cols, allow_nan=allow_nan, context=context)
        validation = None
        try:
            if batch_size < shards.num_shards:
                raise ValueError(f"batch_size={batch_size} is smaller than the {shards.num_shards} workers; each needs a sample")
            if validation_data is not None:
                validation = shard(validation_data, feature_cols, label_cols, allow_nan=allow_nan, context=context)
            head = client.submit(_head, shards.futures[0], 8).result()
            output = self._check_model_on(*head)
            fingerprint = {"backend": self.backend.name, "parameters": int(self._replica.flat_params.size),
                           "optimizer": self.optimizer.get_config()["name"], "rows": shards.n_rows}
            if start is not None:
                store.check_fingerprint(start, fingerprint)
            else:
                store.clear()
                start = self._initial_snapshot(shards.n_rows)
            self.feature_cols_ = as_list(feature_cols) or None
            self.label_cols_ = as_list(label_cols) or None
            self.signature_ = Signature.from_example(head[0], output, columns=self.feature_cols_)
            display = _progress_display(progress, verbose)
            observers = fit_observers()  # e.g. the JupyterLab job list
            callback_list = CallbackList(list(callbacks or []) + observers + ([display] if display else []), self)
            settings = FitSettings(epochs=epochs, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                   log_every=log_every, snapshot_every=snapshot_every, max_failures=max_failures,
                                   on_nonfinite=on_nonfinite)
            self.stop_training = False
            run = TrainingRun(self, shards, validation, store, fingerprint, settings, callback_list)
            try:
                run.run(start, start_stored=start.stored is not None)
            finally:
                shards = run.layout  # the run may have re-cut the shards
        finally:
            shards.release()
            if validation is not None:
                validation.release()
        return self.history_

    def _initial_snapshot(self, rows: int) -> Snapshot:
        """The estimator's current state as the starting point of a new fit."""
        return Snapshot(
            step=self.step_, epoch=self.epochs_, epochs_done=0, consumed=np.zeros(rows, dtype=bool),
            totals=empty_totals(len(self.metrics)), buffers=self._replica.get_buffers(),
            lr_override=self._lr_override, params=self._replica.flat_params.copy(), state=self.optimizer_state_,
        )

    def _check_model_on(self, features: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """Run model, loss and metrics on a few training rows here, before any training starts; the model's output."""
        output = model_output(self._replica, features, "training")
        if labels is None:
            raise ValueError("fit() needs labels: give label_cols for a table, or (X, y) arrays")
        check_loss(self._replica, self.metrics, self.backend.loss_name, output, labels)
        return output

    def _summarise(self, results: list[dict]) -> dict[str, float]:
        samples = sum(r["samples"] for r in results)
        summary = {"loss": sum(r["loss_sum"] for r in results) / samples if samples else math.nan}
        for index, metric in enumerate(self.metrics):
            parts = [r["metric_sums"][index] for r in results if r["metric_sums"][index] is not None]
            summary[metric.name] = metric.result(np.sum(parts, axis=0)) if parts else math.nan
        return summary

    def _pull_from_server(self) -> None:
        snapshot = self._server.snapshot()
        self._replica.load_params(snapshot["params"])
        self.optimizer_state_ = snapshot["state"]
        self.step_ = snapshot["step"]

    # -- weights and learning rate -------------------------------------------------------------

    def get_weights(self) -> np.ndarray:
        """The flat trainable parameters (from the parameter server while fitting)."""
        if self._server is not None:
            return self._server.snapshot()["params"]
        return self._replica.flat_params.copy()

    def set_weights(self, params: np.ndarray) -> None:
        """Replace the flat trainable parameters (after fit, or before it)."""
        params = np.asarray(params, dtype=np.float32)
        if params.shape != self._replica.flat_params.shape:
            raise ValueError(f"expected {self._replica.flat_params.size} parameters, got shape {params.shape}")
        if self._server is not None:
            raise RuntimeError("set_weights() while fitting is not supported; call it after fit()")
        self._replica.load_params(params)

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next optimizer step."""
        if self._server is not None:
            return float(self._server.actors[0].learning_rate().result())
        if self._lr_override is not None:
            return self._lr_override
        return self.optimizer.learning_rate(self.step_ + 1, self.epochs_)

    def set_learning_rate(self, lr: float) -> None:
        """Override the optimizer's learning rate (and schedule) from the next step on."""
        self._lr_override = float(lr)
        if self._server is not None:
            self._server.call_all("set_learning_rate", self._lr_override)

    # -- evaluation and prediction -------------------------------------------------------------

    def evaluate(self, data: Any, feature_cols: str | list[str] | None = None,
                 label_cols: str | list[str] | None = None, batch_size: int = 1024,
                 allow_nan: bool = False) -> dict[str, float]:
        """Loss and metrics of the current weights on ``data`` (computed on the workers)."""
        check_positive_int("batch_size", batch_size)
        feature_cols = feature_cols if feature_cols is not None else self.feature_cols_
        label_cols = label_cols if label_cols is not None else self.label_cols_
        parts = partition_arrays(data, feature_cols, label_cols, allow_nan)
        weights = dask.delayed(self._weights(), pure=False)
        tasks = [dask.delayed(evaluate_part, pure=True)(p, weights, self.metrics, batch_size) for p in parts]
        results = dask.compute(*tasks)
        if not any(r["samples"] for r in results):
            raise ValueError("the evaluation data has no rows")
        return self._summarise(list(results))

    def predict(self, data: Any, feature_cols: str | list[str] | None = None, batch_size: int = 1024,
                allow_nan: bool = False) -> Any:
        """Model outputs for every row, in the input's order, as a lazy Dask collection.

        Tables give a Dask DataFrame with the input's index and a ``prediction`` column (or
        ``prediction_0``, ``prediction_1``, ... for several outputs); arrays give a Dask array.
        """
        import dask.array as da
        import dask.dataframe as dd

        check_positive_int("batch_size", batch_size)
        data = as_collection(data)
        weights = self._weights()
        if isinstance(data, dd.DataFrame):
            columns = as_list(feature_cols if feature_cols is not None else self.feature_cols_)
            if not columns:
                raise ValueError("predict() on a table needs feature_cols (or a fit() that set them)")
            check_columns(data.columns, data.dtypes, columns, "feature")
            to_arrays = partial(frame_to_arrays, feature_cols=columns, label_cols=[], allow_nan=allow_nan)
            sample = model_output(weights.replica(), to_arrays(data.head(1, npartitions=-1))[0], "prediction")
            names, meta = prediction_columns(sample)
            return data.map_partitions(predict_frame, weights, to_arrays, batch_size, names, meta=meta)
        if feature_cols is not None:
            raise ValueError("feature_cols applies to tables, not arrays")
        data = as_dask_array(data, "X")
        data = data.rechunk((data.chunks[0],) + data.shape[1:])
        sample = model_output(weights.replica(), np.zeros((1,) + data.shape[1:], dtype=data.dtype), "prediction")
        blocks = [
            da.from_delayed(dask.delayed(predict_arrays, pure=True)(block, weights, batch_size),
                            shape=(rows,) + sample.shape[1:], dtype=sample.dtype)
            for block, rows in zip(data.to_delayed().ravel(), data.chunks[0])
        ]
        return da.concatenate(blocks)

    def _weights(self) -> Weights:
        return Weights(self.backend, self._replica.flat_params.copy(), self._replica.get_buffers())

    # -- persistence ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write weights, optimizer state, model definition and training config to a directory."""
        if self._server is not None:  # mid-fit (callbacks): take the shards' current state
            self._pull_from_server()
        checkpoint.save(self, Path(path))

    @classmethod
    def load(cls, path: str | os.PathLike, model: Any = None, loss: Any = None, metrics: list | None = None,
             trust_code: bool = False) -> Estimator:
        """An estimator restored by :meth:`save` (weights, optimizer state, history).

        Loading never runs code stored in the directory unless ``trust_code=True``: weights are
        read as plain tensors, and a model architecture, loss or metric that was saved as
        pickled code must be given again (``model``: the function or module that builds it;
        ``loss``, ``metrics``: as for :meth:`from_torch`).
        """
        return checkpoint.load(cls, Path(path), model=model, loss=loss, metrics=metrics, trust_code=trust_code)


_PROGRESS = ("auto", "widget", "bar", None)


def _progress_display(progress: str | None, verbose: bool | None) -> Callback | None:
    """The callback showing a fit's progress, for fit's ``progress`` and ``verbose``."""
    if verbose is False:
        return None
    if progress == "auto":
        if verbose:
            progress = "bar"
        elif current_kernel() is not None and importlib.util.find_spec("ipywidgets") is not None:
            progress = "widget"
        else:
            progress = "bar" if sys.stderr.isatty() else None
    if progress == "bar":
        return ProgressBar()
    if progress == "widget":
        from IPython.display import display

        from workbench.widgets.dashboard import TrainingDashboard  # the lab extra; only when asked for

        dashboard = TrainingDashboard()
        display(dashboard)
        return dashboard
    return None


def _head(pair: tuple, rows: int) -> tuple:
    return pair[0][:rows], None if pair[1] is None else pair[1][:rows]


def _resolve_keras_optimizer(keras, optimizer: Any, kwargs: dict[str, Any]) -> SliceOptimizer:
    if isinstance(optimizer, keras.optimizers.Optimizer):
        if kwargs:
            raise ValueError("optimizer_kwargs apply to an optimizer name, not to a Keras optimizer object")
        return from_keras(optimizer)
    if isinstance(optimizer, str):
        return from_keras(type(keras.optimizers.get(optimizer))(**kwargs))
    return _resolve_optimizer(optimizer, kwargs)


def _resolve_optimizer(optimizer: Any, kwargs: dict[str, Any]) -> SliceOptimizer:
    if isinstance(optimizer, dict):
        return optimizer_from_config(optimizer)
    return get_optimizer(optimizer, **kwargs)
