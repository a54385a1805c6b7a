"""A static order-0 rANS block coder: one frequency table for every symbol, blocks coded
independently, 4 interleaved states. A model layer over the primitives of
:mod:`sparsecodec.coding.rans`, the ones ``sham_ans`` ships: the benchmarks use it as the
plain zero-order ANS baseline, and the tests check the primitives through it.

Decoding stops at the end of its block's words and reports failure on truncated or corrupt
input: it never reads outside the array, and every loop has a fixed trip count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import rans
from .huffman import first_bad
from .rans import LANES, RANS_L


@njit(cache=True, nogil=True)
def _encode_block(symbols, lo, hi, freq, cum, scale_bits, out):
    """Code symbols[lo:hi] into ``out`` (uint16) from its end; returns the number of words,
    which are out[len(out) - count:]."""
    states = np.full(LANES, RANS_L, np.uint64)
    pos = out.shape[0]
    sb = np.uint64(scale_bits)
    for i in range(hi - lo - 1, -1, -1):
        s = symbols[lo + i]
        lane = i % LANES
        states[lane], pos = rans.put(states[lane], np.uint64(freq[s]), np.uint64(cum[s]), sb,
                                     out, pos)
    for lane in range(LANES - 1, -1, -1):  # the decoder reads lane 0's state first
        pos = rans.flush(states[lane], out, pos)
    return out.shape[0] - pos


@njit(cache=True, nogil=True)
def encode_blocks(symbols, starts, freq, cum, scale_bits):
    """Code each block symbols[starts[b]:starts[b+1]]; returns (words uint16, word offsets of
    the blocks, length nblocks + 1)."""
    nblocks = starts.shape[0] - 1
    scratch = np.empty(symbols.shape[0] + 2 * LANES + 16, np.uint16)  # one word per symbol
    offsets = np.zeros(nblocks + 1, np.int64)
    parts = []
    for b in range(nblocks):
        used = _encode_block(symbols, starts[b], starts[b + 1], freq, cum, scale_bits, scratch)
        parts.append(scratch[scratch.shape[0] - used:].copy())
        offsets[b + 1] = offsets[b] + used
    words = np.empty(offsets[nblocks], np.uint16)
    for b in range(nblocks):
        words[offsets[b]:offsets[b + 1]] = parts[b]
    return words, offsets


@njit(cache=True, nogil=True)
def decode_block(words, w0, w1, count, tab, scale_bits, out):
    """Decode ``count`` symbols from words[w0:w1] into out[:count]; False when the words run
    out, a state is out of range or a slot is unused, or words are left over."""
    if w1 - w0 < 2 * LANES:
        return count == 0 and w1 == w0
    states = np.empty(LANES, np.uint64)
    for lane in range(LANES):
        states[lane] = rans.init(words, w0 + 2 * lane)
        if states[lane] < RANS_L:
            return False
    p = w0 + 2 * LANES
    sb = np.uint64(scale_bits)
    mask = np.uint64((1 << scale_bits) - 1)
    for i in range(count):
        lane = i % LANES
        x, p, s, f = rans.table_get(words, p, w1, states[lane], tab, 0, sb, mask)
        if f == 0:
            return False
        out[i] = s
        states[lane] = x
    if p != w1:  # words left over, or read past the block
        return False
    for lane in range(LANES):  # the encoder started every state at RANS_L
        if states[lane] != RANS_L:
            return False
    return True


@njit(cache=True, nogil=True, parallel=True)
def decode_blocks(words, offsets, starts, tab, scale_bits, out):
    """Decode every block in parallel (``tab`` from ``rans.slot_tables`` of one context);
    returns the first corrupt block or -1."""
    nblocks = starts.shape[0] - 1
    bad = np.full(max(nblocks, 1), -1, np.int64)
    for b in prange(nblocks):
        lo = starts[b]
        if not decode_block(words, offsets[b], offsets[b + 1], starts[b + 1] - lo, tab,
                            scale_bits, out[lo:]):
            bad[b] = b
    return first_bad(bad)


def table(freq: np.ndarray, scale_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The decoding table of one context with frequencies ``freq`` (summing to 2^scale_bits)."""
    freq = np.asarray(freq, np.int64).reshape(1, -1)
    return rans.slot_tables(freq, rans.cumulative(freq), scale_bits)
