"""TorchScript models as ordinary, picklable PyTorch layers.

The Estimator ships models to the workers with cloudpickle, which cannot pickle a
``ScriptModule``; :class:`Scripted` wraps one and pickles it as ``torch.jit.save`` bytes (which
keep the weights and their ``requires_grad`` flags). ``torch.fx`` cannot look inside
TorchScript either, so each wrapped module is one opaque layer.
"""

from __future__ import annotations

import io
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["Scripted", "from_script"]


class Scripted(torch.nn.Module):
    """A one-input TorchScript module as a layer that pickles (its weights are trainable as usual)."""

    def __init__(self, script: torch.jit.ScriptModule):
        super().__init__()
        self.script = script

    def forward(self, x: Any) -> Any:
        return self.script(x)

    def __reduce__(self):
        buffer = io.BytesIO()
        with _quiet_jit():
            torch.jit.save(self.script, buffer)
        return _load_scripted, (buffer.getvalue(),)


def _load_scripted(data: bytes) -> Scripted:
    with _quiet_jit():
        return Scripted(torch.jit.load(io.BytesIO(data), map_location="cpu"))


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """No TorchScript deprecation warning for the pickling the user did not ask for (every worker
    would print it); ``Net.load`` of a TorchScript file still warns."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        yield


def from_script(script: torch.jit.ScriptModule) -> torch.nn.Sequential:
    """An ``nn.Sequential`` of :class:`Scripted` layers: a scripted Sequential's own layers, or
    the whole model as one layer named ``script``."""
    inputs = len(script.forward.schema.arguments) - 1  # less ``self``
    if inputs != 1:
        raise ValueError(f"the TorchScript model's forward takes {inputs} inputs; Net handles one-input models")
    children = script.named_children() if script.original_name == "Sequential" else [("script", script)]
    return torch.nn.Sequential(OrderedDict((name, Scripted(child)) for name, child in children))
