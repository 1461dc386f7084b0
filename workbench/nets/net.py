"""``Net``: a trained PyTorch or Keras model, prepared for transfer learning.

The framework-neutral part lives here (name checks, which layers ``freeze`` touches, the
summary table); :mod:`workbench.nets.torch_graph` and :mod:`workbench.nets.keras_graph` do the
graph work, with the same functions for both frameworks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import asdict
from types import ModuleType
from typing import TYPE_CHECKING, Any

from workbench.nets.files import load_model

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Net"]


class Net:
    """A PyTorch ``nn.Module`` or Keras ``Model`` whose layers can be listed, cut, frozen and extended.

    ``model`` is the framework model: train it with ``wb.Estimator.from_torch`` or
    ``from_keras``. Layer names are those :meth:`summary` lists: for PyTorch the submodule
    paths in the order ``forward`` calls them (found with ``torch.fx``), for Keras the
    model's layer names in graph order. :meth:`cut` and :meth:`append` return new nets that
    share layers and weights with this one (as Keras models built from the same layers do);
    :meth:`freeze` and :meth:`unfreeze` change this net in place and return it, for chaining::

        model = Net.load(path).cut(at="features").freeze(up_to="conv").append(head).model
    """

    def __init__(self, model: Any):
        self._ops = _graph_ops(model)
        self.model = model

    @classmethod
    def load(cls, path: str | os.PathLike, framework: str | None = None, model: Any = None,
             trust_code: bool = False) -> Net:
        """The model saved at ``path``, recognised from its content rather than its file name.

        Accepts a directory written by ``Estimator.save``, a TorchScript file
        (``torch.jit.save``, any name) and a Keras file (``.keras``, or legacy ``.h5``; Keras
        needs the suffix, so a misnamed one is reported as a Keras file). A TorchScript
        ``nn.Sequential`` keeps its layers (each an opaque TorchScript layer); any other
        TorchScript model becomes one layer named ``script``.

        Args:
            path: the file or directory.
            framework: "torch" or "keras" to insist on one: a model of the other framework
                raises a ``ValueError`` saying what the file holds.
            model: for a saved directory, the function or module that builds the saved
                architecture (the directory's weights are loaded into it).
            trust_code: for a saved directory, run the code stored in it where the model needs
                it (a PyTorch model's pickled definition, a Keras ``Lambda`` layer). Without it,
                or ``model``, such a directory raises ``UntrustedCodeError`` (a ``ValueError``)
                naming the file.
        """
        if framework not in (None, "torch", "keras"):
            raise ValueError(f"framework must be 'torch', 'keras' or None, got {framework!r}")
        net = cls(load_model(path, model=model, trust_code=trust_code))
        if framework is not None and net.framework != framework:
            raise ValueError(f"{path} holds a {net.framework} model, not a {framework} one")
        return net

    @property
    def framework(self) -> str:
        """"torch" or "keras"."""
        return self._ops.NAME

    @property
    def layer_names(self) -> list[str]:
        """The layer names, in order (what :meth:`cut`, :meth:`freeze` and :meth:`unfreeze` take)."""
        return [layer.name for layer in self._ops.layers(self.model)]

    def summary(self, example_input: Any = None) -> pd.DataFrame:
        """One row per layer, in order, indexed by name: type, output_shape, params, trainable.

        Args:
            example_input: PyTorch only: a batch the model accepts (tensor or numpy array); the
                output shapes come from running it through the model in eval mode without
                gradients. Without it they are None. Keras shapes come from the model's graph.
        """
        import pandas as pd

        rows = [asdict(layer) for layer in self._ops.layers(self.model, example_input)]
        return pd.DataFrame(rows, columns=["name", "type", "output_shape", "params", "trainable"]).set_index("name")

    def cut(self, at: str) -> Net:
        """A net computing this one's graph up to and including layer ``at``, whose output is its output.

        Raises ``ValueError`` for an unknown name (listing the known ones) and for a layer whose
        output cannot be isolated (called several times, or a bare parameter).
        """
        self._check_names([at])
        return Net(self._ops.cut(self.model, at))

    def freeze(self, up_to: str | None = None) -> Net:
        """Stop training every parameter of the layers up to and including ``up_to`` (None: all).

        Frozen means ``requires_grad=False`` (PyTorch) or ``layer.trainable = False`` (Keras).
        Returns this net.
        """
        names = None
        if up_to is not None:
            known = self._check_names([up_to])
            names = known[: known.index(up_to) + 1]
        self._ops.set_trainable(self.model, names, False)
        return self

    def unfreeze(self, names: str | Iterable[str] | None = None) -> Net:
        """Train the parameters of the named layers again (None: every parameter). Returns this net."""
        if names is not None:
            names = [names] if isinstance(names, str) else list(names)
            self._check_names(names)
        self._ops.set_trainable(self.model, names, True)
        return self

    def append(self, *layers: Any, name: str = "head") -> Net:
        """A net feeding this net's output through ``layers``, in order, as one block named ``name``.

        The layers are of this net's framework: PyTorch modules (several become an
        ``nn.Sequential``, listed as ``head.0``, ``head.1``, ...) or Keras layers (wrapped in a
        ``keras.Sequential`` named ``name``). The new block is trainable; the result's ``model``
        is ready for ``wb.Estimator.from_torch`` / ``from_keras``.
        """
        if not layers:
            raise ValueError("append() needs at least one layer")
        if any(existing == name or existing.startswith(name + ".") for existing in self.layer_names):
            raise ValueError(f"a layer named {name!r} exists already; pass another name=")
        return Net(self._ops.append(self.model, layers, name))

    def __repr__(self) -> str:
        total, trainable = self._ops.param_counts(self.model)
        header = f"Net({self.framework} {type(self.model).__name__}): {total:,} parameters, {trainable:,} trainable"
        try:
            table = self.summary().to_string()
        except ValueError as error:  # a PyTorch model torch.fx cannot trace
            table = f"(no layer list: {error})"
        return f"{header}\n{table}"

    def _check_names(self, names: list[str]) -> list[str]:
        """The layer names, after checking that every one of ``names`` is among them."""
        known = self.layer_names
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"unknown layer {', '.join(map(repr, unknown))}; the layers are: {', '.join(known)}")
        return known


def _graph_ops(model: Any) -> ModuleType:
    """The graph functions for ``model``'s framework (without importing a framework not in use)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        from workbench.nets import torch_graph

        return torch_graph
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        from workbench.nets import keras_graph

        return keras_graph
    raise TypeError(f"Net wraps a torch.nn.Module or a keras.Model, not {type(model).__name__}")
