"""The ``Encoded`` protocol, the format registry and the analysis shared by every encoder."""

from __future__ import annotations

import inspect
import math
import warnings
from abc import ABC, abstractmethod
from functools import cached_property
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..coding.huffman import MAX_SYMBOLS
from ..dtypes import bfloat16, is_bfloat16
from ..errors import (
    DTypeError,
    EncodeError,
    FormatError,
    OptionError,
    ShapeError,
    UnknownFormatError,
)
from ..kernels import analysis as ak
from ..kernels import threads

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
BFLOAT16 = "bfloat16"
"""bfloat16 (``ml_dtypes.bfloat16`` arrays, see ``dtypes.py``): only formats that list it in
their ``dtypes`` hold it (``float_ans``, ``dense``); the others compute on float16/32/64."""
MATRIX_DTYPES = (*(d.name for d in FLOAT_DTYPES), BFLOAT16)
_UINT: dict[int, np.dtype] = {2: np.dtype(np.uint16), 4: np.dtype(np.uint32),
                              8: np.dtype(np.uint64)}


def bits_dtype(dtype: np.dtype) -> np.dtype:
    """The unsigned integer dtype with the same width as a float dtype."""
    return _UINT[np.dtype(dtype).itemsize]


def check_matrix(W: Any) -> np.ndarray:
    """Return ``W`` as a C-contiguous 2-D float16/32/64 array or raise a clear error."""
    if not isinstance(W, np.ndarray):
        try:
            W = np.asarray(W)
        except Exception as exc:  # pragma: no cover - numpy's own message is good
            raise EncodeError(f"cannot convert input to an array: {exc}") from exc
    if W.ndim != 2:
        raise ShapeError(f"expected a 2-D matrix, found an array with {W.ndim} dimension(s)")
    if is_bfloat16(W.dtype):
        return np.ascontiguousarray(W)
    if W.dtype.newbyteorder("=") not in FLOAT_DTYPES or W.dtype.kind != "f":
        raise EncodeError(f"expected a float16, bfloat16, float32 or float64 matrix, found "
                          f"dtype {W.dtype}")
    return np.ascontiguousarray(W, dtype=W.dtype.newbyteorder("="))


class PsiBounds(NamedTuple):
    """A format's occupancy formulas psi (bits over n m B) for one matrix
    (``formats/psi.py``): as published, corrected where the published one undercounts, and
    with our stored overheads (an upper bound on the format's psi). None where the format has
    no such formula."""

    printed: float | None = None
    corrected: float | None = None
    stored: float | None = None


class Distinct:
    """Distinct bit patterns (sorted), their counts, and each entry's index into them. The
    per-entry indices may be computed on first use (``make_symbols``): most callers need only
    the values and counts."""

    def __init__(self, values: np.ndarray, counts: np.ndarray,
                 symbols: np.ndarray | None = None, make_symbols: Any = None):
        self.values = values
        self.counts = counts
        self._symbols = symbols
        self._make = make_symbols

    @property
    def symbols(self) -> np.ndarray:
        """int32, one per entry, in the order the entries were given."""
        if self._symbols is None:
            self._symbols = self._make()
        return self._symbols

    @property
    def k(self) -> int:
        return int(self.values.shape[0])


def distinct_values(bits: np.ndarray) -> Distinct | None:
    """Distinct values of a 1-D bit array, or None when there are more than MAX_SYMBOLS."""
    uniq, counts, inverse, k = ak.distinct(bits, MAX_SYMBOLS)
    if k > MAX_SYMBOLS:
        return None
    order = np.argsort(uniq, kind="stable")
    rank = np.empty(k, np.int32)
    rank[order] = np.arange(k, dtype=np.int32)
    ak.remap(inverse, rank)
    return Distinct(uniq[order], counts[order], inverse)


class Matrix:
    """One input matrix and the analyses encoders share (each computed once, on demand)."""

    def __init__(self, W: Any):
        self.W = check_matrix(W)
        self.shape: tuple[int, int] = (int(self.W.shape[0]), int(self.W.shape[1]))
        self.dtype = self.W.dtype
        self.bits = self.W.view(bits_dtype(self.dtype))
        self.memo: dict[str, Any] = {}  # analyses a format makes once per matrix (by format)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @cached_property
    def csc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr int64[m+1], rows int64[nnz], value bits[nnz]) of the nonzero entries."""
        return ak.compress_structure(self.bits)

    @cached_property
    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr int64[n+1], cols int64[nnz], value bits[nnz]) of the nonzero entries."""
        return self.row_structure()

    def row_structure(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``csr`` if it is known, else made anew and not kept (for an encoder that needs it
        once)."""
        known = self.__dict__.get("csr")
        if known is not None:
            return known
        return ak.compress_structure(np.ascontiguousarray(self.bits.T))

    @property
    def nnz(self) -> int:
        return int(self.csc[0][-1])

    @cached_property
    def all_distinct(self) -> Distinct | None:
        """Distinct values over every entry; symbols in column-major order. Built from the
        nonzeros' (+0.0 has the smallest bit pattern, so it is value 0 when present): the
        per-entry symbols, 4 bytes an entry, are made only if an encoder asks for them."""
        nz = self.nonzero_distinct
        if nz is None:
            return None
        zeros = self.size - self.nnz
        off = 1 if zeros else 0
        if nz.k + off > MAX_SYMBOLS:
            return None
        values = np.concatenate([np.zeros(off, nz.values.dtype), nz.values])
        counts = np.concatenate([np.full(off, zeros, np.int64), nz.counts.astype(np.int64)])

        # the closure holds the (already computed) structure, not self: a closure over self
        # would make a cycle freed only by gc, and a weak one would die with a temporary Matrix
        (n, m), (ptr, rows, _) = self.shape, self.csc

        def symbols() -> np.ndarray:
            out = np.zeros(n * m, np.int32)
            cols = np.repeat(np.arange(m, dtype=np.int64), np.diff(ptr))
            out[cols * n + rows] = nz.symbols + off
            return out

        return Distinct(values, counts, None, symbols)

    @cached_property
    def nonzero_distinct(self) -> Distinct | None:
        """Distinct nonzero values; symbols in CSC order."""
        return distinct_values(self.csc[2])

    @cached_property
    def nonzero_counts(self) -> np.ndarray:
        """How often each distinct nonzero bit pattern occurs (in pattern order), also past
        ``MAX_SYMBOLS``: counted on a sorted copy then (``np.unique`` hashes in numpy 2.4,
        ten times slower on millions of distinct float patterns)."""
        d = self.__dict__.get("nonzero_distinct")  # when an encoder has made it already
        if d is not None:
            return d.counts
        b = np.sort(self.csc[2])
        if not b.size:
            return np.zeros(0, np.int64)
        ends = np.append(np.flatnonzero(b[1:] != b[:-1]) + 1, b.size)
        return np.diff(ends, prepend=0)

    @property
    def nonzero_k(self) -> int:
        """How many distinct nonzero values (bit patterns)."""
        return int(self.nonzero_counts.size)

    @cached_property
    def nonzero_k_at_least(self) -> int:
        """A lower bound on ``nonzero_k``, in one pass and without sorting: how many distinct
        hashes the nonzero patterns have, marked in a bitmap of about 16 bits per nonzero (2^24
        bits at most; float16 patterns mark themselves: exact). Equal patterns hash alike, so
        this never exceeds ``nonzero_k``; up to a million all-distinct values come out about
        97% of it. What format lower bounds use, so that ``auto`` rules formats out before
        counting values."""
        if "nonzero_distinct" in self.__dict__ or "nonzero_counts" in self.__dict__:
            return self.nonzero_k  # already known exactly
        vals = self.csc[2]
        if not vals.size:
            return 0
        if vals.dtype.itemsize == 2:
            seen = np.zeros(1 << 16, np.bool_)
            seen[vals] = True
        else:
            keep = min(24, max(12, (vals.size - 1).bit_length() + 4))  # a 16 MB bitmap at most
            seen = np.zeros(1 << keep, np.bool_)
            with np.errstate(over="ignore"):  # Fibonacci hashing: the product wraps
                h = vals.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            seen[h >> np.uint64(64 - keep)] = True
        return int(np.count_nonzero(seen))

    def value_counts(self, nonzero_only: bool = False) -> np.ndarray:
        """The count of each distinct bit pattern: of the nonzeros, or of every entry (the
        nonzeros' and then the zeros' count). Their order is not that of the patterns."""
        zeros = self.size - self.nnz
        if nonzero_only or not zeros:
            return self.nonzero_counts
        return np.append(self.nonzero_counts, zeros)

    def require_distinct(self, which: str, fmt: str) -> Distinct:
        d = self.all_distinct if which == "all" else self.nonzero_distinct
        if d is None:
            raise EncodeError(
                f"{fmt}: the matrix has more than {MAX_SYMBOLS} distinct values; "
                "quantize it first or use dense/csr/csc/coo"
            )
        return d


# --------------------------------------------------------------------------- the protocol


_REGISTRY: dict[str, type[Encoded]] = {}
_PLUGINS_LOADED = False


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls: type[Encoded]) -> type[Encoded]:
    """Class decorator adding a format to the registry under ``cls.format``. Names are
    written into files, so a name is never taken twice: registering another class under a
    registered name raises :class:`OptionError` (the same class again, as on a module reload,
    is accepted). A class that leaves a required hook abstract is refused (``TypeError``)."""
    if not (isinstance(cls, type) and issubclass(cls, Encoded)):
        raise TypeError(f"register takes an Encoded subclass, found {cls!r}")
    name = getattr(cls, "format", None)
    if not isinstance(name, str) or not name.isidentifier() or len(name) > 40:
        raise TypeError(f"{cls.__qualname__}.format must be a name of at most 40 letters, "
                        f"digits and underscores, found {name!r}")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise TypeError(f"{name}: {cls.__qualname__} does not implement {missing}")
    old = _REGISTRY.get(name)
    if old is not None and _qualified(old) != _qualified(cls):
        raise OptionError(f"format {name!r} is already registered by {_qualified(old)}; "
                          f"{_qualified(cls)} needs another name")
    _REGISTRY[name] = cls
    return cls


def _load_plugins() -> None:
    """Register the formats of the ``sparsecodec.formats`` entry points, once. A plugin that
    fails to load, or whose class is not a valid format, is skipped with a warning."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    from ..plugins import format_entry_points

    for ep in format_entry_points():
        try:
            cls = ep.load()
            if getattr(cls, "format", None) != ep.name:
                raise TypeError(f"it loads {cls!r}, whose format is not {ep.name!r}")
            register(cls)
        except Exception as exc:  # a broken plugin must not break the library
            warnings.warn(f"sparsecodec: format plugin {ep.name!r} ({ep.value}) not loaded: "
                          f"{type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)


def registry() -> dict[str, type[Encoded]]:
    """Every registered format by name: the built-in ones in their order, then plugins."""
    _load_plugins()
    return dict(_REGISTRY)


def get_format(name: Any) -> type[Encoded]:
    """The format class registered as ``name``; :class:`UnknownFormatError` otherwise."""
    reg = registry()
    if not isinstance(name, str) or name not in reg:
        raise UnknownFormatError(f"unknown format {str(name)[:40]!r}; known: {', '.join(reg)}")
    return reg[name]


class Encoded(ABC):
    """An immutable encoded matrix ``W`` of shape (n, m): the protocol every format implements.

    Subclasses must implement the abstract hooks ``_encode``, ``size_of``,
    ``component_names``, ``_from_parts``, ``components``, ``layout``, ``nnz``, ``decode`` and
    ``_rmatmul``; they may override ``_meta``, ``lower_bound``, ``size_within`` and
    ``decode_columns``. ``docs/architecture.md`` describes each hook.
    """

    format: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ()
    dtypes: ClassVar[tuple[str, ...]] = tuple(d.name for d in FLOAT_DTYPES)  # dtypes it holds
    # makes numpy's binary operators defer to us, so that ``ndarray @ enc`` calls __rmatmul__
    __array_ufunc__ = None

    def __init__(self, shape: tuple[int, int], dtype: np.dtype):
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)

    # ---- construction
    @classmethod
    def encode(cls, W: Any, **opts: Any) -> Encoded:
        """Encode a 2-D float matrix exactly."""
        M = W if isinstance(W, Matrix) else Matrix(W)
        cls.check_options(opts)
        cls.check_dtype(M.dtype)
        return cls._encode(M, **opts)

    @classmethod
    def check_dtype(cls, dtype: np.dtype) -> None:
        """Refuse a matrix dtype the format does not hold (bfloat16, for most)."""
        if dtype.name not in cls.dtypes:
            held = ", ".join(cls.dtypes)
            raise EncodeError(f"{cls.format} holds {held} matrices, not {dtype.name}; "
                              "float_ans and dense hold bfloat16")

    @classmethod
    def check_options(cls, opts: dict[str, Any]) -> None:
        unknown = sorted(set(opts) - set(cls.options))
        if unknown:
            allowed = ", ".join(cls.options) or "none"
            raise OptionError(f"{cls.format}: unknown option(s) {unknown}; allowed: {allowed}")

    @classmethod
    @abstractmethod
    def _encode(cls, M: Matrix, *args: Any, **opts: Any) -> Encoded:
        """Encode ``M`` with options already checked against ``options`` by name. (Formats
        declare their own options as keyword parameters; ``*args`` only lets them.)"""

    @classmethod
    @abstractmethod
    def size_of(cls, M: Matrix, *args: Any, **opts: Any) -> int | None:
        """Exact ``nbytes`` the encoding of ``M`` would have, or None if it cannot be encoded."""

    @classmethod
    def size_within(cls, M: Matrix, limit: float, *args: Any, **opts: Any) -> int | None:
        """``size_of``, except that a format may answer None once it knows that it needs more
        than ``limit`` bytes (``auto`` asks this way: a size past the best found is never
        chosen, and some formats stop sizing early)."""
        size = cls.size_of(M, **opts)
        return size if size is None or size <= limit else None

    @classmethod
    def lower_bound(cls, M: Matrix) -> int:
        """Bytes every encoding of ``M`` in this format needs at least, known without encoding
        (0 when nothing cheap is known; formats with a value table count its values,
        ``M.nonzero_k_at_least`` of them, and what each entry costs besides). ``auto`` skips
        sizing a format (``size_of`` may encode) whose bound exceeds the smallest size found."""
        return 0

    @classmethod
    def from_components(cls, meta: dict[str, Any], comps: dict[str, np.ndarray]) -> Encoded:
        """Rebuild from stored parts, ``meta`` (format, shape, dtype and the format's scalars)
        first, then the component arrays, validating everything (raises :class:`FormatError`)."""
        if (isinstance(meta, dict) and isinstance(comps, dict) and "shape" in comps
                and meta and all(isinstance(v, np.ndarray) for v in meta.values())):
            raise FormatError(f"{cls.format}: from_components(meta, comps) takes the meta "
                              "(format, shape, dtype, ...) first and the component arrays "
                              "second; these arguments look swapped")
        if not isinstance(meta, dict):
            raise FormatError(f"{cls.format}: meta must be a dict, found {type(meta).__name__}")
        if not isinstance(comps, dict):
            raise FormatError(f"{cls.format}: components must be a dict")
        fmt = meta.get("format", cls.format)
        if fmt != cls.format:
            raise FormatError(f"{cls.format}: meta names format {fmt!r}")
        shape = meta.get("shape")
        if (not isinstance(shape, (list, tuple)) or len(shape) != 2
                or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**40
                           for s in shape)):
            raise FormatError(f"{cls.format}: meta 'shape' must be two integers in [0, 2^40), "
                              f"found {shape!r}")
        dtype = meta.get("dtype")
        if dtype not in cls.dtypes:
            raise FormatError(f"{cls.format}: meta 'dtype' must be one of "
                              f"{'/'.join(cls.dtypes)}, found {dtype!r}")
        expected = set(cls.component_names(meta))
        if set(comps) != expected:
            raise FormatError(f"{cls.format}: expected components {sorted(expected)}, "
                              f"found {sorted(comps)}")
        enc = cls._from_parts((shape[0], shape[1]),
                              bfloat16() if dtype == BFLOAT16 else np.dtype(dtype), meta, comps)
        unknown = sorted(set(meta) - set(enc.meta))
        if unknown:  # a stored meta holds exactly what the format writes: nothing rides along
            raise FormatError(f"{cls.format}: unknown meta key(s) {unknown[:5]}")
        return enc

    @classmethod
    @abstractmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        """The names of the components a file must hold for this ``meta``."""

    @classmethod
    @abstractmethod
    def _from_parts(cls, shape: tuple[int, int], dtype: np.dtype, meta: dict[str, Any],
                    comps: dict[str, np.ndarray]) -> Encoded:
        """Rebuild from checked shape and dtype, validating the format's own meta and
        components (bounds, lengths, pointers) so that no later access can fail unsafely."""

    # ---- storage
    @abstractmethod
    def components(self) -> dict[str, np.ndarray]:
        """The named arrays that are stored; their bytes are exactly ``nbytes``."""

    def _meta(self) -> dict[str, Any]:
        return {}

    @property
    def meta(self) -> dict[str, Any]:
        """JSON-serialisable scalars that, with ``components()``, describe the matrix fully."""
        return {"format": self.format, "shape": list(self.shape), "dtype": self.dtype.name,
                **self._meta()}

    @property
    def nbytes(self) -> int:
        """Exact bytes of every stored component (payload, codebook, indices, pointers)."""
        return int(sum(a.nbytes for a in self.components().values()))

    # ---- bounds: ``sparsecodec.bounds.report`` asks each format for its own
    def psi_bounds(self, M: Matrix) -> PsiBounds:
        """This format's published occupancy formulas for ``M``, the matrix it holds (none by
        default)."""
        return PsiBounds()

    def own_limit(self, M: Matrix) -> float | None:
        """Bits of the entropy of what this format codes, coded its own way (``ham``: the
        entries' zero-order entropy; ``sham_ans``: its context model's), for ``M``, the matrix
        it holds; None for formats that code nothing (raw values and packed indices)."""
        return None

    @abstractmethod
    def layout(self) -> dict[str, tuple[str, int]]:
        """For each component: its role (``payload``, ``codebook``, ``indices`` or ``pointers``)
        and how many of its bits carry content; the rest of its bytes is word padding.
        ``sparsecodec.bounds.account`` sums these into the exact byte split."""

    @property
    def bits_per_weight(self) -> float:
        n, m = self.shape
        return 8.0 * self.nbytes / (n * m) if n * m else math.nan

    @property
    @abstractmethod
    def nnz(self) -> int:
        """Number of entries whose bit pattern is not +0.0."""

    # ---- computation
    @abstractmethod
    def decode(self) -> np.ndarray:
        """The original matrix, bit for bit (same dtype, -0.0, inf and NaN payloads kept)."""

    def decode_columns(self, start: int, stop: int) -> np.ndarray:
        """``W[:, start:stop]`` bit for bit. Blocked formats decode only the blocks needed."""
        start, stop = self._column_range(start, stop)
        return self.decode()[:, start:stop]

    def _column_range(self, start: int, stop: int) -> tuple[int, int]:
        m = self.shape[1]
        if not (isinstance(start, (int, np.integer)) and isinstance(stop, (int, np.integer))
                and 0 <= start <= stop <= m):
            raise ShapeError(f"{self.format}: column range must satisfy 0 <= start <= stop <= "
                             f"{m}, found {start!r}:{stop!r}")
        return int(start), int(stop)

    @abstractmethod
    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        """``(X @ W).T`` as float64 (m, b) from ``Xt = X.T``, float64 C-contiguous (n, b)."""

    def _operand(self, X: Any, ndim: int) -> tuple[np.ndarray, np.dtype]:
        X = np.asarray(X)
        if X.ndim != ndim:
            want = "(n,)" if ndim == 1 else "(b, n)"
            raise ShapeError(f"{self.format}: expected an operand of shape {want} with "
                             f"n = {self.shape[0]}, found shape {X.shape}")
        if X.dtype.kind not in "biuf":
            raise DTypeError(f"{self.format}: expected a real numeric operand, "
                             f"found dtype {X.dtype}")
        if X.shape[-1] != self.shape[0]:
            raise ShapeError(f"{self.format}: operand length {X.shape[-1]} does not match "
                             f"the matrix's {self.shape[0]} rows")
        # a bfloat16 matrix computes as float32 (its values are float32 values, exactly)
        out = np.result_type(X.dtype, np.float32 if is_bfloat16(self.dtype) else self.dtype)
        if out.kind != "f":
            out = np.dtype(np.float64)
        return X, out

    def rmatvec(self, x: Any) -> np.ndarray:
        """``x @ W`` for ``x`` of shape (n,), computed on the encoded form (float64 sums);
        on one thread when the product is small or the machine busy (``kernels.threads``)."""
        x, out = self._operand(x, 1)
        with threads.for_work(self.shape[0] * self.shape[1]):
            y = self._rmatmul(np.ascontiguousarray(x, dtype=np.float64).reshape(-1, 1))
        return y[:, 0].astype(out)

    def rmatmul(self, X: Any) -> np.ndarray:
        """``X @ W`` for ``X`` of shape (b, n), computed on the encoded form, in parallel when
        the work pays for it."""
        X, out = self._operand(X, 2)
        with threads.for_work(self.shape[0] * self.shape[1] * X.shape[0]):
            Yt = self._rmatmul(np.ascontiguousarray(X.T, dtype=np.float64))
        return np.ascontiguousarray(Yt.T, dtype=out)

    def __rmatmul__(self, X: Any) -> np.ndarray:
        X = np.asarray(X)
        return self.rmatvec(X) if X.ndim == 1 else self.rmatmul(X)

    def __repr__(self) -> str:
        n, m = self.shape
        return (f"<{type(self).__name__} format={self.format!r} shape=({n}, {m}) "
                f"dtype={self.dtype.name} nnz={self.nnz} nbytes={self.nbytes}>")


# --------------------------------------------------------------------------- validation helpers


def component(comps: dict[str, np.ndarray], name: str, fmt: str, dtype: Any,
              length: int | None = None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Fetch component ``name`` as a native-order array of ``dtype``, checking its size."""
    a = comps[name]
    if not isinstance(a, np.ndarray):
        raise FormatError(f"{fmt}: component {name!r} must be an ndarray, "
                          f"found {type(a).__name__}")
    want = np.dtype(dtype)
    if a.dtype.newbyteorder("=") != want:
        raise FormatError(f"{fmt}: component {name!r} must have dtype {want}, found {a.dtype}")
    if a.dtype.byteorder not in ("=", "|", "<" if np.little_endian else ">"):
        a = a.astype(want)
    if shape is not None:
        if a.shape != shape:
            raise FormatError(f"{fmt}: component {name!r} must have shape {shape}, "
                              f"found {a.shape}")
    elif a.ndim != 1:
        raise FormatError(f"{fmt}: component {name!r} must be 1-D, found shape {a.shape}")
    if length is not None and a.shape[0] != length:
        raise FormatError(f"{fmt}: component {name!r} must have length {length}, "
                          f"found {a.shape[0]}")
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def meta_int(meta: dict[str, Any], key: str, fmt: str, lo: int, hi: int) -> int:
    v = meta.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise FormatError(f"{fmt}: meta {key!r} must be an integer in [{lo}, {hi}], "
                          f"found {v!r}")
    return v


def widened(values: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    """Stored float values converted to a wider float type for computing. A signalling NaN
    among them becomes a quiet NaN: the CPU flags that conversion as invalid, which is expected
    here (the stored bits are untouched, and a product with a NaN is NaN either way), so numpy's
    RuntimeWarning is silenced for this cast only."""
    with np.errstate(invalid="ignore"):
        return values.astype(dtype)


def float_view(values_bits: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Codebook bit patterns as float64 numbers for computing (:func:`widened`)."""
    return widened(values_bits.view(dtype))
