"""``grid``: each column on its own integer grid through 0, as 4- or 8-bit codes, plus exceptions.

Entry (i, j) is ``scale[j] * (q_ij - zero[j])`` rounded from float64 to the matrix dtype, for
a signed code q of ``code_bits`` bits; entries not on their column's grid (other values, -0.0,
NaN, inf) are exceptions, stored apart as CSC with their code set to ``zero[j]``. This is
what a uniform quantizer with a scale per output channel or per tensor (int4/int8) produces;
it is the format built for speed: a product converts codes to floats in SIMD lanes, with no
table and no gather. Spec: ``formats/grid.md``.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .. import status
from ..coding.bits import check_packed, pack, width_for, words_for
from ..errors import FormatError, OptionError
from ..kernels import compressed as kc
from ..kernels import grid as kg
from ..kernels import threads
from .base import Encoded, Matrix, bits_dtype, component, meta_int, register, widened

CODE_BITS = (4, 8)
BLOCK_ENTRIES = 1 << 20      # entries fitted or decoded at once (bounds temporary memory)
TASKS_PER_THREAD = 16        # column ranges per thread, handed out on demand (kernels.threads)
SCRATCH_BYTES = 2 << 20      # batched products decode this much of W at a time for BLAS
BLAS_BATCH = 4               # batches from this size go through BLAS on decoded blocks


def _bounds(q: int) -> tuple[int, int]:
    return -(1 << (q - 1)), (1 << (q - 1)) - 1


def _in_dtype(scales: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``scales`` rounded to ``dtype`` and back (those that stay finite)."""
    with np.errstate(over="ignore"):
        r = scales.astype(dtype).astype(np.float64)
    return np.where(np.isfinite(r), r, scales)


def _zero_codes(levels: np.ndarray, code_bits: int) -> tuple[np.ndarray, int]:
    """Each row's zero code (the one nearest 0 that puts its levels, and 0, in the code
    range) and the widest span of levels among the rows."""
    qmin, qmax = _bounds(code_bits)
    lmin = np.minimum(levels.min(axis=1, initial=0), 0)
    lmax = np.maximum(levels.max(axis=1, initial=0), 0)
    return np.clip(0, qmin - lmin, qmax - lmax), int((lmax - lmin).max(initial=0))


def _best_scales(candidates: tuple[np.ndarray, ...], levels: np.ndarray, ok: np.ndarray,
                 Vb: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """For each column (row of ``levels``), the first of the candidate scales that reproduces
    the most of its ``ok`` entries bit for bit in ``dtype`` (``Vb``: their bit patterns), and
    which entries it reproduces."""
    def exact(cand: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return ok & ((cand[:, None] * levels).astype(dtype).view(Vb.dtype) == Vb)

    best_scale = candidates[0].copy()
    best_ok = exact(best_scale)
    best_hits = best_ok.sum(axis=1)
    for cand in candidates[1:]:
        hit = exact(cand)
        hits = hit.sum(axis=1)
        better = hits > best_hits
        best_scale[better] = cand[better]
        best_ok[better] = hit[better]
        best_hits[better] = hits[better]
    return best_scale, best_ok


class _OverBudget(Exception):
    """A fit stopped early: it already stores more than the bytes it was allowed."""


class _Fit:
    """The grid of every column at one code width, and what falls off it."""

    def __init__(self, M: Matrix, code_bits: int, budget: float = float("inf")):
        n, m = M.shape
        self.code_bits = code_bits
        self.span = 0  # the widest range of levels in a column, 0 included
        self.scales = np.zeros(m, np.float64)
        self.zeros = np.zeros(m, np.int8)
        self.codes = np.zeros((m, n), np.int8)
        rows, vals, counts = [], [], np.zeros(m, np.int64)
        bits = bits_dtype(M.dtype)
        info = np.finfo(M.dtype)
        # with a budget, smaller blocks (columns are fitted independently) stop sooner
        block = BLOCK_ENTRIES if budget == float("inf") else BLOCK_ENTRIES >> 4
        step = max(1, block // max(n, 1))
        for c0 in range(0, m, step):
            c1 = min(m, c0 + step)
            V = np.ascontiguousarray(M.W[:, c0:c1].T)
            Vb = V.view(bits)
            usable = np.isfinite(V) & (V != 0)
            levels = np.zeros(V.shape, np.int64)
            ok = np.zeros(V.shape, np.bool_)
            anchors = np.zeros(c1 - c0, np.float64)
            kg.fit(widened(V), usable, info.nmant + 1, float(info.smallest_subnormal),
                   code_bits, self.scales[c0:c1], anchors, levels, ok)
            # the anchor (the largest value over its level: what a quantizer that divides by
            # the largest level used), the fit's scale rounded to the matrix dtype (a
            # quantizer computing in that dtype used such a scale, and ties can make that
            # exact value the only one), or the fit's scale itself
            fitted = self.scales[c0:c1].copy()
            self.scales[c0:c1], ok = _best_scales(
                (anchors, _in_dtype(fitted, M.dtype), fitted), levels, ok, Vb, M.dtype)
            levels[~ok] = 0
            ok |= Vb == 0                              # +0.0 is level 0 of every grid
            z, span = _zero_codes(levels, code_bits)
            self.span = max(self.span, span)
            self.zeros[c0:c1] = z
            self.codes[c0:c1] = levels + z[:, None]
            for c in range(c1 - c0):
                bad = np.flatnonzero(~ok[c])
                counts[c0 + c] = bad.size
                rows.append(bad)
                vals.append(V[c, bad])
            if _stored(M, code_bits, int(counts.sum())) > budget:
                raise _OverBudget  # the columns left can only add exceptions
        self.xrows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        self.xvalues = (np.concatenate(vals) if vals else np.zeros(0, M.dtype)).astype(M.dtype)
        self.xptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @property
    def nx(self) -> int:
        return int(self.xvalues.shape[0])

    def narrowed(self, code_bits: int) -> _Fit | None:
        """This fit at a narrower code width, when every column's levels fit it: the greedy
        fit then makes the same choices at either width (a width only rejects a value whose
        level would widen the span past it), so only the zero codes move."""
        qmin, qmax = _bounds(code_bits)
        if self.span > qmax - qmin:
            return None
        f = object.__new__(_Fit)
        f.__dict__.update(self.__dict__)
        levels = self.codes.astype(np.int64) - self.zeros[:, None]
        f.code_bits = code_bits
        f.zeros = _zero_codes(levels, code_bits)[0].astype(np.int8)
        f.codes = (levels + f.zeros[:, None]).astype(np.int8)
        return f

    def nbytes(self, M: Matrix) -> int:
        n, m = M.shape
        return (m * _code_bytes(n, self.code_bits) + 9 * m
                + self.nx * M.dtype.itemsize + 8 * words_for((m + 1) * width_for(self.nx))
                + 8 * words_for(self.nx * width_for(n - 1)))

    def packed_codes(self) -> np.ndarray:
        q = self.codes
        if self.code_bits == 8:
            return q.view(np.uint8).reshape(-1)
        m, n = q.shape
        h = (n + 1) // 2
        full = np.zeros((m, 2 * h), np.uint8)
        full[:, :n] = q.view(np.uint8) & 15
        return (full[:, :h] | (full[:, h:] << 4)).reshape(-1)


def _stored(M: Matrix, code_bits: int, nx: int) -> int:
    """What a fit with ``nx`` exceptions stores at least: codes, scales and zero codes, and the
    exceptions' values and row indices (not their pointers)."""
    n, m = M.shape
    return (m * _code_bytes(n, code_bits) + 9 * m + nx * M.dtype.itemsize
            + nx * width_for(n - 1) // 8)


def _code_bytes(n: int, code_bits: int) -> int:
    """Bytes of one column's codes."""
    return n if code_bits == 8 else (n + 1) // 2


@register
class Grid(Encoded):
    format = "grid"
    options = ("code_bits",)

    def __init__(self, shape, dtype, code_bits: int, codes: np.ndarray, scales: np.ndarray,
                 zeros: np.ndarray, xvalues: np.ndarray, xptr: np.ndarray, xrows: np.ndarray):
        super().__init__(shape, dtype)
        self.code_bits = code_bits
        self.codes = codes
        self.scales = scales
        self.zeros = zeros
        self.xvalues = xvalues
        self.xptr = xptr
        self.xrows = xrows
        self._nnz: int | None = None
        self._xf: np.ndarray | None = None
        self._typed: dict[type, tuple[np.ndarray, np.ndarray]] = {}
        self._prep: dict[type, tuple] = {}

    # ---- encoding
    @classmethod
    def _widths(cls, code_bits: int | None) -> tuple[int, ...]:
        if code_bits is None:
            return CODE_BITS
        if isinstance(code_bits, bool) or code_bits not in CODE_BITS:
            raise OptionError(f"grid: code_bits must be 4 or 8, found {code_bits!r}")
        return (int(code_bits),)

    @classmethod
    def _fits(cls, M: Matrix, code_bits: int | None, limit: float = float("inf")
              ) -> _Fit | None:
        """The smallest fit among the allowed widths (4 bits on a tie), made once per matrix
        and width; None when every fit needs more than ``limit`` bytes. A width whose fit
        cannot win (its bound, or its fit as it goes, exceeds the limit or the best so far)
        is not finished: on unquantized values the 4-bit fit is not made, and with a finite
        limit a fit stops at the first block of columns past it."""
        memo = M.memo.setdefault("grid", {})
        best = None
        for q in sorted(cls._widths(code_bits), reverse=True):
            budget = limit if best is None else min(limit, best.nbytes(M))
            if q not in memo:
                if cls._at_least(M, q) > budget:
                    continue
                try:
                    memo[q] = (8 in memo and memo[8].narrowed(q)) or _Fit(M, q, budget)
                except _OverBudget:
                    continue  # stopped early: not kept
            size = memo[q].nbytes(M)
            if size <= limit and (best is None or size <= best.nbytes(M)):
                best = memo[q]
        return best

    @staticmethod
    def _at_least(M: Matrix, q: int) -> int:
        """Bytes of every fit at code width ``q``: its codes and scales, and the exceptions
        that k distinct nonzero values leave when a column's codes reach 2^q - 1 of them."""
        return _stored(M, q, max(0, M.nonzero_k_at_least - ((1 << q) - 1) * M.shape[1]))

    @classmethod
    def size_within(cls, M: Matrix, limit: float, code_bits: int | None = None
                    ) -> int | None:
        """``size_of``, or None once every fit is sure to exceed ``limit`` bytes."""
        f = cls._fits(M, code_bits, limit)
        return None if f is None else f.nbytes(M)

    @classmethod
    def _encode(cls, M: Matrix, code_bits: int | None = None) -> Grid:
        f = cls._fits(M, code_bits)
        assert f is not None  # without a limit the first width is always fitted
        n, _ = M.shape
        return cls(M.shape, M.dtype, f.code_bits, f.packed_codes(), f.scales, f.zeros,
                   f.xvalues, pack(f.xptr, width_for(f.nx)), pack(f.xrows, width_for(n - 1)))

    @classmethod
    def size_of(cls, M: Matrix, code_bits: int | None = None) -> int:
        size = cls.size_within(M, float("inf"), code_bits)
        assert size is not None  # without a limit the first width is always fitted
        return size

    @classmethod
    def lower_bound(cls, M: Matrix) -> int:
        """A column's codes reach at most 2^q - 1 nonzero values, so a matrix with k distinct
        nonzero values has at least k - (2^q - 1) m exceptions, whose values and row indices
        are stored next to the codes whatever the fit finds (the smaller over both widths)."""
        return min(cls._at_least(M, q) for q in CODE_BITS)

    # ---- storage
    @classmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        return ("codes", "scales", "zeros", "xvalues", "xptr", "xrows")

    def _meta(self) -> dict[str, Any]:
        return {"code_bits": self.code_bits}

    @classmethod
    def _from_parts(cls, shape, dtype, meta, comps) -> Grid:
        fmt = cls.format
        n, m = shape
        q = meta_int(meta, "code_bits", fmt, 4, 8)
        if q not in CODE_BITS:
            raise FormatError(f"{fmt}: meta 'code_bits' must be 4 or 8, found {q}")
        codes = component(comps, "codes", fmt, np.uint8, m * _code_bytes(n, q))
        scales = component(comps, "scales", fmt, np.float64, m)
        zeros = component(comps, "zeros", fmt, np.int8, m)
        xvalues = component(comps, "xvalues", fmt, dtype)
        xptr = component(comps, "xptr", fmt, np.uint64)
        xrows = component(comps, "xrows", fmt, np.uint64)
        if not (np.isfinite(scales).all() and (scales >= 0).all()):
            raise FormatError(f"{fmt}: scales must be finite and not negative")
        if scales.view(np.uint64).max(initial=0) >> 63:
            raise FormatError(f"{fmt}: a scale is -0.0")
        qmin, qmax = _bounds(q)
        if zeros.size and (zeros.min() < qmin or zeros.max() > qmax):
            raise FormatError(f"{fmt}: a zero code is outside the {q}-bit range")
        if q == 4 and n % 2 and m:  # the high nibble of each column's last byte pads
            h = (n + 1) // 2
            if np.any(codes.reshape(m, h)[:, -1] >> 4):
                raise FormatError(f"{fmt}: padding nibbles are not zero")
        nx = xvalues.shape[0]
        if nx > n * m:
            raise FormatError(f"{fmt}: {nx} exceptions exceed the {shape} matrix")
        pw, rw = width_for(nx), width_for(n - 1)
        check_packed(xptr, m + 1, pw, f"{fmt}: xptr")
        check_packed(xrows, nx, rw, f"{fmt}: xrows")
        status.check(fmt, kc.check_compressed(xptr, pw, m, xrows, rw, n, nx), part="exceptions")
        if nx:
            status.check(fmt, kg.check_exceptions(xptr, pw, xrows, rw, codes, q, n, zeros))
        return cls(shape, dtype, q, codes, scales, zeros, xvalues, xptr, xrows)

    def components(self) -> dict[str, np.ndarray]:
        return {"codes": self.codes, "scales": self.scales, "zeros": self.zeros,
                "xvalues": self.xvalues, "xptr": self.xptr, "xrows": self.xrows}

    def layout(self) -> dict[str, tuple[str, int]]:
        n, m = self.shape
        nx = self.nx
        return {"codes": ("payload", n * m * self.code_bits),
                "scales": ("codebook", 8 * self.scales.nbytes),
                "zeros": ("codebook", 8 * self.zeros.nbytes),
                "xvalues": ("payload", 8 * self.xvalues.nbytes),
                "xptr": ("pointers", (m + 1) * width_for(nx)),
                "xrows": ("indices", nx * width_for(n - 1))}

    @property
    def nx(self) -> int:
        """Number of exceptions (entries off their column's grid)."""
        return int(self.xvalues.shape[0])

    @property
    def nnz(self) -> int:
        if self._nnz is None:
            bits = bits_dtype(self.dtype)
            self._nnz = sum(int(np.count_nonzero(b.view(bits))) for b in self._blocks())
        return self._nnz

    # ---- decoding
    def _args(self) -> tuple:
        return (self.codes, self.code_bits, self.shape[0])

    def _xargs(self) -> tuple:
        n = self.shape[0]
        return (self.xptr, width_for(self.nx), self.xrows, width_for(n - 1))

    def _decode_block(self, c0: int, c1: int) -> np.ndarray:
        """Columns c0..c1 exactly, as a (c1 - c0, n) array (row r = column c0 + r)."""
        n = self.shape[0]
        levels = np.empty((c1 - c0, n), np.int64)
        kg.levels_of(*self._args(), self.zeros, c0, c1, levels)
        with np.errstate(over="ignore"):
            out = (self.scales[c0:c1, None] * levels).astype(self.dtype)
        if self.nx:
            bits = bits_dtype(self.dtype)
            kg.scatter_exceptions(*self._xargs(), self.xvalues.view(bits), c0, c1,
                                  out.view(bits))
        return out

    def _blocks(self, start: int = 0, stop: int | None = None):
        stop = self.shape[1] if stop is None else stop
        step = max(1, BLOCK_ENTRIES // max(self.shape[0], 1))
        for c0 in range(start, stop, step):
            yield self._decode_block(c0, min(stop, c0 + step))

    def decode_columns(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._column_range(start, stop)
        out = np.empty((stop - start, self.shape[0]), self.dtype)
        c = 0
        for b in self._blocks(start, stop):
            out[c:c + b.shape[0]] = b
            c += b.shape[0]
        return out.T

    def decode(self) -> np.ndarray:
        return self.decode_columns(0, self.shape[1])

    # ---- products
    def _xfloat(self) -> np.ndarray:
        if self._xf is None:
            self._xf = widened(self.xvalues)
        return self._xf

    def _in(self, ft: type) -> tuple[np.ndarray, np.ndarray]:
        """(scales, zero codes) in the compute type ``ft``."""
        if ft not in self._typed:
            self._typed[ft] = (self.scales.astype(ft), self.zeros.astype(ft))
        return self._typed[ft]

    def _round32(self, ft: type) -> bool:
        """Float64 products of a float32 matrix round each ``s * L`` to the float32 entry it
        stands for; float32 products need not (the difference is below their own rounding)."""
        return ft == np.float64 and self.dtype == np.float32

    def _compute_type(self, out: np.dtype) -> type:
        return np.float64 if out == np.float64 else np.float32

    def _prepared(self, ft: type) -> tuple:
        """The kernel arguments that do not change between products in ``ft``: built once
        (a small layer's product takes microseconds, and each call here counts)."""
        if ft not in self._prep:
            self._prep[ft] = (*self._args(), self.scales, self._in(ft)[1], *self._xargs(),
                              self._xfloat(), self._round32(ft))
        return self._prep[ft]

    def _vector(self, x: np.ndarray, ft: type, out: Any = np.float64) -> np.ndarray:
        """``x @ W`` for a 1-D ``x``, computed in ``ft``, as ``out``."""
        n, m = self.shape
        if self.code_bits == 4 and n % 2:
            xv: np.ndarray = np.zeros(n + 1, ft)
            xv[:n] = x
        else:
            xv = np.ascontiguousarray(x, dtype=ft)
        y = np.empty(m, out)
        if threads.parallel(n * m):
            with numba.parallel_chunksize(1):
                kg.rmatvec_parallel(*self._prepared(ft), xv, y,
                                    min(m, TASKS_PER_THREAD * numba.get_num_threads()))
        else:
            kg.rmatvec(*self._prepared(ft), xv, y)
        return y

    def _batch(self, X: np.ndarray, ft: type) -> np.ndarray:
        """``(X @ W).T`` as ``ft`` (m, b): column blocks of W decoded into a scratch buffer of
        at most SCRATCH_BYTES and multiplied by BLAS."""
        n, m = self.shape
        Xf: np.ndarray = np.ascontiguousarray(X, dtype=ft)
        Yt: np.ndarray = np.empty((m, X.shape[0]), ft)
        cb = max(1, min(m, SCRATCH_BYTES // max(1, n * np.dtype(ft).itemsize)))
        scratch: np.ndarray = np.empty((cb, n), ft)
        for c0 in range(0, m, cb):
            c1 = min(m, c0 + cb)
            block = scratch[:c1 - c0]
            kg.values_of(*self._args(), *self._in(ft), c0, c1, block, self._round32(ft))
            if self.nx:
                kg.scatter_exceptions(*self._xargs(), self._xfloat(), c0, c1, block)
            np.matmul(block, Xf.T, out=Yt[c0:c1])
        return Yt

    def _product(self, X: np.ndarray, ft: type) -> np.ndarray:
        """``(X @ W).T`` (m, b) for a 2-D ``X`` (b, n)."""
        if self.dtype == np.float16:  # its values are s * L rounded to 11 bits: use those
            return self._exact(X, ft)
        if X.shape[0] >= BLAS_BATCH and self.shape[0] * self.shape[1]:
            return self._batch(X, ft)
        Yt = np.empty((self.shape[1], X.shape[0]), np.float64)
        for r in range(X.shape[0]):
            Yt[:, r] = self._vector(X[r], ft)
        return Yt

    def _exact(self, X: np.ndarray, ft: type) -> np.ndarray:
        """``(X @ W).T`` (m, b) on exactly decoded column blocks (float16 matrices, whose
        rounding to 11 bits is far from the s * L that the other paths multiply by)."""
        Xf: np.ndarray = np.ascontiguousarray(X, dtype=ft)
        parts = [np.matmul(b.astype(ft), Xf.T) for b in self._blocks()]
        return np.concatenate(parts) if parts else np.zeros((0, X.shape[0]), ft)

    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        return np.asarray(self._product(Xt.T, np.float64), np.float64)

    def rmatvec(self, x: Any) -> np.ndarray:
        x, out = self._operand(x, 1)
        ft = self._compute_type(out)
        if self.dtype == np.float16:
            return self._exact(x[None, :], ft)[:, 0].astype(out)
        return self._vector(x, ft, out)

    def rmatmul(self, X: Any) -> np.ndarray:
        X, out = self._operand(X, 2)
        Yt = self._product(X, self._compute_type(out))
        return np.ascontiguousarray(Yt.T, dtype=out)
