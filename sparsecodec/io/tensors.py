"""What every storage backend shares: how a tensor is described, which dtypes may be stored,
and how stored parts become a tensor again (validated by its format)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError, SparseCodecError
from ..formats.base import Encoded, registry

ARRAY = "array"  # the format name of plain arrays (biases, norms, masks, ...)
MAX_NAME = 1024
DTYPES = frozenset({"|u1", "|i1", "|b1", "<u2", "<i2", "<f2", "<u4", "<i4", "<f4",
                    "<u8", "<i8", "<f8"})


def check_name(name: Any) -> None:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise SparseCodecError(f"tensor names are strings of 1..{MAX_NAME} characters, "
                               f"found {name!r}")


def storable(a: np.ndarray) -> tuple[np.ndarray, str]:
    """``a`` as a contiguous little-endian array, and its dtype code (raises if not storable)."""
    a = np.ascontiguousarray(a)
    d = a.dtype
    code = d.str if d.itemsize == 1 else d.newbyteorder("<").str
    if code not in DTYPES:
        raise SparseCodecError(f"dtype {d} cannot be stored (allowed: {sorted(DTYPES)})")
    return a.astype(np.dtype(code), copy=False), code


def describe(tensor: Encoded | np.ndarray) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(format, shape, dtype, meta) and the named component arrays of a tensor."""
    if isinstance(tensor, Encoded):
        meta = {k: v for k, v in tensor.meta.items() if k not in ("format", "shape", "dtype")}
        return ({"format": tensor.format, "shape": list(tensor.shape),
                 "dtype": tensor.dtype.name, "meta": meta}, tensor.components())
    arr = np.asarray(tensor)
    storable(arr[:0] if arr.ndim else arr)  # raises for object, complex, strings, ...
    return ({"format": ARRAY, "shape": list(arr.shape), "dtype": arr.dtype.name, "meta": {}},
            {"values": arr})


def build(at: str, fmt: Any, shape: Any, dtype: Any, meta: Any,
          comps: dict[str, np.ndarray]) -> Encoded | np.ndarray:
    """The tensor described by stored parts; :class:`FormatError` naming ``at`` if invalid."""
    if not isinstance(fmt, str) or not isinstance(dtype, str) or not isinstance(meta, dict):
        raise FormatError(f"{at}: format and dtype must be strings and meta an object")
    if fmt == ARRAY:
        values = comps.get("values")
        scalar = shape == [] and values is not None and list(values.shape) == [1]
        if set(comps) != {"values"} or (list(values.shape) != list(shape) and not scalar):
            raise FormatError(f"{at}: an array has one component 'values' of its shape")
        if values.dtype.name != dtype:
            raise FormatError(f"{at}: dtype {dtype!r} does not match its values")
        return values.reshape(()) if scalar else values  # a 0-d array is stored as (1,)
    if fmt not in registry():
        raise FormatError(f"{at}: unknown format {fmt!r}")
    try:
        return registry()[fmt].from_components(
            {**meta, "format": fmt, "shape": list(shape), "dtype": dtype}, comps)
    except FormatError as exc:
        raise FormatError(f"{at}: {exc}") from None
