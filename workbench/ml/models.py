"""The model behind an NN estimator: its framework, its outputs, and the wb.Estimator training it.

``model`` is a PyTorch ``nn.Module`` or a Keras ``Model``, or a function returning one. A
function may take ``n_features_in`` and/or ``n_outputs`` keyword parameters: they receive the
data's shape at fit time, so one definition fits data of any width (as scikit-learn
estimators do). Which framework trains the model is read from the object itself (for a
function, from what one call returns), so neither torch nor Keras is imported unless used.
"""

from __future__ import annotations

import copy
import inspect
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from workbench.train.estimator import Estimator

__all__ = [
    "ModelSpec", "inspect_model", "default_loss", "create_estimator", "estimator_to_files", "estimator_from_files",
]


@dataclass
class ModelSpec:
    """A model ready for ``wb.Estimator.from_<framework>``, and what one forward pass showed."""

    framework: str  # "torch" or "keras"
    model: Any  # a zero-argument function, or a private copy of the given instance
    output_width: int  # output values per sample


def inspect_model(model: Any, sample: np.ndarray, n_features_in: int, n_outputs: int) -> ModelSpec:
    """Resolve ``model`` for data whose first rows are ``sample``, and run it on them.

    An instance is deep-copied, so fitting never changes the caller's object (a scikit-learn
    rule: fit leaves parameters as they were). A function is bound to the shape parameters it
    declares and called once here, to learn its framework; the Estimator calls it again, under
    its ``seed``.
    """
    if _framework(model) is None:
        if not callable(model):
            raise TypeError(
                "model must be a torch.nn.Module, a keras.Model or a function returning one, "
                f"not {type(model).__name__}"
            )
        model = _bind_shape(model, n_features_in=n_features_in, n_outputs=n_outputs)
        instance = _call_keeping_torch_rng(model)
    else:
        model = instance = copy.deepcopy(model)
    framework = _framework(instance)
    if framework is None:
        raise TypeError(f"the model function returned {type(instance).__name__}, not a torch.nn.Module or keras.Model")
    try:
        output = _forward(framework, instance, sample.astype(np.float32))
    except Exception as error:
        raise ValueError(
            f"the model does not accept samples of shape {sample.shape[1:]} ({n_features_in} features): {error}"
        ) from error
    return ModelSpec(framework, model, int(np.prod(output.shape[1:])))


def default_loss(framework: str, classifier: bool, output_width: int) -> Any:
    """The loss for a model whose outputs are logits (classifier) or values (regression)."""
    if not classifier:
        return "mse"
    binary = output_width == 1
    if framework == "torch":
        return "bce_with_logits" if binary else "cross_entropy"
    import keras

    loss = keras.losses.BinaryCrossentropy if binary else keras.losses.SparseCategoricalCrossentropy
    return loss(from_logits=True)


def create_estimator(spec: ModelSpec, loss: Any, **options: Any) -> Estimator:
    """``wb.Estimator.from_torch`` or ``from_keras`` for the model of ``spec``."""
    return getattr(Estimator, f"from_{spec.framework}")(spec.model, loss=loss, **options)


def estimator_to_files(estimator: Estimator) -> dict[str, bytes]:
    """The directory written by ``Estimator.save``, as file contents (to pickle a fitted estimator)."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory) / "estimator"
        estimator.save(root)
        return {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def estimator_from_files(files: dict[str, bytes]) -> Estimator:
    """The Estimator :func:`estimator_to_files` captured, restored with ``Estimator.load``."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory) / "estimator"
        for name, content in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(content)
        # The files come out of a pickle of this very estimator: whoever unpickled it has
        # already trusted its code, so the model and loss definitions in them may run.
        return Estimator.load(root, trust_code=True)


def _framework(model: Any) -> str | None:
    """'torch' or 'keras' for a model instance; None for anything else."""
    torch, keras = sys.modules.get("torch"), sys.modules.get("keras")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch"
    if keras is not None and isinstance(model, keras.Model):
        return "keras"
    return None


def _bind_shape(function: Any, **shape: int) -> Any:
    """``function`` with the shape parameters it declares filled in (a picklable partial)."""
    try:
        declared = inspect.signature(function).parameters
    except (TypeError, ValueError):  # builtins without a signature take no shape
        return function
    return partial(function, **{name: value for name, value in shape.items() if name in declared})


def _call_keeping_torch_rng(function: Any) -> Any:
    """``function()`` without advancing torch's global random state (fit must not change it)."""
    torch = sys.modules.get("torch")
    if torch is None:  # a function that imports torch itself finds a state nobody has used
        return function()
    with torch.random.fork_rng():
        return function()


def _forward(framework: str, model: Any, sample: np.ndarray) -> np.ndarray:
    """The model's output for ``sample``, in inference mode."""
    if framework == "keras":
        return np.asarray(model(sample, training=False))
    import torch

    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(sample))).numpy()
