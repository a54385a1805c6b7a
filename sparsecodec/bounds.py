"""Space bounds: the published occupancy formulas, entropy limits, Deep Compression's
relative-index CSR, and the exact byte account of any encoded matrix.

Occupancy ratios psi are stored bits over n*m*B, B the bits of one uncompressed entry (32 for
float32). Matrices are (n, m) = (inputs, outputs), stored column by column as in the sHAM
papers. Each published formula comes in two variants where the paper's accounting differs
from what sparsecodec stores:

- ``dictionary="paper"``: as printed (a B-tree dictionary of 6k/(nm) in psi, i.e. 6 B-bit
  words per distinct value; B-bit pointers);
- ``dictionary="stored"``: the formula's payload term, plus what sparsecodec really stores
  besides it: the codebook as k raw values and the canonical code as one uint32 count per code
  length, the 4-lane block offsets, indices and pointers at their packed widths, and the
  padding of every packed array to 64-bit words. This variant is an upper bound on our bytes.

References: [M21] Marinò, Petrini, Malchiodi, Frasca, "Compact representations of
convolutional neural networks via weight pruning and quantization", 2021 (arXiv:2108.12704);
[M20] Marinò, Ghidoli, Frasca, Malchiodi, "Compression strategies and space-conscious
representations for deep neural networks", ICPR 2020; [W20] Wiedemann, Müller, Samek, "Compact
and computationally efficient representation of deep neural networks", IEEE TNNLS 2020;
[H16] Han, Mao, Dally, "Deep Compression", ICLR 2016.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .coding.bits import width_for, words_for
from .coding.huffman import code_lengths, default_max_length, offsets_width, stream_bits
from .errors import OptionError, ShapeError, UnknownFormatError
from .formats.base import Encoded, Matrix, registry
from .formats.blocked import BLOCK_SYMBOLS, dense_block_cols, sparse_block_cols

DICTIONARIES = ("paper", "stored")
ROLES = ("payload", "codebook", "indices", "pointers", "padding")


def _check(n: int, m: int, q: int = 0, k: int = 1, B: int = 32) -> None:
    for name, v in (("n", n), ("m", m), ("q", q), ("k", k), ("B", B)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ShapeError(f"{name} must be a nonnegative integer, got {v!r}")
    if q > n * m:
        raise ShapeError(f"q = {q} nonzeros do not fit an {n}x{m} matrix")
    if B < 1:
        raise OptionError(f"B must be at least 1 bit, got {B}")


def _dictionary(dictionary: str) -> bool:
    if dictionary not in DICTIONARIES:
        raise OptionError(f"dictionary must be one of {DICTIONARIES}, got {dictionary!r}")
    return dictionary == "stored"


def _words(bits: int) -> int:
    """Bits of a packed array of ``bits`` content bits: padded to whole 64-bit words."""
    return 64 * words_for(bits)


def _huffman_extra(k: int, B: int, payload_bits: int, nblocks: int,
                   max_code_length: int | None) -> int:
    """Bits a HuffmanPart stores besides its payload: k raw symbols, the code counts (at most
    limit + 1 uint32), the 4-lane block offsets and the stream's word padding."""
    if k == 0:
        return 0
    limit = default_max_length(k) if max_code_length is None else max_code_length
    stream = _words(payload_bits)
    offsets = _words((4 * nblocks + 1) * offsets_width(stream // 64))
    return k * B + 32 * (limit + 1) + offsets + (stream - payload_bits)


def _psi(bits: float, n: int, m: int, B: int) -> float:
    return bits / (n * m * B) if n * m else math.nan


# --------------------------------------------------------------------------- published formulas

def psi_csc(n: int, m: int, q: int, B: int = 32) -> float:
    """CSC as in [M21, Sec. 3]: q values, q row indices and m + 1 column pointers, each one
    B-bit word: psi = (2q + m + 1) / (nm). For CSR swap n and m."""
    _check(n, m, q, 1, B)
    return (2 * q + m + 1) / (n * m) if n * m else math.nan


def psi_csc_packed(n: int, m: int, q: int, B: int = 32) -> float:
    """CSC with bit-packed indices, as sparsecodec's ``csc`` stores it: q raw B-bit values,
    row indices at ceil(log2 n) bits and column pointers at ceil(log2(q + 1)) bits, each array
    padded to 64-bit words. Exactly our ``csc`` size."""
    _check(n, m, q, 1, B)
    bits = q * B + _words(q * width_for(n - 1)) + _words((m + 1) * width_for(q))
    return _psi(bits, n, m, B)


def psi_index_map(n: int, m: int, k: int, B: int = 32, dictionary: str = "paper") -> float:
    """Index map [M21]: a codebook of k values and a ceil(log2 k)-bit index per entry:
    psi = (k B + ceil(log2 k) nm) / (nm B). ``stored`` adds the word padding (our ``index_map``
    exactly, with k counting every distinct value, zero included)."""
    _check(n, m, 0, k, B)
    idx = n * m * width_for(k - 1)
    return _psi(k * B + (_words(idx) if _dictionary(dictionary) else idx), n, m, B)


def psi_ham(n: int, m: int, k: int, B: int = 32, dictionary: str = "paper",
            block_symbols: int = BLOCK_SYMBOLS, max_code_length: int | None = None) -> float:
    """HAM with k distinct values (zero included) [M21, Sec. 4]: Huffman codes of at most
    1 + log2 k bits on average for every entry, plus the dictionary:
    psi <= (1 + log2 k) / B + 6k / (nm). With ``stored``, the payload term is kept and the
    dictionary is replaced by what our ``ham`` stores (see the module docstring)."""
    _check(n, m, 0, k, B)
    if n * m == 0:
        return math.nan
    payload = n * m * (1 + math.log2(max(k, 1)))
    if not _dictionary(dictionary):
        return payload / (n * m * B) + 6 * k / (n * m)
    bc = dense_block_cols(n, m, block_symbols)
    nblocks = -(-m // bc)
    whole = math.ceil(payload)
    return _psi(whole + _huffman_extra(k, B, whole, nblocks, max_code_length), n, m, B)


def psi_ham_worst(n: int, m: int, B: int = 32, dictionary: str = "paper") -> float:
    """HAM's worst case [M21]: every entry distinct (k = nm), nm (1 + log2(nm)) bits of codes
    plus the dictionary."""
    return psi_ham(n, m, n * m, B, dictionary)


def _sham(n: int, m: int, q: int, k: int, B: int, dictionary: str, rows: float,
          block_symbols: int, max_code_length: int | None) -> float:
    _check(n, m, q, k, B)
    if n * m == 0:
        return math.nan
    payload = q * (1 + math.log2(max(k, 1)))
    if not _dictionary(dictionary):
        return payload / (n * m * B) + 6 * k / (n * m) + rows / (n * m * B)
    bc = sparse_block_cols(m, q, block_symbols)
    nblocks = -(-m // bc)
    whole = math.ceil(payload)
    bits = (whole + _huffman_extra(k if q else 0, B, whole, nblocks, max_code_length)
            + _words(q * width_for(n - 1)) + _words((m + 1) * width_for(q)))
    return _psi(bits, n, m, B)


def psi_sham(n: int, m: int, q: int, k: int, B: int = 32, dictionary: str = "paper",
             block_symbols: int = BLOCK_SYMBOLS, max_code_length: int | None = None) -> float:
    """sHAM with k distinct nonzero values, *as printed* in [M21, Sec. 4]:
    psi = s (1 + log2 k) / B + 6k / (nm) + (n + m + 1) / (nm), s = q / (nm).

    The last term charges n + m + 1 B-bit words for row indices and column pointers, but sHAM
    stores one row index per nonzero: the formula undercounts whenever q ceil(log2 n) > n B.
    See :func:`psi_sham_corrected`. ``stored`` replaces the whole overhead by ours."""
    return _sham(n, m, q, k, B, dictionary, (n + m + 1) * B, block_symbols, max_code_length)


def psi_sham_corrected(n: int, m: int, q: int, k: int, B: int = 32,
                       dictionary: str = "paper", block_symbols: int = BLOCK_SYMBOLS,
                       max_code_length: int | None = None) -> float:
    """sHAM with the row indices counted as stored: q indices of ceil(log2 n) bits, plus m + 1
    B-bit column pointers: psi = s (1 + log2 k) / B + 6k / (nm) + (q ceil(log2 n) + (m + 1) B)
    / (nm B). ``stored``: payload term plus our codebook, offsets, packed indices and pointers
    and padding, an upper bound on our ``sham`` (identical to ``psi_sham(..., "stored")``)."""
    rows = q * width_for(n - 1) + (m + 1) * B
    return _sham(n, m, q, k, B, dictionary, rows, block_symbols, max_code_length)


def psi_sham_worst(n: int, m: int, q: int, B: int = 32, dictionary: str = "paper") -> float:
    """sHAM's worst case [M21]: every nonzero distinct (k = q), as printed."""
    return psi_sham(n, m, q, max(q, 1), B, dictionary)


def cer_groups_bound(m: int, q: int, k: int, padded: bool) -> int:
    """Most groups a CER (``padded``) or CSER matrix can have: CER lists ranks 1..K_j in each of
    its m rows, K_j <= k - 1; CSER only non-empty groups, at most q."""
    g = m * max(k - 1, 0)
    return g if padded else min(g, q)


def psi_cer(n: int, m: int, q: int, k: int, B: int = 32) -> float:
    """CER [W20] as sparsecodec stores it (no published closed form to compare with): k raw
    values, q input indices at ceil(log2 n) bits, G + 1 group pointers at ceil(log2(q + 1))
    bits and m + 1 row pointers at ceil(log2(G + 1)) bits, padded; G at its worst, m (k - 1).
    Here q counts the entries that differ from the most frequent value, k every distinct
    value."""
    _check(n, m, q, k, B)
    g = cer_groups_bound(m, q, k, True)
    bits = (k * B + _words(q * width_for(n - 1)) + _words((g + 1) * width_for(q))
            + _words((m + 1) * width_for(g)))
    return _psi(bits, n, m, B)


def psi_cser(n: int, m: int, q: int, k: int, B: int = 32) -> float:
    """CSER [W20] as sparsecodec stores it: CER's arrays without empty groups (G <= min(q,
    m (k - 1))) plus a ceil(log2 k)-bit value index per group."""
    _check(n, m, q, k, B)
    g = cer_groups_bound(m, q, k, False)
    bits = (k * B + _words(q * width_for(n - 1)) + _words((g + 1) * width_for(q))
            + _words((m + 1) * width_for(g)) + _words(g * width_for(k - 1)))
    return _psi(bits, n, m, B)


def psi_pq(n: int, m: int, d: int, k: int, B: int = 32, codebook_bits: int = 32,
           per_group: bool = False, index_bits: float | None = None,
           dictionary: str = "paper") -> float:
    """Product quantization: nm / d indices of ceil(log2 k) bits plus k codewords of d values of
    ``codebook_bits`` each: psi = (ceil(log2 k) nm / d + k d B_c) / (nm B); per-group codebooks
    multiply the codebook term by the n / d groups. ``index_bits`` replaces ceil(log2 k) for
    entropy-coded indices (the average Huffman code length, or H + 1 as its bound). ``stored``
    counts what our ``pq`` stores with packed indices: ceil(n / d) groups (zero-padded) and the
    word padding, exactly our bytes."""
    _check(n, m, 0, k, B)
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise OptionError(f"d must be a positive integer, got {d!r}")
    if n * m == 0:
        return math.nan
    bits = width_for(k - 1) if index_bits is None else float(index_bits)
    if not _dictionary(dictionary):
        groups = n / d
        book = k * d * codebook_bits * (groups if per_group else 1)
        return (bits * n * m / d + book) / (n * m * B)
    g = -(-n // d)
    book = k * d * codebook_bits * (g if per_group else 1)
    return (book + _words(math.ceil(bits * g * m))) / (n * m * B)


# --------------------------------------------------------------------------- entropy limits

def entropy_h0(W: np.ndarray | Matrix, nonzero_only: bool = False) -> float:
    """Zero-order empirical entropy, in bits per entry, of the entries' bit patterns.

    With ``nonzero_only`` the entropy of the nonzero entries alone (bits per nonzero). No
    zero-order code, Huffman included, stores the entries in fewer than ``H0 * count`` bits,
    and an optimal (unrestricted) Huffman code needs fewer than ``(H0 + 1) * count``.
    """
    M = W if isinstance(W, Matrix) else Matrix(W)
    counts = _value_counts(M, nonzero_only)
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts / total
    return float(max(0.0, -(p * np.log2(p)).sum()))


def _value_counts(M: Matrix, nonzero_only: bool) -> np.ndarray:
    """The counts of each distinct bit pattern (of the nonzeros, or of every entry: the
    nonzeros' and the zeros' count); their order is not that of the patterns."""
    zeros = M.size - M.nnz
    if nonzero_only or not zeros:
        return M.nonzero_counts
    return np.append(M.nonzero_counts, zeros)


def pattern_bits(n: int, m: int, q: int) -> float:
    """log2 C(nm, q): the information in *where* q nonzeros are among nm entries, the least
    any code can spend on positions alone when all patterns are equally likely."""
    _check(n, m, q)
    N = n * m
    return (math.lgamma(N + 1) - math.lgamma(q + 1) - math.lgamma(N - q + 1)) / math.log(2)


@dataclass(frozen=True)
class EntropyLimits:
    """Entropy figures of one matrix, in bits (totals, not per entry)."""

    entries: int
    nonzeros: int
    h0: float            # bits per entry
    h0_nonzero: float    # bits per nonzero
    zero_order: float    # h0 * entries: the floor for codes of the entries one by one (HAM)
    huffman_upper: float  # (h0 + 1) * entries: what an optimal Huffman code stays below
    pattern: float       # log2 C(nm, q)
    sparse: float        # pattern + h0_nonzero * q: positions and values coded apart


def entropy_limits(W: np.ndarray | Matrix) -> EntropyLimits:
    M = W if isinstance(W, Matrix) else Matrix(W)
    n, m = M.shape
    q = M.nnz
    h0, h0n = entropy_h0(M), entropy_h0(M, nonzero_only=True)
    pat = pattern_bits(n, m, q)
    return EntropyLimits(n * m, q, h0, h0n, h0 * n * m, (h0 + 1) * n * m, pat, pat + h0n * q)


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


def context_entropy(x: Any, order: str | None = None, gap_model: str | None = None,
                    value_model: str | None = None) -> ContextEntropy:
    """Context-conditioned entropy of a matrix (or of the matrix an ``Encoded`` holds) under
    ``sham_ans``'s context model: the model a given ``sham_ans`` encoding uses, else the one
    named, else the one ``sham_ans`` would choose for this matrix."""
    from .formats import sham_ans as sa  # imported here: the format imports nothing from us

    if isinstance(x, sa.SHAMAns) and (order, gap_model, value_model) == (None, None, None):
        return _context_entropy(Matrix(x.decode()), x)
    M = Matrix(x.decode() if isinstance(x, Encoded) else x)
    if (order, gap_model, value_model) == (None, None, None):
        return _context_entropy(M, sa.SHAMAns.encode(M))
    order = order or "columns"
    if order not in sa.ORDERS:
        raise OptionError(f"order must be 'columns' or 'rows', found {order!r}")
    g = sa._parse_model(gap_model or "none", sa.GAP_FEATURES, "gap_model") or 0
    v = sa._parse_model(value_model or "none", sa.VALUE_FEATURES, "value_model") or 0
    return _model_entropy(M, order, g, v)


def _context_entropy(M: Matrix, enc: Any) -> ContextEntropy:
    """``context_entropy`` of the matrix ``M`` that the ``sham_ans`` encoding ``enc`` holds."""
    return _model_entropy(M, enc.order, enc.gap_model, enc.value_model)


def _model_entropy(M: Matrix, order: str, g: int, v: int) -> ContextEntropy:
    from .formats import sham_ans as sa

    st = sa.statistics(M, order)
    return ContextEntropy(order, sa.model_name(g, sa.GAP_FEATURES),
                          sa.model_name(v, sa.VALUE_FEATURES),
                          sa.model_entropy(sa.gap_counts(st.gaps, g)),
                          sa.model_entropy(sa.value_counts(st.values, v)), st.raw_bits)


def gap_entropy_bits(W: np.ndarray | Matrix) -> float:
    """Zero-order entropy of the row gaps of every column (``sham_gap``'s position symbols),
    in bits in total."""
    from .kernels.gaps import gaps_of

    M = W if isinstance(W, Matrix) else Matrix(W)
    ptr, rows, _ = M.csc
    gaps = gaps_of(ptr, rows)
    if not gaps.size:
        return 0.0
    c = np.bincount(gaps)
    c = c[c > 0].astype(np.float64)
    return float(-(c * np.log2(c / c.sum())).sum())


# --------------------------------------------------------------------------- Deep Compression

@dataclass(frozen=True)
class RelativeIndexCSR:
    """Deep Compression's sparse storage [H16, Sec. 2]: for each nonzero, the gap to the
    previous one in ``index_bits`` bits and its codebook index in ``value_bits`` bits; a gap
    larger than 2^index_bits is bridged by filler entries (a zero stored as a value)."""

    entries: int          # nonzeros plus fillers
    fillers: int
    index_bits: int
    value_bits: int
    codebook_bits: int
    total_bits: int
    huffman_bits: int     # the same streams Huffman coded (gaps and values apart), + codebook

    @property
    def nbytes(self) -> int:
        return -(-self.total_bits // 8)


def relative_index_csr(W: np.ndarray | Matrix, index_bits: int = 5, value_bits: int | None = None,
                       order: str = "row") -> RelativeIndexCSR:
    """Size of W in Deep Compression's relative-index format (5-bit gaps for fully connected
    layers, 8 for convolutions in [H16]). Entries are visited row by row (``order="row"``,
    CSR) or column by column (``"col"``). ``value_bits`` defaults to ceil(log2(k + 1)) for k
    distinct nonzero values plus the filler zero; the codebook costs k B bits."""
    if isinstance(index_bits, bool) or not isinstance(index_bits, int) or \
            not 1 <= index_bits <= 32:
        raise OptionError(f"index_bits must be an integer in [1, 32], got {index_bits!r}")
    if order not in ("row", "col"):
        raise OptionError(f"order must be 'row' or 'col', got {order!r}")
    M = W if isinstance(W, Matrix) else Matrix(W)
    n, m = M.shape
    ptr, idx, vals = M.csr if order == "row" else M.csc
    inner = m if order == "row" else n
    outer_of = np.repeat(np.arange(ptr.shape[0] - 1, dtype=np.int64), np.diff(ptr))
    pos = outer_of * inner + idx.astype(np.int64)
    gaps = np.diff(np.concatenate(([-1], pos)))  # first entry: its position + 1
    span = 1 << index_bits
    per = -(-gaps // span)  # entries needed per nonzero: fillers + itself
    fillers = int((per - 1).sum())
    entries = int(gaps.shape[0]) + fillers
    _, counts = np.unique(vals, return_counts=True)
    k = int(counts.shape[0])
    vb = width_for(k) if value_bits is None else int(value_bits)
    B = 8 * M.dtype.itemsize
    total = entries * (index_bits + vb) + k * B
    # Huffman variant: gap symbols (0 .. span-1, fillers at the top) and value symbols
    last_gap = (gaps - 1) % span
    gap_sym = np.concatenate((np.full(fillers, span - 1), last_gap))
    gap_counts = np.bincount(gap_sym, minlength=span)
    val_counts = np.append(counts, fillers)
    huff = 0
    for c in (gap_counts[gap_counts > 0], val_counts[val_counts > 0]):
        if c.shape[0] > 1:
            huff += stream_bits(c, code_lengths(c, 24))
    return RelativeIndexCSR(entries, fillers, index_bits, vb, k * B, total, huff + k * B)


# --------------------------------------------------------------------------- exact accounting

@dataclass(frozen=True)
class Account:
    """Exact bits of an encoded matrix by role; they sum to ``8 * nbytes``."""

    format: str
    nbytes: int
    bits: dict[str, int]

    def bytes(self, role: str) -> float:
        return self.bits[role] / 8


def account(enc: Encoded) -> Account:
    """Split every stored bit of ``enc`` into payload (values or their codes), codebook
    (distinct values and code tables), indices (positions), pointers (row/column/group/block
    starts) and padding (64-bit word fill), from ``components()`` and ``layout()``."""
    comps = enc.components()
    bits = dict.fromkeys(ROLES, 0)
    for name, (role, used) in enc.layout().items():
        stored = 8 * comps[name].nbytes
        bits[role] += used
        bits["padding"] += stored - used
    return Account(enc.format, enc.nbytes, bits)


# --------------------------------------------------------------------------- the report

@dataclass
class Row:
    format: str
    nbytes: int
    psi: float                   # actual occupancy
    printed: float | None        # the published formula, where there is one
    corrected: float | None      # the corrected formula (sHAM), paper dictionary
    stored: float | None         # formula with our stored overheads: an upper bound on psi
    parts: dict[str, int] = field(default_factory=dict)  # bits by role
    given: bool = False          # the encoded matrix the report was asked about
    own_limit: float | None = None  # bits: the entropy of what this format codes, its own way


@dataclass
class Report:
    shape: tuple[int, int]
    dtype: str
    B: int
    q: int
    k_all: int | None
    k_nonzero: int | None
    limits: EntropyLimits
    rows: list[Row]
    deep_compression: RelativeIndexCSR

    def row(self, fmt: str) -> Row:
        return next(r for r in self.rows if r.format == fmt)

    def __str__(self) -> str:
        n, m = self.shape
        L = self.limits
        nm = max(n * m, 1)
        lines = [
            f"matrix {n} x {m} {self.dtype} (B = {self.B}): {self.q} nonzeros "
            f"(s = {self.q / nm:.4f}), {self.k_all} distinct values, "
            f"{self.k_nonzero} distinct nonzero values",
            f"entropy: H0 = {L.h0:.4f} bits/entry, H0(nonzeros) = {L.h0_nonzero:.4f} "
            f"bits/nonzero; zero-order limit {L.zero_order / 8:,.0f} B, Huffman bound "
            f"{L.huffman_upper / 8:,.0f} B, positions log2 C(nm, q) {L.pattern / 8:,.0f} B, "
            f"positions + values {L.sparse / 8:,.0f} B",
            "psi = stored bits / (n m B); 'printed' is the published formula, 'stored' the "
            "formula with our overheads (an upper bound)",
            "",
            f"{'format':<10}{'bytes':>12}{'psi':>9}{'printed':>9}{'correct.':>9}{'stored':>9}"
            f"{'payload':>11}{'codebook':>10}{'indices':>10}{'pointers':>10}{'padding':>9}"
            f"{'x limit':>9}{'x own':>8}",
        ]

        def f(v: float | None) -> str:
            return f"{v:9.4f}" if v is not None and not math.isnan(v) else f"{'-':>9}"

        for r in self.rows:
            p = r.parts
            gap = 8 * r.nbytes / L.sparse if L.sparse > 0 else math.nan
            own = (f"{8 * r.nbytes / r.own_limit:>8.3f}" if r.own_limit else f"{'-':>8}")
            lines.append(
                f"{r.format + ('*' if r.given else ''):<10}{r.nbytes:>12,}{f(r.psi)}"
                f"{f(r.printed)}{f(r.corrected)}{f(r.stored)}"
                f"{p['payload'] / 8:>11,.0f}{p['codebook'] / 8:>10,.0f}{p['indices'] / 8:>10,.0f}"
                f"{p['pointers'] / 8:>10,.0f}{p['padding'] / 8:>9,.0f}{gap:>9.2f}{own}")
        dc = self.deep_compression
        lines.append(
            f"{'deep-comp.':<10}{dc.nbytes:>12,}{f(_psi(dc.total_bits, n, m, self.B))}"
            f"{'':>27}  (calculator: {dc.index_bits}-bit gaps, {dc.value_bits}-bit values, "
            f"{dc.fillers:,} fillers; Huffman coded {-(-dc.huffman_bits // 8):,} B)")
        lines.append("* = the encoding given; 'x limit' = bytes over the positions + values "
                     "entropy limit; 'x own' = bytes over the entropy of what the format codes, "
                     "its own way (ham: H0 of the entries; sham: H0 of the values + its "
                     "fixed-width rows; sham_gap: H0 of values and of gaps; sham_ans: the "
                     "context-conditioned entropy of its model)")
        return "\n".join(lines)


def _bounds_for(fmt: str, n: int, m: int, q: int, k_all: int | None, k_nz: int | None,
                B: int, implicit_q: int | None, given: Any = None
                ) -> tuple[float | None, float | None, float | None]:
    """(printed, corrected, stored) psi of format ``fmt`` for these statistics."""
    if fmt == "dense":
        return 1.0, None, 1.0
    if fmt == "csc":
        return psi_csc(n, m, q, B), None, psi_csc_packed(n, m, q, B)
    if fmt == "csr":
        return psi_csc(m, n, q, B), None, psi_csc_packed(m, n, q, B)
    if fmt == "coo":
        return 3 * q / (n * m) if n * m else math.nan, None, _psi(
            q * B + _words(q * width_for(n - 1)) + _words(q * width_for(m - 1)), n, m, B)
    if fmt == "index_map" and k_all:
        return (psi_index_map(n, m, k_all, B), None,
                psi_index_map(n, m, k_all, B, "stored"))
    if fmt == "ham" and k_all:
        return psi_ham(n, m, k_all, B), None, psi_ham(n, m, k_all, B, "stored")
    if fmt == "sham" and k_nz is not None:
        k = max(k_nz, 1)
        return (psi_sham(n, m, q, k, B), psi_sham_corrected(n, m, q, k, B),
                psi_sham_corrected(n, m, q, k_nz, B, "stored"))
    if fmt == "pq" and given is not None:
        return (psi_pq(n, m, given.d, given.k, B, 8 * given.codebook.dtype.itemsize,
                       given.per_group),
                None, psi_pq(n, m, given.d, given.k, B, 8 * given.codebook.dtype.itemsize,
                             given.per_group, dictionary="stored")
                if given.part is None else None)
    if fmt in ("cer", "cser") and k_all and implicit_q is not None:
        fn = psi_cer if fmt == "cer" else psi_cser
        return None, None, fn(n, m, implicit_q, k_all, B)
    return None, None, None


def _own_limit(enc: Encoded, M: Matrix) -> float | None:
    """Bits of the entropy of what ``enc``'s format codes, coded its own way (see Report)."""
    q = M.nnz
    if enc.format == "ham":
        return entropy_h0(M) * M.size
    values = entropy_h0(M, nonzero_only=True) * q
    if enc.format == "sham":
        return values + q * width_for(M.shape[0] - 1)
    if enc.format == "sham_gap":
        return values + gap_entropy_bits(M)
    if enc.format == "sham_ans":
        return _context_entropy(M, enc).total  # M is what enc holds: no second decode
    return None


def report(x: Any, formats: list[str] | None = None) -> Report:
    """Bounds against reality for a matrix (2-D float array) or an ``Encoded`` one: for every
    format that can hold it (or those named), the exact bytes split by role, the actual psi,
    the published formula, the corrected one (sHAM) and the formula with our stored overheads;
    and the entropy limits. An ``Encoded`` input is decoded once for the statistics and
    appears as its own row (marked ``*``)."""
    given = x if isinstance(x, Encoded) else None
    M = Matrix(given.decode() if given is not None else x)
    n, m = M.shape
    B = 8 * M.dtype.itemsize
    q = M.nnz
    d_all, d_nz = M.all_distinct, M.nonzero_distinct
    k_all = None if d_all is None else d_all.k
    k_nz = None if d_nz is None else d_nz.k
    implicit_q = None if d_all is None else n * m - int(d_all.counts.max(initial=0))
    names = list(registry()) if formats is None else list(formats)
    unknown = sorted(set(names) - set(registry()))
    if unknown:
        raise UnknownFormatError(f"unknown format(s) {unknown}; known: {', '.join(registry())}")
    rows = []
    for fmt in names:
        if given is not None and fmt == given.format:
            enc = given
        else:
            if registry()[fmt].size_of(M) is None:
                continue
            enc = registry()[fmt].encode(M)
        acc = account(enc)
        printed, corrected, stored = _bounds_for(fmt, n, m, q, k_all, k_nz, B, implicit_q,
                                                 enc if fmt == "pq" else None)
        rows.append(Row(fmt, enc.nbytes, _psi(8 * enc.nbytes, n, m, B), printed, corrected,
                        stored, acc.bits, enc is given, _own_limit(enc, M)))
    return Report((n, m), M.dtype.name, B, q, k_all, k_nz, entropy_limits(M), rows,
                  relative_index_csr(M))
