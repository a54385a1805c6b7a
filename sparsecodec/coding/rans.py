"""Static rANS (range asymmetric numeral systems) with interleaved states, in numba: the entropy
coder that ``sham_ans`` builds on (its kernels in ``kernels/ans_columns.py`` use the same state,
renormalization and lanes, with context-selected tables).

- **Model**: symbol frequencies are quantized to sum to 2^``scale_bits`` (every symbol that
  occurs keeps at least 1), so a symbol of probability p costs about -log2 p bits. That beats
  Huffman whenever p is far from a power of 1/2.
- **State and words**: each state is 32 bits, kept in [2^16, 2^32), and renormalizes 16 bits
  at a time.
- **Interleaving**: ``LANES`` states, symbol i using state i % LANES, share one word stream, so
  a decoder keeps four independent dependency chains busy.
- **Blocks**: streams are cut into blocks coded independently (offsets in words), as the
  Huffman streams are.
- **Hostile input**: decoding stops at the end of its block's words and reports failure on
  truncated or corrupt input. It never reads outside the array, and every loop has a fixed
  trip count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .huffman import first_bad

LANES = 4
RANS_L = np.uint64(1 << 16)  # lower bound of a normalized state, and every state's start


def quantize_freqs(counts: np.ndarray, scale_bits: int = 12) -> np.ndarray:
    """Frequencies proportional to ``counts`` summing to 2^scale_bits, at least 1 where a count
    is positive (largest remainders get the leftover). Needs at most 2^scale_bits symbols with
    positive count."""
    counts = np.asarray(counts, np.int64)
    total = 1 << scale_bits
    present = counts > 0
    k = int(present.sum())
    if k == 0:
        return np.zeros(counts.shape[0], np.int64)
    if k > total:
        raise ValueError(f"{k} symbols do not fit a {scale_bits}-bit frequency table")
    exact = counts * (total / counts.sum())
    freq = np.where(present, np.maximum(np.floor(exact), 1), 0).astype(np.int64)
    diff = total - int(freq.sum())
    if diff > 0:  # hand out the rest by largest remainder
        order = np.argsort(-(exact - np.floor(exact)) * present, kind="stable")
        freq[order[:diff]] += 1
    while diff < 0:  # the floors of 1 overshot: take from the largest, never below 1
        j = int(np.argmax(freq))
        take = min(-diff, int(freq[j]) - 1)
        freq[j] -= take
        diff += take
    return freq


def cumulative(freq: np.ndarray) -> np.ndarray:
    cum = np.zeros(freq.shape[0] + 1, np.int64)
    np.cumsum(freq, out=cum[1:])
    return cum


@njit(cache=True, nogil=True)
def _encode_block(symbols, lo, hi, freq, cum, scale_bits, out):
    """Encode symbols[lo:hi] into ``out`` (uint16, filled from the end); returns the number of
    words written, which are out[len(out) - count:]."""
    n = hi - lo
    states = np.full(LANES, RANS_L, np.uint64)
    pos = out.shape[0]
    for i in range(n - 1, -1, -1):
        s = symbols[lo + i]
        lane = i % LANES
        x = states[lane]
        f = np.uint64(freq[s])
        x_max = ((RANS_L >> np.uint64(scale_bits)) << np.uint64(16)) * f
        while x >= x_max:
            pos -= 1
            out[pos] = np.uint16(x & np.uint64(0xFFFF))
            x >>= np.uint64(16)
        x = ((x // f) << np.uint64(scale_bits)) + (x % f) + np.uint64(cum[s])
        states[lane] = x
    for lane in range(LANES - 1, -1, -1):  # flush: the decoder reads lane 0's state first
        x = states[lane]
        pos -= 1
        out[pos] = np.uint16(x & np.uint64(0xFFFF))
        pos -= 1
        out[pos] = np.uint16(x >> np.uint64(16))
    return out.shape[0] - pos


@njit(cache=True, nogil=True)
def encode_blocks(symbols, starts, freq, cum, scale_bits):
    """Code each block symbols[starts[b]:starts[b+1]]; returns (words uint16, word offsets of
    the blocks, length nblocks + 1)."""
    nblocks = starts.shape[0] - 1
    n = symbols.shape[0]
    scratch = np.empty(2 * n + 2 * LANES + 16, np.uint16)  # at most 2 words per symbol
    parts = []
    offsets = np.zeros(nblocks + 1, np.int64)
    for b in range(nblocks):
        used = _encode_block(symbols, starts[b], starts[b + 1], freq, cum, scale_bits, scratch)
        parts.append(scratch[scratch.shape[0] - used:].copy())
        offsets[b + 1] = offsets[b] + used
    words = np.empty(offsets[nblocks], np.uint16)
    for b in range(nblocks):
        words[offsets[b]:offsets[b + 1]] = parts[b]
    return words, offsets


@njit(cache=True, nogil=True)
def slot_table(freq, cum, scale_bits):
    """Symbol of every slot 0 .. 2^scale_bits - 1."""
    table = np.empty(1 << scale_bits, np.int32)
    for s in range(freq.shape[0]):
        for t in range(cum[s], cum[s] + freq[s]):
            table[t] = s
    return table


@njit(cache=True, nogil=True)
def decode_block(words, w0, w1, count, freq, cum, table, scale_bits, out):
    """Decode ``count`` symbols from words[w0:w1] into out[:count]; False when the words run
    out, a state is out of range, or words are left over."""
    if w1 - w0 < 2 * LANES:
        return count == 0 and w1 == w0
    p = w0
    states = np.empty(LANES, np.uint64)
    for lane in range(LANES):
        x = (np.uint64(words[p]) << np.uint64(16)) | np.uint64(words[p + 1])
        p += 2
        if x < RANS_L:
            return False
        states[lane] = x
    mask = np.uint64((1 << scale_bits) - 1)
    sb = np.uint64(scale_bits)
    for i in range(count):
        lane = i % LANES
        x = states[lane]
        slot = x & mask
        s = table[slot]
        out[i] = s
        x = np.uint64(freq[s]) * (x >> sb) + slot - np.uint64(cum[s])
        if x < RANS_L:
            if p >= w1:
                return False
            x = (x << np.uint64(16)) | np.uint64(words[p])
            p += 1
        states[lane] = x
    if p != w1:
        return False
    for lane in range(LANES):  # the encoder started every state at RANS_L
        if states[lane] != RANS_L:
            return False
    return True


@njit(cache=True, nogil=True, parallel=True)
def decode_blocks(words, offsets, starts, freq, cum, table, scale_bits, out):
    """Decode every block in parallel; returns the first corrupt block or -1."""
    nblocks = starts.shape[0] - 1
    bad = np.full(max(nblocks, 1), -1, np.int64)
    for b in prange(nblocks):
        lo = starts[b]
        ok = decode_block(words, offsets[b], offsets[b + 1], starts[b + 1] - lo, freq, cum,
                          table, scale_bits, out[lo:])
        if not ok:
            bad[b] = b
    return first_bad(bad)
