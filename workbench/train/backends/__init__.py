"""Framework backends: each turns a model into a replica with flat parameter/gradient buffers."""

from __future__ import annotations

import numpy as np

__all__ = ["class_indices", "check_not_other_framework"]


def class_indices(labels: np.ndarray) -> np.ndarray:
    """Labels of a class-index loss (cross-entropy) as int64; fractional values are refused, not truncated."""
    labels = np.asarray(labels).reshape(len(labels))
    if labels.dtype.kind in "fc":
        fractional = labels != np.floor(labels)  # NaN and inf count too
        if fractional.any():
            raise ValueError(
                f"this loss takes class indices (whole numbers 0..classes-1) as labels, got {labels[fractional][0]}; "
                "for probabilities or soft targets use a loss such as 'bce' or 'mse'"
            )
    return labels.astype(np.int64)


def check_not_other_framework(model: object, framework: str, expected: str) -> None:
    """Refuse a model object of another framework (say a Keras model given to a PyTorch estimator).

    Such an object is callable, so it would otherwise be taken for a creator function and fail
    with an error of its own framework.
    """
    roots = {cls.__module__.split(".")[0] for cls in type(model).__mro__}
    other = "Keras" if roots & {"keras", "tf_keras", "tensorflow"} else "PyTorch" if "torch" in roots else None
    if other is not None and other != framework:
        raise TypeError(
            f"model is a {other} model ({type(model).__name__}), but this estimator (or saved directory) is "
            f"{framework}: give {expected} or a function returning one"
        )
