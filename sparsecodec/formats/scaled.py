"""``scaled``: a scale per column times a matrix of levels coded by another format, plus
exceptions. Entry (i, j) is ``T(U_ij * scales[j])`` (binary64 product of the level matrix's
entry by the column's scale, rounded once to the dtype T), or the column's stored exception.

This is what per-output-channel quantizers make (int8/int6/int4 with a scale per channel,
``quantize.integer(per="column")``, or a scale per channel and a shared codebook): the values
differ in every column, so a format that tables distinct values stores m times as many; here
the levels U are shared by every column and coded by ``inner`` (``sham_ans`` by default,
whose grid symbols store integer levels in a few bits each). Products use every entry exactly
as stored, ``T(U * scale)`` (applying each scale once, ``(x @ U) * scales``, would differ by
T's rounding): with ``sham_ans`` levels on the encoded form, a value table per column; with
other inner formats on decoded blocks of columns. Spec: ``formats/scaled.md``.

The reference encoder finds the scales with the ``grid`` format's per-column fit (levels of
up to 8 bits, 255 in a column; it applies only when at most a quarter of the nonzeros fall
off those grids), or takes the ``scales=`` given. Each level is the integer nearest
``W / scale`` when that gives the entry back, else the float nearest it or a neighbour of
that float; entries no level gives back (NaN, inf, a column of scale 0) are exceptions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import status
from ..coding.bits import check_packed, pack, unpack, width_for
from ..errors import EncodeError, FormatError, OptionError
from ..kernels import compressed as kc
from .base import (
    Encoded,
    Matrix,
    bits_dtype,
    component,
    get_format,
    register,
    widened,
)
from .grid import Grid, _stored
from .sham_ans import SHAMAns

PREFIX = "inner_"  # the inner format's meta keys and component names, prefixed
OWN = ("scales", "xvalues", "xptr", "xrows")
INNER_DEFAULT = "sham_ans"
SCRATCH_BYTES = 4 << 20  # products decode this much of W (as float64) at a time


def _check_inner(name: Any, fmt: str) -> type[Encoded]:
    if name == fmt:
        raise OptionError(f"{fmt}: the inner format cannot be {fmt!r} itself")
    try:
        return get_format(name)
    except OptionError as exc:
        raise OptionError(f"{fmt}: inner: {exc}") from None


def _scaled(U: np.ndarray, scales: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``T(U[..., j] * scales[j])``: each entry of U times its column's scale, the binary64
    product rounded once to ``dtype`` (U of any number of leading dimensions)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return (widened(U) * scales).astype(dtype)


def _levels_for(M: Matrix, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Levels U (dtype T) that give back W through the scales, and the mask of entries no
    level gives back (exceptions, U = +0.0 there). Each entry's candidates are the integer
    nearest ``W / scale``, the float of T nearest it and that float's two neighbours; of
    those that give the entry back, the one most entries can take wins (ties: the earlier
    candidate), so that columns share their levels: integers always, and a codebook's values
    rather than their neighbours. Zeros are level 0."""
    W, dtype = M.W, M.dtype
    bits = bits_dtype(dtype)
    Wb = W.view(bits)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(scales[None, :] > 0, widened(W) / scales[None, :], 0.0)
        guess = ratio.astype(dtype)
        whole = np.rint(ratio).astype(dtype)
    inf = np.array(np.inf, dtype)
    cands = np.stack([whole, guess, np.nextafter(guess, inf), np.nextafter(guess, -inf)])
    ok = (_scaled(cands, scales, dtype).view(bits) == Wb[None]) & np.isfinite(cands)
    ok &= (Wb != 0)[None]
    cb = cands.view(bits)
    seen, counts = np.unique(cb[ok], return_counts=True)
    score = np.zeros(cands.shape, np.int64)
    if seen.size:
        score[ok] = counts[np.searchsorted(seen, cb[ok])]
    best = np.argmax(score, axis=0)  # the first of the most common (0 where none gives W)
    U = np.take_along_axis(cands, best[None], axis=0)[0]
    off = (Wb != 0) & ~ok.any(axis=0)
    U[(Wb == 0) | off] = 0
    return U, off


@register
class Scaled(Encoded):
    format = "scaled"
    options = ("inner", "scales")

    def __init__(self, shape: tuple[int, int], dtype: np.dtype, *, scales: np.ndarray,
                 levels: Encoded, xvalues: np.ndarray, xptr: np.ndarray, xrows: np.ndarray):
        super().__init__(shape, dtype)
        self.scales = scales        # float64 (m,)
        self.levels = levels        # the level matrix U, an Encoded of shape (n, m), dtype T
        self.xvalues = xvalues      # T (nx,), the exceptions column by column
        self.xptr = xptr            # int64 (m + 1,)
        self.xrows = xrows          # int64 (nx,)
        self._nnz: int | None = None
        self._tables: np.ndarray | None = None  # per-column value tables (sham_ans levels)

    @property
    def nx(self) -> int:
        return int(self.xvalues.shape[0])

    # ---- encoding
    @classmethod
    def _fit(cls, M: Matrix, scales: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """(scales, levels U, exception mask, whether the scales fit). Without ``scales``, the
        ``grid`` format's 8-bit fit gives them when at most a quarter of the nonzeros fall off
        its grids; otherwise every scale is 1 and U is W (on unquantized weights the fit is
        not even made: their distinct values rule it out first, ``Grid._at_least``)."""
        n, m = M.shape
        if scales is None:
            memo = M.memo.setdefault("scaled", {})
            if "fit" not in memo:
                most = M.nnz // 4
                fit = Grid._fits(M, 8, _stored(M, 8, most))
                fitted = fit is not None and fit.nx <= most
                s = fit.scales.copy() if fit is not None and fitted else np.ones(m)
                memo["fit"] = (s, *_levels_for(M, s), fitted)
            return memo["fit"]
        s = np.asarray(scales, np.float64)
        if s.shape != (m,) or not np.isfinite(s).all() or (s < 0).any():
            raise OptionError(f"scaled: scales must be {m} finite numbers >= 0 (one per "
                              f"column), found shape {s.shape}")
        s = s + 0.0  # -0.0 is +0.0
        return (s, *_levels_for(M, s), True)

    @classmethod
    def _encode(cls, M: Matrix, inner: Any = INNER_DEFAULT, scales: Any = None) -> Scaled:
        """Levels that ``inner`` cannot code (too many distinct values for a table) are coded
        ``dense``. With fitted scales the encoding is kept on ``M`` (``auto`` sizes, then
        encodes)."""
        fmt = cls.format
        inner_cls = _check_inner(inner, fmt)
        if scales is None:
            memo = M.memo.setdefault("scaled", {})
            if ("encoding", inner) not in memo:
                memo[("encoding", inner)] = cls._encode_new(M, inner_cls, None)
            return memo[("encoding", inner)]
        return cls._encode_new(M, inner_cls, scales)

    @classmethod
    def _encode_new(cls, M: Matrix, inner_cls: type[Encoded], scales: Any) -> Scaled:
        s, U, off, _ = cls._fit(M, scales)
        cols = np.flatnonzero(off.T.reshape(-1))  # exceptions column by column
        xcol, xrow = np.divmod(cols, M.shape[0])
        counts = np.bincount(xcol, minlength=M.shape[1])
        xptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        xvalues = M.W[xrow, xcol].astype(M.dtype)
        bits = bits_dtype(M.dtype)
        # levels equal to W (scales of 1, nothing apart): W's own Matrix, and what formats
        # have kept on it (auto has sized sham_ans on it already)
        L = M if np.array_equal(U.view(bits), M.bits) else Matrix(U)
        try:
            levels = inner_cls.encode(L)
        except EncodeError:
            levels = get_format("dense").encode(L)
        return cls(M.shape, M.dtype, scales=s, levels=levels, xvalues=xvalues, xptr=xptr,
                   xrows=xrow.astype(np.int64))

    @classmethod
    def size_of(cls, M: Matrix, inner: Any = INNER_DEFAULT, scales: Any = None) -> int:
        return cls._encode(M, inner, scales).nbytes

    @classmethod
    def size_within(cls, M: Matrix, limit: float, inner: Any = INNER_DEFAULT,
                    scales: Any = None) -> int | None:
        """None, without coding the levels, when what is stored besides them (scales,
        exceptions), or, when the scales do not fit, W's own bytes in ``inner`` or dense at
        least, exceed ``limit``."""
        s, _, off, fitted = cls._fit(M, scales)
        least = 8 * s.shape[0] + int(off.sum()) * M.dtype.itemsize
        if not fitted:
            n, m = M.shape
            inner_cls = _check_inner(inner, cls.format)
            least += min(inner_cls.lower_bound(M), n * m * M.dtype.itemsize)
            if least <= limit and not off.any():  # the levels are W: its inner size, kept
                own = inner_cls.size_within(M, limit - 8 * s.shape[0])
                if own is None:
                    return None
        if least > limit:
            return None
        size = cls.size_of(M, inner, scales)
        return size if size <= limit else None

    @classmethod
    def lower_bound(cls, M: Matrix) -> int:
        return 8 * M.shape[1]  # the scales

    # ---- storage
    @classmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        name = meta.get("inner")
        if not isinstance(name, str) or name == cls.format:
            return OWN  # a bad inner format is reported by _from_parts
        try:
            inner_cls = get_format(name)
        except OptionError:
            return OWN
        inner_meta = {k[len(PREFIX):]: v for k, v in meta.items() if k.startswith(PREFIX)}
        return OWN + tuple(PREFIX + c for c in inner_cls.component_names(inner_meta))

    def _meta(self) -> dict[str, Any]:
        own = {k: v for k, v in self.levels.meta.items() if k not in ("format", "shape",
                                                                        "dtype")}
        return {"inner": self.levels.format, **{PREFIX + k: v for k, v in own.items()}}

    def components(self) -> dict[str, np.ndarray]:
        n, m = self.shape
        out = {"scales": self.scales, "xvalues": self.xvalues,
               "xptr": pack(self.xptr, width_for(self.nx)),
               "xrows": pack(self.xrows, width_for(n - 1))}
        out.update({PREFIX + k: v for k, v in self.levels.components().items()})
        return out

    def layout(self) -> dict[str, tuple[str, int]]:
        n, m = self.shape
        out = {"scales": ("codebook", 64 * m), "xvalues": ("payload", 8 * self.xvalues.nbytes),
               "xptr": ("pointers", (m + 1) * width_for(self.nx)),
               "xrows": ("indices", self.nx * width_for(n - 1))}
        out.update({PREFIX + k: v for k, v in self.levels.layout().items()})
        return out

    @classmethod
    def _from_parts(cls, shape, dtype, meta, comps) -> Scaled:
        fmt = cls.format
        n, m = shape
        inner_cls = _check_inner(meta.get("inner"), fmt) if isinstance(
            meta.get("inner"), str) else None
        if inner_cls is None:
            raise FormatError(f"{fmt}: meta 'inner' must name a registered format other than "
                              f"{fmt!r}, found {meta.get('inner')!r}")
        inner_meta = {k[len(PREFIX):]: v for k, v in meta.items() if k.startswith(PREFIX)}
        for k in ("format", "shape", "dtype"):
            if k in inner_meta:
                raise FormatError(f"{fmt}: meta {PREFIX + k!r} is not allowed")
        inner_comps = {k[len(PREFIX):]: v for k, v in comps.items() if k.startswith(PREFIX)}
        try:
            levels = inner_cls.from_components(
                {**inner_meta, "format": inner_cls.format, "shape": [n, m],
                 "dtype": np.dtype(dtype).name}, inner_comps)
        except FormatError as exc:
            raise FormatError(f"{fmt}: levels: {exc}") from None
        scales = component(comps, "scales", fmt, np.float64, m)
        if not (np.isfinite(scales).all() and (scales >= 0).all()):
            raise FormatError(f"{fmt}: scales must be finite and not negative")
        if scales.view(np.uint64).max(initial=0) >> 63:
            raise FormatError(f"{fmt}: a scale is -0.0")
        xvalues = component(comps, "xvalues", fmt, dtype)
        nx = xvalues.shape[0]
        if nx > n * m:
            raise FormatError(f"{fmt}: {nx} exceptions exceed the {shape} matrix")
        pw, rw = width_for(nx), width_for(n - 1)
        xptr_w = component(comps, "xptr", fmt, np.uint64)
        xrows_w = component(comps, "xrows", fmt, np.uint64)
        check_packed(xptr_w, m + 1, pw, f"{fmt}: xptr")
        check_packed(xrows_w, nx, rw, f"{fmt}: xrows")
        status.check(fmt, kc.check_compressed(xptr_w, pw, m, xrows_w, rw, n, nx),
                     part="exceptions")
        xptr = unpack(xptr_w, pw, m + 1).astype(np.int64)
        xrows = unpack(xrows_w, rw, nx).astype(np.int64)
        enc = cls(shape, dtype, scales=scales, levels=levels, xvalues=xvalues, xptr=xptr,
                  xrows=xrows)
        if nx:  # every exception's level must be +0.0 (products add the exceptions on top)
            cols = enc._xcols()
            bits = bits_dtype(dtype)
            step = max(1, SCRATCH_BYTES // max(8 * n, 1))
            for c0 in range(0, m, step):  # the columns with exceptions, a block at a time
                c1 = min(m, c0 + step)
                lo, hi = int(xptr[c0]), int(xptr[c1])
                if hi > lo:
                    lev = levels.decode_columns(c0, c1).view(bits)
                    bad = np.flatnonzero(lev[xrows[lo:hi], cols[lo:hi] - c0])
                    if bad.size:
                        raise FormatError(f"{fmt}: column {cols[lo + bad[0]]}: an "
                                          "exception's level is not +0.0")
        return enc

    # ---- computation
    def _xcols(self) -> np.ndarray:
        return np.repeat(np.arange(self.shape[1], dtype=np.int64), np.diff(self.xptr))

    @property
    def nnz(self) -> int:
        if self._nnz is None:
            bits = bits_dtype(self.dtype)
            self._nnz = int(np.count_nonzero(self.decode().view(bits)))
        return self._nnz

    def decode(self) -> np.ndarray:
        return self.decode_columns(0, self.shape[1])

    def decode_columns(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._column_range(start, stop)
        out = _scaled(self.levels.decode_columns(start, stop), self.scales[start:stop],
                      self.dtype)
        lo, hi = int(self.xptr[start]), int(self.xptr[stop])
        if hi > lo:
            out[self.xrows[lo:hi], self._xcols()[lo:hi] - start] = self.xvalues[lo:hi]
        return out

    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        """On the entries as stored, ``T(U * scale)``. With ``sham_ans`` levels, on the
        encoded form: every column's value table is ``T(symbol * scale)`` (k values a column),
        so each product uses its entry exactly as decoded, and the exceptions are added on
        top. Other inner formats: blocks of columns (``SCRATCH_BYTES`` of them at a time)
        are decoded and multiplied in float64. (``(x @ U) * scales`` would apply each scale
        once but be off by the rounding to T: 2^-24 relative in float32.)"""
        n, m = self.shape
        if isinstance(self.levels, SHAMAns):
            if self._tables is None:  # (m, k): symbol s of column j is T(symbol * scale j)
                self._tables = widened(_scaled(self.levels.symbols[:, None], self.scales,
                                               self.dtype).T)
            Yt = self.levels.rmatmul_tables(Xt, self._tables)
            if self.nx:
                with np.errstate(invalid="ignore", over="ignore"):
                    np.add.at(Yt, self._xcols(), widened(self.xvalues)[:, None]
                              * Xt[self.xrows])
            return Yt
        Yt = np.empty((m, Xt.shape[1]), np.float64)
        step = max(1, SCRATCH_BYTES // max(8 * n, 1))
        for c0 in range(0, m, step):
            c1 = min(m, c0 + step)
            with np.errstate(invalid="ignore", over="ignore"):
                Yt[c0:c1] = widened(self.decode_columns(c0, c1)).T @ Xt
        return Yt
