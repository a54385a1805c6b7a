"""Dependent (trellis-coded) quantization: a Viterbi search per line for the integer levels
that minimise ``h * (w - step * m)^2 + lam * bits``, where which levels are allowed depends on a
4-state machine driven by the parity of the previous index.

The state machine (the one of VVC and MPEG NNR's dependent quantization): states 0 and 1 use
quantizer Q0, whose levels are the even multiples of the step (m = 2k); states 2 and 3 use Q1,
the odd multiples and zero (m = 2k - sgn(k)). After an index k the state moves to
``TRANS[state, k & 1]``. Zeros of the input stay zero (index 0, parity 0). The decoder of
``sham_ans`` follows the same machine when its ``state`` contexts are on
(``formats/sham_ans.md``), so each index costs about its conditional entropy given the state.

Rates come from a table: ``zero_bits[state]`` for a zero, ``nz_bits[state]`` plus
``value_bits[state >> 1, m + half]`` for a nonzero m (levels beyond the table cost its edge
plus 2 bits per doubling)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

TRANS = np.array([[0, 2], [2, 0], [1, 3], [3, 1]], np.int64)
MAX_LEVEL = 1 << 20  # |m| at most: levels past it are clipped (no float weight needs more)


@njit(cache=True, nogil=True, inline="always")
def index_parity(m, c):
    """Parity of the index k of level m in quantizer class c (0: m = 2k, 1: m = 2k - sgn k);
    defined for every m, so a level of the other class still moves the machine."""
    s = 1 if m > 0 else (-1 if m < 0 else 0)
    return ((m + c * s) >> 1) & 1


@njit(cache=True, nogil=True, inline="always")
def _rate(st, m, zero_bits, nz_bits, value_bits, half):
    if m == 0:
        return zero_bits[st]
    a = m + half
    extra = 0.0
    if a < 0 or a > 2 * half:
        edge = half if m > 0 else -half
        extra = 2.0 * np.log2(abs(m) / half)
        a = edge + half
    return nz_bits[st] + value_bits[st >> 1, a] + extra


@njit(cache=True, nogil=True, inline="always")
def _line(w, h, step, lam, zero_bits, nz_bits, value_bits, half, out, bs, bm):
    """The levels of one line (w, weights h) into ``out``; bs/bm: (len, 4) scratch."""
    n = w.shape[0]
    inf = np.inf
    J = np.full(4, inf)
    J[0] = 0.0
    nJ = np.empty(4)
    cand = np.empty(3, np.int64)
    for i in range(n):
        x = w[i]
        for t in range(4):
            nJ[t] = inf
        u = x / step
        for s in range(4):
            if J[s] == inf:
                continue
            c = s >> 1
            if x == 0.0:
                nc = 1
                cand[0] = 0
            else:
                if c == 0:
                    lo = 2 * np.int64(np.floor(u / 2.0))
                else:
                    lo = 2 * np.int64(np.floor((u - 1.0) / 2.0)) + 1
                lo = min(max(lo, -MAX_LEVEL), MAX_LEVEL)
                cand[0] = 0
                cand[1] = lo
                cand[2] = lo + 2
                nc = 3
            for q in range(nc):
                m = cand[q]
                if q > 0 and m == 0:
                    continue
                d = x - step * m
                cost = J[s] + h[i] * d * d + lam * _rate(s, m, zero_bits, nz_bits,
                                                         value_bits, half)
                t = TRANS[s, index_parity(m, c)]
                if cost < nJ[t]:
                    nJ[t] = cost
                    bs[i, t] = s
                    bm[i, t] = m
        for t in range(4):
            J[t] = nJ[t]
    best = 0
    for t in range(1, 4):
        if J[t] < J[best]:
            best = t
    s = best
    for i in range(n - 1, -1, -1):
        out[i] = bm[i, s]
        s = bs[i, s]


@njit(cache=True, nogil=True, parallel=True)
def levels(Wl, H, steps, lams, zero_bits, nz_bits, value_bits):
    """Levels (int64, Wl's shape) of every line: row j of ``Wl`` (float64) is line j, ``H``
    its weights (same shape; rows of ones for the plain squared error), ``steps[j]`` and
    ``lams[j]`` its step and lambda."""
    L, n = Wl.shape
    out = np.zeros((L, n), np.int64)
    half = (value_bits.shape[1] - 1) // 2
    for j in prange(L):
        bs = np.empty((n, 4), np.int8)
        bm = np.empty((n, 4), np.int64)
        _line(Wl[j], H[j], steps[j], lams[j], zero_bits, nz_bits, value_bits, half, out[j],
              bs, bm)
    return out


@njit(cache=True, nogil=True)
def statistics(M, half):
    """Per state: (zeros, nonzeros) seen there, and per class the counts of each level in
    [-half, half] (clipped) among the nonzeros, walking each line's machine from state 0."""
    L, n = M.shape
    zeros = np.zeros(4, np.int64)
    nonzeros = np.zeros(4, np.int64)
    hist = np.zeros((2, 2 * half + 1), np.int64)
    for j in range(L):
        s = 0
        for i in range(n):
            m = M[j, i]
            if m == 0:
                zeros[s] += 1
            else:
                nonzeros[s] += 1
                hist[s >> 1, min(max(m, -half), half) + half] += 1
            s = TRANS[s, index_parity(m, s >> 1)]
    return zeros, nonzeros, hist
