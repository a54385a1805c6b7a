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
then W[1, c0..c1), ...), so a block decodes straight into row segments of a row-major matrix.
A block is an rANS stream of ``lanes`` interleaved states (32, or 64 in a large matrix; entry
k of a block uses state k % lanes) over one static table (:mod:`sparsecodec.coding.rans`), and
the tails of its nonzero entries from word ``tail_ptr[b]`` of ``tails``, in ``TAIL_LANES``
lanes of words (the r-th tail in lane r % TAIL_LANES, at bit (r // TAIL_LANES) * w of the
lane): sixteen entries of a row share a word row and a shift.

Coding and decoding run vector loops (:mod:`kernels.simd`) with scalar loops for what they
leave. Decoding makes two passes per block: the rANS pass writes each entry's slot; the
value pass turns slots and tails into bit patterns. Decoding tables, per slot: ``fb``
(uint32: freq | (slot - cum) << 16), ``symt`` (its symbol) and ``vslot`` (its symbol's
key << L, uint32); per symbol: ``vbase`` (key << L, or a zero class's bits) and ``nzm`` (all
ones for a key, 0 for a zero class).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..coding import rans
from ..coding.information import counts_information
from ..coding.rans import RANS_L
from ..status import CORRUPT, OK
from .simd import (
    WIDTH,
    float_values,
    float_values_zeros,
    pack_tail_groups,
    rans_encode_32,
    rans_encode_64,
    rans_lanes_32,
    rans_lanes_64,
    segment_keys,
)

_U1 = np.uint64(1)
SHIFT_RANGE = 64  # |(r + c + 2) >> 2| <= 64 for int8 r and c
TAIL_LANES = WIDTH  # the tails of a block are interleaved in as many lanes as a vector has
FIT_RUN = 16  # consecutive columns the exponent fit's row means read at a time


@njit(cache=True, nogil=True)
def exponent_fit(u, P, E, cstep, rstep):
    """Per-row and per-column offsets of the exponent field (a two-way additive fit of the
    exponents of the finite nonzero normal entries), in quarter octaves, clipped to int8:
    (r, c, rows with a normal entry, columns with one). The row means read runs of
    ``FIT_RUN`` columns, one run in every ``cstep`` (the same columns in every row); the
    column means every ``rstep``-th row (the fit is the writer's choice: a sample of a few
    hundred entries a row or column is enough). Branch-free, so that the loops vectorize."""
    n, m = u.shape
    emax = np.int64((1 << E) - 1)
    pm = np.uint64(P)
    em = np.uint64(emax)
    rs = np.zeros(n, np.float64)
    rn = np.zeros(n, np.int64)
    cs = np.zeros(m, np.float64)
    cn = np.zeros(m, np.int64)
    for i in range(n):
        s = 0
        k = 0
        for j0 in range(0, m, FIT_RUN * cstep):
            for j in range(j0, min(m, j0 + FIT_RUN)):
                e = np.int64((np.uint64(u[i, j]) >> pm) & em)
                ok = np.int64(0 < e) & np.int64(e < emax)
                s += ok * e
                k += ok
        rs[i] = s
        rn[i] = k
    total = 0.0
    count = 0
    for i in range(n):
        total += rs[i]
        count += rn[i]
    mu = total / count if count else 0.0
    a = np.zeros(n, np.float64)
    for i in range(n):
        a[i] = rs[i] / rn[i] - mu if rn[i] else 0.0
    for i in range(0, n, rstep):
        ai = a[i]
        for j in range(m):
            e = np.int64((np.uint64(u[i, j]) >> pm) & em)
            ok = np.int64(0 < e) & np.int64(e < emax)
            cs[j] += ok * (e - ai)
            cn[j] += ok
    r = np.zeros(n, np.int8)
    c = np.zeros(m, np.int8)
    for i in range(n):
        r[i] = np.int8(min(127.0, max(-127.0, np.round(4.0 * a[i]))))
    for j in range(m):
        b = cs[j] / cn[j] - mu if cn[j] else 0.0
        c[j] = np.int8(min(127.0, max(-127.0, np.round(4.0 * b))))
    return r, c, np.count_nonzero(rn), np.count_nonzero(cn)


@njit(cache=True, nogil=True)
def key_counts(u, P, nb, t, r, c, kmin, size, bc, keys, vector):
    """The counts of the keys at head width t with offsets ``r`` and ``c`` (index
    key - kmin), of +0.0 and -0.0, and each block's entries that have tails; and every
    entry's key index (``size`` + sign for a zero) into ``keys`` (uint16), in block order
    (block b from c0 * n, its entries row by row). A row segment of a block at a time: its
    key indices (the vector loop :func:`simd.segment_keys` when ``vector``), then their
    counts, into four histograms by position so that equal keys in a row do not wait for
    each other's increments."""
    n, m = u.shape
    counts4 = np.zeros((4, size + 2), np.int64)  # the zero classes at size and size + 1
    nblocks = (m + bc - 1) // bc if m else 0
    tailed = np.zeros(nblocks, np.int64)
    L = np.uint64(P - t)
    vmask = np.uint64((1 << (nb - 1)) - 1)
    top = np.uint64(nb - 1)
    for i in range(n):
        ri = np.int64(r[i]) + 2
        for b in range(nblocks):
            c0 = b * bc
            width = min(m, c0 + bc) - c0
            base = c0 * n + i * width
            if vector:
                zeros = segment_keys(u, i, c0, width, c, ri, P - t, t, kmin, size, keys, base)
            else:
                zeros = 0
                for j in range(c0, c0 + width):
                    x = np.uint64(u[i, j])
                    v = x & vmask
                    if v == 0:
                        zeros += 1
                        keys[base + j - c0] = np.uint16(size + np.int64(x >> top))
                    else:
                        keys[base + j - c0] = np.uint16(
                            np.int64(v >> L) - kmin - (((ri + np.int64(c[j])) >> 2) << t))
            tailed[b] += width - zeros
            end = base + width
            for q in range(base, end - 3, 4):
                counts4[0, keys[q]] += 1
                counts4[1, keys[q + 1]] += 1
                counts4[2, keys[q + 2]] += 1
                counts4[3, keys[q + 3]] += 1
            for q in range(end - width % 4, end):
                counts4[0, keys[q]] += 1
    counts = counts4[0] + counts4[1] + counts4[2] + counts4[3]
    return counts[:size], counts[size:], tailed


@njit(cache=True, nogil=True)
def key_histograms(u, P, nb, t, r, c, kmin, size, vector):
    """In one pass: the counts of the keys at head width t (index key - kmin, ``size`` of
    them) with no offsets, row offsets, column offsets and both (rows of ``counts``), and the
    counts of +0.0 and -0.0. With ``vector``, a row's four key rows come from
    :func:`simd.segment_keys`, then are counted."""
    n, m = u.shape
    counts = np.zeros((4, size + 2), np.int64)  # the zero classes at size and size + 1
    L = np.uint64(P - t)
    vmask = np.uint64((1 << (nb - 1)) - 1)
    top = np.uint64(nb - 1)
    if vector:
        flat = np.zeros(m, np.int8)
        rows = np.empty((4, m), np.uint16)
        for i in range(n):
            ri = np.int64(r[i]) + 2
            segment_keys(u, i, 0, m, flat, 2, P - t, t, kmin, size, rows[0], 0)
            segment_keys(u, i, 0, m, flat, ri, P - t, t, kmin, size, rows[1], 0)
            segment_keys(u, i, 0, m, c, 2, P - t, t, kmin, size, rows[2], 0)
            segment_keys(u, i, 0, m, c, ri, P - t, t, kmin, size, rows[3], 0)
            for j in range(m):
                counts[0, rows[0, j]] += 1
                counts[1, rows[1, j]] += 1
                counts[2, rows[2, j]] += 1
                counts[3, rows[3, j]] += 1
        return counts[:, :size], counts[0, size:].copy()
    for i in range(n):
        ri = np.int64(r[i])
        for j in range(m):
            x = np.uint64(u[i, j])
            v = x & vmask
            if v == 0:
                counts[0, size + np.int64(x >> top)] += 1
                continue
            h = np.int64(v >> L) - kmin
            cj = np.int64(c[j])
            counts[0, h - ((2 >> 2) << t)] += 1
            counts[1, h - (((ri + 2) >> 2) << t)] += 1
            counts[2, h - (((cj + 2) >> 2) << t)] += 1
            counts[3, h - (((ri + cj + 2) >> 2) << t)] += 1
    return counts[:, :size], counts[0, size:].copy()


@njit(cache=True, nogil=True)
def scale_bits_for(count, nsym):
    """rANS precision: 12 bits below 2^16 entries, 13 below 2^20, else 15; more when the
    symbols need it (at most 15)."""
    sb = 12 if count < 1 << 16 else 13 if count < 1 << 20 else 15
    need = 0
    x = max(1, nsym - 1)
    while x:
        need += 1
        x >>= 1
    return max(sb, min(15, need))


@njit(cache=True, nogil=True, inline="always")
def _varint_bytes(v):
    v = max(v, 1)
    return 1 + (v >= 1 << 7) + (v >= 1 << 14) + (v >= 1 << 21) + (v >= 1 << 28)


@njit(cache=True, nogil=True)
def choice_costs(by_axes, zeros, P, top, count, scale, extra):
    """The estimated bytes of each choice of axes (rows of ``by_axes``: the key counts of a
    sample at head width ``top``, index key - lo(top)) and head width t = 0 .. top: the
    information of the keys and zeros (scaled by ``scale``, entries per sampled entry), the
    tails (P - t + 1 bits per nonzero of the ``count`` entries), the table (key deltas and
    frequencies as varints) and the offsets (``extra``[axes] bytes); inf where a choice
    would have more than 2^15 symbols. Narrower heads merge 2^(top - t) adjacent keys."""
    nax = by_axes.shape[0]
    out = np.full((nax, top + 1), np.inf)
    zsum = zeros[0] + zeros[1]
    merged = np.zeros(by_axes.shape[1] + 2, np.int64)
    for a in range(nax):
        for t in range(top + 1):
            d = top - t
            size = by_axes.shape[1] >> d
            lo = -(SHIFT_RANGE << t)
            merged[:] = 0
            for q in range(by_axes.shape[1]):
                merged[q >> d] += by_axes[a, q]
            merged[size] = zeros[0]
            merged[size + 1] = zeros[1]
            nkeys = 0
            table = 0
            prev = 0
            for k in range(size):
                if merged[k] > 0:
                    key = k + lo
                    table += _varint_bytes(key - prev - 1 if nkeys else 2 * abs(key))
                    prev = key
                    nkeys += 1
            nsym = nkeys + (zeros[0] > 0) + (zeros[1] > 0)
            if nsym > 1 << 15:
                continue
            sb = scale_bits_for(count, nsym)
            if nkeys:
                table += nsym * (1 + ((1 << sb) // max(nsym, 1) >= 128))
            else:  # no keys: the frequencies alone
                table = nsym * _varint_bytes(1 << sb)
            info = counts_information(merged[:size + 2])
            out[a, t] = (scale * info / 8 + (count - scale * zsum) * (P - t + 1) / 8
                         + table + extra[a])
    return out


@njit(cache=True, nogil=True, inline="always")
def _code(x, f, rcp, start, scale, words, pos):
    """:func:`rans.put` with the division by ``f`` done through its float reciprocal
    ``rcp`` and corrected to the exact quotient (x < 2^32, so the product is off by at
    most one), and a branch-free renormalization: the state's low word is always written
    below ``pos``, which moves only when the word is needed (else the next one overwrites
    it)."""
    need = np.uint64(x >= ((RANS_L >> scale) << np.uint64(16)) * f)
    words[pos - 1] = np.uint16(x & np.uint64(0xFFFF))
    pos -= np.int64(need)
    x >>= need << np.uint64(4)
    q = np.int64(np.float64(x) * rcp)
    rem = np.int64(x) - q * np.int64(f)
    if rem >= np.int64(f):
        q += 1
        rem -= np.int64(f)
    elif rem < 0:
        q -= 1
        rem += np.int64(f)
    return (np.uint64(q) << scale) + np.uint64(rem) + start, pos


@njit(cache=True, nogil=True, inline="always")
def _code_entries(kb, fck, xs, words, pos, hi, lo, scale, lanes):
    """Code entries hi - 1 down to lo of a block (key indices ``kb``) into their states
    ``xs`` (entry k: state k % lanes); returns the new pos."""
    for k in range(hi - 1, lo - 1, -1):
        fc = np.uint64(fck[kb[k]])
        f = fc & np.uint64(0xFFFF)
        lane = k % lanes
        x, pos = _code(np.uint64(xs[lane]), f, 1.0 / np.float64(f), fc >> _U16, scale, words,
                       pos)
        xs[lane] = np.uint32(x)
    return pos


@njit(cache=True, nogil=True, parallel=True)
def encode_blocks(keys, fck, sb, n, m, bc, scratch, scratch_off, used, lanes, vector):
    """rANS-code every block of ``bc`` columns into ``scratch`` (block b writes downwards from
    scratch_off[b + 1]); used[b] = the words it wrote. ``keys``: every entry's key index in
    block order (:func:`key_counts`); ``fck[index]``: its symbol's freq | cum << 16. Per
    block: the last entries that do not fill a group of ``lanes`` (scalar), then the groups (the
    vector loop when ``vector``; the scalar loop codes what it leaves)."""
    nblocks = (m + bc - 1) // bc
    scale = np.uint64(sb)
    for b in prange(nblocks):
        c0 = b * bc
        count = (min(m, c0 + bc) - c0) * n
        if count == 0:
            used[b] = 0
            continue
        kb = keys[c0 * n:c0 * n + count]
        words = scratch[scratch_off[b]:scratch_off[b + 1]]
        xs = np.full(lanes, RANS_L, np.uint32)
        pos = words.shape[0]
        full = count - count % lanes
        pos = _code_entries(kb, fck, xs, words, pos, count, full, scale, lanes)  # past groups
        io = np.array([pos, full], np.int64)
        if vector and lanes == 64:
            rans_encode_64(kb, fck, xs, words, io, sb)
        elif vector:
            rans_encode_32(kb, fck, xs, words, io, sb)
        pos = _code_entries(kb, fck, xs, words, io[0], io[1], 0, scale, lanes)  # what it left
        for lane in range(lanes - 1, -1, -1):  # state 0 first in the stream
            pos = rans.flush(np.uint64(xs[lane]), words, pos)
        used[b] = words.shape[0] - pos


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


@njit(cache=True, nogil=True, inline="always")
def tail_words(tailed, w, ubits):
    """The words (``ubits`` wide) a block of ``tailed`` tails of ``w`` bits takes: TAIL_LANES
    lanes of ceil(ceil(tailed / TAIL_LANES) * w / ubits) words each."""
    groups = (tailed + TAIL_LANES - 1) // TAIL_LANES
    return TAIL_LANES * ((groups * w + ubits - 1) // ubits)


@njit(cache=True, nogil=True, parallel=True)
def pack_tails(u, P, nb, t, bc, tails, tail_ptr, tailed, vector):
    """Bit-pack the tails (sign << L | low L bits) of every block's nonzero entries, row by
    row within the block, block b from word tail_ptr[b] of ``tails`` (zeros; uint32 words,
    uint64 for float64): the r-th tail of a block goes to lane r % TAIL_LANES at bit
    (r // TAIL_LANES) * w of the lane, whose word q is tails[tail_ptr[b] + q * TAIL_LANES +
    lane]. ``tailed``: each block's entries with a tail; a block without zeros whose width is
    a multiple of TAIL_LANES is packed by the vector loop when ``vector``."""
    n, m = u.shape
    nblocks = (m + bc - 1) // bc
    L = np.uint64(P - t)
    w = np.uint64(P - t + 1)
    ubits = np.uint64(tails.itemsize * 8)
    ushift = np.uint64(5 if tails.itemsize == 4 else 6)
    umask = ubits - _U1
    lowmask = (np.uint64(1) << L) - np.uint64(1)
    vmask = np.uint64((1 << (nb - 1)) - 1)
    top = np.uint64(nb - 1)
    lanes = np.uint64(TAIL_LANES)
    for b in prange(nblocks):
        base = np.uint64(tail_ptr[b])
        c0 = b * bc
        width = min(m, c0 + bc) - c0
        if vector and nb <= 32 and width % TAIL_LANES == 0 and tailed[b] == width * n:
            pack_tail_groups(u, c0, n, width, tails, base, w, L, top)
            continue
        rank = np.uint64(0)
        for i in range(n):
            for j in range(b * bc, min(m, b * bc + bc)):
                x = np.uint64(u[i, j])
                if x & vmask == 0:
                    continue
                tail = ((x >> top) << L) | (x & lowmask)
                at = (rank // lanes) * w
                s = at & umask
                idx = base + (at >> ushift) * lanes + (rank % lanes)
                tails[idx] |= tail << s
                if s + w > ubits:
                    tails[idx + lanes] |= tail >> (ubits - s)
                rank += _U1


_U16 = np.uint64(16)


@njit(cache=True, nogil=True)
def _slots_pass(words, w0, wend, fb, sb, count, slots, states, io, vector, zend):
    """The rANS pass of a block: the slot of each of its ``count`` entries into ``slots``
    (``states``: the block's 32 or 64 uint32 states, ``io``: 3 int64, scratch), by the vector
    loop when ``vector``, and the scalar loop; io[2] = the slots below ``zend`` (zero
    classes). Returns True when the states end where the encoder started and every word of
    the block was read."""
    lanes = states.shape[0]
    if wend - w0 < np.uint64(2 * lanes):
        return False
    block = words[w0:wend]  # the vector loop reads up to its end, never past it
    nw = np.int64(block.shape[0])
    for lane in range(lanes):
        states[lane] = np.uint32((np.uint32(block[2 * lane]) << np.uint32(16))
                                 | np.uint32(block[2 * lane + 1]))
    io[0] = 2 * lanes
    io[1] = 0
    io[2] = 0
    if vector and lanes == 64:
        rans_lanes_64(block, fb, states, slots, io, count, sb, zend)
    elif vector:
        rans_lanes_32(block, fb, states, slots, io, count, sb, zend)
    p = io[0]
    scale = np.uint64(sb)
    mask = (_U1 << scale) - _U1
    for k in range(io[1], count):  # what the vector loop left: the block's last entries
        lane = k % lanes
        x = np.uint64(states[lane])
        slot = x & mask
        f = np.uint64(fb[slot])
        slots[k] = np.uint16(slot)
        io[2] += np.int64(slot < np.uint64(zend))
        x = (f & np.uint64(0xFFFF)) * (x >> scale) + (f >> _U16)
        need = np.uint64(x < RANS_L)
        w = np.uint64(block[min(p, nw - 1)])
        states[lane] = np.uint32((x << (need << np.uint64(4))) | (w & (np.uint64(0) - need)))
        p += np.int64(need)
    ok = p == nw
    for lane in range(lanes):
        ok = ok and np.uint64(states[lane]) == RANS_L
    return ok


@njit(cache=True, nogil=True, inline="always")
def _tail(tails, base, rank, w, ushift, last):
    """The ``rank``-th tail of the block whose tails start at tails[base] (its words clamped
    to ``last``): lane rank % TAIL_LANES, bit (rank // TAIL_LANES) * w of the lane."""
    lanes = np.uint64(TAIL_LANES)
    ubits = _U1 << ushift
    at = (rank // lanes) * w
    s = at & (ubits - _U1)
    idx = min(base + (at >> ushift) * lanes + rank % lanes, last)
    hi = np.uint64(tails[min(idx + lanes, last)])
    return ((np.uint64(tails[idx]) >> s) | ((hi << _U1) << (ubits - _U1 - s))) \
        & ((_U1 << w) - _U1)


@njit(cache=True, nogil=True)
def _decode_block(b, words, word_ptr, tails, tail_ptr, fb, symt, vslot, zslots, vbase, nzm, sb,
                  P, nb, t, r, c, plain, n, m, bc, out, o0, rs, slots, states, io, vector):
    """Decode block b into ``out``: entry (i, j) of the block's columns to
    out[o0 + i * rs + (j - first column)] (bit patterns); ``r`` and ``c`` hold an offset per
    row and column (zeros for an axis the file does not store); ``slots``, ``states``, ``io``:
    scratch. Two passes: the rANS states (the slot of every entry), then the values with their
    tails, row by row. ``plain``: the table has no zero class, so entry k's tail is the k-th.
    The values come from a vector loop when ``vector`` and ``vslot`` is given: the one for
    blocks without zeros (the rANS pass counts them) whose width is a multiple of the
    vector's, else the one that places the tails around zeros and masks the rows' last
    vectors (``zslots``: where the slots of the zero classes end, and of +0.0). Else (float64,
    no vector loops) from the scalar loop. Returns OK or CORRUPT."""
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
    ushift = np.uint64(5 if tails.itemsize == 4 else 6)
    full = tend - t0 == tail_words(np.uint64(count), w, _U1 << ushift)
    if plain and not full:
        return CORRUPT  # every entry has a tail: the block's words are known
    if not _slots_pass(words, w0, wend, fb, sb, count, slots, states, io, vector, zslots[0]):
        return CORRUPT
    L = np.uint64(P - t)
    lowmask = (_U1 << L) - _U1
    top = np.uint64(nb - 1)
    ubits = _U1 << ushift
    if vector and vslot.shape[0] > 0:
        if io[2] == 0 and width % WIDTH == 0:  # no zero in the block: entry k has tail k
            if not full:
                return CORRUPT
            mags = np.uint64(float_values(slots, vslot, r, c, c0, n, width, tails, t0, w, L,
                                          P, top, out, o0, rs))
            return OK if (mags >> top) == 0 else CORRUPT
        if np.uint64(tails.shape[0]) - t0 >= np.uint64(2 * WIDTH):
            mags = np.uint64(float_values_zeros(slots, vslot, r, c, c0, n, width, tails, t0,
                                                w, L, P, top, out, o0, rs, zslots[0],
                                                zslots[1], io))
            if (mags >> top) != 0 or tail_words(np.uint64(io[0]), w, ubits) != tend - t0:
                return CORRUPT
            return OK
    last = np.uint64(tails.shape[0] - 1)
    tl_ = np.uint64(P)              # an octave is 1 << P in the magnitude's bits
    mags = np.uint64(0)             # the OR of every magnitude (its top bit must stay clear)
    k = 0
    rank = np.uint64(0)             # the entries with a tail so far
    for i in range(n):
        ri = np.int64(r[i]) + 2
        ko = np.uint64(o0 + i * rs)
        for jj in range(width):
            e = symt[slots[k]]
            nz = nzm[e]
            tl = _tail(tails, t0, rank, w, ushift, last)
            hv = (vbase[e] + (np.uint64((ri + np.int64(c[c0 + jj])) >> 2) << tl_)) & nz
            out[ko + np.uint64(jj)] = hv | (vbase[e] & ~nz) | (((tl & lowmask)
                                                               | ((tl >> L) << top)) & nz)
            mags |= hv
            rank += _U1 & nz
            k += 1
    if (mags >> top) != 0 or tail_words(rank, w, ubits) != tend - t0:
        return CORRUPT
    return OK


@njit(cache=True, nogil=True, parallel=True)
def decode_blocks(words, word_ptr, tails, tail_ptr, fb, symt, vslot, zslots, vbase, nzm, sb, P,
                  nb, t, r, c, plain, n, m, bc, b_lo, b_hi, out, rs, status, lanes, vector):
    """Decode blocks [b_lo, b_hi) into ``out`` (bit patterns, as the output's unsigned
    type): entry (i, j) to out[i * rs + j - b_lo * bc], a row-major array ``rs`` wide.
    ``status``: one int64 per block, scratch; ``vector``: use the vector loops. Returns the
    first corrupt block or -1."""
    nb_ = b_hi - b_lo
    for q in prange(nb_):
        b = b_lo + q
        o0 = b * bc - b_lo * bc
        slots = np.empty(bc * n, np.uint16)
        states = np.empty(lanes, np.uint32)  # the block's rANS states
        io = np.empty(3, np.int64)
        status[q] = _decode_block(b, words, word_ptr, tails, tail_ptr, fb, symt, vslot, zslots,
                                  vbase, nzm, sb, P, nb, t, r, c, plain, n, m, bc, out, o0, rs,
                                  slots, states, io, vector)
    for q in range(nb_):
        if status[q] != OK:
            return b_lo + q
    return -1


@njit(cache=True, nogil=True, parallel=True)
def zero_counts(words, word_ptr, fb, sb, n, m, bc, zslots, counts, status, lanes, vector):
    """Per block, the entries of +0.0 and -0.0 (counts[b, sign]), from the rANS pass alone:
    the zero classes' slots end at zslots[0], +0.0's at zslots[1]. ``status``: one int64 per
    block, scratch. Returns the first corrupt block or -1."""
    nblocks = counts.shape[0]
    for b in prange(nblocks):
        count = (min(m, b * bc + bc) - b * bc) * n
        w0 = np.uint64(word_ptr[b])
        wend = np.uint64(word_ptr[b + 1])
        if count == 0:
            status[b] = OK if wend == w0 else CORRUPT
            continue
        slots = np.empty(count, np.uint16)
        io = np.empty(3, np.int64)
        if not _slots_pass(words, w0, wend, fb, sb, count, slots, np.empty(lanes, np.uint32),
                           io, vector, zslots[0]):
            status[b] = CORRUPT
            continue
        status[b] = OK
        plus = 0
        for k in range(count):
            plus += np.int64(slots[k]) < zslots[1]
        counts[b, 0] = plus
        counts[b, 1] = io[2] - plus
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
