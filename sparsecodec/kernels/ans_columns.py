"""Kernels of ``sham_ans``: the nonzeros of each column of the coded matrix (W, or W^T when
the format codes W's rows) as a stream of (gap, value) symbols coded with static,
context-dependent rANS tables; blocks of columns are independent streams.

Per column: for each nonzero, a gap symbol (the run of zeros before it: ``1 + run`` when
run < R, else an escape class ``1 + R + nb`` followed by ``nb`` raw bits of
``run - R + 1 - 2^nb``, in chunks of at most 16 bits, low chunk first), then its value symbol;
the column ends with gap symbol 0. Every coding step (table symbol or raw chunk) is an "op";
op i of a block uses rANS state i % 4. The coder is :mod:`sparsecodec.coding.rans` (its
inlined primitives and slot tables); this module is the model: the symbols, their contexts
and the walks that decode, check or multiply.

Contexts (see ``formats/sham_ans.md``), with "line" the coded column and "position" the row:
- gap table = (class of the previous run in the line, if ``gap_model & PREV``)
  x (class of the line, if ``gap_model & LINE``) x (class of the nonzeros expected in the rest
  of the line at the matrix's density, if ``gap_model & REM``);
- value table = (previous entry nonzero, if ``value_model & SIG``)
  x (class of the position, if ``POS``) x (class of the line, if ``VLINE``);
- with ``STATE`` (either model), the state of the dependent-quantization machine
  (``kernels.trellis``) walked along the line: the gap table also by the state before the
  run (4), the value table by the quantizer class of the state at the nonzero (2). Each
  symbol's index parity in either class is in ``par`` (bit 0: Q0, bit 1: Q1).

A context the encoder never used decodes to frequency 0 (see ``rans.slot_tables``), which
every walker treats as corrupt.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..coding import rans
from ..coding.huffman import first_bad
from ..coding.rans import LANES, RANS_L
from ..status import CORRUPT, OK, ROW_OUT_OF_RANGE
from .compressed import private_parts, sum_parts
from .trellis import TRANS

PREV, LINE, REM, STATE = 1, 2, 4, 8  # gap_model bits
SIG, POS, VLINE, VSTATE = 1, 2, 4, 8  # value_model bits
NSTATE = 4  # states of the dependent-quantization machine (2 quantizer classes)
NPREV = 7  # column start, then previous run 0, 1, 2-3, 4-7, 8-15, >= 16
NCLASS = 4  # position and line classes
NREM = 4  # classes of the nonzeros expected in the rest of the line
RAW_CHUNK = 16

MODE_CHECK, MODE_SCATTER, MODE_DOT1, MODE_DOT, MODE_TDOT = 0, 1, 2, 3, 4

_PREV_CLASS = np.array([1, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6], np.int64)


@njit(cache=True, nogil=True, inline="always")
def prev_class(prev_run):
    """0 at the start of a column, else 1 + min(bit_length(previous run), 5)."""
    if prev_run < 0:
        return 0
    return _PREV_CLASS[min(prev_run, 16)]


@njit(cache=True, nogil=True, inline="always")
def rem_class(left, q, nm):
    """Class of the nonzeros expected in the ``left`` positions the line has after its last
    nonzero, left * q / nm at the matrix's density: below 1/2, 2, 8, or more."""
    t = left * q
    if 2 * t < nm:
        return 0
    if t < 2 * nm:
        return 1
    if t < 8 * nm:
        return 2
    return 3


@njit(cache=True, nogil=True, inline="always")
def gap_context(gap_model, pc, cc, left, q, nm, st):
    g = pc if gap_model & PREV else 0
    if gap_model & LINE:
        g = g * NCLASS + cc
    if gap_model & REM:
        g = g * NREM + rem_class(left, q, nm)
    if gap_model & STATE:
        g = g * NSTATE + st
    return g


@njit(cache=True, nogil=True, inline="always")
def value_context(value_model, sig, rc, cc, st):
    v = sig if value_model & SIG else 0
    if value_model & POS:
        v = v * NCLASS + rc
    if value_model & VLINE:
        v = v * NCLASS + cc
    if value_model & VSTATE:
        v = v * 2 + (st >> 1)
    return v


@njit(cache=True, nogil=True, inline="always")
def after_zeros(st, run):
    """The state after ``run`` zeros, each a step ``TRANS[state, 0]``: states 1 and 2 swap on
    each zero, 0 and 3 stay."""
    if run & 1 and (st == 1 or st == 2):
        return 3 - st
    return st


@njit(cache=True, nogil=True, inline="always")
def after_value(st, par_s):
    """The state after a nonzero whose index parities (bit 0: Q0, bit 1: Q1) are ``par_s``:
    the machine of ``kernels.trellis``, which the quantizer walks too."""
    return TRANS[st, (par_s >> (st >> 1)) & 1]


@njit(cache=True, nogil=True, inline="always")
def gap_symbol(run, R):
    """(symbol, number of raw bits, raw value) of a run of zeros."""
    if run < R:
        return 1 + run, 0, 0
    e = run - R + 1
    nb = 0
    while (e >> (nb + 1)) > 0:
        nb += 1
    return 1 + R + nb, nb, e - (np.int64(1) << nb)


def ngap_symbols(R: int, n: int) -> int:
    """Size of the gap alphabet: end of column, R direct runs, escape classes up to n."""
    return 1 + R + max(int(n).bit_length(), 1)


# ------------------------------------------------------------------ statistics for the encoder


@njit(cache=True, nogil=True)
def runs_histogram(ptr, rows, n):
    """Counts of each run of zeros before a nonzero (length n); the end-of-column count is the
    number of columns."""
    h = np.zeros(max(n, 1), np.int64)
    for j in range(ptr.shape[0] - 1):
        prev = -1
        for t in range(ptr[j], ptr[j + 1]):
            h[rows[t] - prev - 1] += 1
            prev = rows[t]
    return h


@njit(cache=True, nogil=True)
def joint_histograms(ptr, rows, vsym, k, R, A, n, poscls, linecls, par):
    """Gap symbols by (previous-run class, line class, remaining class, state) and value
    symbols by (previous entry nonzero, position class, line class, quantizer class), plus the
    total raw bits of escapes."""
    hg = np.zeros((NPREV, NCLASS, NREM, NSTATE, A), np.int64)
    q = ptr[-1]
    nm = n * (ptr.shape[0] - 1)
    hv = np.zeros((2, NCLASS, NCLASS, 2, k), np.int64)
    raw = 0
    for j in range(ptr.shape[0] - 1):
        cc = linecls[j]
        prev = -1
        prev_run = -1
        st = 0
        for t in range(ptr[j], ptr[j + 1]):
            run = rows[t] - prev - 1
            s, nb, _ = gap_symbol(run, R)
            hg[prev_class(prev_run), cc, rem_class(n - 1 - prev, q, nm), st, s] += 1
            raw += nb
            st = after_zeros(st, run)
            hv[1 if run == 0 else 0, poscls[rows[t]], cc, st >> 1, vsym[t]] += 1
            st = after_value(st, par[vsym[t]])
            prev = rows[t]
            prev_run = run
        hg[prev_class(prev_run), cc, rem_class(n - 1 - prev, q, nm), st, 0] += 1
    return hg, hv, raw


# ------------------------------------------------------------------ encoding


@njit(cache=True, nogil=True)
def count_ops(ptr, rows, R, block_lines):
    """Ops per block (exact), so every block gets its own slice of the scratch buffers."""
    m = ptr.shape[0] - 1
    nblocks = (m + block_lines - 1) // block_lines
    out = np.zeros(nblocks, np.int64)
    for j in range(m):
        prev = -1
        ops = 1
        for t in range(ptr[j], ptr[j + 1]):
            _, nb, _ = gap_symbol(rows[t] - prev - 1, R)
            ops += 2 + (nb + RAW_CHUNK - 1) // RAW_CHUNK
            prev = rows[t]
        out[j // block_lines] += ops
    return out


@njit(cache=True, nogil=True, inline="always")
def _queue(st, fq, sc, i, start, freq, scale):
    st[i] = np.uint64(start)
    fq[i] = np.uint64(freq)
    sc[i] = scale
    return i + 1


@njit(cache=True, nogil=True, parallel=True)
def encode(ptr, rows, vsym, R, n, gap_model, value_model, poscls, linecls, par,
           gfreq, gcum, gsb, vfreq, vcum, vsb, block_lines, op_off):
    """rANS-code every block in parallel. Returns (words, used) where block b's words are
    words[2 * op_off[b] + 8 * b + (cap - used[b]) :][: used[b]] with cap its capacity."""
    m = ptr.shape[0] - 1
    q = ptr[m]
    nm = n * m
    nblocks = op_off.shape[0] - 1
    total = op_off[nblocks]
    words = np.empty(total + LANES * 2 * nblocks, np.uint16)
    used = np.zeros(nblocks, np.int64)
    starts = np.empty(total, np.uint64)
    fq = np.empty(total, np.uint64)
    sc = np.empty(total, np.uint8)
    for b in prange(nblocks):
        c0 = b * block_lines
        c1 = min(m, c0 + block_lines)
        i = op_off[b]
        for j in range(c0, c1):
            cc = linecls[j]
            prev = -1
            prev_run = -1
            st = 0
            for t in range(ptr[j], ptr[j + 1]):
                run = rows[t] - prev - 1
                s, nb, e = gap_symbol(run, R)
                g = gap_context(gap_model, prev_class(prev_run), cc, n - 1 - prev, q, nm, st)
                i = _queue(starts, fq, sc, i, gcum[g, s], gfreq[g, s], gsb)
                left = nb
                while left > 0:
                    w = min(RAW_CHUNK, left)
                    i = _queue(starts, fq, sc, i, e & ((1 << w) - 1), 1, w)
                    e >>= w
                    left -= w
                st = after_zeros(st, run)
                v = value_context(value_model, 1 if run == 0 else 0, poscls[rows[t]], cc, st)
                i = _queue(starts, fq, sc, i, vcum[v, vsym[t]], vfreq[v, vsym[t]], vsb)
                st = after_value(st, par[vsym[t]])
                prev = rows[t]
                prev_run = run
            g = gap_context(gap_model, prev_class(prev_run), cc, n - 1 - prev, q, nm, st)
            i = _queue(starts, fq, sc, i, gcum[g, 0], gfreq[g, 0], gsb)
        # code the block's ops backwards into its slice of ``words``, filled from the end
        lo = op_off[b]
        hi = op_off[b + 1]
        w_lo = lo + LANES * 2 * b
        pos = hi + LANES * 2 * (b + 1)
        states = np.full(LANES, RANS_L, np.uint64)
        for o in range(hi - 1, lo - 1, -1):
            lane = (o - lo) % LANES
            states[lane], pos = rans.put(states[lane], fq[o], starts[o], np.uint64(sc[o]),
                                         words, pos)
        for lane in range(LANES - 1, -1, -1):  # the decoder reads lane 0's state first
            pos = rans.flush(states[lane], words, pos)
        used[b] = hi + LANES * 2 * (b + 1) - pos
        if pos < w_lo:  # cannot happen: at most one word per op
            used[b] = -1
    return words, used


@njit(cache=True, nogil=True)
def compact(words, used, op_off):
    """Concatenate every block's words; returns (stream, word offsets)."""
    nblocks = used.shape[0]
    offsets = np.zeros(nblocks + 1, np.int64)
    for b in range(nblocks):
        offsets[b + 1] = offsets[b] + used[b]
    out = np.empty(offsets[nblocks], np.uint16)
    for b in range(nblocks):
        end = op_off[b + 1] + LANES * 2 * (b + 1)
        out[offsets[b]:offsets[b + 1]] = words[end - used[b]:end]
    return out, offsets


# ------------------------------------------------------------------ decoding


@njit(cache=True, nogil=True, inline="always")
def _walk(mode, words, w0, w1, gtab, gsb, vtab, vsb, R, gap_model, value_model, poscls,
          linecls, par, n, nm, q, c0, c1, vals, out, out_c0, cbf, cbw, Xt, Yt):
    """Decode columns c0..c1 from words[w0:w1] and, by ``mode``, only check them, scatter the
    value bits into the column-major ``out`` (column c0 at column ``out_c0``), accumulate
    ``Yt[j] = sum Xt[row] * value`` or, for a coded W^T, ``Yt[row] += Xt[j] * value``. The
    value of symbol s in W's column c is ``cbf[c * cbw + s]``: one table (``cbw`` = 0) or one
    per column of W (``cbw`` = k, the ``scaled`` format's scale folded in).
    Returns (a status: OK, CORRUPT or ROW_OUT_OF_RANGE; the block's nonzero count).

    The four lane states rotate through x0..x3 (x0 serves the current op), which keeps them in
    registers."""
    if w1 - w0 < 2 * LANES:
        return CORRUPT, 0
    p = w0
    x0 = rans.init(words, p)
    x1 = rans.init(words, p + 2)
    x2 = rans.init(words, p + 4)
    x3 = rans.init(words, p + 6)
    p += 2 * LANES
    if x0 < RANS_L or x1 < RANS_L or x2 < RANS_L or x3 < RANS_L:
        return CORRUPT, 0
    gsize = np.int64(1) << gsb
    vsize = np.int64(1) << vsb
    gs = np.uint64(gsb)
    vs = np.uint64(vsb)
    gmask = np.uint64(gsize - 1)
    vmask = np.uint64(vsize - 1)
    zero = np.uint64(0)
    bsz = Xt.shape[1]
    dq = (gap_model & STATE) or (value_model & VSTATE)
    count = 0
    for j in range(c0, c1):
        cc = linecls[j]
        r = np.int64(-1)
        prev_run = np.int64(-1)
        st = 0
        acc = 0.0
        while True:  # ends: every nonzero moves r forward and r < n is checked
            g = gap_context(gap_model, prev_class(prev_run), cc, n - 1 - r, q, nm, st)
            x, p, s, f = rans.table_get(words, p, w1, x0, gtab, g * gsize, gs, gmask)
            x0, x1, x2, x3 = x1, x2, x3, x
            if f == zero:
                return CORRUPT, 0
            if s == 0:
                break
            if s <= R:
                run = s - 1
            else:
                nb = s - 1 - R
                e = np.int64(1) << nb
                shift = 0
                while shift < nb:
                    w = min(RAW_CHUNK, nb - shift)
                    x = x0
                    v = np.int64(x & np.uint64((1 << w) - 1))
                    x, p = rans.renorm(words, p, w1, x >> np.uint64(w))
                    x0, x1, x2, x3 = x1, x2, x3, x
                    e += v << shift
                    shift += w
                run = R + e - 1
            r += run + 1
            if r >= n:
                return ROW_OUT_OF_RANGE, 0
            if dq:
                st = after_zeros(st, run)
            vc = value_context(value_model, 1 if run == 0 else 0, poscls[r], cc, st)
            x, p, s, f = rans.table_get(words, p, w1, x0, vtab, vc * vsize, vs, vmask)
            x0, x1, x2, x3 = x1, x2, x3, x
            if f == zero:
                return CORRUPT, 0
            if dq:
                st = after_value(st, par[s])
            count += 1
            prev_run = run
            if mode == MODE_SCATTER:
                out[(j - c0 + out_c0) * n + r] = vals[s]
            elif mode == MODE_DOT1:
                acc += Xt[r, 0] * cbf[j * cbw + s]
            elif mode == MODE_DOT:
                v = cbf[j * cbw + s]
                for u in range(bsz):
                    Yt[j, u] += Xt[r, u] * v
            elif mode == MODE_TDOT:  # the coded matrix is W^T: scatter into row r of Yt
                v = cbf[r * cbw + s]
                for u in range(bsz):
                    Yt[r, u] += Xt[j, u] * v
        if mode == MODE_DOT1:
            Yt[j, 0] = acc
    if p != w1:  # words left over, or read past the block
        return CORRUPT, 0
    if x0 != RANS_L or x1 != RANS_L or x2 != RANS_L or x3 != RANS_L:
        return CORRUPT, 0  # the encoder started every state at RANS_L
    return OK, count


@njit(cache=True, nogil=True, parallel=True)
def run_blocks(mode, words, offsets, gtab, gsb, vtab, vsb, R, gap_model, value_model, poscls,
               linecls, par, n, m, q, block_lines, b_lo, b_hi, vals, out, cbf, cbw, Xt, Yt):
    """Walk blocks b_lo..b_hi in parallel. Returns (first failing block or -1, its status,
    total nonzeros)."""
    nb = max(b_hi - b_lo, 1)
    res = np.zeros(nb, np.int64)
    why = np.full(nb, OK, np.int64)
    bad = np.full(nb, -1, np.int64)
    for b in prange(b_lo, b_hi):
        c0 = b * block_lines
        c1 = min(m, c0 + block_lines)
        status, got = _walk(mode, words, offsets[b], offsets[b + 1], gtab, gsb, vtab, vsb, R,
                            gap_model, value_model, poscls, linecls, par, n, n * m, q, c0, c1,
                            vals, out, (b - b_lo) * block_lines, cbf, cbw, Xt, Yt)
        res[b - b_lo] = got
        if status != OK:
            bad[b - b_lo] = b
            why[b - b_lo] = status
    first = first_bad(bad)
    if first >= 0:
        return first, why[first - b_lo], 0
    return first, OK, res.sum()


@njit(cache=True, nogil=True, parallel=True)
def scatter_blocks(words, offsets, gtab, gsb, vtab, vsb, R, gap_model, value_model, poscls,
                   linecls, par, n, m, q, block_lines, cbf, cbw, Xt, Yt, ntasks):
    """``Yt = (X @ W).T`` when the coded matrix is W^T (n = its rows = W's columns): blocks
    split over ``ntasks`` tasks, each scattering into a private copy of Yt, then summed.
    Returns (first failing block or -1, its status)."""
    nblocks = (m + block_lines - 1) // block_lines
    ntasks = max(1, min(ntasks, nblocks))
    part = private_parts(ntasks, Yt.shape[0], Yt.shape[1])
    bad = np.full(ntasks, -1, np.int64)
    why = np.full(ntasks, OK, np.int64)
    dummy = np.zeros(0, np.uint8)
    for task in prange(ntasks):
        mine = part[task]
        for b in range(task * nblocks // ntasks, (task + 1) * nblocks // ntasks):
            c0 = b * block_lines
            status, _ = _walk(MODE_TDOT, words, offsets[b], offsets[b + 1], gtab, gsb, vtab,
                              vsb, R, gap_model, value_model, poscls, linecls, par, n, n * m, q,
                              c0, min(m, c0 + block_lines), dummy, dummy, 0, cbf, cbw, Xt,
                              mine)
            if status != OK:
                bad[task] = b
                why[task] = status
                break
    for task in range(ntasks):
        if bad[task] >= 0:
            return bad[task], why[task]
    sum_parts(part, Yt)
    return -1, OK
