"""Kernels of ``float_ans``: unquantized floats split into a coded head and a raw tail.

Every entry's bit pattern u (``nb`` bits: sign, ``E`` exponent bits, ``P`` mantissa bits) is
cut at ``L = P - t`` bits: the magnitude v = u without its sign; the head ``v >> L`` (the
exponent and the top ``t`` mantissa bits, a log-scale class of |x|) is rANS-coded; the tail
``sign << L | (v & (2^L - 1))`` (``L + 1`` bits, nearly random in trained weights) is stored
as it is, bit-packed. The head is coded as a key: ``head - (s << t)``, where ``s`` is the
entry's predicted octave, ``(r[i] + c[j] + 2) >> 2`` from per-row and per-column offsets in
quarter octaves (``r``, ``c``: int8, empty when the format does not use them), so that one
table serves rows and columns of different scales. An entry with v == 0 (+-0.0) is the zero
class, symbol 0 when present, coded without a key.

Entries are taken column by column (column-major), in blocks of ``bc`` whole columns; a block
is an rANS stream of 4 interleaved states (entry k of a block uses state k % 4) over one
static table (:mod:`sparsecodec.coding.rans`); the tails of all entries are one bitstream,
entry k (column-major, over the whole matrix) at bit k * (L + 1).

A decoding entry per symbol (int64): ``freq | cum << 16 | zero << 31 | key << 32``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..coding import rans
from ..coding.rans import RANS_L
from ..status import CORRUPT, OK

SHIFT_RANGE = 64  # |(r + c + 2) >> 2| <= 64 for int8 r and c
ZERO_FLAG = np.int64(1 << 31)


@njit(cache=True, nogil=True, inline="always")
def _shift(r, c, i, cj, use_r):
    """The predicted octave of entry (i, j): (r[i] + c[j] + 2) >> 2 (cj = c[j] or 0)."""
    ri = np.int64(r[i]) if use_r else np.int64(0)
    return (ri + cj + 2) >> 2


@njit(cache=True, nogil=True)
def exponent_fit(u, P, E):
    """Per-row and per-column offsets of the exponent field (a two-way additive fit of the
    exponents of the finite nonzero normal entries), in quarter octaves, clipped to int8:
    (r, c, rows with a normal entry, columns with one)."""
    n, m = u.shape
    emax = np.int64((1 << E) - 1)
    pm = np.uint64(P)
    em = np.uint64(emax)
    rs = np.zeros(n, np.float64)
    rn = np.zeros(n, np.int64)
    cs = np.zeros(m, np.float64)
    cn = np.zeros(m, np.int64)
    total = 0.0
    count = 0
    for i in range(n):
        for j in range(m):
            e = np.int64((np.uint64(u[i, j]) >> pm) & em)
            if 0 < e < emax:
                rs[i] += e
                rn[i] += 1
    for i in range(n):
        total += rs[i]
        count += rn[i]
    mu = total / count if count else 0.0
    a = np.zeros(n, np.float64)
    for i in range(n):
        a[i] = rs[i] / rn[i] - mu if rn[i] else 0.0
    for i in range(n):
        for j in range(m):
            e = np.int64((np.uint64(u[i, j]) >> pm) & em)
            if 0 < e < emax:
                cs[j] += e - a[i]
                cn[j] += 1
    r = np.zeros(n, np.int8)
    c = np.zeros(m, np.int8)
    for i in range(n):
        r[i] = np.int8(min(127.0, max(-127.0, np.round(4.0 * a[i]))))
    for j in range(m):
        b = cs[j] / cn[j] - mu if cn[j] else 0.0
        c[j] = np.int8(min(127.0, max(-127.0, np.round(4.0 * b))))
    return r, c, np.count_nonzero(rn), np.count_nonzero(cn)


@njit(cache=True, nogil=True)
def key_histogram(u, P, nb, t, r, c, use_r, use_c, kmin, size):
    """Counts of the keys at head width t (index key - kmin, ``size`` of them) and of the zero
    class."""
    n, m = u.shape
    counts = np.zeros(size, np.int64)
    zeros = 0
    L = np.uint64(P - t)
    vmask = np.uint64((1 << (nb - 1)) - 1)
    for i in range(n):
        ri = np.int64(r[i]) if use_r else np.int64(0)
        for j in range(m):
            v = np.uint64(u[i, j]) & vmask
            if v == 0:
                zeros += 1
                continue
            cj = np.int64(c[j]) if use_c else np.int64(0)
            key = np.int64(v >> L) - (((ri + cj + 2) >> 2) << t)
            counts[key - kmin] += 1
    return counts, zeros


@njit(cache=True, nogil=True, parallel=True)
def encode_blocks(u, P, nb, t, r, c, use_r, use_c, kmin, lut, freq, cum, sb, bc, scratch,
                  scratch_off, used):
    """rANS-code every block of ``bc`` columns into ``scratch`` (block b writes downwards from
    scratch_off[b + 1]); used[b] = the words it wrote. ``lut[key - kmin]`` is a key's symbol
    (the zero class is symbol 0)."""
    n, m = u.shape
    nblocks = (m + bc - 1) // bc
    L = np.uint64(P - t)
    vmask = np.uint64((1 << (nb - 1)) - 1)
    scale = np.uint64(sb)
    for b in prange(nblocks):
        c0 = b * bc
        c1 = min(m, c0 + bc)
        count = (c1 - c0) * n
        if count == 0:
            used[b] = 0
            continue
        x0 = RANS_L
        x1 = RANS_L
        x2 = RANS_L
        x3 = RANS_L
        pos = scratch_off[b + 1]
        for k in range(count - 1, -1, -1):
            j = c0 + k // n
            i = k - (j - c0) * n
            v = np.uint64(u[i, j]) & vmask
            if v == 0:
                s = 0
            else:
                cj = np.int64(c[j]) if use_c else np.int64(0)
                key = np.int64(v >> L) - (_shift(r, c, i, cj, use_r) << t)
                s = lut[key - kmin]
            f = np.uint64(freq[s])
            st = np.uint64(cum[s])
            lane = k & 3
            if lane == 0:
                x0, pos = rans.put(x0, f, st, scale, scratch, pos)
            elif lane == 1:
                x1, pos = rans.put(x1, f, st, scale, scratch, pos)
            elif lane == 2:
                x2, pos = rans.put(x2, f, st, scale, scratch, pos)
            else:
                x3, pos = rans.put(x3, f, st, scale, scratch, pos)
        pos = rans.flush(x3, scratch, pos)
        pos = rans.flush(x2, scratch, pos)
        pos = rans.flush(x1, scratch, pos)
        pos = rans.flush(x0, scratch, pos)
        used[b] = scratch_off[b + 1] - pos


@njit(cache=True, nogil=True)
def compact(scratch, scratch_off, used, words, word_ptr):
    """Move each block's words (the top ``used[b]`` of its scratch region) next to each
    other."""
    p = 0
    for b in range(used.shape[0]):
        word_ptr[b] = p
        top = scratch_off[b + 1]
        for q in range(top - used[b], top):
            words[p] = scratch[q]
            p += 1
    word_ptr[used.shape[0]] = p


@njit(cache=True, nogil=True, parallel=True)
def pack_tails(u, P, nb, t, tails, chunk):
    """Bit-pack every entry's tail (sign << L | low L bits), column-major, entry k at bit
    k * (L + 1). Parallel over chunks of 64 entries' worth of whole words."""
    n, m = u.shape
    L = np.uint64(P - t)
    w = np.uint64(P - t + 1)
    lowmask = (np.uint64(1) << L) - np.uint64(1)
    top = np.uint64(nb - 1)
    total = n * m
    nchunks = (total + chunk - 1) // chunk
    for q in prange(nchunks):  # chunk is a multiple of 64: chunks start on word boundaries
        k0 = q * chunk
        k1 = min(total, k0 + chunk)
        for k in range(k0, k1):
            j = k // n
            i = k - j * n
            x = np.uint64(u[i, j])
            tail = ((x >> top) << L) | (x & lowmask)
            bit = np.uint64(k) * w
            wi = np.int64(bit >> np.uint64(6))
            off = bit & np.uint64(63)
            tails[wi] |= tail << off
            if off + w > np.uint64(64):
                tails[wi + 1] |= tail >> (np.uint64(64) - off)


_U16 = np.uint64(16)
_U1 = np.uint64(1)


@njit(cache=True, nogil=True, inline="always")
def _step(x, words, p, w1, slots, ent, mask, scale):
    """One rANS decoding step (slot, entry, advance, branch-free renormalization with the
    read clamped to the block's last word w1); all indices unsigned, so that numba adds no
    wraparound code. Returns (state, position, entry)."""
    slot = x & mask
    e = ent[slots[slot]]
    x = (e & np.uint64(0xFFFF)) * (x >> scale) + slot - ((e >> _U16) & np.uint64(0x7FFF))
    need = np.uint64(x < RANS_L)
    w = np.uint64(words[min(p, w1)])
    x = (x << (need << np.uint64(4))) | (w & (np.uint64(0) - need))
    return x, p + need, e


@njit(cache=True, nogil=True, inline="always")
def _value(e, sh, L, lowmask, top, tail):
    """The bit pattern of an entry from its decoding entry ``e``, its octave shift in head
    units ``sh`` and its tail; and its head (out of range means corrupt input)."""
    z = (e >> np.uint64(31)) & _U1
    head = ((e >> np.uint64(32)) + (sh & (z - _U1))) & np.uint64(0xFFFFFFFF)  # mod 2^32
    return (head << L) | (tail & lowmask) | ((tail >> L) << top), head


@njit(cache=True, nogil=True, inline="always")
def _tail(tails, k, w, wmask):
    """Tail k: w bits at bit k * w (two words read; the stream has a spare word)."""
    bit = k * w
    wi = bit >> np.uint64(6)
    off = bit & np.uint64(63)
    return ((tails[wi] >> off) | ((tails[wi + _U1] << _U1) << (np.uint64(63) - off))) & wmask


@njit(cache=True, nogil=True, inline="always")
def _octave(r, c4, i, tt):
    return np.uint64((np.int64(r[i]) + c4) >> 2) << tt


@njit(cache=True, nogil=True)
def _decode_block(b, words, word_ptr, tails, slots, ent, sb, P, E, nb, t, r, c, n, m, bc,
                  out, o0):
    """Decode block b into out[o0:o0 + its entries] (column-major bit patterns); ``r`` and
    ``c`` hold an offset per row and column (zeros for an unused axis). Returns OK or
    CORRUPT."""
    c0 = b * bc
    c1 = min(m, c0 + bc)
    count = (c1 - c0) * n
    w0 = np.uint64(word_ptr[b])
    wend = np.uint64(word_ptr[b + 1])
    if count == 0:
        return OK if wend == w0 else CORRUPT
    if wend - w0 < np.uint64(8):
        return CORRUPT
    w1 = wend - _U1
    scale = np.uint64(sb)
    mask = (_U1 << scale) - _U1
    L = np.uint64(P - t)
    w = np.uint64(P - t + 1)
    wmask = (_U1 << w) - _U1
    lowmask = (_U1 << L) - _U1
    top = np.uint64(nb - 1)
    tt = np.uint64(t)
    x0 = (np.uint64(words[w0]) << _U16) | np.uint64(words[w0 + _U1])
    x1 = (np.uint64(words[w0 + np.uint64(2)]) << _U16) | np.uint64(words[w0 + np.uint64(3)])
    x2 = (np.uint64(words[w0 + np.uint64(4)]) << _U16) | np.uint64(words[w0 + np.uint64(5)])
    x3 = (np.uint64(words[w0 + np.uint64(6)]) << _U16) | np.uint64(words[w0 + np.uint64(7)])
    p = w0 + np.uint64(8)
    heads = np.uint64(0)
    k = np.uint64(c0 * n)          # the entry's index in the matrix (for its tail)
    ko = np.uint64(o0)             # its place in out
    lane = np.uint64(0)            # its state: its index in the block, mod 4
    nn = np.uint64(n)
    for j in range(c0, c1):
        c4 = np.int64(c[j]) + 2
        i = np.uint64(0)
        while i < nn:
            if lane == np.uint64(0) and i + np.uint64(4) <= nn:
                x0, p, e0 = _step(x0, words, p, w1, slots, ent, mask, scale)
                x1, p, e1 = _step(x1, words, p, w1, slots, ent, mask, scale)
                x2, p, e2 = _step(x2, words, p, w1, slots, ent, mask, scale)
                x3, p, e3 = _step(x3, words, p, w1, slots, ent, mask, scale)
                v0, h0 = _value(e0, _octave(r, c4, i, tt), L, lowmask, top,
                                _tail(tails, k, w, wmask))
                v1, h1 = _value(e1, _octave(r, c4, i + _U1, tt), L, lowmask, top,
                                _tail(tails, k + _U1, w, wmask))
                v2, h2 = _value(e2, _octave(r, c4, i + np.uint64(2), tt), L, lowmask, top,
                                _tail(tails, k + np.uint64(2), w, wmask))
                v3, h3 = _value(e3, _octave(r, c4, i + np.uint64(3), tt), L, lowmask, top,
                                _tail(tails, k + np.uint64(3), w, wmask))
                out[ko] = v0
                out[ko + _U1] = v1
                out[ko + np.uint64(2)] = v2
                out[ko + np.uint64(3)] = v3
                heads |= h0 | h1 | h2 | h3
                i += np.uint64(4)
                k += np.uint64(4)
                ko += np.uint64(4)
                continue
            if lane == np.uint64(0):
                x0, p, e = _step(x0, words, p, w1, slots, ent, mask, scale)
            elif lane == _U1:
                x1, p, e = _step(x1, words, p, w1, slots, ent, mask, scale)
            elif lane == np.uint64(2):
                x2, p, e = _step(x2, words, p, w1, slots, ent, mask, scale)
            else:
                x3, p, e = _step(x3, words, p, w1, slots, ent, mask, scale)
            v, h = _value(e, _octave(r, c4, i, tt), L, lowmask, top, _tail(tails, k, w, wmask))
            out[ko] = v
            heads |= h
            lane = (lane + _U1) & np.uint64(3)
            i += _U1
            k += _U1
            ko += _U1
    if ((heads >> np.uint64(E + t)) != 0 or p != wend or x0 != RANS_L or x1 != RANS_L
            or x2 != RANS_L or x3 != RANS_L):
        return CORRUPT
    return OK


@njit(cache=True, nogil=True, parallel=True)
def decode_blocks(words, word_ptr, tails, slots, ent, sb, P, E, nb, t, r, c, n, m, bc, b_lo,
                  b_hi, out, status):
    """Decode blocks [b_lo, b_hi) into ``out`` (column-major bit patterns of their columns,
    as the output's unsigned type; ``status``: one int64 per block, scratch); returns the
    first corrupt block or -1."""
    nb_ = b_hi - b_lo
    for q in prange(nb_):
        b = b_lo + q
        o0 = (b * bc - b_lo * bc) * n
        status[q] = _decode_block(b, words, word_ptr, tails, slots, ent, sb, P, E, nb, t, r,
                                  c, n, m, bc, out, o0)
    for q in range(nb_):
        if status[q] != OK:
            return b_lo + q
    return -1


@njit(cache=True, nogil=True)
def put_varints(values, out, pos):
    """LEB128 of each non-negative value into out[pos:]; returns the new pos."""
    for q in range(values.shape[0]):
        v = np.uint64(values[q])
        while v >= np.uint64(0x80):
            out[pos] = np.uint8((v & np.uint64(0x7F)) | np.uint64(0x80))
            v >>= np.uint64(7)
            pos += 1
        out[pos] = np.uint8(v)
        pos += 1
    return pos


@njit(cache=True, nogil=True)
def get_varints(data, count, out):
    """Read ``count`` LEB128 values of at most 35 bits from ``data`` into ``out``; returns
    the bytes read, or -1 when the data ends early or a value is too long."""
    pos = 0
    for q in range(count):
        v = np.uint64(0)
        sh = np.uint64(0)
        while True:
            if pos >= data.shape[0] or sh > np.uint64(28):
                return -1
            b = np.uint64(data[pos])
            pos += 1
            v |= (b & np.uint64(0x7F)) << sh
            sh += np.uint64(7)
            if b < np.uint64(0x80):
                break
        out[q] = np.int64(v)
    return pos
