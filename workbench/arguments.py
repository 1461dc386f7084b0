"""Normalising and checking arguments that several public functions share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["as_list", "check_positive_int", "memory_bytes", "duration_seconds"]


def as_list(columns: str | Sequence[str] | None) -> list:
    """Column names as a list: None is no columns, a string is one column."""
    if columns is None:
        return []
    return [columns] if isinstance(columns, str) else list(columns)


def check_positive_int(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def memory_bytes(name: str, value: Any) -> int:
    """A size such as ``"2 GiB"`` or a number of bytes, in bytes; ``ValueError`` naming ``name`` otherwise."""
    from dask.utils import parse_bytes

    try:
        nbytes = parse_bytes(value) if isinstance(value, str) else value
    except ValueError:
        nbytes = 0
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float, np.integer)) or not nbytes > 0:
        raise ValueError(f"{name} must be a size such as '2 GiB' or a number of bytes, got {value!r}")
    return int(nbytes)


def duration_seconds(name: str, value: Any) -> float:
    """A duration such as ``"2 minutes"`` or a number of seconds, in seconds; ``ValueError`` naming ``name`` otherwise."""
    from dask.utils import parse_timedelta

    try:
        seconds = parse_timedelta(value) if value is not None else 0
    except (KeyError, TypeError, ValueError):
        seconds = 0
    if not seconds > 0:
        raise ValueError(f"{name} must be a duration such as '2 minutes' or a number of seconds, got {value!r}")
    return seconds
