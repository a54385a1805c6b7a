"""``sham_ans``: sparse lines (columns or rows) whose (gap, value) symbols are rANS-coded
with static, context-dependent tables; the smallest format when positions and values carry
structure.

The format codes W column by column (``order`` "columns") or row by row ("rows", i.e. the
columns of W^T), whichever the encoder finds cheaper. Each line is a stream of (run of zeros,
value) pairs closed by an end-of-line symbol. The runs' symbols are conditioned (optionally) on
the previous run and on a class of the line; the values' on whether the previous entry was
nonzero, on a class of the entry's position in the line and on the class of the line. The
encoder computes the exact cost of every combination of contexts, table storage included, and
keeps the cheapest, so a context is used only when it pays for its tables; ``info`` records the
cost of each. Blocks of lines are independent streams, decoded and multiplied in parallel.

Components: ``symbols`` (the k distinct nonzero values), ``gap_freqs`` and ``value_freqs`` (one
frequency row per context, Exp-Golomb coded), ``pos_classes`` and ``line_classes`` (2 bits each,
empty when unused), ``stream`` (uint16 rANS words), ``offsets`` (word offset of each block,
packed) and, with ``state`` contexts only, ``parities`` (2 bits per symbol). Spec:
``formats/sham_ans.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .. import status
from ..coding.bits import (
    best_exp_golomb,
    check_packed,
    exp_golomb_bits,
    exp_golomb_decode,
    exp_golomb_encode,
    pack,
    unpack,
    width_for,
    words_for,
)
from ..coding.information import information_bits
from ..coding.rans import cumulative, quantize_freqs_rows, slot_tables
from ..errors import EncodeError, FormatError, OptionError
from ..kernels import ans_columns as ka
from ..kernels import compressed as kc
from .base import (
    Encoded,
    Matrix,
    bits_dtype,
    component,
    float_view,
    meta_int,
    register,
    widened,
)
from .blocked import BLOCK_SYMBOLS, block_range, check_coder_options
from .levels import MAX_GRID_SYMBOLS, SymbolGrid, find_grid, grid_parities, index_parities
from .levels import MAX_ORDER as GRID_MAX_ORDER

MAX_RUNS = 1 << 12
MAX_SCALE = 16
CLASS_BITS = 2
GAP_FEATURES = {"prev": ka.PREV, "line": ka.LINE, "rem": ka.REM, "state": ka.STATE}
VALUE_FEATURES = {"sig": ka.SIG, "pos": ka.POS, "line": ka.VLINE, "state": ka.VSTATE}
PARITY_BITS = 2  # a symbol's index parity in quantizer class 0 (bit 0) and 1 (bit 1)
ORDERS = ("columns", "rows")
SYMBOL_TABLES = ("auto", "floats", "grid")
_NAMES = ("symbols", "gap_freqs", "value_freqs", "pos_classes", "line_classes", "stream",
          "offsets")


def model_name(model: int, features: dict[str, int]) -> str:
    """'none' or the features joined by '+', e.g. 'sig+pos'."""
    return "+".join(f for f, bit in features.items() if model & bit) or "none"


def parse_model(v: Any, features: dict[str, int], option: str) -> int | None:
    """The feature bits of a model named like 'sig+pos' ('none': 0), None for 'auto'."""
    if v is None or v == "auto":
        return None
    if isinstance(v, str):
        parts = [] if v == "none" else v.split("+")
        if all(p in features for p in parts):
            return sum(features[p] for p in set(parts))
    allowed = ", ".join(features)
    raise OptionError(f"sham_ans: {option} must be 'auto', 'none' or features from "
                      f"{{{allowed}}} joined by '+', found {v!r}")


def _ngap_contexts(gap_model: int) -> int:
    return ((ka.NPREV if gap_model & ka.PREV else 1) * (ka.NCLASS if gap_model & ka.LINE else 1)
            * (ka.NREM if gap_model & ka.REM else 1) * (ka.NSTATE if gap_model & ka.STATE else 1))


def _nvalue_contexts(value_model: int) -> int:
    return ((2 if value_model & ka.SIG else 1) * (ka.NCLASS if value_model & ka.POS else 1)
            * (ka.NCLASS if value_model & ka.VLINE else 1)
            * (2 if value_model & ka.VSTATE else 1))


def uses_lines(gap_model: int, value_model: int) -> bool:
    return bool(gap_model & ka.LINE or value_model & ka.VLINE)


def uses_state(gap_model: Any, value_model: Any) -> bool:
    """Whether either model follows the dependent-quantization state (and so needs each
    symbol's index parities). False for meta values that are not integers (rejected later)."""
    def bit(x: Any, b: int) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and bool(x & b)

    return bit(gap_model, ka.STATE) or bit(value_model, ka.VSTATE)


def classes_by_count(counts: np.ndarray, magnitude: np.ndarray | None = None) -> np.ndarray:
    """Class 0..3 of each position (line) by the rank of its nonzero count: four equal groups,
    fewest nonzeros first; ties by ``magnitude`` (the mean |value| of its nonzeros, smallest
    first: on an unpruned layer every count ties and the classes follow the scales of its
    rows and columns), then by position."""
    if magnitude is None:
        order = np.argsort(counts, kind="stable")
    else:
        order = np.lexsort((np.arange(counts.shape[0]), magnitude, counts))
    cls = np.empty(counts.shape[0], np.int8)
    cls[order] = (np.arange(counts.shape[0]) * ka.NCLASS // max(counts.shape[0], 1))
    return cls


def _choose_runs(hist: np.ndarray, m: int, n: int) -> int:
    """The R (runs coded directly, a power of two) that minimises the ideal cost of the gap
    symbols plus raw escape bits plus a 13-bit-per-symbol table."""
    runs = np.arange(hist.shape[0])
    best, best_cost = 1, math.inf
    R = 1
    while R <= min(MAX_RUNS, max(n, 1)):
        e = runs[R:] - R + 1
        nb = np.floor(np.log2(np.maximum(e, 1))).astype(np.int64)
        esc = np.bincount(nb, weights=hist[R:], minlength=1) if e.size else np.zeros(1)
        sym = np.concatenate(([m], hist[:R], esc)).astype(np.int64)
        cost = (information_bits(sym) + float((nb * hist[R:]).sum())
                + 13 * ka.ngap_symbols(R, n))
        if cost < best_cost:
            best, best_cost = R, cost
        R *= 2
    return best


def _rows_cost(counts: np.ndarray, sb: int) -> tuple[float, np.ndarray] | None:
    """(bits the rows of ``counts`` take with frequencies quantized to 2^sb, one context per
    row, and those frequencies); None when a row has more symbols than slots."""
    used = counts > 0
    per_row = used.sum(axis=1)
    if int(per_row.max(initial=0)) > (1 << sb):
        return None
    freq = quantize_freqs_rows(counts, sb)
    bits = counts[used] * (sb - np.log2(freq[used]))  # row by row, as each row sums below
    total = 0.0
    end = np.cumsum(per_row).tolist()
    for a, b in zip([0, *end[:-1]], end, strict=True):
        if b > a:  # each row summed on its own, then added in row order
            total += float(bits[a:b].sum())
    return total, freq


@dataclass(frozen=True)
class _Table:
    """The cheapest way found to store one part's frequency tables."""

    bits: float         # payload plus the stored table
    scale: int          # frequencies sum to 2^scale per context
    payload: float      # bits of the symbols alone
    order: int          # Exp-Golomb order of the stored table
    freq: np.ndarray    # the quantized frequencies, (contexts, alphabet)


def _best_table(counts: np.ndarray) -> _Table:
    """The cheapest frequency precision for a (contexts, alphabet) histogram, table storage
    included (bits = inf when no precision fits the symbols)."""
    present = int((counts > 0).sum(axis=1).max(initial=1))
    lo = max(1, width_for(present - 1))
    hi = min(MAX_SCALE, max(lo, 8) + (5 if counts.shape[1] <= 4096 else 1))
    best = _Table(math.inf, lo, math.inf, 0, np.zeros(counts.shape, np.int64))
    for sb in range(lo, hi + 1):
        got = _rows_cost(counts, sb)
        if got is None:
            continue
        payload, freq = got
        order, table = best_exp_golomb(freq.ravel(), sb)
        if payload + table < best.bits:
            best = _Table(payload + table, sb, payload, order, freq)
    return best


def _rows(h: np.ndarray) -> np.ndarray:
    """A histogram over (context features..., symbol) as (contexts, symbol)."""
    return h.reshape(math.prod(h.shape[:-1]), h.shape[-1])


def gap_counts(hg: np.ndarray, gap_model: int) -> np.ndarray:
    h = hg if gap_model & ka.PREV else hg.sum(axis=0, keepdims=True)
    h = h if gap_model & ka.LINE else h.sum(axis=1, keepdims=True)
    h = h if gap_model & ka.REM else h.sum(axis=2, keepdims=True)
    h = h if gap_model & ka.STATE else h.sum(axis=3, keepdims=True)
    return _rows(h)


def value_counts(hv: np.ndarray, value_model: int) -> np.ndarray:
    h = hv if value_model & ka.SIG else hv.sum(axis=0, keepdims=True)
    h = h if value_model & ka.POS else h.sum(axis=1, keepdims=True)
    h = h if value_model & ka.VLINE else h.sum(axis=2, keepdims=True)
    h = h if value_model & ka.VSTATE else h.sum(axis=3, keepdims=True)
    return _rows(h)


@dataclass(frozen=True)
class ContextEntropy:
    """The ideal size, in bits, of ``sham_ans``'s symbol stream under one context model: every
    context coded with its exact empirical distribution and its table free. No static code
    with these contexts does better (Gibbs' inequality); a model that adds contexts can only
    lower it, which is why the encoder charges the tables before buying one."""

    order: str          # "columns" or "rows"
    gap_model: str      # e.g. "prev+line" or "none"
    value_model: str    # e.g. "sig+pos" or "none"
    gap_bits: float     # positions: the gap symbols, ends of lines included
    value_bits: float   # values
    raw_bits: int       # escape bits of long runs, coded raw

    @property
    def total(self) -> float:
        return self.gap_bits + self.value_bits + self.raw_bits


@dataclass(frozen=True)
class Statistics:
    """What the encoder decides from, for one order: the coded matrix's structure (``ptr``,
    ``rows``, value symbols ``vsym``, its shape), the runs coded directly, the joint histograms
    of gap symbols (previous-run class, line class, symbol) and value symbols (previous entry
    nonzero, position class, line class, symbol), the raw escape bits and the classes."""

    order: str
    shape: tuple[int, int]
    ptr: np.ndarray
    rows: np.ndarray
    vsym: np.ndarray
    parities: np.ndarray | None  # index parities of the symbols (``grid_parities``)
    grid: SymbolGrid | None      # the symbols as a step and levels, when they are on one
    runs: int
    gaps: np.ndarray
    values: np.ndarray
    raw_bits: int
    pos_classes: np.ndarray
    line_classes: np.ndarray

    def context_entropy(self, gap_model: int, value_model: int) -> ContextEntropy:
        """Ideal bits of the stream under a context model: each context coded with its exact
        empirical distribution, tables free, plus the raw escape bits. No static coder with
        these contexts does better (Gibbs' inequality)."""
        return ContextEntropy(self.order, model_name(gap_model, GAP_FEATURES),
                              model_name(value_model, VALUE_FEATURES),
                              model_entropy(gap_counts(self.gaps, gap_model)),
                              model_entropy(value_counts(self.values, value_model)),
                              self.raw_bits)


def _memo(M: Matrix, what: str) -> dict[Any, Any]:
    """What this format keeps on ``M``: its ``statistics`` by order, its ``encodings`` by
    options."""
    return M.memo.setdefault(f"sham_ans.{what}", {})


def statistics(M: Matrix, order: str = "columns") -> Statistics:
    """The statistics of ``M`` coded in ``order`` (kept in ``M.memo``); EncodeError with too
    many distinct values."""
    cache = _memo(M, "statistics")
    if order not in cache:
        d = M.require_distinct("nonzero", "sham_ans")
        k = d.k
        if order == "columns":
            ptr, rows, _ = M.csc
            vsym, (n, m) = d.symbols, M.shape
        else:  # the same symbols in row order: each value's rank among the sorted values
            ptr, rows, bits = M.row_structure()  # not kept on M
            vsym = np.searchsorted(d.values, bits).astype(np.int32)
            del bits
            m, n = M.shape
        R = _choose_runs(ka.runs_histogram(ptr, rows, n), m, n)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf values: any class
            mag = np.abs(widened(d.values.view(M.dtype)))[vsym] if vsym.size else np.zeros(0)
            mag = np.where(np.isfinite(mag), mag, 0.0)
            pos_count = np.bincount(rows, minlength=n)
            pos_cls = classes_by_count(pos_count, np.bincount(rows, mag, minlength=n)
                                       / np.maximum(pos_count, 1))
            line_count = np.diff(ptr)
            line_of = np.repeat(np.arange(m), line_count)
            line_cls = classes_by_count(line_count, np.bincount(line_of, mag, minlength=m)
                                        / np.maximum(line_count, 1))
        grid = find_grid(d.values.view(M.dtype))
        par = grid_parities(d.values.view(M.dtype), grid)
        hg, hv, raw = ka.joint_histograms(ptr, rows, vsym, max(k, 1), R, ka.ngap_symbols(R, n),
                                          n, pos_cls if n else np.zeros(1, np.int8), line_cls,
                                          _kernel_parities(par, k))
        cache[order] = Statistics(order, (n, m), ptr, rows, vsym, par, grid, R, hg,
                                  hv[..., :k], int(raw), pos_cls, line_cls)
    return cache[order]


@dataclass(frozen=True)
class _Choice:
    """The cheapest tables and contexts for one order, and what every combination costs."""

    stats: Statistics
    gap_model: int
    value_model: int
    gap: _Table
    value: _Table
    costs: dict[tuple[int, int], float]   # estimated bits of every (gap, value) model

    @property
    def bits(self) -> float:
        return self.costs[(self.gap_model, self.value_model)]


def _choose(st: Statistics, forced_g: int | None, forced_v: int | None) -> _Choice:
    """The cheapest models; the ``state`` feature is tried only when the values lie on one
    step's grid (``grid_parities``), and used on other matrices only when forced."""
    n, m = st.shape
    models = range(16 if st.parities is not None else 8)
    gaps = {g: _best_table(gap_counts(st.gaps, g))
            for g in (models if forced_g is None else (forced_g,))}
    vals = {v: _best_table(value_counts(st.values, v))
            for v in (models if forced_v is None else (forced_v,))}
    if any(t.bits == math.inf for t in (*gaps.values(), *vals.values())):
        raise EncodeError(f"sham_ans: more than 2^{MAX_SCALE} distinct nonzero values in one "
                          "context; quantize the matrix first")
    costs = {}
    for g, gt in gaps.items():
        for v, vt in vals.items():
            side = (CLASS_BITS * (n * bool(v & ka.POS) + m * uses_lines(g, v))
                    + (0 if st.grid else _parity_bits(st.values.shape[-1], g, v)))
            costs[(g, v)] = gt.bits + vt.bits + side + st.raw_bits
    g, v = min(costs, key=lambda gv: (costs[gv], gv))
    return _Choice(st, g, v, gaps[g], vals[v], costs)


@dataclass(frozen=True)
class CodeTable:
    """One part's (gaps' or values') static rANS tables: ``freq`` (contexts, alphabet) int64,
    each used context summing to 2^``scale``, stored Exp-Golomb coded of ``golomb_order``."""

    freq: np.ndarray
    scale: int
    golomb_order: int

    def slots(self) -> tuple[np.ndarray, np.ndarray]:
        """The decoding tables of every context (``rans.slot_tables``)."""
        return slot_tables(self.freq, cumulative(self.freq), self.scale)


@dataclass(frozen=True)
class Model:
    """How the stream is laid out and which contexts code it: the ``order`` ("columns":
    W's columns are the coded lines; "rows": W^T's), the ``runs`` coded directly, the lines
    per block, the context models (feature bits), the position and line classes (int8,
    empty when unused) and the symbols' index parities (int8, empty unless a model uses the
    ``state`` feature)."""

    order: str
    runs: int
    block_lines: int
    gap_model: int
    value_model: int
    pos_classes: np.ndarray
    line_classes: np.ndarray
    parities: np.ndarray


class KernelArgs(NamedTuple):
    """The arguments every ``ans_columns`` walker takes, in its order."""

    words: np.ndarray
    offsets: np.ndarray
    gap_slots: tuple[np.ndarray, np.ndarray]
    gap_scale: int
    value_slots: tuple[np.ndarray, np.ndarray]
    value_scale: int
    runs: int
    gap_model: int
    value_model: int
    pos_classes: np.ndarray
    line_classes: np.ndarray
    parities: np.ndarray
    n: int
    m: int
    nnz: int
    block_lines: int


@register
class SHAMAns(Encoded):
    format = "sham_ans"
    options = ("block_symbols", "order", "gap_model", "value_model", "symbol_table")

    @classmethod
    def lower_bound(cls, M: Matrix) -> int:
        """The value table (every distinct nonzero value), and their frequencies: one
        Exp-Golomb code (one bit at least) per value. (Sizing this format means encoding it:
        this is what lets ``auto`` skip that on unquantized floats.)"""
        k = M.nonzero_k_at_least
        if k <= MAX_GRID_SYMBOLS:  # on a grid they may cost a bit each
            return k // 8
        return k * M.dtype.itemsize + k // 8

    def __init__(self, shape: tuple[int, int], dtype: np.dtype, *, symbols: np.ndarray,
                 stream: np.ndarray, offsets: np.ndarray, nnz: int, model: Model,
                 gap: CodeTable, value: CodeTable, grid: SymbolGrid | None = None,
                 info: dict[str, Any] | None = None):
        super().__init__(shape, dtype)
        self.symbols = symbols  # the distinct nonzero values, ascending bit patterns
        self.grid = grid  # the same as a step and integer levels, when stored that way
        self.stream = stream  # uint16 words
        self.offsets = offsets  # int64, nblocks + 1
        self._nnz = nnz
        self.model, self.gap, self.value = model, gap, value
        self.info = info or {}
        n, m = self.coded_shape
        self._kernel_args = KernelArgs(
            words=stream, offsets=offsets, gap_slots=gap.slots(), gap_scale=gap.scale,
            value_slots=value.slots(), value_scale=value.scale, runs=model.runs,
            gap_model=model.gap_model, value_model=model.value_model,
            pos_classes=_kernel_classes(model.pos_classes, n),
            line_classes=_kernel_classes(model.line_classes, m),
            parities=_kernel_parities(model.parities, symbols.shape[0]), n=n, m=m, nnz=nnz,
            block_lines=model.block_lines)

    # the model's settings, by the names the options and the stored meta use
    order = property(lambda self: self.model.order)
    runs = property(lambda self: self.model.runs)
    block_lines = property(lambda self: self.model.block_lines)
    gap_model = property(lambda self: self.model.gap_model)
    value_model = property(lambda self: self.model.value_model)

    @property
    def coded_shape(self) -> tuple[int, int]:
        """Shape of the matrix whose columns are coded: W's, or W^T's for order "rows"."""
        n, m = self.shape
        return (n, m) if self.model.order == "columns" else (m, n)

    # ---- encoding
    @classmethod
    def _encode(cls, M: Matrix, block_symbols: int = BLOCK_SYMBOLS, order: Any = None,
                gap_model: Any = None, value_model: Any = None,
                symbol_table: Any = None) -> SHAMAns:
        key = (block_symbols, order, gap_model, value_model, symbol_table)
        cache = _memo(M, "encodings")
        if key not in cache:
            cache[key] = cls._encode_new(M, block_symbols, order, gap_model, value_model,
                                         symbol_table)
        return cache[key]

    @classmethod
    def _encode_new(cls, M: Matrix, block_symbols: int, order: Any, gap_model: Any,
                    value_model: Any, symbol_table: Any = None) -> SHAMAns:
        fmt = cls.format
        check_coder_options(fmt, block_symbols, None)
        if symbol_table is None:
            symbol_table = "auto"
        if symbol_table not in SYMBOL_TABLES:
            raise OptionError(f"{fmt}: symbol_table must be one of {SYMBOL_TABLES}, "
                              f"found {symbol_table!r}")
        if order not in (None, "auto", *ORDERS):
            raise OptionError(f"{fmt}: order must be 'auto', 'columns' or 'rows', "
                              f"found {order!r}")
        forced_g = parse_model(gap_model, GAP_FEATURES, "gap_model")
        forced_v = parse_model(value_model, VALUE_FEATURES, "value_model")
        d = M.require_distinct("nonzero", fmt)
        orders = ORDERS if order in (None, "auto") else (order,)
        choices = [_choose(statistics(M, o), forced_g, forced_v) for o in orders]
        ch = min(choices, key=lambda c: c.bits)
        cache = _memo(M, "statistics")
        for c in choices:  # the other order's structure (a CSR copy for rows) is not kept
            if c is not ch:
                cache.pop(c.stats.order, None)
        st, g, v = ch.stats, ch.gap_model, ch.value_model
        grid = None if symbol_table == "floats" else st.grid
        if grid is None and symbol_table == "grid":
            raise EncodeError(f"{fmt}: symbol_table='grid', but the values are not the "
                              f"multiples of one step (or there are more than "
                              f"{MAX_GRID_SYMBOLS})")
        if grid is not None and symbol_table == "auto" and (
                8 + 8 * words_for(grid.bits()) >= d.k * M.dtype.itemsize):
            grid = None  # floats are as small (one or two values)
        n, m = st.shape
        nnz = int(st.ptr[-1])
        gsb, vsb = ch.gap.scale, ch.value.scale
        gfreq, vfreq = ch.gap.freq, ch.value.freq
        pc = st.pos_classes if v & ka.POS else np.zeros(0, np.int8)
        lc = st.line_classes if uses_lines(g, v) else np.zeros(0, np.int8)
        # (with a grid, the statistics' parities are its levels' parities already)
        par = _kernel_parities(st.parities, d.k)[:d.k] if uses_state(g, v) else np.zeros(
            0, np.int8)
        per_line = max(2 * nnz + m, 1) / max(m, 1)
        bc = max(1, min(max(m, 1), math.ceil(block_symbols / per_line)))
        ops = ka.count_ops(st.ptr, st.rows, st.runs, bc)
        op_off = np.zeros(ops.shape[0] + 1, np.int64)
        np.cumsum(ops, out=op_off[1:])
        words, used = ka.encode(st.ptr, st.rows, st.vsym, st.runs, n, g, v, _kernel_classes(pc, n),
                                _kernel_classes(lc, m), _kernel_parities(par, d.k), gfreq,
                                cumulative(gfreq), gsb, vfreq, cumulative(vfreq), vsb, bc, op_off)
        if (used < 0).any():  # pragma: no cover - the capacity is proven sufficient
            raise EncodeError(f"{fmt}: internal error: a block overflowed its buffer")
        stream, offsets = ka.compact(words, used, op_off)
        info = {
            "context_costs": {(c.stats.order, model_name(gg, GAP_FEATURES),
                               model_name(vv, VALUE_FEATURES)): bits / 8
                              for c in choices for (gg, vv), bits in c.costs.items()},
            "gap_payload_bits": ch.gap.payload, "value_payload_bits": ch.value.payload,
            "raw_bits": st.raw_bits, "model_entropy_bits": st.context_entropy(g, v).total,
        }
        model = Model(order=st.order, runs=st.runs, block_lines=bc, gap_model=g, value_model=v,
                      pos_classes=pc, line_classes=lc, parities=par)
        return cls(M.shape, M.dtype, symbols=d.values.view(M.dtype), stream=stream,
                   offsets=offsets, nnz=nnz, model=model,
                   gap=CodeTable(gfreq, gsb, ch.gap.order),
                   value=CodeTable(vfreq, vsb, ch.value.order), grid=grid, info=info)

    @classmethod
    def size_of(cls, M: Matrix, block_symbols: int = BLOCK_SYMBOLS, order: Any = None,
                gap_model: Any = None, value_model: Any = None,
                symbol_table: Any = None) -> int | None:
        """Exact bytes, found by encoding (an rANS stream's length is known only once coded);
        the encoding is kept on ``M`` so that ``encode`` after ``auto`` does not redo it."""
        if M.nonzero_distinct is None:
            return None
        try:
            return cls._encode(M, block_symbols, order, gap_model, value_model,
                               symbol_table).nbytes
        except EncodeError:
            if (gap_model, value_model, order, block_symbols, symbol_table) == (
                    None, None, None, BLOCK_SYMBOLS, None):
                return None  # auto skips us; an explicit option that is wrong still raises
            raise

    # ---- storage
    @classmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        """With a grid (meta ``grid_symbols``) the symbols are a step and levels, and the
        parities follow from the levels; else they are floats, and the parities are stored
        when a model uses the state."""
        if "grid_symbols" in meta:
            return ("symbol_step", "symbol_levels", *_NAMES[1:])
        if uses_state(meta.get("gap_model"), meta.get("value_model")):
            return (*_NAMES, "parities")
        return _NAMES

    def _meta(self) -> dict[str, Any]:
        md = self.model
        return {"nnz": self._nnz, "order": md.order, "block_lines": md.block_lines,
                "runs": md.runs, "gap_model": md.gap_model, "value_model": md.value_model,
                "gap_scale": self.gap.scale, "value_scale": self.value.scale,
                "gap_table_order": self.gap.golomb_order,
                "value_table_order": self.value.golomb_order,
                **({"grid_symbols": int(self.grid.levels.shape[0]),
                    "grid_order": self.grid.order} if self.grid is not None else {})}

    def _packed(self) -> dict[str, tuple[np.ndarray, int]]:
        """Each packed component: (values, width)."""
        out = {"pos_classes": (self.model.pos_classes, CLASS_BITS),
               "line_classes": (self.model.line_classes, CLASS_BITS),
               "offsets": (self.offsets, width_for(self.stream.shape[0]))}
        if uses_state(self.gap_model, self.value_model) and self.grid is None:
            out["parities"] = (self.model.parities, PARITY_BITS)
        return out

    def _tables(self) -> dict[str, tuple[np.ndarray, int]]:
        """Each Exp-Golomb coded table: (frequencies, order)."""
        return {"gap_freqs": (self.gap.freq.ravel(), self.gap.golomb_order),
                "value_freqs": (self.value.freq.ravel(), self.value.golomb_order)}

    @classmethod
    def context_entropy(cls, M: Matrix, order: str | None = None,
                        gap_model: str | None = None, value_model: str | None = None
                        ) -> ContextEntropy:
        """The ideal bits of ``M``'s symbol stream under the model named (order "columns" and
        no contexts for what is not named), or, when nothing is named, under the model this
        format chooses for ``M``."""
        if (order, gap_model, value_model) == (None, None, None):
            enc = cls.encode(M)
            assert isinstance(enc, SHAMAns)
            return enc.model_entropy(M)
        order = order or "columns"
        if order not in ORDERS:
            raise OptionError(f"{cls.format}: order must be 'columns' or 'rows', found "
                              f"{order!r}")
        g = parse_model(gap_model or "none", GAP_FEATURES, "gap_model") or 0
        v = parse_model(value_model or "none", VALUE_FEATURES, "value_model") or 0
        return statistics(M, order).context_entropy(g, v)

    def model_entropy(self, M: Matrix) -> ContextEntropy:
        """:meth:`context_entropy` of ``M``, the matrix this encoding holds, under its model."""
        return statistics(M, self.order).context_entropy(self.gap_model, self.value_model)

    def own_limit(self, M: Matrix) -> float | None:
        """The context-conditioned entropy of its model (escape bits included)."""
        return self.model_entropy(M).total

    def components(self) -> dict[str, np.ndarray]:
        out = {"symbols": self.symbols, "stream": self.stream}
        if self.grid is not None:
            out["symbol_step"] = np.array([self.grid.step], np.float64)
            out["symbol_levels"] = self.grid.words()
        out.update({name: exp_golomb_encode(f, o) for name, (f, o) in self._tables().items()})
        out.update({name: pack(vals, w) for name, (vals, w) in self._packed().items()})
        return {name: out[name] for name in self.component_names(self.meta)}

    def layout(self) -> dict[str, tuple[str, int]]:
        out = {"symbols": ("codebook", 8 * self.symbols.nbytes),
               "stream": ("payload", 16 * self.stream.shape[0])}
        if self.grid is not None:
            out["symbol_step"] = ("codebook", 64)
            out["symbol_levels"] = ("codebook", self.grid.bits())
        for name, (f, o) in self._tables().items():
            out[name] = ("codebook", exp_golomb_bits(f, o))
        for name, (vals, w) in self._packed().items():
            out[name] = ("pointers" if name == "offsets" else "codebook", vals.shape[0] * w)
        return {name: out[name] for name in self.component_names(self.meta)}

    @classmethod
    def _from_parts(cls, shape, dtype, meta, comps) -> SHAMAns:
        fmt = cls.format
        order = meta.get("order")
        if order not in ORDERS:
            raise FormatError(f"{fmt}: meta 'order' must be 'columns' or 'rows', "
                              f"found {order!r}")
        n, m = shape if order == "columns" else (shape[1], shape[0])
        nnz = meta_int(meta, "nnz", fmt, 0, n * m)
        bc = meta_int(meta, "block_lines", fmt, 1, max(m, 1))
        R = meta_int(meta, "runs", fmt, 1, MAX_RUNS)
        g = meta_int(meta, "gap_model", fmt, 0, 15)
        v = meta_int(meta, "value_model", fmt, 0, 15)
        gsb = meta_int(meta, "gap_scale", fmt, 1, MAX_SCALE)
        vsb = meta_int(meta, "value_scale", fmt, 1, MAX_SCALE)
        go = meta_int(meta, "gap_table_order", fmt, 0, MAX_SCALE)
        vo = meta_int(meta, "value_table_order", fmt, 0, MAX_SCALE)
        grid = None
        if "grid_symbols" in meta:
            k = meta_int(meta, "grid_symbols", fmt, 1, MAX_GRID_SYMBOLS)
            grid = SymbolGrid.read(component(comps, "symbol_step", fmt, np.float64),
                                   component(comps, "symbol_levels", fmt, np.uint64), k,
                                   meta_int(meta, "grid_order", fmt, 0, GRID_MAX_ORDER),
                                   f"{fmt}: symbol_levels")
            symbols = grid.values(dtype)
        else:
            symbols = component(comps, "symbols", fmt, dtype)
        k = symbols.shape[0]
        bits = symbols.view(bits_dtype(dtype))
        if kc.has_zero(bits):
            raise FormatError(f"{fmt}: the codebook holds +0.0 (zeros are never stored)")
        if k > 1 and not (bits[1:] > bits[:-1]).all():
            raise FormatError(f"{fmt}: the symbols are not distinct in ascending bit order")
        if (nnz > 0) != (k > 0):
            raise FormatError(f"{fmt}: {k} symbols for {nnz} nonzeros")
        A = ka.ngap_symbols(R, n)
        gfreq = _freqs(comps, "gap_freqs", _ngap_contexts(g), A, gsb, go, fmt)
        vfreq = _freqs(comps, "value_freqs", _nvalue_contexts(v), k, vsb, vo, fmt)
        pc = _classes(comps, "pos_classes", n if v & ka.POS else 0, fmt)
        lc = _classes(comps, "line_classes", m if uses_lines(g, v) else 0, fmt)
        par = np.zeros(0, np.int8)
        if uses_state(g, v):
            par = (index_parities(grid.levels) if grid is not None
                   else _packed_small(comps, "parities", k, PARITY_BITS, fmt))
        stream = component(comps, "stream", fmt, np.uint16)
        nblocks = -(-m // bc)
        ow = width_for(stream.shape[0])
        off_words = component(comps, "offsets", fmt, np.uint64)
        check_packed(off_words, nblocks + 1, ow, f"{fmt}: offsets")
        offsets = unpack(off_words, ow, nblocks + 1)
        if offsets[0] != 0 or offsets[-1] != stream.shape[0] or (np.diff(offsets) < 0).any():
            raise FormatError(f"{fmt}: block offsets must rise from 0 to the stream's "
                              f"{stream.shape[0]} words")
        model = Model(order=order, runs=R, block_lines=bc, gap_model=g, value_model=v,
                      pos_classes=pc, line_classes=lc, parities=par)
        enc = cls(shape, dtype, symbols=symbols, stream=stream, offsets=offsets, nnz=nnz,
                  model=model, gap=CodeTable(gfreq, gsb, go), value=CodeTable(vfreq, vsb, vo),
                  grid=grid)
        got = enc._run(ka.MODE_CHECK, 0, nblocks)
        if got != nnz:
            raise FormatError(f"{fmt}: the stream holds {got} nonzeros, meta says {nnz}")
        return enc

    @property
    def nnz(self) -> int:
        return self._nnz

    # ---- computation
    def _run(self, mode: int, b_lo: int, b_hi: int, out: np.ndarray | None = None,
             Xt: np.ndarray | None = None, Yt: np.ndarray | None = None,
             tables: np.ndarray | None = None) -> int:
        vals = self.symbols.view(bits_dtype(self.dtype))
        cbf, cbw = self._tables_for(tables)
        bad, code, total = ka.run_blocks(
            mode, *self._kernel_args, b_lo, b_hi, vals, vals[:0] if out is None else out,
            cbf, cbw, np.zeros((0, 1)) if Xt is None else Xt,
            np.zeros((0, 1)) if Yt is None else Yt)
        status.check(self.format, code, bad)
        return int(total)

    def _tables_for(self, tables: np.ndarray | None) -> tuple[np.ndarray, int]:
        """(flat value table, its stride per column of W) for the kernels: the symbols as
        float64, or ``tables`` (W's columns x symbols, float64) for a value per column."""
        if tables is None:
            return float_view(self.symbols, self.dtype), 0
        k = self.symbols.shape[0]
        if tables.shape != (self.shape[1], k):
            raise ValueError(f"tables must have shape {(self.shape[1], k)}")
        return np.ascontiguousarray(tables, np.float64).reshape(-1), k

    def decode(self) -> np.ndarray:
        return self.decode_columns(0, self.shape[1])

    def decode_columns(self, start: int, stop: int) -> np.ndarray:
        """``W[:, start:stop]``; order "columns" decodes only the blocks needed, order "rows"
        decodes every row."""
        start, stop = self._column_range(start, stop)
        n, m = self.shape
        if self.model.order == "rows":
            flat = np.zeros(n * m, bits_dtype(self.dtype))  # W^T column-major = W row-major
            self._run(ka.MODE_SCATTER, 0, -(-n // self.model.block_lines), out=flat)
            return flat.view(self.dtype).reshape(n, m)[:, start:stop]
        b_lo, b_hi, c_lo, c_hi = block_range(start, stop, self.model.block_lines, m)
        flat = np.zeros(n * (c_hi - c_lo), bits_dtype(self.dtype))
        self._run(ka.MODE_SCATTER, b_lo, b_hi, out=flat)
        out = flat.view(self.dtype).reshape(c_hi - c_lo, n).T
        return out[:, start - c_lo:stop - c_lo]

    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        return self.rmatmul_tables(Xt)

    def rmatmul_tables(self, Xt: np.ndarray, tables: np.ndarray | None = None) -> np.ndarray:
        """``_rmatmul`` with, optionally, a value per column of W for each symbol
        (``tables[j, s]``, float64): what the ``scaled`` format multiplies with, its scales
        folded into the table so that every product uses the entry exactly as decoded."""
        Yt = np.zeros((self.shape[1], Xt.shape[1]), np.float64)
        nlines = self.coded_shape[1]
        if self.model.order == "rows":
            cbf, cbw = self._tables_for(tables)
            bad, code = ka.scatter_blocks(*self._kernel_args, cbf, cbw, Xt, Yt,
                                          kc.scatter_tasks())
            status.check(self.format, code, bad)
        else:
            mode = ka.MODE_DOT1 if Xt.shape[1] == 1 else ka.MODE_DOT
            self._run(mode, 0, -(-nlines // self.model.block_lines), Xt=Xt, Yt=Yt,
                      tables=tables)
        return Yt


def model_entropy(counts: np.ndarray) -> float:
    """Ideal bits of a histogram coded with one exact distribution per context."""
    return float(sum(information_bits(row) for row in counts))


def _kernel_classes(cls: np.ndarray, size: int) -> np.ndarray:
    """The kernels index classes unconditionally: an unused feature gets zeros."""
    return cls if cls.shape[0] == size and size else np.zeros(max(size, 1), np.int8)


def _freqs(comps: dict[str, np.ndarray], name: str, nctx: int, A: int, sb: int, order: int,
           fmt: str) -> np.ndarray:
    words = component(comps, name, fmt, np.uint64)
    freq = exp_golomb_decode(words, nctx * A, order, 1 << sb, f"{fmt}: {name}").reshape(nctx, A)
    sums = freq.sum(axis=1)
    if ((sums != 0) & (sums != 1 << sb)).any():
        raise FormatError(f"{fmt}: {name}: each context's frequencies must sum to 2^{sb} "
                          "(or be all zero)")
    return freq


def _kernel_parities(par: np.ndarray | None, k: int) -> np.ndarray:
    """The kernels index parities by symbol unconditionally: zeros when there are none."""
    if par is not None and par.shape[0] == k and k:
        return par
    return np.zeros(max(k, 1), np.int8)


def _parity_bits(k: int, gap_model: int, value_model: int) -> int:
    return PARITY_BITS * k if uses_state(gap_model, value_model) else 0


def _packed_small(comps: dict[str, np.ndarray], name: str, count: int, width: int,
                  fmt: str) -> np.ndarray:
    words = component(comps, name, fmt, np.uint64)
    check_packed(words, count, width, f"{fmt}: {name}")
    return unpack(words, width, count).astype(np.int8)


def _classes(comps: dict[str, np.ndarray], name: str, count: int, fmt: str) -> np.ndarray:
    return _packed_small(comps, name, count, CLASS_BITS, fmt)
