"""Argument checks shared by several gdcore modules."""

from __future__ import annotations

import numpy as np


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
