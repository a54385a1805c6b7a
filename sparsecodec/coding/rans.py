"""rANS (range asymmetric numeral systems) in numba: the coder primitives and the static
tables that ``sham_ans`` builds its context model on (``kernels/ans_columns.py``).

The coder (after ryg_rans' 32-bit state with 16-bit renormalization):

- **State and words**: a state is 32 bits, kept in [2^16, 2^32) (``RANS_L`` = 2^16 is also
  every state's start), and renormalizes 16 bits at a time. A step with a frequency table that
  sums to 2^s moves at most one word.
- **Encoding runs backwards**: :func:`put` codes one symbol (start, freq) into a state,
  writing a word downwards into ``words`` first when the state would overflow; :func:`flush`
  writes a state's 32 bits last, so the decoder reads them first (:func:`init`).
- **Decoding**: :func:`get` gives the slot of the next symbol (a state's low s bits),
  :func:`advance` removes the symbol found in that slot, and :func:`renorm` reads a word when
  the state fell below 2^16. ``renorm`` is branch-free and never reads outside the block: a
  read past its end shows as a position past the block's last word.
- **Interleaving** is the caller's: ``LANES`` states, op i using state i % LANES, share one
  word stream so a decoder keeps four independent dependency chains busy.

Every primitive is ``inline="always"``: it compiles into the caller's loop as if written
there. The table layer quantizes counts to frequencies (:func:`quantize_freqs`) and packs, per
context, the symbol of every slot and the decoding entry of every symbol (:func:`slot_tables`,
:func:`table_get`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import EncodeError

LANES = 4
RANS_L = np.uint64(1 << 16)  # lower bound of a normalized state, and every state's start
_U16 = np.uint64(16)
_MASK16 = np.uint64(0xFFFF)
# a decoding entry: symbol | freq << FREQ_SHIFT | cum << CUM_SHIFT (uint64)
FREQ_SHIFT = np.uint64(20)
CUM_SHIFT = np.uint64(37)
_SYMBOL_MASK = np.uint64((1 << 20) - 1)
_FREQ_MASK = np.uint64((1 << 17) - 1)


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
        raise EncodeError(f"{k} symbols do not fit a {scale_bits}-bit frequency table")
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


def quantize_freqs_rows(counts: np.ndarray, scale_bits: int) -> np.ndarray:
    """:func:`quantize_freqs` of every row of ``counts`` (2-D), the same numbers, computed for
    all rows at once (a row whose floors overshoot takes the one-row path)."""
    counts = np.asarray(counts, np.int64)
    total = 1 << scale_bits
    present = counts > 0
    if int(present.sum(axis=1).max(initial=0)) > total:
        k = int(present.sum(axis=1).max())
        raise EncodeError(f"{k} symbols do not fit a {scale_bits}-bit frequency table")
    sums = counts.sum(axis=1)
    live = sums > 0
    freq = np.zeros(counts.shape, np.int64)
    if not live.any():
        return freq
    c, p = counts[live], present[live]
    exact = c * (total / sums[live])[:, None]
    f = np.where(p, np.maximum(np.floor(exact), 1), 0).astype(np.int64)
    diff = total - f.sum(axis=1)
    order = np.argsort(-(exact - np.floor(exact)) * p, axis=1, kind="stable")
    bump = (np.arange(f.shape[1])[None, :] < np.maximum(diff, 0)[:, None]).astype(np.int64)
    np.put_along_axis(f, order, np.take_along_axis(f, order, axis=1) + bump, axis=1)
    for i in np.flatnonzero(diff < 0):  # the floors of 1 overshot: rare, one row at a time
        f[i] = quantize_freqs(c[i], scale_bits)
    freq[live] = f
    return freq


def cumulative(freq: np.ndarray) -> np.ndarray:
    """Start of each symbol's slots along the last axis: 0, f0, f0 + f1, ... (one more)."""
    freq = np.asarray(freq, np.int64)
    cum = np.zeros(freq.shape[:-1] + (freq.shape[-1] + 1,), np.int64)
    np.cumsum(freq, axis=-1, out=cum[..., 1:])
    return cum


# ------------------------------------------------------------------ encoder primitives


@njit(cache=True, nogil=True, inline="always")
def put(x, freq, start, scale, words, pos):
    """Code the symbol with slots [start, start + freq) of a table summing to 2^scale (all
    uint64, scale <= 16) into state ``x``; a word goes to words[pos - 1] first if the state
    would overflow. Returns (the new state, the new pos)."""
    if x >= ((RANS_L >> scale) << _U16) * freq:  # at most one word: x < 2^32, bound >= 2^16
        pos -= 1
        words[pos] = np.uint16(x & _MASK16)
        x >>= _U16
    return ((x // freq) << scale) + (x % freq) + start, pos


@njit(cache=True, nogil=True, inline="always")
def flush(x, words, pos):
    """Write a final state's 32 bits below ``pos`` (high word first); returns the new pos."""
    words[pos - 1] = np.uint16(x & _MASK16)
    words[pos - 2] = np.uint16(x >> _U16)
    return pos - 2


# ------------------------------------------------------------------ decoder primitives


@njit(cache=True, nogil=True, inline="always")
def init(words, p):
    """The state :func:`flush` wrote at words[p:p + 2] (below RANS_L means corrupt)."""
    return (np.uint64(words[p]) << _U16) | np.uint64(words[p + 1])


@njit(cache=True, nogil=True, inline="always")
def get(x, mask):
    """The slot of the next symbol: the state's low bits (``mask`` = 2^scale - 1, uint64)."""
    return x & mask


@njit(cache=True, nogil=True, inline="always")
def advance(x, freq, start, slot, scale):
    """Remove the symbol with slots [start, start + freq) found in ``slot`` from the state
    (before :func:`renorm`)."""
    return freq * (x >> scale) + slot - start


@njit(cache=True, nogil=True, inline="always")
def renorm(words, p, w1, x):
    """Branch-free: read words[p] into the state when it fell below 2^16. Reads are clamped to
    the block words[:w1], and a read past its end shows as p > w1 when the block is done.
    Returns (the state, the new p)."""
    need = np.uint64(x < RANS_L)
    w = np.uint64(words[min(p, w1 - 1)])
    x = (x << (need << np.uint64(4))) | (w & (np.uint64(0) - need))
    return x, p + np.int64(need)


# ------------------------------------------------------------------ static tables


def slot_tables(freq: np.ndarray, cum: np.ndarray, sb: int) -> tuple[np.ndarray, np.ndarray]:
    """The decoding tables of every context (row of ``freq``): ``(symbols, entries)``, the
    symbol in every slot (``nctx * 2^sb``, uint8 for up to 256 symbols, else uint16 or
    uint32) and, per context and symbol, its entry (symbol | freq << 20 | cum << 37, uint64).
    The slots hold the narrowest integer that fits, not the entries, so a context of 2^13
    slots costs 8 KiB instead of 64 KiB. An unused context (all-zero row) gets entries of
    frequency 0, which :func:`table_get` returns for the caller to treat as corrupt."""
    freq = np.asarray(freq, np.int64)
    cum = np.asarray(cum, np.int64)
    nsym = freq.shape[1]
    kind = np.uint8 if nsym <= 1 << 8 else np.uint16 if nsym <= 1 << 16 else np.uint32
    symbols = np.zeros(freq.shape[0] << sb, kind)
    entries = np.zeros(freq.shape, np.uint64)
    _fill_slots(freq, cum, sb, symbols, entries)
    return symbols, entries


@njit(cache=True, nogil=True)
def _fill_slots(freq, cum, sb, symbols, entries):
    size = 1 << sb
    for c in range(freq.shape[0]):
        for s in range(freq.shape[1]):
            entries[c, s] = (np.uint64(s) | (np.uint64(freq[c, s]) << FREQ_SHIFT)
                             | (np.uint64(cum[c, s]) << CUM_SHIFT))
            for t in range(cum[c, s], cum[c, s] + freq[c, s]):
                symbols[c * size + t] = s


@njit(cache=True, nogil=True, inline="always")
def table_get(words, p, w1, x, tab, base, scale, mask):
    """Decode one symbol with the tables ``tab`` (:func:`slot_tables`) of the context whose
    slots start at ``base`` (the context times 2^scale): returns (the renormalized state, the
    new p, the symbol, its frequency; 0 means corrupt)."""
    slot = get(x, mask)
    symbols, entries = tab
    e = entries[np.int64(base) >> np.int64(scale), np.int64(symbols[base + np.int64(slot)])]
    f = (e >> FREQ_SHIFT) & _FREQ_MASK
    x, p = renorm(words, p, w1, advance(x, f, e >> CUM_SHIFT, slot, scale))
    return x, p, np.int64(e & _SYMBOL_MASK), f
