"""Argument checks shared by several gdcore modules."""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np


def real_scalar(value, name: str) -> float:
    """`value` as a float; an integer beyond the float range becomes +-inf.

    Raises TypeError naming `name` when `value` is not a real number (bools
    excluded). Range checks are the caller's.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {value!r:.60}")
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def shown(value) -> str:
    """A short repr of `value` for an error message (huge integers abbreviated)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def real_vector(x, name: str, *, keep_float32: bool = False) -> np.ndarray:
    """`x` as a new finite, non-empty 1-D C-contiguous float array.

    The result is float64, or float32 when `keep_float32` is set and `x` is float32.
    Raises TypeError (not real numbers) or ValueError (shape, non-finite values) that
    name `name`.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"`{name}` must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"`{name}` must be a non-empty 1-D array, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite, got {arr}")
    dtype = np.float32 if keep_float32 and arr.dtype == np.float32 else np.float64
    return np.array(arr, dtype=dtype, order="C", copy=True)


def int_in_range(value, name: str, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high] (no upper bound when `high` is None).

    Raises TypeError (bool or not an integer) or ValueError (out of range) that name
    `name`.
    """
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be an int, got bool")
    try:
        count = operator.index(value)
    except TypeError:
        kind = type(value).__name__
        raise TypeError(f"`{name}` must be an int, got {kind}") from None
    if high is None and count < low:
        raise ValueError(f"`{name}` must be at least {low}, got {count}")
    if high is not None and not low <= count <= high:
        raise ValueError(f"`{name}` must be between {low} and {high}, got {count}")
    return count
