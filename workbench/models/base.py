"""What every built-in model shares: its configuration, a ready Estimator, and safe reloading.

A built-in model is a ``torch.nn.Module`` whose constructor arguments (its *config*) are plain
JSON values. That gives two things:

- ``model.estimator(...)`` returns a ``wb.Estimator`` with the loss and metrics that suit the
  model, so training is ``model.estimator().fit(...)``;
- ``Estimator.save`` writes the config next to the weights, and ``wb.Estimator.load(path)``
  rebuilds the model from it without ``trust_code``: only classes registered here can be named,
  so loading runs no code from the directory.
"""

from __future__ import annotations

import importlib
import json
from typing import Any, ClassVar

import torch

__all__ = ["BuiltinModel", "builtin_spec", "model_from_spec"]

#: Built-in model classes by name: the only classes a saved config may ask to rebuild.
_REGISTRY: dict[str, type[BuiltinModel]] = {}


class BuiltinModel(torch.nn.Module):
    """Base of the built-in models: stores the constructor's config and makes estimators.

    Subclasses call ``super().__init__(**config)`` with every constructor argument needed to
    rebuild the architecture (JSON values only), and set the class attributes ``default_loss``
    and ``default_metrics``.
    """

    default_loss: ClassVar[Any] = "mse"
    default_metrics: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __init__(self, **config: Any) -> None:
        super().__init__()
        try:
            json.dumps(config)
        except TypeError as error:
            raise TypeError(f"{type(self).__name__}: its config must hold JSON values only ({error})") from error
        self.config = config

    def estimator(self, optimizer: Any = "adam", lr: float = 1e-3, loss: Any = None, metrics: list | None = None,
                  **kwargs: Any) -> Any:
        """A ``wb.Estimator`` training this model (``loss`` and ``metrics`` default to the model's).

        Args:
            optimizer: as for :meth:`workbench.Estimator.from_torch`.
            lr: the learning rate.
            loss, metrics: override the model's defaults.
            **kwargs: passed on to :meth:`workbench.Estimator.from_torch` (``clip_norm``, ``seed``).
        """
        from workbench.train.estimator import Estimator

        return Estimator.from_torch(
            self, optimizer=optimizer, optimizer_kwargs={"lr": lr},
            loss=self.default_loss if loss is None else loss,
            metrics=list(self.default_metrics) if metrics is None else metrics, **kwargs,
        )

    def __repr__(self) -> str:
        arguments = ", ".join(f"{name}={value!r}" for name, value in self.config.items())
        return f"{type(self).__name__}({arguments})"


def builtin_spec(model: Any) -> dict[str, Any] | None:
    """``{"class": name, "config": {...}}`` for a built-in model instance, else None."""
    if isinstance(model, BuiltinModel):
        return {"class": type(model).__name__, "config": model.config}
    return None


def model_from_spec(spec: dict[str, Any], source: str) -> BuiltinModel:
    """The built-in model a saved spec names (``source`` names the file, for errors)."""
    importlib.import_module("workbench.models")  # defines, hence registers, every built-in class
    name = spec.get("class") if isinstance(spec, dict) else None
    if name not in _REGISTRY or not isinstance(spec.get("config"), dict):
        raise ValueError(f"{source} does not name a Workbench built-in model ({spec!r:.200}); "
                         f"known: {sorted(_REGISTRY)}")
    return _REGISTRY[name](**spec["config"])
