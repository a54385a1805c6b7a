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
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .coding.bits import width_for
from .coding.huffman import code_lengths, stream_bits
from .coding.information import entropy, information_bits
from .errors import OptionError, UnknownFormatError
from .formats.base import Encoded, Matrix, PsiBounds, registry  # noqa: F401 (API)
from .formats.psi import (  # noqa: F401 (the formulas are part of this module's API)
    DICTIONARIES,
    cer_groups_bound,
    check_sizes,
    psi_cer,
    psi_csc,
    psi_csc_packed,
    psi_cser,
    psi_ham,
    psi_ham_worst,
    psi_index_map,
    psi_of,
    psi_pq,
    psi_sham,
    psi_sham_corrected,
    psi_sham_worst,
    words_bits,
)
from .formats.sham_ans import ContextEntropy, SHAMAns

ROLES = ("payload", "codebook", "indices", "pointers", "padding")


# --------------------------------------------------------------------------- entropy limits

def entropy_h0(W: np.ndarray | Matrix, nonzero_only: bool = False) -> float:
    """Zero-order empirical entropy, in bits per entry, of the entries' bit patterns.

    With ``nonzero_only`` the entropy of the nonzero entries alone (bits per nonzero). No
    zero-order code, Huffman included, stores the entries in fewer than ``H0 * count`` bits,
    and an optimal (unrestricted) Huffman code needs fewer than ``(H0 + 1) * count``.
    """
    M = W if isinstance(W, Matrix) else Matrix(W)
    return entropy(M.value_counts(nonzero_only))


def pattern_bits(n: int, m: int, q: int) -> float:
    """log2 C(nm, q): the information in *where* q nonzeros are among nm entries, the least
    any code can spend on positions alone when all patterns are equally likely."""
    check_sizes(n, m, q)
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


def context_entropy(x: Any, order: str | None = None, gap_model: str | None = None,
                    value_model: str | None = None) -> ContextEntropy:
    """Context-conditioned entropy of a matrix (or of the matrix an ``Encoded`` holds) under
    ``sham_ans``'s context model: the model a given ``sham_ans`` encoding uses, else the one
    named, else the one ``sham_ans`` would choose for this matrix (see
    :meth:`SHAMAns.context_entropy`)."""
    if isinstance(x, SHAMAns) and (order, gap_model, value_model) == (None, None, None):
        return x.model_entropy(Matrix(x.decode()))
    M = Matrix(x.decode() if isinstance(x, Encoded) else x)
    return SHAMAns.context_entropy(M, order, gap_model, value_model)


def gap_entropy_bits(W: np.ndarray | Matrix) -> float:
    """Zero-order entropy of the row gaps of every column (``sham_gap``'s position symbols),
    in bits in total."""
    from .kernels.gaps import gaps_of

    M = W if isinstance(W, Matrix) else Matrix(W)
    ptr, rows, _ = M.csc
    gaps = gaps_of(ptr, rows)
    return information_bits(np.bincount(gaps)) if gaps.size else 0.0


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


_OLD_ORDERS = {"row": "rows", "col": "columns"}


def relative_index_csr(W: np.ndarray | Matrix, index_bits: int = 5, value_bits: int | None = None,
                       order: str = "rows") -> RelativeIndexCSR:
    """Size of W in Deep Compression's relative-index format (5-bit gaps for fully connected
    layers, 8 for convolutions in [H16]). Entries are visited row by row (``order="rows"``,
    CSR) or column by column (``"columns"``, the names ``sham_ans`` uses; the old "row" and
    "col" are accepted with a DeprecationWarning). ``value_bits`` defaults to
    ceil(log2(k + 1)) for k distinct nonzero values plus the filler zero; the codebook costs
    k B bits."""
    if isinstance(index_bits, bool) or not isinstance(index_bits, int) or \
            not 1 <= index_bits <= 32:
        raise OptionError(f"index_bits must be an integer in [1, 32], got {index_bits!r}")
    if order in _OLD_ORDERS:
        warnings.warn(f"order={order!r} is deprecated; use {_OLD_ORDERS[order]!r}",
                      DeprecationWarning, stacklevel=2)
        order = _OLD_ORDERS[order]
    if order not in ("rows", "columns"):
        raise OptionError(f"order must be 'rows' or 'columns', got {order!r}")
    M = W if isinstance(W, Matrix) else Matrix(W)
    n, m = M.shape
    ptr, idx, vals = M.csr if order == "rows" else M.csc
    inner = m if order == "rows" else n
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
            f"{'deep-comp.':<10}{dc.nbytes:>12,}{f(psi_of(dc.total_bits, n, m, self.B))}"
            f"{'':>27}  (calculator: {dc.index_bits}-bit gaps, {dc.value_bits}-bit values, "
            f"{dc.fillers:,} fillers; Huffman coded {-(-dc.huffman_bits // 8):,} B)")
        lines.append("* = the encoding given; 'x limit' = bytes over the positions + values "
                     "entropy limit; 'x own' = bytes over the entropy of what the format codes, "
                     "its own way (Encoded.own_limit: ham, H0 of the entries; sham, H0 of the "
                     "values + its fixed-width rows; sham_gap, H0 of values and of gaps; "
                     "sham_ans, the context-conditioned entropy of its model)")
        return "\n".join(lines)


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
        printed, corrected, stored = enc.psi_bounds(M)
        rows.append(Row(fmt, enc.nbytes, psi_of(8 * enc.nbytes, n, m, B), printed, corrected,
                        stored, account(enc).bits, enc is given, enc.own_limit(M)))
    return Report((n, m), M.dtype.name, B, q, k_all, k_nz, entropy_limits(M), rows,
                  relative_index_csr(M))
