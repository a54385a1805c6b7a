"""Canonical, length-limited Huffman coding with blocked, 4-lane, table-driven decoding.

Code lengths
    Optimal Huffman lengths from symbol counts (two-queue construction, O(k) after a sort). When
    the longest code would exceed the limit the lengths are recomputed with package-merge, which
    is optimal among codes obeying it. The default limit is the decode table's width (11 bits)
    whenever the alphabet fits in it, else :data:`MAX_CODE_LENGTH` = 24 (see
    :func:`default_max_length`). A one-symbol alphabet gets a code of length 0: its symbols cost
    no bits at all.

Canonical codes
    Symbols are ordered by (length, symbol index); the first gets the all-zero code and each next
    code is ``(previous + 1) << (length difference)``. A code is therefore stored as the symbol
    values in canonical order plus ``counts[l]``, the number of codes of each length ``l``.

Streams
    The symbol sequence is cut into blocks (the format decides where); inside a block symbol ``t``
    goes to lane ``t % 4``. Every lane is a contiguous run of bits, and the ``4 * nblocks + 1``
    lane start offsets (the last is the total bit count) let any block be decoded alone and the
    four lanes of a block be decoded in lockstep, which hides the latency of the table lookups.

Decoding
    A primary table of ``2**TABLE_BITS`` entries indexed by the next ``TABLE_BITS`` bits resolves
    every code of length <= ``TABLE_BITS`` in one probe; longer codes fall back to a canonical
    search over at most ``max_length - TABLE_BITS`` lengths. Lanes that end anywhere but at their
    recorded end offset are reported as corrupt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from .. import status
from ..errors import EncodeError, FormatError, OptionError
from .bits import (
    check_packed,
    check_padding,
    pack,
    peek64,
    unpack,
    width_for,
    words_for,
    write_bits,
)

MAX_CODE_LENGTH = 24
"""Longest code the coder produces or accepts; a 64-bit refill then always holds a whole code."""
TABLE_BITS = 11
"""Primary decode table index width: 2**11 int32 entries = 8 KiB, resident in L1."""
LANES = 4
"""Interleaved lanes per block."""
MAX_SYMBOLS = 1 << 20
"""Largest alphabet accepted (distinct values of one matrix)."""

_REFILL_AT = 64 - MAX_CODE_LENGTH  # after consuming this many bits of a peek, peek again


# --------------------------------------------------------------------------- code lengths


@njit(cache=True, nogil=True)
def _huffman_lengths_sorted(w):
    """Optimal code lengths for weights sorted ascending (two-queue method)."""
    k = w.shape[0]
    nn = 2 * k - 1
    weight = np.empty(nn, np.int64)
    parent = np.empty(nn, np.int64)
    weight[:k] = w
    leaf = 0
    inner = k
    for nxt in range(k, nn):
        pair = np.empty(2, np.int64)
        for t in range(2):
            if leaf < k and (inner >= nxt or weight[leaf] <= weight[inner]):
                pair[t] = leaf
                leaf += 1
            else:
                pair[t] = inner
                inner += 1
        weight[nxt] = weight[pair[0]] + weight[pair[1]]
        parent[pair[0]] = nxt
        parent[pair[1]] = nxt
    depth = np.zeros(nn, np.int64)
    for node in range(nn - 2, -1, -1):
        depth[node] = depth[parent[node]] + 1
    return depth[:k].copy()


@njit(cache=True, nogil=True)
def _package_merge_sorted(w, limit):
    """Optimal lengths under ``max length <= limit`` for weights sorted ascending."""
    k = w.shape[0]
    levels = limit - 1
    cap = 2 * k
    is_leaf = np.zeros((levels, cap), np.bool_)
    sizes = np.zeros(levels, np.int64)
    cur = w.copy()
    for lev in range(levels):
        npk = cur.shape[0] // 2
        merged = np.empty(k + npk, np.int64)
        a = 0
        b = 0
        for t in range(k + npk):
            if a < k and (b >= npk or w[a] <= cur[2 * b] + cur[2 * b + 1]):
                merged[t] = w[a]
                is_leaf[lev, t] = True
                a += 1
            else:
                merged[t] = cur[2 * b] + cur[2 * b + 1]
                b += 1
        sizes[lev] = k + npk
        cur = merged
    lengths = np.zeros(k, np.int64)
    take = 2 * k - 2
    for lev in range(levels - 1, -1, -1):
        leaves = 0
        for t in range(take):
            if is_leaf[lev, t]:
                leaves += 1
        for i in range(leaves):
            lengths[i] += 1
        take = 2 * (take - leaves)
    for i in range(take):  # the bottom list is the leaves alone
        lengths[i] += 1
    return lengths


def default_max_length(k: int) -> int:
    """The length limit used unless one is asked for: the primary table width when ``k``
    symbols fit it, so that decoding never leaves the table, else :data:`MAX_CODE_LENGTH`.

    Package-merge keeps the code optimal under the limit. On a pruned layer with 32 skewed
    values this cost 0.2% of the payload and made decoding 5x faster (codes had reached 18
    bits); zstd's Huff0 makes the same choice.
    """
    return TABLE_BITS if k <= 1 << TABLE_BITS else MAX_CODE_LENGTH


def code_lengths(counts: np.ndarray, max_length: int = MAX_CODE_LENGTH) -> np.ndarray:
    """Optimal prefix-code lengths (uint8) for positive ``counts`` with no code over ``max_length``.

    Optimal Huffman lengths when the limit does not bind; package-merge (optimal under the limit)
    when it does. One symbol gets length 0; no symbols give an empty array.
    """
    counts = np.asarray(counts, dtype=np.int64)
    k = counts.shape[0]
    if k == 0:
        return np.zeros(0, np.uint8)
    if np.any(counts <= 0):
        raise EncodeError("Huffman counts must be positive")
    if k == 1:
        return np.zeros(1, np.uint8)
    if not 1 <= max_length <= MAX_CODE_LENGTH:
        raise OptionError(f"max_length must be in 1..{MAX_CODE_LENGTH}, got {max_length}")
    if k > 1 << max_length:
        raise EncodeError(f"{k} symbols cannot be coded with codes of at most {max_length} bits")
    order = np.argsort(counts, kind="stable")
    sorted_w = counts[order]
    lens = _huffman_lengths_sorted(sorted_w)
    if lens.max() > max_length:
        lens = _package_merge_sorted(sorted_w, max_length)
    out = np.empty(k, np.uint8)
    out[order] = lens
    return out


# --------------------------------------------------------------------------- canonical codes


@dataclass(frozen=True)
class CanonicalCode:
    """A canonical prefix code over ``k`` symbols.

    ``order[c]`` is the symbol with canonical index ``c``; ``lengths`` and ``codes`` are indexed
    by symbol; ``counts[l]`` is the number of codes of length ``l`` (index 0..max length).
    """

    order: np.ndarray
    lengths: np.ndarray
    codes: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_lengths(cls, lengths: np.ndarray) -> CanonicalCode:
        lengths = np.asarray(lengths, dtype=np.int64)
        k = lengths.shape[0]
        order = np.argsort(lengths, kind="stable")  # by length, ties by symbol index
        codes = _assign_codes(lengths, order)
        maxlen = int(lengths.max()) if k else -1
        counts = np.bincount(lengths, minlength=maxlen + 1).astype(np.uint32) if k else (
            np.zeros(0, np.uint32)
        )
        return cls(order=order, lengths=lengths, codes=codes, counts=counts)

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> CanonicalCode:
        """Rebuild the code from stored per-length counts (validated first)."""
        counts = check_code_counts(counts)
        lengths = np.repeat(np.arange(counts.shape[0]), counts.astype(np.int64))
        return cls.from_lengths(lengths)

    @property
    def k(self) -> int:
        return int(self.lengths.shape[0])


@njit(cache=True, nogil=True)
def _assign_codes(lengths, order):
    """Canonical codes: each code is the previous plus one, shifted to its own length."""
    codes = np.zeros(lengths.shape[0], np.uint64)
    code = np.uint64(0)
    for i in range(1, order.shape[0]):
        grow = lengths[order[i]] - lengths[order[i - 1]]
        code = (code + np.uint64(1)) << np.uint64(grow)
        codes[order[i]] = code
    return codes


def check_code_counts(counts: np.ndarray, what: str = "code_counts") -> np.ndarray:
    """Validate stored per-length code counts; return them as uint32.

    Accepted: no codes (empty array); one symbol of length 0 (``[1]``); otherwise lengths 1..24,
    ``counts[0] == 0``, a nonzero last entry, and a *complete* code (Kraft sum exactly 1), so
    every bit string decodes and no code is over-subscribed.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.dtype.kind not in "ui":
        raise FormatError(f"{what}: expected a 1-D unsigned integer array")
    n = counts.shape[0]
    if n == 0:
        return counts.astype(np.uint32)
    if n - 1 > MAX_CODE_LENGTH:
        raise FormatError(f"{what}: code lengths up to {n - 1} exceed {MAX_CODE_LENGTH}")
    c = [int(x) for x in counts]
    if any(x < 0 for x in c) or c[-1] == 0:
        raise FormatError(f"{what}: counts must be non-negative with a nonzero last entry")
    if n == 1:
        if c[0] != 1:
            raise FormatError(f"{what}: a length-0 code must hold exactly one symbol, got {c[0]}")
        return counts.astype(np.uint32)
    if c[0] != 0:
        raise FormatError(f"{what}: length-0 codes are only allowed for a one-symbol alphabet")
    if sum(c) > MAX_SYMBOLS:
        raise FormatError(f"{what}: {sum(c)} symbols exceed the limit of {MAX_SYMBOLS}")
    maxlen = n - 1
    kraft = sum(x << (maxlen - ln) for ln, x in enumerate(c))
    if kraft != 1 << maxlen:
        state = "over-subscribed" if kraft > 1 << maxlen else "incomplete"
        raise FormatError(f"{what}: the code is {state} (Kraft sum {kraft}/2^{maxlen})")
    return counts.astype(np.uint32)


# --------------------------------------------------------------------------- decode tables


@dataclass(frozen=True)
class DecodeTables:
    """Everything the lane decoder needs, built once per code."""

    table: np.ndarray  # int32[2**bits]: (canonical index << 5) | length, or 0 for long codes
    limit: np.ndarray  # int64[maxlen+1]: exclusive end of length-l codes, left-justified to maxlen
    base: np.ndarray  # int64[maxlen+1]: first code of length l
    first: np.ndarray  # int64[maxlen+1]: canonical index of the first code of length l
    bits: int  # primary table index width
    maxlen: int  # longest code (0: one symbol, -1: no symbols)

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> DecodeTables:
        counts = check_code_counts(counts)
        maxlen = counts.shape[0] - 1
        if maxlen <= 0:
            z = np.zeros(1, np.int64)
            return cls(np.zeros(1, np.int32), z, z, z, 0, maxlen)
        bits = min(TABLE_BITS, maxlen)
        table, limit, base, first = _build_tables(counts.astype(np.int64), bits)
        return cls(table, limit, base, first, bits, maxlen)


@njit(cache=True, nogil=True)
def _build_tables(counts, bits):
    maxlen = counts.shape[0] - 1
    limit = np.zeros(maxlen + 1, np.int64)
    base = np.zeros(maxlen + 1, np.int64)
    first = np.zeros(maxlen + 1, np.int64)
    table = np.zeros(1 << bits, np.int32)
    code = 0
    idx = 0
    for ln in range(1, maxlen + 1):
        base[ln] = code
        first[ln] = idx
        limit[ln] = (code + counts[ln]) << (maxlen - ln)
        for t in range(counts[ln]):
            c = code + t
            if ln <= bits:
                lo = c << (bits - ln)
                entry = ((idx + t) << 5) | ln
                for e in range(lo, lo + (1 << (bits - ln))):
                    table[e] = entry
        idx += counts[ln]
        code = (code + counts[ln]) << 1
    return table, limit, base, first


@njit(cache=True, nogil=True)
def _decode_long(v, bits, maxlen, limit, base, first):
    """Entry for a code longer than the primary table (canonical search on the top bits)."""
    top = np.int64(v >> np.uint64(64 - maxlen))
    ln = bits + 1
    while top >= limit[ln]:  # terminates: the code is complete, limit[maxlen] == 2**maxlen
        ln += 1
    return ((first[ln] + (top >> (maxlen - ln)) - base[ln]) << 5) | ln


@njit(cache=True, nogil=True, inline="always")
def _entry(buf, c, table, shift, bits, maxlen, limit, base, first):
    """Table entry ``(canonical index << 5) | length`` of the code at ``buf << c``."""
    v = buf << np.uint64(c)
    e = np.int64(table[v >> shift])
    if (e & 31) == 0:
        e = _decode_long(v, bits, maxlen, limit, base, first)
    return e


@njit(cache=True, nogil=True, inline="always")
def _lane_bounds(lane_off, o):
    """Start and end bit of the four lanes whose offsets begin at ``lane_off[o]``: each lane
    ends where the next begins."""
    return (lane_off[o], lane_off[o + 1], lane_off[o + 2], lane_off[o + 3],
            lane_off[o + 1], lane_off[o + 2], lane_off[o + 3], lane_off[o + 4])


@njit(cache=True, nogil=True, inline="always")
def _lanes_short(words, lane_off, o, count, table, bits, maxlen, out):
    """The 4-lane loop when every code fits the primary table (``maxlen <= bits``).

    No fallback branch (keeping one in the loop, never taken, costs half the speed), and no
    per-lane refill test: ``64 // maxlen`` codes always fit in a 64-bit peek, so the four lanes
    are refilled together on that schedule and checked against their ends at each refill.
    """
    shift = np.uint64(64 - bits)
    p0, p1, p2, p3, e0, e1, e2, e3 = _lane_bounds(lane_off, o)
    per = 64 // maxlen
    rounds = count // LANES
    t = np.uint64(0)  # unsigned: no negative-index wraparound test on each store
    four = np.uint64(4)
    done = 0
    while done < rounds:
        b0 = peek64(words, p0)
        b1 = peek64(words, p1)
        b2 = peek64(words, p2)
        b3 = peek64(words, p3)
        c0 = 0
        c1 = 0
        c2 = 0
        c3 = 0
        step = min(per, rounds - done)
        for _ in range(step):
            x0 = np.int64(table[(b0 << np.uint64(c0)) >> shift])
            x1 = np.int64(table[(b1 << np.uint64(c1)) >> shift])
            x2 = np.int64(table[(b2 << np.uint64(c2)) >> shift])
            x3 = np.int64(table[(b3 << np.uint64(c3)) >> shift])
            out[t] = x0 >> 5
            out[t + np.uint64(1)] = x1 >> 5
            out[t + np.uint64(2)] = x2 >> 5
            out[t + np.uint64(3)] = x3 >> 5
            t += four
            c0 += x0 & 31
            c1 += x1 & 31
            c2 += x2 & 31
            c3 += x3 & 31
        done += step
        p0 += c0
        p1 += c1
        p2 += c2
        p3 += c3
        if p0 > e0 or p1 > e1 or p2 > e2 or p3 > e3:
            return False
    rest = count - np.int64(t)  # 0..3 more symbols, in lanes 0, 1, 2
    if rest > 0:
        x = np.int64(table[peek64(words, p0) >> shift])
        out[t] = x >> 5
        p0 += x & 31
    if rest > 1:
        x = np.int64(table[peek64(words, p1) >> shift])
        out[t + np.uint64(1)] = x >> 5
        p1 += x & 31
    if rest > 2:
        x = np.int64(table[peek64(words, p2) >> shift])
        out[t + np.uint64(2)] = x >> 5
        p2 += x & 31
    return p0 == e0 and p1 == e1 and p2 == e2 and p3 == e3


@njit(cache=True, nogil=True, inline="always")
def _lanes(words, lane_off, o, count, table, limit, base, first, bits, maxlen, out):
    """The 4-lane loop for codes of any length: each lane is refilled when fewer than
    ``MAX_CODE_LENGTH`` unread bits remain in its peek."""
    shift = np.uint64(64 - bits)
    p0, p1, p2, p3, e0, e1, e2, e3 = _lane_bounds(lane_off, o)
    b0 = peek64(words, p0)
    b1 = peek64(words, p1)
    b2 = peek64(words, p2)
    b3 = peek64(words, p3)
    c0 = 0
    c1 = 0
    c2 = 0
    c3 = 0
    t = np.uint64(0)  # unsigned: no negative-index wraparound test on each store
    one = np.uint64(1)
    for _ in range(count // LANES):
        x0 = _entry(b0, c0, table, shift, bits, maxlen, limit, base, first)
        x1 = _entry(b1, c1, table, shift, bits, maxlen, limit, base, first)
        x2 = _entry(b2, c2, table, shift, bits, maxlen, limit, base, first)
        x3 = _entry(b3, c3, table, shift, bits, maxlen, limit, base, first)
        out[t] = x0 >> 5
        out[t + one] = x1 >> 5
        out[t + np.uint64(2)] = x2 >> 5
        out[t + np.uint64(3)] = x3 >> 5
        t += np.uint64(4)
        c0 += x0 & 31
        c1 += x1 & 31
        c2 += x2 & 31
        c3 += x3 & 31
        if c0 > _REFILL_AT:
            p0 += c0
            c0 = 0
            if p0 > e0:
                return False
            b0 = peek64(words, p0)
        if c1 > _REFILL_AT:
            p1 += c1
            c1 = 0
            if p1 > e1:
                return False
            b1 = peek64(words, p1)
        if c2 > _REFILL_AT:
            p2 += c2
            c2 = 0
            if p2 > e2:
                return False
            b2 = peek64(words, p2)
        if c3 > _REFILL_AT:
            p3 += c3
            c3 = 0
            if p3 > e3:
                return False
            b3 = peek64(words, p3)
    rest = count - np.int64(t)  # 0..3 more symbols, in lanes 0, 1, 2
    if rest > 0:
        x = _entry(b0, c0, table, shift, bits, maxlen, limit, base, first)
        out[t] = x >> 5
        c0 += x & 31
    if rest > 1:
        x = _entry(b1, c1, table, shift, bits, maxlen, limit, base, first)
        out[t + one] = x >> 5
        c1 += x & 31
    if rest > 2:
        x = _entry(b2, c2, table, shift, bits, maxlen, limit, base, first)
        out[t + np.uint64(2)] = x >> 5
        c2 += x & 31
    return p0 + c0 == e0 and p1 + c1 == e1 and p2 + c2 == e2 and p3 + c3 == e3


@njit(cache=True, nogil=True)
def decode_block(words, lane_off, blk, count, table, limit, base, first, bits, maxlen, out):
    """Decode block ``blk`` (``count`` symbols, 4 lanes) into ``out[:count]`` (canonical indices).

    Returns False when a lane does not end exactly at its recorded end (corrupt stream).
    """
    o = LANES * blk
    if maxlen <= 0:  # one symbol (or none): no bits at all
        for t in range(count):
            out[t] = 0
        return lane_off[o + LANES] == lane_off[o]
    if maxlen > bits:
        return _lanes(words, lane_off, o, count, table, limit, base, first, bits, maxlen, out)
    return _lanes_short(words, lane_off, o, count, table, bits, maxlen, out)


# --------------------------------------------------------------------------- encoding


@njit(cache=True, nogil=True, parallel=True)
def _lane_bits(symbols, block_starts, lengths):
    nblocks = block_starts.shape[0] - 1
    sizes = np.zeros(nblocks * LANES, np.int64)
    for b in prange(nblocks):
        lo = block_starts[b]
        for t in range(block_starts[b + 1] - lo):
            sizes[b * LANES + (t & 3)] += lengths[symbols[lo + t]]
    return sizes


@njit(cache=True, nogil=True)
def _write_lanes(symbols, block_starts, lengths, codes, lane_off, words):
    nblocks = block_starts.shape[0] - 1
    for b in range(nblocks):
        lo = block_starts[b]
        cnt = block_starts[b + 1] - lo
        for lane in range(LANES):
            p = lane_off[b * LANES + lane]
            for t in range(lane, cnt, LANES):
                s = symbols[lo + t]
                ln = lengths[s]
                write_bits(words, p, codes[s], ln)
                p += ln


def encode_stream(symbols: np.ndarray, block_starts: np.ndarray, code: CanonicalCode
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Huffman-code ``symbols`` (indices into the code's symbols) cut at ``block_starts``.

    Returns ``(words, lane_offsets)`` where ``lane_offsets`` has ``4 * nblocks + 1`` entries, the
    last being the total number of bits.
    """
    lengths = code.lengths.astype(np.int64)
    sizes = _lane_bits(symbols, block_starts, lengths)
    lane_off = np.zeros(sizes.shape[0] + 1, np.int64)
    np.cumsum(sizes, out=lane_off[1:])
    words = np.zeros(words_for(int(lane_off[-1])), np.uint64)
    _write_lanes(symbols, block_starts, lengths, code.codes, lane_off, words)
    return words, lane_off


def stream_bits(counts: np.ndarray, lengths: np.ndarray) -> int:
    """Exact payload bits of a stream with per-symbol ``counts`` coded at ``lengths``."""
    return int(np.dot(np.asarray(counts, np.int64), np.asarray(lengths, np.int64)))


@njit(cache=True, nogil=True)
def first_bad(bad):
    """The first entry of a per-block status array that is not -1 (the blocked decoders mark a
    good block -1, a bad one with its index or an error code), or -1 when all are good."""
    for b in bad:
        if b != -1:
            return b
    return -1


@njit(cache=True, nogil=True, parallel=True)
def decode_all(words, lane_off, block_starts, table, limit, base, first, bits, maxlen, out):
    """Decode every block into ``out`` (canonical indices); returns the first bad block or -1."""
    nblocks = block_starts.shape[0] - 1
    bad = np.full(nblocks, -1, np.int64)
    for b in prange(nblocks):
        lo = block_starts[b]
        ok = decode_block(words, lane_off, b, block_starts[b + 1] - lo, table, limit, base,
                          first, bits, maxlen, out[lo:])
        if not ok:
            bad[b] = b
    return first_bad(bad)


@njit(cache=True, nogil=True, parallel=True)
def count_symbol(words, lane_off, block_starts, table, limit, base, first, bits, maxlen, sym):
    """(first corrupt block or -1, how many times canonical index ``sym`` occurs), counted
    block by block with nothing kept."""
    nblocks = block_starts.shape[0] - 1
    counts = np.zeros(max(nblocks, 1), np.int64)
    bad = np.full(max(nblocks, 1), -1, np.int64)
    for b in prange(nblocks):
        cnt = block_starts[b + 1] - block_starts[b]
        scratch = np.empty(cnt, np.uint32)
        if not decode_block(words, lane_off, b, cnt, table, limit, base, first, bits, maxlen,
                            scratch):
            bad[b] = b
            continue
        c = 0
        for t in range(cnt):
            if scratch[np.uint64(t)] == sym:
                c += 1
        counts[b] = c
    return first_bad(bad), counts.sum()


def decode_stream(words: np.ndarray, lane_off: np.ndarray, block_starts: np.ndarray,
                  tables: DecodeTables, what: str = "stream") -> np.ndarray:
    """Decode a whole stream to canonical indices (int32); :class:`FormatError` if corrupt."""
    out = np.empty(int(block_starts[-1]), np.int32)
    bad = decode_all(words, lane_off, block_starts, tables.table, tables.limit, tables.base,
                     tables.first, tables.bits, tables.maxlen, out)
    status.check_block(what, bad)
    return out


# --------------------------------------------------------------------------- stored streams


def offsets_width(nwords: int) -> int:
    """Width of a packed lane offset in a stream of ``nwords`` words (fits 0..64*nwords)."""
    return width_for(64 * nwords)


def stream_nbytes(k: int, itemsize: int, maxlen: int, total_bits: int, nblocks: int) -> int:
    """Exact stored bytes of a Huffman part: symbols, code counts, stream words, packed offsets."""
    nwords = words_for(total_bits)
    noff = LANES * nblocks + 1
    return (k * itemsize + 4 * (maxlen + 1 if k else 0) + 8 * nwords
            + 8 * words_for(noff * offsets_width(nwords)))


class HuffmanPart:
    """A canonical code plus a blocked 4-lane stream: the entropy-coded part of HAM and sHAM.

    Stored as four components: ``symbols`` (values in canonical order), ``code_counts``
    (uint32 codes per length), ``stream`` (uint64 words) and ``offsets`` (the ``4*nblocks + 1``
    lane offsets, bit-packed at the width that fits ``64 * len(stream)``).
    """

    def __init__(self, symbols: np.ndarray, counts: np.ndarray, words: np.ndarray,
                 lane_off: np.ndarray, offsets: np.ndarray | None = None):
        self.symbols = symbols
        self.counts = counts
        self.words = words
        self.lane_off = lane_off  # unpacked (int64), for the kernels
        self.offsets = (offsets if offsets is not None
                        else pack(lane_off, offsets_width(words.shape[0])))  # as stored
        self._tables: DecodeTables | None = None

    @classmethod
    def encode(cls, values: np.ndarray, freq: np.ndarray, symbols: np.ndarray,
               block_starts: np.ndarray, max_length: int | None = None) -> HuffmanPart:
        """Code ``symbols`` (indices into ``values``, whose use counts are ``freq``); codes are
        limited to ``max_length`` bits (default: :func:`default_max_length`)."""
        if max_length is None:
            max_length = default_max_length(len(freq))
        code = CanonicalCode.from_lengths(code_lengths(freq, max_length))
        words, lane_off = encode_stream(symbols, block_starts, code)
        return cls(values[code.order], code.counts, words, lane_off)

    @classmethod
    def from_stored(cls, symbols: np.ndarray, counts: np.ndarray, words: np.ndarray,
                    offsets: np.ndarray, nblocks: int, what: str) -> HuffmanPart:
        counts = check_code_counts(counts, f"{what}: code_counts")
        if int(counts.sum()) != symbols.shape[0]:
            raise FormatError(f"{what}: code_counts describe {int(counts.sum())} codes but "
                              f"there are {symbols.shape[0]} symbols")
        if np.unique(symbols.view(f"u{symbols.dtype.itemsize}")).shape[0] != symbols.shape[0]:
            raise FormatError(f"{what}: symbols must be distinct")
        noff = LANES * nblocks + 1
        width = offsets_width(words.shape[0])
        # offsets of an empty stream pack to nothing, so their count must be bounded apart
        # from the file: no more blocks than stored bits, beyond a generous 2^16
        stored = 8 * (symbols.nbytes + counts.nbytes + words.nbytes + offsets.nbytes)
        if nblocks > max(1 << 16, stored):
            raise FormatError(f"{what}: {nblocks} blocks for {stored} stored bits")
        check_packed(offsets, noff, width, f"{what}: offsets")
        lane_off = unpack(offsets, width, noff)
        total = int(lane_off[-1])
        if lane_off[0] != 0 or np.any(np.diff(lane_off) < 0):
            raise FormatError(f"{what}: lane offsets must start at 0 and never decrease")
        if words_for(total) != words.shape[0]:
            raise FormatError(f"{what}: the offsets end at bit {total} but the stream has "
                              f"{words.shape[0]} words")
        check_padding(words, total, f"{what}: stream")
        return cls(symbols, counts, words, lane_off, offsets)

    def stored(self) -> dict[str, np.ndarray]:
        return {"symbols": self.symbols, "code_counts": self.counts, "stream": self.words,
                "offsets": self.offsets}

    def layout(self) -> dict[str, tuple[str, int]]:
        """Roles and content bits of the stored parts (see ``Encoded.layout``)."""
        noff = self.lane_off.shape[0]
        return {"symbols": ("codebook", 8 * self.symbols.nbytes),
                "code_counts": ("codebook", 8 * self.counts.nbytes),
                "stream": ("payload", int(self.lane_off[-1])),
                "offsets": ("pointers", noff * offsets_width(self.words.shape[0]))}

    @property
    def tables(self) -> DecodeTables:
        if self._tables is None:
            self._tables = DecodeTables.from_counts(self.counts)
        return self._tables

    def kernel_args(self) -> tuple:
        """The leading arguments of every stream kernel."""
        t = self.tables
        return (self.words, self.lane_off, t.table, t.limit, t.base, t.first, t.bits, t.maxlen)
