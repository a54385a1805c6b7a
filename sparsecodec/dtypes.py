"""bfloat16, the one float dtype numpy does not have: arrays of it are ``ml_dtypes.bfloat16``
arrays (the type JAX and Keras use), bit for bit what safetensors, torch and ONNX store.

``ml_dtypes`` takes most of a second to import, so nothing imports it until a bfloat16 array
is made: a dtype is recognised by its name (:func:`is_bfloat16`), and :func:`bfloat16`
imports the module on first use.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

NAME = "bfloat16"


def is_bfloat16(dtype: Any) -> bool:
    """Whether ``dtype`` (a dtype, or an array's) is bfloat16, without importing ml_dtypes."""
    return getattr(dtype, "name", None) == NAME and getattr(dtype, "itemsize", 0) == 2


@cache
def bfloat16() -> np.dtype:
    """numpy's bfloat16 dtype (imports ml_dtypes, once)."""
    import ml_dtypes
    return np.dtype(ml_dtypes.bfloat16)


def from_bits(bits: np.ndarray) -> np.ndarray:
    """bfloat16 array of the same shape viewing ``bits`` (uint16)."""
    return bits.view(bfloat16())


def widen(a: np.ndarray) -> np.ndarray:
    """A bfloat16 array as float32, exactly (its bits are the high half of a float32's);
    any other array as it is."""
    if not is_bfloat16(a.dtype):
        return a
    return (a.view(np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)
