"""Keras graph work for ``Net``: layers, cut, append and freezing, with the functional API.

Cut and append build new functional models from the same layer objects, so they share weights
with the model they come from; ``model.layers`` gives the order. A layer's outputs are read
from the calls in the model's own graph: Keras' ``layer.output`` is the layer's first call
anywhere, which for a reloaded ``Sequential`` is not even part of the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.nets.layer import Layer
from workbench.train.backends.keras import import_keras

__all__ = ["NAME", "layers", "cut", "append", "set_trainable", "param_counts"]

NAME = "keras"


def layers(model: Any, example_input: Any = None) -> list[Layer]:
    """``model.layers`` in order; output shapes from the graph (``example_input`` is not needed)."""
    calls = _calls(model)
    return [
        Layer(
            name=layer.name,
            type=type(layer).__name__,
            output_shape=_shape(calls.get(id(layer))),
            params=_size(layer.weights),
            trainable=bool(layer.trainable_weights),
        )
        for layer in model.layers
    ]


def cut(model: Any, name: str) -> Any:
    """A functional model from ``model``'s inputs to layer ``name``'s output."""
    outputs = _calls(model).get(id(model.get_layer(name)), [])
    if len(outputs) != 1:
        reason = f"the model calls it {len(outputs)} times" if outputs else "it is not part of a functional graph"
        raise ValueError(f"cannot cut at {name!r}: its output cannot be isolated ({reason})")
    return import_keras().Model(_inputs(model), outputs[0])


def append(model: Any, new_layers: tuple, name: str) -> Any:
    """A functional model feeding ``model``'s output through ``keras.Sequential(new_layers, name=name)``."""
    keras = import_keras()
    for layer in new_layers:
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(f"append() to a keras net takes Keras layers, not {type(layer).__name__}")
    outputs = _graph_outputs(model)
    if len(outputs) != 1:
        raise ValueError(f"append() needs a functional net with one output; this one has {len(outputs)}")
    head = keras.Sequential(list(new_layers), name=name)
    return keras.Model(_inputs(model), head(outputs[0]))


def set_trainable(model: Any, names: list[str] | None, trainable: bool) -> None:
    """Set ``trainable`` on the named layers (None: on every layer)."""
    for layer in model.layers if names is None else [model.get_layer(name) for name in names]:
        layer.trainable = trainable


def param_counts(model: Any) -> tuple[int, int]:
    """(all weights, trainable weights)."""
    return _size(model.weights), _size(model.trainable_weights)


def _calls(model: Any) -> dict[int, list]:
    """For each layer (by id) the outputs of its calls in ``model``'s graph, walked back from
    the model's outputs; empty for a subclassed model, which has no graph."""
    calls: dict[int, list] = {}
    seen = set()
    pending = list(_graph_outputs(model))
    while pending:
        operation, node_index, _ = pending.pop()._keras_history
        if (id(operation), node_index) in seen:
            continue
        seen.add((id(operation), node_index))
        node = operation._inbound_nodes[node_index]
        outputs = node.output_tensors
        calls.setdefault(id(operation), []).append(outputs[0] if len(outputs) == 1 else outputs)
        pending.extend(node.input_tensors)
    return calls


def _shape(outputs: list | None) -> Any:
    """The output shape of a layer's call found first, None when the graph does not call it."""
    if not outputs:
        return None
    return import_keras().tree.map_structure(lambda tensor: tuple(tensor.shape), outputs[0])


def _inputs(model: Any) -> Any:
    """The model's inputs as it is called: a single input alone, not in a list (Keras warns otherwise)."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def _graph_outputs(model: Any) -> list:
    try:
        return model.outputs
    except AttributeError:  # a subclassed model, or a Sequential never given an input shape
        return []


def _size(variables: list) -> int:
    return sum(int(np.prod(variable.shape)) for variable in variables)
