"""The framework-neutral description of one layer, as ``Net.summary()`` lists it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Layer"]


@dataclass(frozen=True)
class Layer:
    """One named layer of a network.

    Attributes:
        name: the name ``cut``, ``freeze`` and ``unfreeze`` take.
        type: the layer's class name.
        output_shape: a shape tuple (a list of them for several outputs), None when unknown.
        params: number of parameters (weights) the layer holds.
        trainable: whether any of its parameters is trained (False for parameter-free layers).
    """

    name: str
    type: str
    output_shape: Any
    params: int
    trainable: bool
