"""PyTorch graph work for ``Net``: layers, cut, append and freezing, on a ``torch.fx`` trace.

The layers of a module are what its traced ``forward`` uses, in call order: the leaf
submodules it calls (``torch.nn`` layers and TorchScript layers) and any parameter it reads
directly. Tracing never changes the model: cut and append build a new ``GraphModule`` that
shares the model's submodules.
"""

from __future__ import annotations

from functools import reduce
from typing import Any

import numpy as np
import torch
from torch.fx.passes.shape_prop import ShapeProp

from workbench.nets.layer import Layer
from workbench.nets.torchscript import Scripted

__all__ = ["NAME", "layers", "cut", "append", "set_trainable", "param_counts"]

NAME = "torch"


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer, with TorchScript modules as leaves (fx cannot trace into them)."""

    def is_leaf_module(self, module: torch.nn.Module, qualified_name: str) -> bool:
        return isinstance(module, (Scripted, torch.jit.ScriptModule)) or super().is_leaf_module(module, qualified_name)


def layers(model: torch.nn.Module, example_input: Any = None) -> list[Layer]:
    """The layers ``forward`` uses, in call order; output shapes from ``example_input`` if given."""
    graph_module = _graph_module(model)
    if example_input is not None:
        _propagate_shapes(graph_module, example_input)
    found: dict[str, Layer] = {}
    for node in graph_module.graph.nodes:
        if node.target not in found and _is_layer(model, node):
            found[node.target] = _layer(_resolve(model, node.target), node)
    return list(found.values())


def cut(model: torch.nn.Module, name: str) -> torch.fx.GraphModule:
    """A GraphModule returning the output of submodule ``name`` (the rest of the graph dropped)."""
    graph_module = _graph_module(model)
    graph = graph_module.graph
    calls = [node for node in graph.nodes if node.op == "call_module" and node.target == name]
    if len(calls) != 1:
        reason = f"forward calls it {len(calls)} times" if calls else "it is a parameter, not a layer"
        raise ValueError(f"cannot cut at {name!r}: its output cannot be isolated ({reason})")
    _output_node(graph).args = (calls[0],)
    graph.eliminate_dead_code()
    graph_module.delete_all_unused_submodules()  # the dropped layers' parameters must not train
    graph_module.recompile()
    return graph_module


def append(model: torch.nn.Module, new_layers: tuple, name: str) -> torch.fx.GraphModule:
    """A GraphModule feeding ``model``'s output through ``new_layers``, registered as ``name``."""
    for layer in new_layers:
        if not isinstance(layer, torch.nn.Module):
            raise TypeError(f"append() to a torch net takes torch.nn.Module layers, not {type(layer).__name__}")
    graph_module = _graph_module(model)
    if not name.isidentifier() or hasattr(graph_module, name):
        raise ValueError(f"cannot name the appended layers {name!r}: pass an identifier not used by the model")
    graph_module.add_submodule(name, new_layers[0] if len(new_layers) == 1 else torch.nn.Sequential(*new_layers))
    output = _output_node(graph_module.graph)
    with graph_module.graph.inserting_before(output):
        output.args = (graph_module.graph.call_module(name, output.args),)
    graph_module.recompile()
    return graph_module


def set_trainable(model: torch.nn.Module, names: list[str] | None, trainable: bool) -> None:
    """Set ``requires_grad`` of every parameter of the named layers (None: of the whole model)."""
    for target in [model] if names is None else [_resolve(model, name) for name in names]:
        target.requires_grad_(trainable)


def param_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    sizes = [(p.numel(), p.requires_grad) for p in model.parameters()]
    return sum(n for n, _ in sizes), sum(n for n, trains in sizes if trains)


def _graph_module(model: torch.nn.Module) -> torch.fx.GraphModule:
    """``model`` traced into a new GraphModule that shares its submodules and parameters."""
    try:
        graph = _Tracer().trace(model)
    except Exception as error:  # fx fails in many ways (TraceError, TypeError, ...) on untraceable Python
        raise ValueError(
            f"torch.fx cannot trace {type(model).__name__} ({type(error).__name__}: {error}); listing, cutting, "
            "freezing up to a layer and appending need a forward without data-dependent control flow"
        ) from error
    for node in graph.nodes:  # annotations left as strings (``from __future__ import annotations``)
        node.type = None      # would make the generated code unpicklable for the workers
    return torch.fx.GraphModule(model, graph)


def _is_layer(model: torch.nn.Module, node: torch.fx.Node) -> bool:
    if node.op == "call_module":
        return True
    return node.op == "get_attr" and isinstance(_resolve(model, node.target), torch.nn.Parameter)


def _layer(target: torch.nn.Module | torch.nn.Parameter, node: torch.fx.Node) -> Layer:
    parameters = list(target.parameters()) if isinstance(target, torch.nn.Module) else [target]
    kind = target.script.original_name if isinstance(target, Scripted) else type(target).__name__
    return Layer(
        name=node.target,
        type=kind,
        output_shape=_shape(node.meta.get("tensor_meta")),
        params=sum(p.numel() for p in parameters),
        trainable=any(p.requires_grad for p in parameters),
    )


def _propagate_shapes(graph_module: torch.fx.GraphModule, example_input: Any) -> None:
    """Run ``example_input`` through the graph in eval mode without gradients; every node's
    output shape lands in ``node.meta["tensor_meta"]``. Training flags are restored after."""
    from workbench.train.backends.torch import to_tensor

    inputs = example_input if isinstance(example_input, torch.Tensor) else to_tensor(np.asarray(example_input))
    modes = {module: module.training for module in graph_module.modules()}
    graph_module.eval()
    try:
        with torch.no_grad():
            ShapeProp(graph_module).propagate(inputs)
    finally:
        for module, training in modes.items():
            module.training = training


def _shape(meta: Any) -> Any:
    """A tuple from ShapeProp's TensorMetadata, a list for several outputs, None if unknown."""
    if meta is None:
        return None
    if hasattr(meta, "shape"):
        return tuple(meta.shape)
    return [_shape(item) for item in meta] if isinstance(meta, (tuple, list)) else None


def _resolve(model: torch.nn.Module, name: str) -> Any:
    """The submodule or parameter at the dotted path ``name``."""
    return reduce(getattr, name.split("."), model)


def _output_node(graph: torch.fx.Graph) -> torch.fx.Node:
    return next(node for node in graph.nodes if node.op == "output")
