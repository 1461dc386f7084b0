"""Keras 3 backend (TensorFlow): the same replica contract as the PyTorch backend.

Keras variables cannot be views into a numpy buffer, so a Keras replica copies: gradients
from ``tf.GradientTape`` into ``flat_grad`` after backward, and ``flat_params`` into the
variables after each parameter-server step (:meth:`KerasReplica.params_changed`). The step
itself is one ``tf.function``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np

from workbench.train.backends import check_not_other_framework, class_indices
from workbench.train.checkpoint import UntrustedCodeError, reading

__all__ = ["KerasBackend", "KerasReplica", "import_keras"]

#: Keras losses whose targets are class indices.
_CLASS_TARGET_LOSSES = ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy")


def import_keras():
    """Keras 3 on the TensorFlow backend (chosen before the first import)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"Workbench trains Keras models on the TensorFlow backend, not {keras.backend.backend()!r}")
    return keras


class KerasBackend:
    """What a worker needs to rebuild a Keras model and its loss.

    Args:
        model: a ``keras.Model`` or a zero-argument function returning one.
        loss: a Keras loss name (``"sparse_categorical_crossentropy"``, ``"mse"``, ...), a
            ``keras.losses.Loss`` averaging over the batch, or ``loss(y_true, y_pred)``.
    """

    name = "keras"

    def __init__(self, model: Any, loss: Any):
        keras = import_keras()
        if not (isinstance(model, keras.Model) or callable(model)):
            raise TypeError(f"model must be a keras.Model or a function returning one, not {type(model).__name__}")
        self.loss_name = _check_loss(keras, loss)
        self.model_bytes = cloudpickle.dumps(model)
        self.loss_bytes = cloudpickle.dumps(loss)
        self.loss_config = loss if isinstance(loss, str) else None  # a name is saved as text, an object pickled
        self.logits = bool(getattr(loss, "get_config", lambda: {})().get("from_logits")) and "binary" in self.loss_name.lower()

    def build(self, threads: int | None = None) -> KerasReplica:
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        import_keras()  # before unpickling a model, which imports Keras
        return self.wrap(_instantiate(cloudpickle.loads(self.model_bytes)))

    def wrap(self, model) -> KerasReplica:
        return KerasReplica(model, cloudpickle.loads(self.loss_bytes), self.loss_name)

    def save(self, module, directory: Path) -> None:
        """Architecture and weights in Keras' native ``.keras`` file."""
        module.save(directory / "model.keras")

    @staticmethod
    def load_model(directory: Path, model: Any, trust_code: bool) -> tuple[Any, Any]:
        """(definition, model with the saved weights), from :meth:`save`.

        ``model`` (a ``keras.Model``, which is used as is, or a creator) receives the file's
        weights; without it the file's architecture is read in Keras' safe mode unless
        ``trust_code`` (safe mode refuses code in the file, such as ``Lambda`` layers).
        """
        file = directory / "model.keras"
        if model is not None:
            module = _instantiate(model)
            with reading(file):
                module.load_weights(file)
            return model, module
        with reading(file):
            try:
                module = import_keras().saving.load_model(file, compile=False, safe_mode=not trust_code)
            except ValueError as error:
                if "safe_mode" not in str(error):  # Keras' refusal names the option that would lift it
                    raise
                raise UntrustedCodeError(
                    f"{file} holds Python code (such as a Lambda layer), which loading it would run: pass "
                    "model=... to build the architecture yourself, or trust_code=True if you trust the directory "
                    "and whoever wrote it"
                ) from error
        return module, module


class KerasReplica:
    """One Keras model with flat parameter and gradient buffers (copies of its variables)."""

    def __init__(self, model, loss: Any, loss_name: str):
        import tensorflow as tf

        keras = import_keras()
        if not model.built:
            raise ValueError("the Keras model has no weights yet: give it an Input or build it before training")
        self.module = model
        self.variables = list(model.trainable_variables)
        if not self.variables:
            raise ValueError("the model has no trainable parameters")
        self.shapes = [tuple(v.shape) for v in self.variables]
        sizes = [int(np.prod(shape)) for shape in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
        self.size = self.offsets[-1]
        self.flat_params = np.concatenate([v.numpy().reshape(-1) for v in self.variables]).astype(np.float32)
        self.flat_grad = np.zeros(self.size, np.float32)
        self.buffers = [v for v in model.non_trainable_variables if "float" in str(v.dtype)]
        self.class_targets = loss_name in _CLASS_TARGET_LOSSES
        loss_fn = keras.losses.get(loss) if isinstance(loss, str) else loss
        reduce_per_sample = not isinstance(loss_fn, keras.losses.Loss)

        def mean_loss(y_true, y_pred):
            if not self.class_targets and y_true.shape.rank == 1 and y_pred.shape.rank == 2 and y_pred.shape[-1] == 1:
                y_true = tf.expand_dims(y_true, -1)  # (n,) labels for an (n, 1) output, not a broadcast
            value = loss_fn(y_true, y_pred)
            return tf.reduce_mean(value) if reduce_per_sample else value

        self._loss = mean_loss

        @tf.function(reduce_retracing=True)
        def forward_backward(features, labels, weight):
            with tf.GradientTape() as tape:
                output = model(features, training=True)
                loss = mean_loss(labels, output)
                scaled = loss * weight
            return loss, output, tape.gradient(scaled, self.variables)

        @tf.function(reduce_retracing=True)
        def forward(features):
            return model(features, training=False)

        self._forward_backward = forward_backward
        self._forward = forward

    def watch_gradients(self, bounds, ready) -> None:
        """Keras computes all gradients at once: every slice is sent after backward."""

    def params_changed(self) -> None:
        """Copy ``flat_params`` into the model's variables."""
        for variable, shape, lo, hi in zip(self.variables, self.shapes, self.offsets, self.offsets[1:]):
            variable.assign(self.flat_params[lo:hi].reshape(shape))

    def train_step(self, features: np.ndarray, labels: np.ndarray, weight: float) -> tuple[float, np.ndarray]:
        import tensorflow as tf

        loss, output, grads = self._forward_backward(
            _inputs(features), self._targets(labels), tf.constant(weight, dtype=tf.float32)
        )
        for grad, lo, hi in zip(grads, self.offsets, self.offsets[1:]):
            if grad is None:
                self.flat_grad[lo:hi] = 0.0
            else:
                self.flat_grad[lo:hi] = tf.convert_to_tensor(grad).numpy().reshape(-1)
        return float(loss), output.numpy()

    def zero_grad(self) -> None:
        self.flat_grad[:] = 0.0

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self._forward(_inputs(features)).numpy()

    def loss_value(self, output: np.ndarray, labels: np.ndarray) -> float:
        return float(self._loss(self._targets(labels), output))

    def load_params(self, params: np.ndarray) -> None:
        np.copyto(self.flat_params, params)
        self.params_changed()

    def get_buffers(self) -> np.ndarray:
        if not self.buffers:
            return np.empty(0, np.float32)
        return np.concatenate([v.numpy().reshape(-1).astype(np.float32) for v in self.buffers])

    def set_buffers(self, values: np.ndarray) -> None:
        offset = 0
        for variable in self.buffers:
            count = int(np.prod(variable.shape))
            variable.assign(values[offset : offset + count].reshape(variable.shape))
            offset += count

    def _targets(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if self.class_targets:
            return class_indices(labels)
        return labels.astype(np.float32)


def _instantiate(model: Any):
    """``model`` itself if it is a Keras model, else the model the creator function returns."""
    keras = import_keras()
    if isinstance(model, keras.Model):
        return model
    check_not_other_framework(model, "Keras", "a keras.Model")
    module = model()
    if not isinstance(module, keras.Model):
        raise TypeError(f"the model function returned {type(module).__name__}, not a keras.Model")
    return module


def _inputs(features: np.ndarray) -> np.ndarray:
    if features.dtype.kind == "f" and features.dtype != np.float32:
        return features.astype(np.float32)
    if features.dtype.kind in "iub":
        return features.astype(np.int64)
    return features


def _check_loss(keras, loss: Any) -> str:
    """Validate the loss; return its name (a class or function name)."""
    if isinstance(loss, str):
        try:
            keras.losses.get(loss)
        except ValueError as error:
            raise ValueError(f"unknown Keras loss {loss!r} ({error})") from error
        return loss
    if isinstance(loss, keras.losses.Loss):
        if loss.reduction != "sum_over_batch_size":
            raise ValueError(
                f"the loss must average over the batch (reduction='sum_over_batch_size'), got {loss.reduction!r}"
            )
        return type(loss).__name__
    if callable(loss):
        return getattr(loss, "__name__", type(loss).__name__)
    raise TypeError(f"loss must be a Keras loss name, a keras.losses.Loss or a function, not {type(loss).__name__}")
