"""What every storage backend shares: how a tensor is described, which dtypes may be stored,
and how stored parts become a tensor again (validated by its format)."""

from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from ..dtypes import from_bits, is_bfloat16
from ..errors import FormatError, SparseCodecError, UnknownFormatError
from ..options import BUILTIN_FORMATS
from ..plugins import format_entry_points

if TYPE_CHECKING:
    from ..formats.base import Encoded

# Reading a header needs no kernel: this module and the backends import the formats (and with
# them numba) only when a tensor is built or written, so `sparsecodec info` stays fast.

ARRAY = "array"  # the format name of plain arrays (biases, norms, masks, ...)
MAX_NAME = 1024
DTYPES = frozenset({"|u1", "|i1", "|b1", "<u2", "<i2", "<f2", "<u4", "<i4", "<f4",
                    "<u8", "<i8", "<f8"})

MAX_NDIM = 32          # HDF5's limit, and far past any weight tensor
MAX_DIM = 1 << 48      # one axis
MAX_ELEMENTS = 1 << 60  # the product of a shape

# The decode budget: how many bytes one matrix read from a file may decode to. "auto" allows
# max(DECODE_FLOOR, DECODE_RATIO x the bytes it has in the file): the pruned and quantized
# layers of bench/budget.py all fit (a 4096x4096 float32 layer at 1% density in sham is
# 156-238x), while a few hundred bytes can no longer claim gigabytes. An int is a fixed limit;
# None, no limit.
Budget = int | None | Literal["auto"]
DECODE_FLOOR = 256 << 20
DECODE_RATIO = 1024
_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}  # the matrices' dtypes
MAX_JSON_ITEMS = 1 << 20  # objects and numbers in one stored JSON text (a header, a meta)


class _BoundedDecoder(json.JSONDecoder):
    """JSON with bounded cost: repeated keys, integers of more than 20 digits, NaN/Infinity and
    more than ``MAX_JSON_ITEMS`` objects and numbers are refused while parsing, so a hostile
    header cannot make the parser build millions of objects or run Python's quadratic
    big-integer conversion."""

    def __init__(self) -> None:
        self.items = 0
        super().__init__(object_pairs_hook=self._object, parse_int=self._int,
                         parse_float=self._float, parse_constant=self._constant)

    def _count(self) -> None:
        self.items += 1
        if self.items > MAX_JSON_ITEMS:
            raise FormatError(f"it holds more than {MAX_JSON_ITEMS:,} objects and "
                              "numbers")

    def _object(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        self._count()
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise FormatError(f"it repeats the key {k!r}")
            out[k] = v
        return out

    def _int(self, text: str) -> int:
        self._count()
        if len(text.lstrip("-")) > 20:
            raise FormatError(f"it holds an integer of {len(text)} digits")
        return int(text)

    def _float(self, text: str) -> float:
        self._count()
        return float(text)

    def _constant(self, text: str) -> float:
        raise FormatError(f"it holds {text}, which JSON does not allow")


def parse_json(raw: bytes | str, what: str) -> Any:
    """The JSON value of stored bytes or text (a header, a meta attribute, an index), with
    bounded cost; :class:`FormatError` naming ``what`` if it is not UTF-8 JSON."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return _BoundedDecoder().decode(text)
    except FormatError as exc:
        raise FormatError(f"{what}: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FormatError(f"{what} is not UTF-8 JSON: {exc}") from None


def known_formats() -> set[str]:
    """Format names a header may use: the built-in ones, any registered since, and those of
    installed plugins (``sparsecodec.formats`` entry points: listed, not imported)."""
    base = sys.modules.get(__name__.rsplit(".", 2)[0] + ".formats.base")
    registered = set(base._REGISTRY) if base is not None else set()
    return (set(BUILTIN_FORMATS) | registered
            | {ep.name for ep in format_entry_points()})


def check_format_name(at: str, fmt: Any) -> None:
    """:class:`UnknownFormatError` unless ``fmt`` is a known format name or ``array`` (the
    plugins are listed only for a name that is not built in)."""
    if fmt == ARRAY or fmt in BUILTIN_FORMATS:
        return
    if not isinstance(fmt, str) or fmt not in known_formats():
        raise UnknownFormatError(f"{at}: unknown format {str(fmt)[:40]!r}")


class TensorInfo(NamedTuple):
    """What a file's header says of one tensor, read without building it."""
    format: str  # a registered format, or "array"
    shape: tuple[int, ...]
    dtype: str
    nbytes: int  # stored bytes of its components (``Encoded.nbytes``)


def check_shape(at: str, shape: Any) -> None:
    """A stored shape: a list of at most 32 non-negative integers, each below 2^48, whose
    product is below 2^60 (so no size computed from it overflows, and numpy accepts it)."""
    if (not isinstance(shape, list) or len(shape) > MAX_NDIM
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < MAX_DIM
                       for s in shape)):
        raise FormatError(f"{at} must be a list of at most {MAX_NDIM} integers in "
                          f"[0, 2^48), found {str(shape)[:80]}")
    if math.prod(s for s in shape if s) >= MAX_ELEMENTS:
        raise FormatError(f"{at} {shape} has 2^60 or more elements")


def budget_limit(stored: int, max_bytes: Budget) -> int | None:
    """The most a matrix of ``stored`` bytes in a file may decode to under ``max_bytes``."""
    if max_bytes == "auto":
        return max(DECODE_FLOOR, DECODE_RATIO * stored)
    if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 0):
        raise SparseCodecError(f"max_bytes must be 'auto', None or an integer >= 0, found "
                               f"{max_bytes!r}")
    return max_bytes


def check_budget(at: str, fmt: Any, shape: Any, dtype: Any, stored: int,
                 max_bytes: Budget) -> None:
    """Refuse (:class:`FormatError`) a matrix whose decoded bytes exceed the decode budget,
    before any of it is validated or built. Plain arrays are their stored bytes: always in."""
    limit = budget_limit(stored, max_bytes)
    if fmt == ARRAY or limit is None or dtype not in _ITEMSIZE or not isinstance(shape, list):
        return
    decoded = math.prod(shape) * _ITEMSIZE[dtype]
    if decoded > limit:
        raise FormatError(f"{at}: would decode to {decoded:,} bytes from {stored:,} stored, "
                          f"over the decode budget of {limit:,} bytes (raise it with "
                          f"max_bytes=, or --max-bytes on the command line, if you trust "
                          f"the file)")


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
    from ..formats.base import Encoded
    if isinstance(tensor, Encoded):
        meta = {k: v for k, v in tensor.meta.items() if k not in ("format", "shape", "dtype")}
        return ({"format": tensor.format, "shape": list(tensor.shape),
                 "dtype": tensor.dtype.name, "meta": meta}, tensor.components())
    arr = np.asarray(tensor)
    if is_bfloat16(arr.dtype):  # stored as its bits; the tensor's dtype says what they are
        return ({"format": ARRAY, "shape": list(arr.shape), "dtype": "bfloat16", "meta": {}},
                {"values": arr.view(np.uint16)})
    storable(arr[:0] if arr.ndim else arr)  # raises for object, complex, strings, ...
    return ({"format": ARRAY, "shape": list(arr.shape), "dtype": arr.dtype.name, "meta": {}},
            {"values": arr})


def build(at: str, fmt: Any, shape: Any, dtype: Any, meta: Any,
          comps: dict[str, np.ndarray]) -> Encoded | np.ndarray:
    """The tensor described by stored parts; :class:`FormatError` naming ``at`` if invalid."""
    if not isinstance(fmt, str) or not isinstance(dtype, str) or not isinstance(meta, dict):
        raise FormatError(f"{at}: format and dtype must be strings and meta an object")
    if fmt == ARRAY:
        if meta:
            raise FormatError(f"{at}: an array has no meta, found keys {sorted(meta)[:5]}")
        if set(comps) != {"values"}:
            raise FormatError(f"{at}: an array has one component 'values' of its shape")
        values = comps["values"]
        scalar = shape == [] and list(values.shape) == [1]
        if list(values.shape) != list(shape) and not scalar:
            raise FormatError(f"{at}: an array has one component 'values' of its shape")
        if dtype == "bfloat16" and values.dtype == np.uint16:
            values = from_bits(values)  # bfloat16 arrays are stored as their bits
        elif values.dtype.name != dtype:
            raise FormatError(f"{at}: dtype {dtype!r} does not match its values")
        return values.reshape(()) if scalar else values  # a 0-d array is stored as (1,)
    from ..formats.base import get_format

    try:
        return get_format(fmt).from_components(
            {**meta, "format": fmt, "shape": list(shape), "dtype": dtype}, comps)
    except FormatError as exc:
        raise FormatError(f"{at}: {exc}") from None
    except MemoryError:
        raise FormatError(f"{at}: validating it needs more memory than this machine has") \
            from None
