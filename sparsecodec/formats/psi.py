"""The published occupancy formulas psi (stored bits over n*m*B) of the formats, and the same
formulas with sparsecodec's stored overheads. ``sparsecodec.bounds`` documents them and
re-exports them; each format answers with its own through ``Encoded.psi_bounds``.

References: [M21] Marinò, Petrini, Malchiodi, Frasca, "Compact representations of
convolutional neural networks via weight pruning and quantization", 2021 (arXiv:2108.12704);
[W20] Wiedemann, Müller, Samek, "Compact and computationally efficient representation of deep
neural networks", IEEE TNNLS 2020.
"""

from __future__ import annotations

import math

import numpy as np

from ..coding.bits import width_for, words_for
from ..coding.huffman import default_max_length, offsets_width
from ..errors import OptionError, ShapeError
from .blocked import BLOCK_SYMBOLS, dense_block_cols, sparse_block_cols

DICTIONARIES = ("paper", "stored")


def check_sizes(n: int, m: int, q: int = 0, k: int = 1, B: int = 32) -> None:
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


def words_bits(bits: int) -> int:
    """Bits of a packed array of ``bits`` content bits: padded to whole 64-bit words."""
    return 64 * words_for(bits)


def _huffman_extra(k: int, B: int, payload_bits: int, nblocks: int,
                   max_code_length: int | None) -> int:
    """Bits a HuffmanPart stores besides its payload: k raw symbols, the code counts (at most
    limit + 1 uint32), the 4-lane block offsets and the stream's word padding."""
    if k == 0:
        return 0
    limit = default_max_length(k) if max_code_length is None else max_code_length
    stream = words_bits(payload_bits)
    offsets = words_bits((4 * nblocks + 1) * offsets_width(stream // 64))
    return k * B + 32 * (limit + 1) + offsets + (stream - payload_bits)


def psi_of(bits: float, n: int, m: int, B: int) -> float:
    return bits / (n * m * B) if n * m else math.nan


# --------------------------------------------------------------------------- published formulas

def psi_csc(n: int, m: int, q: int, B: int = 32) -> float:
    """CSC as in [M21, Sec. 3]: q values, q row indices and m + 1 column pointers, each one
    B-bit word: psi = (2q + m + 1) / (nm). For CSR swap n and m."""
    check_sizes(n, m, q, 1, B)
    return (2 * q + m + 1) / (n * m) if n * m else math.nan


def psi_csc_packed(n: int, m: int, q: int, B: int = 32) -> float:
    """CSC with bit-packed indices, as sparsecodec's ``csc`` stores it: q raw B-bit values,
    row indices at ceil(log2 n) bits and column pointers at ceil(log2(q + 1)) bits, each array
    padded to 64-bit words. Exactly our ``csc`` size."""
    check_sizes(n, m, q, 1, B)
    bits = q * B + words_bits(q * width_for(n - 1)) + words_bits((m + 1) * width_for(q))
    return psi_of(bits, n, m, B)


def psi_index_map(n: int, m: int, k: int, B: int = 32, dictionary: str = "paper") -> float:
    """Index map [M21]: a codebook of k values and a ceil(log2 k)-bit index per entry:
    psi = (k B + ceil(log2 k) nm) / (nm B). ``stored`` adds the word padding (our ``index_map``
    exactly, with k counting every distinct value, zero included)."""
    check_sizes(n, m, 0, k, B)
    idx = n * m * width_for(k - 1)
    return psi_of(k * B + (words_bits(idx) if _dictionary(dictionary) else idx), n, m, B)


def psi_ham(n: int, m: int, k: int, B: int = 32, dictionary: str = "paper",
            block_symbols: int = BLOCK_SYMBOLS, max_code_length: int | None = None) -> float:
    """HAM with k distinct values (zero included) [M21, Sec. 4]: Huffman codes of at most
    1 + log2 k bits on average for every entry, plus the dictionary:
    psi <= (1 + log2 k) / B + 6k / (nm). With ``stored``, the payload term is kept and the
    dictionary is replaced by what our ``ham`` stores (see the module docstring)."""
    check_sizes(n, m, 0, k, B)
    if n * m == 0:
        return math.nan
    payload = n * m * (1 + math.log2(max(k, 1)))
    if not _dictionary(dictionary):
        return payload / (n * m * B) + 6 * k / (n * m)
    bc = dense_block_cols(n, m, block_symbols)
    nblocks = -(-m // bc)
    whole = math.ceil(payload)
    return psi_of(whole + _huffman_extra(k, B, whole, nblocks, max_code_length), n, m, B)


def psi_ham_worst(n: int, m: int, B: int = 32, dictionary: str = "paper") -> float:
    """HAM's worst case [M21]: every entry distinct (k = nm), nm (1 + log2(nm)) bits of codes
    plus the dictionary."""
    return psi_ham(n, m, n * m, B, dictionary)


def _sham(n: int, m: int, q: int, k: int, B: int, dictionary: str, rows: float,
          block_symbols: int, max_code_length: int | None) -> float:
    check_sizes(n, m, q, k, B)
    if n * m == 0:
        return math.nan
    payload = q * (1 + math.log2(max(k, 1)))
    if not _dictionary(dictionary):
        return payload / (n * m * B) + 6 * k / (n * m) + rows / (n * m * B)
    bc = sparse_block_cols(m, q, block_symbols)
    nblocks = -(-m // bc)
    whole = math.ceil(payload)
    bits = (whole + _huffman_extra(k if q else 0, B, whole, nblocks, max_code_length)
            + words_bits(q * width_for(n - 1)) + words_bits((m + 1) * width_for(q)))
    return psi_of(bits, n, m, B)


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
    check_sizes(n, m, q, k, B)
    g = cer_groups_bound(m, q, k, True)
    bits = (k * B + words_bits(q * width_for(n - 1)) + words_bits((g + 1) * width_for(q))
            + words_bits((m + 1) * width_for(g)))
    return psi_of(bits, n, m, B)


def psi_cser(n: int, m: int, q: int, k: int, B: int = 32) -> float:
    """CSER [W20] as sparsecodec stores it: CER's arrays without empty groups (G <= min(q,
    m (k - 1))) plus a ceil(log2 k)-bit value index per group."""
    check_sizes(n, m, q, k, B)
    g = cer_groups_bound(m, q, k, False)
    bits = (k * B + words_bits(q * width_for(n - 1)) + words_bits((g + 1) * width_for(q))
            + words_bits((m + 1) * width_for(g)) + words_bits(g * width_for(k - 1)))
    return psi_of(bits, n, m, B)


def psi_pq(n: int, m: int, d: int, k: int, B: int = 32, codebook_bits: int = 32,
           per_group: bool = False, index_bits: float | None = None,
           dictionary: str = "paper") -> float:
    """Product quantization: nm / d indices of ceil(log2 k) bits plus k codewords of d values of
    ``codebook_bits`` each: psi = (ceil(log2 k) nm / d + k d B_c) / (nm B); per-group codebooks
    multiply the codebook term by the n / d groups. ``index_bits`` replaces ceil(log2 k) for
    entropy-coded indices (the average Huffman code length, or H + 1 as its bound). ``stored``
    counts what our ``pq`` stores with packed indices: ceil(n / d) groups (zero-padded) and the
    word padding, exactly our bytes."""
    check_sizes(n, m, 0, k, B)
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
    return (book + words_bits(math.ceil(bits * g * m))) / (n * m * B)
