"""Kernels of ``float_ans``: unquantized floats split into a coded head and a raw tail.

Every entry's bit pattern u (``nb`` bits: sign, ``E`` exponent bits, ``P`` mantissa bits) is
cut at ``L = P - t`` bits: the magnitude v = u without its sign; the head ``v >> L`` (the
exponent and the top ``t`` mantissa bits, a log-scale class of |x|) is rANS-coded; the tail
``sign << L | (v & (2^L - 1))`` (``L + 1`` bits, nearly random in trained weights) is stored
as it is, bit-packed. The head is coded as a key: ``head - (s << t)``, where ``s`` is the
entry's predicted octave, ``(r[i] + c[j] + 2) >> 2`` from per-row and per-column offsets in
quarter octaves (``r``, ``c``: int8, zeros for an axis the format does not use), so that one
table serves rows and columns of different scales. +0.0 and -0.0 are symbols of their own
(the zero classes, first in the table when present) and have no tail.

Blocks are ``bc`` whole columns; within a block entries are taken row by row (W[0, c0..c1),
then W[1, c0..c1), ...), so a block decodes straight into row segments of a row-major
matrix. A block is an rANS stream of 4 interleaved states (entry k of a block uses state
k % 4) over one static table (:mod:`sparsecodec.coding.rans`), and a bitstream of the tails
of its nonzero entries, in order, starting on a word of ``tails`` (``tail_ptr[b]``).

A decoding entry per symbol (uint64): ``freq | cum << 16 | zero << 31 | key << 32``; a zero
class's key is its sign.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..coding import rans
from ..coding.rans import RANS_L
from ..status import CORRUPT, OK

SHIFT_RANGE = 64  # |(r + c + 2) >> 2| <= 64 for int8 r and c


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
def key_histograms(u, P, nb, t, r, c, kmin, size, bc):
    """In one pass: the counts of the keys at head width t (index key - kmin, ``size`` of
    them) with no offsets, row offsets, column offsets and both (rows of ``counts``); the
    counts of +0.0 and -0.0; and each block's entries that are not zeros (they have tails)."""
    n, m = u.shape
    counts = np.zeros((4, size), np.int64)
    zeros = np.zeros(2, np.int64)
    tailed = np.zeros((m + bc - 1) // bc if m else 0, np.int64)
    L = np.uint64(P - t)
    vmask = np.uint64((1 << (nb - 1)) - 1)
    top = np.uint64(nb - 1)
    for i in range(n):
        ri = np.int64(r[i])
        for j in range(m):
            x = np.uint64(u[i, j])
            v = x & vmask
            if v == 0:
                zeros[np.int64(x >> top)] += 1
                continue
            tailed[j // bc] += 1
            h = np.int64(v >> L) - kmin
            cj = np.int64(c[j])
            counts[0, h - ((2 >> 2) << t)] += 1
            counts[1, h - (((ri + 2) >> 2) << t)] += 1
            counts[2, h - (((cj + 2) >> 2) << t)] += 1
            counts[3, h - (((ri + cj + 2) >> 2) << t)] += 1
    return counts, zeros, tailed


@njit(cache=True, nogil=True, inline="always")
def _code(x, f, rcp, start, scale, words, pos):
    """:func:`rans.put` with the division by ``f`` done through its float reciprocal
    ``rcp`` and corrected to the exact quotient (x < 2^32, so the product is off by at
    most one)."""
    if x >= ((RANS_L >> scale) << np.uint64(16)) * f:
        pos -= 1
        words[pos] = np.uint16(x & np.uint64(0xFFFF))
        x >>= np.uint64(16)
    q = np.int64(np.float64(x) * rcp)
    rem = np.int64(x) - q * np.int64(f)
    if rem >= np.int64(f):
        q += 1
        rem -= np.int64(f)
    elif rem < 0:
        q -= 1
        rem += np.int64(f)
    return (np.uint64(q) << scale) + np.uint64(rem) + start, pos


@njit(cache=True, nogil=True, parallel=True)
def encode_blocks(u, P, nb, t, r, c, kmin, lut, zsym, freq, cum, sb, bc, scratch, scratch_off,
                  used):
    """rANS-code every block of ``bc`` columns into ``scratch`` (block b writes downwards from
    scratch_off[b + 1]); used[b] = the words it wrote. ``r`` and ``c``: an offset per row and
    column (zeros for an axis not stored); ``lut[key - kmin]`` is a key's symbol, zsym[sign]
    the symbol of +0.0 and -0.0."""
    n, m = u.shape
    nblocks = (m + bc - 1) // bc
    L = np.uint64(P - t)
    vmask = np.uint64((1 << (nb - 1)) - 1)
    top = np.uint64(nb - 1)
    scale = np.uint64(sb)
    rcp = 1.0 / np.maximum(freq, 1).astype(np.float64)
    for b in prange(nblocks):
        c0 = b * bc
        c1 = min(m, c0 + bc)
        if (c1 - c0) * n == 0:
            used[b] = 0
            continue
        xs = np.full(4, RANS_L, np.uint64)
        pos = scratch_off[b + 1]
        k = (c1 - c0) * n
        for i in range(n - 1, -1, -1):
            ri = np.int64(r[i]) + 2
            for j in range(c1 - 1, c0 - 1, -1):
                k -= 1
                x = np.uint64(u[i, j])
                v = x & vmask
                if v == 0:
                    s = zsym[np.int64(x >> top)]
                else:
                    key = np.int64(v >> L) - (((ri + np.int64(c[j])) >> 2) << t)
                    s = lut[key - kmin]
                lane = k & 3
                xs[lane], pos = _code(xs[lane], np.uint64(freq[s]), rcp[s], np.uint64(cum[s]),
                                      scale, scratch, pos)
        pos = rans.flush(xs[3], scratch, pos)
        pos = rans.flush(xs[2], scratch, pos)
        pos = rans.flush(xs[1], scratch, pos)
        pos = rans.flush(xs[0], scratch, pos)
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
def pack_tails(u, P, nb, t, bc, tails, tail_ptr):
    """Bit-pack the tails (sign << L | low L bits) of every block's nonzero entries, row by
    row within the block, block b from word tail_ptr[b]."""
    n, m = u.shape
    nblocks = (m + bc - 1) // bc
    L = np.uint64(P - t)
    w = np.uint64(P - t + 1)
    lowmask = (np.uint64(1) << L) - np.uint64(1)
    vmask = np.uint64((1 << (nb - 1)) - 1)
    top = np.uint64(nb - 1)
    for b in prange(nblocks):
        wi = np.int64(tail_ptr[b])
        acc = np.uint64(0)  # bits not yet written, low first
        have = np.uint64(0)  # how many
        for i in range(n):
            for j in range(b * bc, min(m, b * bc + bc)):
                x = np.uint64(u[i, j])
                if x & vmask == 0:
                    continue
                tail = ((x >> top) << L) | (x & lowmask)
                acc |= tail << have  # have < 64
                have += w
                if have >= np.uint64(64):
                    tails[wi] = acc
                    wi += 1
                    have -= np.uint64(64)
                    # the tail's bits that did not fit (none when have == 0)
                    acc = (tail >> (w - have)) if have else np.uint64(0)
        if have:
            tails[wi] = acc


_U16 = np.uint64(16)
_U1 = np.uint64(1)


@njit(cache=True, nogil=True, inline="always")
def _step(x, words, p, w1, slots, mask, scale, ent):
    """One rANS decoding step (slot, symbol, advance, branch-free renormalization with the
    read clamped to the block's last word w1); all indices unsigned, so that numba adds no
    wraparound code. Returns (state, position, symbol)."""
    slot = x & mask
    s = slots[slot]
    e = ent[s]
    x = (e & np.uint64(0xFFFF)) * (x >> scale) + slot - ((e >> _U16) & np.uint64(0x7FFF))
    need = np.uint64(x < RANS_L)
    w = np.uint64(words[min(p, w1)])
    x = (x << (need << np.uint64(4))) | (w & (np.uint64(0) - need))
    return x, p + need, s


@njit(cache=True, nogil=True)
def _symbols(words, w0, wend, slots, ent, sb, count, syms):
    """The rANS pass of a block: the symbols of its ``count`` entries into ``syms``. Returns
    True when the states end where the encoder started and every word was read."""
    if wend - w0 < np.uint64(8):
        return False
    w1 = wend - _U1
    scale = np.uint64(sb)
    mask = (_U1 << scale) - _U1
    x0 = (np.uint64(words[w0]) << _U16) | np.uint64(words[w0 + _U1])
    x1 = (np.uint64(words[w0 + np.uint64(2)]) << _U16) | np.uint64(words[w0 + np.uint64(3)])
    x2 = (np.uint64(words[w0 + np.uint64(4)]) << _U16) | np.uint64(words[w0 + np.uint64(5)])
    x3 = (np.uint64(words[w0 + np.uint64(6)]) << _U16) | np.uint64(words[w0 + np.uint64(7)])
    p = w0 + np.uint64(8)
    full = count - count % 4
    for k in range(0, full, 4):
        x0, p, s0 = _step(x0, words, p, w1, slots, mask, scale, ent)
        x1, p, s1 = _step(x1, words, p, w1, slots, mask, scale, ent)
        x2, p, s2 = _step(x2, words, p, w1, slots, mask, scale, ent)
        x3, p, s3 = _step(x3, words, p, w1, slots, mask, scale, ent)
        syms[k] = s0
        syms[k + 1] = s1
        syms[k + 2] = s2
        syms[k + 3] = s3
    if count - full > 0:
        x0, p, syms[full] = _step(x0, words, p, w1, slots, mask, scale, ent)
    if count - full > 1:
        x1, p, syms[full + 1] = _step(x1, words, p, w1, slots, mask, scale, ent)
    if count - full > 2:
        x2, p, syms[full + 2] = _step(x2, words, p, w1, slots, mask, scale, ent)
    return (p == wend and x0 == RANS_L and x1 == RANS_L and x2 == RANS_L
            and x3 == RANS_L)


@njit(cache=True, nogil=True, inline="always")
def _put(syms, k, vbase, nzm, sh, tails, bit, w, wmask, last, lowmask, L, top):
    """Entry k of a block from its symbol and the tail at ``bit`` (its word clamped to
    ``last``): (its bit pattern, its magnitude without the tail (for the range check; 0 for
    a zero), the bits of tail it used: w or 0)."""
    e = syms[k]
    nz = nzm[e]
    wi = min(bit >> np.uint64(6), last)
    off = bit & np.uint64(63)
    tl = ((tails[wi] >> off) | ((tails[wi + _U1] << _U1) << (np.uint64(63) - off))) & wmask
    hv = (vbase[e] + sh) & nz
    return hv | (vbase[e] & ~nz) | (((tl & lowmask) | ((tl >> L) << top)) & nz), hv, w & nz


@njit(cache=True, nogil=True)
def _decode_block(b, words, word_ptr, tails, tail_ptr, slots, ent, vbase, nzm, sb, P, nb, t,
                  r, c, plain, n, m, bc, out, o0, rs, syms):
    """Decode block b into ``out``: entry (i, j) of the block's columns to
    out[o0 + i * rs + (j - first column)] (bit patterns); ``r`` and ``c`` hold an offset per
    row and column (zeros for an axis the file does not store); ``syms``: scratch for the
    block's symbols. Two passes: the rANS states, then the values with their tails, row by
    row (per symbol: ``vbase``, key << L or a zero's bits, and ``nzm``, all ones for a key, 0
    for a zero; ``plain``: the table has no zero class, so entry k's tail is the k-th).
    Returns OK or CORRUPT."""
    c0 = b * bc
    c1 = min(m, c0 + bc)
    width = c1 - c0
    count = width * n
    w0 = np.uint64(word_ptr[b])
    wend = np.uint64(word_ptr[b + 1])
    t0 = np.uint64(tail_ptr[b])
    tend = np.uint64(tail_ptr[b + 1])
    if count == 0:
        return OK if wend == w0 and tend == t0 else CORRUPT
    w = np.uint64(P - t + 1)
    if plain and tend - t0 != (np.uint64(count) * w + np.uint64(63)) >> np.uint64(6):
        return CORRUPT  # every entry has a tail: the block's words are known
    if not _symbols(words, w0, wend, slots, ent, sb, count, syms):
        return CORRUPT
    # a tail is read as two words from the one its bit falls in: clamped to the block's last
    # word, unless every bit its entries could use lies inside the stream (then a corrupt
    # block reads its neighbour's tails, never past the end)
    last = tend - _U1 if tend > t0 else t0
    if t0 + (np.uint64(count) * w + np.uint64(63)) // np.uint64(64) \
            < np.uint64(tails.shape[0]) - _U1:
        last = np.uint64(tails.shape[0]) - np.uint64(2)
    bit = t0 << np.uint64(6)
    L = np.uint64(P - t)
    wmask = (_U1 << w) - _U1
    lowmask = (_U1 << L) - _U1
    top = np.uint64(nb - 1)
    tl_ = np.uint64(P)              # an octave is 1 << P in the magnitude's bits
    mags = np.uint64(0)             # the OR of every magnitude (its top bit must stay clear)
    k = np.uint64(0)
    uw = np.uint64(width)
    for i in range(n):
        ri = np.int64(r[i]) + 2
        ko = np.uint64(o0 + i * rs)  # the row's place in out
        if plain:  # entry k's tail is at base + k * w, no select, no clamp (checked above)
            b0 = bit
            for jj in range(uw):
                e = syms[k + jj]
                at = b0 + jj * w
                wi = at >> np.uint64(6)
                off = at & np.uint64(63)
                tl = ((tails[wi] >> off) | ((tails[wi + _U1] << _U1) << (np.uint64(63) - off))) \
                    & wmask
                hv = vbase[e] + (np.uint64((ri + np.int64(c[c0 + jj])) >> 2) << tl_)
                out[ko + jj] = hv | (tl & lowmask) | ((tl >> L) << top)
                mags |= hv
            bit += uw * w
            k += uw
            continue
        for jj in range(uw):
            sh = np.uint64((ri + np.int64(c[c0 + jj])) >> 2) << tl_
            v, hv, used = _put(syms, k, vbase, nzm, sh, tails, bit, w, wmask, last, lowmask, L,
                               top)
            out[ko + jj] = v
            mags |= hv
            bit += used
            k += _U1
    if (mags >> top) != 0 or (bit + np.uint64(63)) >> np.uint64(6) != tend:
        return CORRUPT
    return OK


@njit(cache=True, nogil=True, parallel=True)
def decode_blocks(words, word_ptr, tails, tail_ptr, slots, ent, vbase, nzm, sb, P, nb, t, r, c,
                  plain, n, m, bc, b_lo, b_hi, out, rs, status):
    """Decode blocks [b_lo, b_hi) into ``out`` (bit patterns, as the output's unsigned
    type): entry (i, j) to out[i * rs + j - b_lo * bc], a row-major array ``rs`` wide.
    ``status``: one int64 per block, scratch. Returns the first corrupt block or -1."""
    nb_ = b_hi - b_lo
    for q in prange(nb_):
        b = b_lo + q
        o0 = b * bc - b_lo * bc
        syms = np.empty(bc * n, slots.dtype)
        status[q] = _decode_block(b, words, word_ptr, tails, tail_ptr, slots, ent, vbase, nzm,
                                  sb, P, nb, t, r, c, plain, n, m, bc, out, o0, rs, syms)
    for q in range(nb_):
        if status[q] != OK:
            return b_lo + q
    return -1


@njit(cache=True, nogil=True, parallel=True)
def zero_counts(words, word_ptr, slots, ent, sb, n, m, bc, zsym, counts, status):
    """Per block, the entries of each zero class (counts[b, sign]: symbol ``zsym[sign]``,
    -1 when absent), from the rANS pass alone; ``status``: one int64 per block, scratch.
    Returns the first corrupt block or -1."""
    nblocks = counts.shape[0]
    for b in prange(nblocks):
        count = (min(m, b * bc + bc) - b * bc) * n
        w0 = np.uint64(word_ptr[b])
        wend = np.uint64(word_ptr[b + 1])
        if count == 0:
            status[b] = OK if wend == w0 else CORRUPT
            continue
        syms = np.empty(count, slots.dtype)
        if not _symbols(words, w0, wend, slots, ent, sb, count, syms):
            status[b] = CORRUPT
            continue
        status[b] = OK
        for k in range(count):
            for sign in range(2):
                if np.int64(syms[k]) == zsym[sign]:
                    counts[b, sign] += 1
    for b in range(nblocks):
        if status[b] != OK:
            return b
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
