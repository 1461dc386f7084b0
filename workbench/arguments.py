"""Normalising and checking arguments that several public functions share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["as_list", "check_positive_int"]


def as_list(columns: str | Sequence[str] | None) -> list:
    """Column names as a list: None is no columns, a string is one column."""
    if columns is None:
        return []
    return [columns] if isinstance(columns, str) else list(columns)


def check_positive_int(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
