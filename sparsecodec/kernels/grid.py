"""Kernels of ``grid``: small signed integer codes on a per-column scale, and the exceptions.

Column j's entries are ``scale[j] * (q - zero[j])`` for signed codes q of 4 or 8 bits (see
``formats/grid.md`` for the byte layout). Products convert the codes to floats and multiply by
x in SIMD lanes: no table, no gather, no branch, so LLVM vectorises the loop, and a code costs
4 or 8 bits of memory traffic where a dense float32 weight costs 32.

Fitting finds, for each column, the largest set of its values that lie on one grid through 0
and the scale that reproduces each of them bit for bit (interval arithmetic on their rounding
intervals); every other entry is an exception, stored apart.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..coding.bits import read_bits
from ..status import EXCEPTION_CODE, OK
from .compressed import ptr_at

# sums may be reassociated and fused: that is what lets LLVM spread them over vector lanes
FAST = {"reassoc", "contract"}
MAX_DIVISOR = 8  # each step guess is tried divided by 1..8
FEW_VALUES = 16  # columns with at most this many distinct values try every divisor
SLACK = 1e-15    # relative: the division that bounds a scale rounds (the final check is exact)


# --------------------------------------------------------------------------- fitting


@njit(cache=True, nogil=True, inline="always")
def _accept(u, lo, hi, order, gd, bits):
    """Greedy fit on step guess ``gd``: values by falling count; a value joins when its level
    fits the code range and its scale interval meets the running one. Returns (weight
    accepted, levels (0 = rejected), scale interval low, high)."""
    k = u.shape[0]
    lev = np.zeros(k, np.int64)
    s_lo = 0.0
    s_hi = np.inf
    lmin = 0
    lmax = 0
    span = (1 << bits) - 1
    for t in range(k):
        r = order[t]
        # the level by the scale the values accepted so far pin down (the step guess only
        # for the first one): a guess off by a small fraction would misjudge large levels
        est = gd if s_hi == np.inf else 0.5 * (s_lo + s_hi)
        if not est > 0.0:  # subnormal steps can round to 0
            break
        ratio = u[r] / est
        if not abs(ratio) < 2.0 * span + 2.0:
            continue
        L = np.int64(np.rint(ratio))
        if L == 0:
            continue
        nmin = min(lmin, L)
        nmax = max(lmax, L)
        if nmax - nmin > span:
            continue
        if L > 0:
            a = lo[r] / L
            b = hi[r] / L
        else:
            a = hi[r] / L
            b = lo[r] / L
        a = max(a, s_lo)
        b = min(b, s_hi)
        if not a <= b + SLACK * b:  # closed: a tie rounds to even, so an end may be exact
            continue
        s_lo = a
        s_hi = b
        lmin = nmin
        lmax = nmax
        lev[r] = L
    return lev, s_lo, s_hi


@njit(cache=True, nogil=True, inline="always")
def _interval(v, digits, tiny):
    """The reals that round to ``v`` (finite, nonzero) in a binary float type with ``digits``
    significand bits and smallest step ``tiny``: v minus half the gap below, plus half the gap
    above. The gap below a power of two is half the one above it."""
    m, e = math.frexp(abs(v))
    up = max(math.ldexp(1.0, e - digits), tiny)
    down = max(up * 0.5, tiny) if m == 0.5 else up
    if v > 0:
        return v - 0.5 * down, v + 0.5 * up
    return v - 0.5 * up, v + 0.5 * down


@njit(cache=True, nogil=True, inline="always")
def _rounded(v, digits):
    """``v`` rounded to float32 (24 digits) or kept (float64)."""
    return np.float64(np.float32(v)) if digits == 24 else v


@njit(cache=True, nogil=True, inline="always")
def _scale(u, cnt, by_count, lev, s_lo, s_hi, digits):
    """The scale of a fit and the entries it reproduces: the interval's middle, or a kept
    value over its level (most frequent first), whichever reproduces the most. float16 is
    judged by the caller: its middle, and every entry the interval accepted."""
    k = u.shape[0]
    mid = 0.5 * (s_lo + s_hi) if s_lo < s_hi else s_lo
    if not (digits == 24 or digits == 53):
        w = 0
        for t in range(k):
            if lev[t] != 0:
                w += cnt[t]
        return mid, w
    best = mid
    most = -1
    tried = 0
    for t in range(-1, k):
        if t >= 0:
            r = by_count[t]
            if lev[r] == 0:
                continue
            s = u[r] / lev[r]
            tried += 1
            if tried > FEW_VALUES:
                break
        else:
            s = mid
        hits = 0
        for r in range(k):
            if lev[r] != 0 and _rounded(s * lev[r], digits) == u[r]:
                hits += cnt[r]
        if hits > most:
            most = hits
            best = s
    return best, most


@njit(cache=True, nogil=True)
def fit(V, usable, digits, tiny, bits, scales, anchors, levels, accepted):
    """Fit each row of ``V`` (a column of W, float64) on its own grid.

    ``usable``: finite entries that are not +0.0 or -0.0; ``digits``/``tiny``: the matrix
    dtype's significand bits and smallest step. Writes ``scales[c]`` (for float32 and float64,
    whichever of the scale interval's middle and the kept values over their levels reproduces
    the most entries; for float16, the middle), ``anchors[c]`` (the accepted value of largest
    level divided by that level: the exact scale when a quantizer made the values by that
    division), the level of every accepted entry (``levels``, int64) and ``accepted`` (bool).
    Zeros are left for the caller (level 0, always on the grid)."""
    for c in range(V.shape[0]):
        idx = np.flatnonzero(usable[c])
        scales[c] = 0.0
        anchors[c] = 0.0
        if idx.shape[0] == 0:
            continue
        vals = V[c][idx]
        order = np.argsort(vals, kind="mergesort")
        # distinct values (sorted), their counts and rounding intervals; each entry's rank
        rank = np.empty(idx.shape[0], np.int64)
        u = np.empty(idx.shape[0], np.float64)
        ulo = np.empty(idx.shape[0], np.float64)
        uhi = np.empty(idx.shape[0], np.float64)
        cnt = np.zeros(idx.shape[0], np.int64)
        k = 0
        for t in range(order.shape[0]):
            e = order[t]
            if k == 0 or vals[e] != u[k - 1]:
                u[k] = vals[e]
                ulo[k], uhi[k] = _interval(vals[e], digits, tiny)
                k += 1
            cnt[k - 1] += 1
            rank[e] = k - 1
        u = u[:k]
        ulo = ulo[:k]
        uhi = uhi[:k]
        # step guesses: the smallest gap between values (0 included) and the median of the
        # gaps within 15% of it (the smallest alone is short by the rounding of two values:
        # 6% in float16, enough to misjudge level 10), each divided by 1..MAX_DIVISOR
        gaps = np.empty(k, np.float64)
        gaps[0] = np.abs(u).min()
        for t in range(1, k):
            gaps[t] = u[t] - u[t - 1]
        by_count = np.argsort(-cnt[:k], kind="mergesort")
        # at most 2^bits - 1 values can be on a grid: if even the most frequent of them are
        # less than half the column, every entry is an exception (unquantized columns end here)
        cover = 0
        for t in range(min(k, (1 << bits) - 1)):
            cover += cnt[by_count[t]]
        if 2 * cover < idx.shape[0]:
            continue
        small = np.sort(gaps)
        g0 = small[0]
        # the second and third smallest gaps, and the most frequent value: one value off the
        # grid (closer to 0 or to another value than the step) spoils the gaps either side
        near = 1
        while near < k and small[near] <= 1.15 * g0:
            near += 1
        guesses = (small[(near - 1) // 2], g0, small[min(1, k - 1)],
                   small[min(2, k - 1)], abs(u[by_count[0]]))
        best_w = -1
        best_lev = np.zeros(k, np.int64)
        # few values say little about the step (two values on levels 13 and -15 need the
        # divisor 13): try every divisor up to the code range then, it costs little
        ndiv = MAX_DIVISOR if k > FEW_VALUES else (1 << bits) - 1
        best_s = 0.0
        # values are accepted most frequent first (the first in value order among equals);
        # when that leaves exceptions, once more with that value last: a value off the grid
        # taken first anchors every guess, and the values on the grid then fall off it
        order = by_count
        for attempt in range(2 if k > 1 else 1):
            if attempt:
                if best_w == idx.shape[0]:
                    break
                order = np.concatenate((by_count[1:], by_count[:1]))
            for trial in range(len(guesses) * ndiv):
                g = guesses[trial // ndiv] / (1 + trial % ndiv)
                if not (g > 0.0 and g < np.inf):  # a subnormal gap divided underflows to 0
                    continue
                lev, s_lo, s_hi = _accept(u, ulo, uhi, order, g, bits)
                # judged by the entries a scale really reproduces: when many values narrow
                # the interval to an ulp, a finer step can accept them all (a value off the
                # grid included) while no float scale reproduces them together
                s, w = _scale(u, cnt, order, lev, s_lo, s_hi, digits)
                if w > best_w:
                    best_w = w
                    best_lev = lev
                    best_s = s
                if w == idx.shape[0]:
                    break  # every value fits: finer steps could only tie
        if best_w <= 0:
            continue
        top = 0
        for t in range(k):
            if abs(best_lev[t]) > abs(best_lev[top]):
                top = t
        anchors[c] = u[top] / best_lev[top]
        scales[c] = best_s
        for t in range(idx.shape[0]):
            L = best_lev[rank[t]]
            if L != 0:
                levels[c, idx[t]] = L
                accepted[c, idx[t]] = True


# --------------------------------------------------------------------------- products


@njit(cache=True, nogil=True, inline="always")
def _low(v):
    """The low nibble of byte ``v`` as a signed 4-bit number (int8: so that ``- z`` stays in
    z's float type, where an int64 would widen float32 to float64)."""
    return np.int8(np.int8(v << np.uint8(4)) >> np.int8(4))


@njit(cache=True, nogil=True, inline="always")
def _high(v):
    return np.int8(np.int8(v) >> np.int8(4))


@njit(cache=True, nogil=True, fastmath=FAST, inline="always")
def _dot8(x, c, z):
    """``sum_i x[i] * (c[i] - z)`` over one column's 8-bit codes ``c`` (a slice: indexing
    with computed offsets kept LLVM from vectorising the loop inside parallel kernels)."""
    acc = z - z
    for i in range(c.shape[0]):
        acc += x[i] * (np.int8(c[i]) - z)
    return acc


@njit(cache=True, nogil=True, fastmath=FAST, inline="always")
def _dot4(x, c, z):
    """As ``_dot8`` for 4-bit codes: byte t holds entry t (low nibble) and entry t + h (high
    nibble), two's complement, h = len(c); ``x`` is padded to 2h. The shifts sign-extend."""
    h = c.shape[0]
    xl = x[:h]  # two slices: ``x[t + h]`` in the loop was not vectorised (4.5x slower)
    xh = x[h:2 * h]
    lo_acc = z - z
    hi_acc = z - z
    for t in range(h):
        v = c[t]
        lo_acc += xl[t] * (_low(v) - z)
        hi_acc += xh[t] * (_high(v) - z)
    return lo_acc + hi_acc


@njit(cache=True, nogil=True, fastmath=FAST, inline="always")
def _dot8_32(x, c, z, s):
    """``sum_i x[i] * float32(s * (c[i] - z))``: the float32 entries exactly, for float64
    products of a float32 matrix (``s * L`` alone is off by up to half a float32 step)."""
    acc = 0.0
    for i in range(c.shape[0]):
        acc += x[i] * np.float32(s * (np.int8(c[i]) - z))
    return acc


@njit(cache=True, nogil=True, fastmath=FAST, inline="always")
def _dot4_32(x, c, z, s):
    h = c.shape[0]
    xl = x[:h]
    xh = x[h:2 * h]
    acc = 0.0
    for t in range(h):
        v = c[t]
        acc += xl[t] * np.float32(s * (_low(v) - z)) + xh[t] * np.float32(s * (_high(v) - z))
    return acc


@njit(cache=True, nogil=True, fastmath=FAST)
def _columns(codes, bits, n, x, scales, zf, xptr, pw, xrows, rw, xvals, y, c0, c1, round32):
    w = n if bits == 8 else (n + 1) // 2
    for j in range(c0, c1):
        c = codes[j * w:(j + 1) * w]
        if round32:
            if bits == 8:
                y[j] = _dot8_32(x, c, zf[j], scales[j])
            else:
                y[j] = _dot4_32(x, c, zf[j], scales[j])
        elif bits == 8:
            y[j] = scales[j] * _dot8(x, c, zf[j])
        else:
            y[j] = scales[j] * _dot4(x, c, zf[j])
    if xvals.shape[0]:
        for j in range(c0, c1):
            s = 0.0
            for q in range(ptr_at(xptr, pw, j), ptr_at(xptr, pw, j + 1)):
                s += x[np.int64(read_bits(xrows, q * rw, rw))] * xvals[q]
            y[j] += s


# inline="always" inlines numba IR, which drops the callee's fastmath flags: every function
# that reaches the vector loops carries them itself
@njit(cache=True, nogil=True, fastmath=FAST)
def rmatvec(codes, bits, n, scales, zf, xptr, pw, xrows, rw, xvals, round32, x, y):
    """``y = x @ W``, one thread. ``zf``: the zero codes in x's float type;
    ``round32``: round each entry to float32 first (float64 x, float32 matrix)."""
    _columns(codes, bits, n, x, scales, zf, xptr, pw, xrows, rw, xvals, y, 0, y.shape[0],
             round32)


@njit(cache=True, nogil=True, fastmath=FAST, parallel=True)
def rmatvec_parallel(codes, bits, n, scales, zf, xptr, pw, xrows, rw, xvals, round32, x, y,
                     tasks):
    """``y = x @ W`` split into ``tasks`` column ranges (a multiple of the thread count, so a
    thread the OS delays holds up only a small share)."""
    m = y.shape[0]
    for t in prange(tasks):
        _columns(codes, bits, n, x, scales, zf, xptr, pw, xrows, rw, xvals, y,
                 t * m // tasks, (t + 1) * m // tasks, round32)


# --------------------------------------------------------------------------- decoding


@njit(cache=True, nogil=True, inline="always")
def _code(codes, bits, n, j, i):
    """The signed code of entry (i, j), read one at a time (the layout of ``formats/grid.md``)."""
    if bits == 8:
        return np.int64(np.int8(codes[j * n + i]))
    h = (n + 1) // 2
    if i < h:
        return np.int64(_low(codes[j * h + i]))
    return np.int64(_high(codes[j * h + i - h]))


@njit(cache=True, nogil=True)
def levels_of(codes, bits, n, zeros, c0, c1, out):
    """``out[j - c0, i] = q_ij - zero[j]`` (int64 levels) for columns c0..c1."""
    for j in range(c0, c1):
        z = np.int64(zeros[j])
        for i in range(n):
            out[j - c0, i] = _code(codes, bits, n, j, i) - z


@njit(cache=True, nogil=True, fastmath=FAST)
def values_of(codes, bits, n, sf, zf, c0, c1, out, round32):
    """``out[j - c0, i] = scale[j] * (q_ij - zero[j])`` with scales ``sf`` and zero codes
    ``zf`` in ``out``'s float type (for products: the exact decode rounds the float64 product
    to the matrix dtype). Row and code slices keep the loops vectorised."""
    w = n if bits == 8 else (n + 1) // 2
    for j in range(c0, c1):
        s = sf[j]
        z = zf[j]
        c = codes[j * w:(j + 1) * w]
        o = out[j - c0]
        if round32:  # float64 out, float32 matrix: the entries exactly
            if bits == 8:
                for i in range(n):
                    o[i] = np.float32(s * (np.int8(c[i]) - z))
            else:
                lo = o[:w]
                for t in range(w):
                    lo[t] = np.float32(s * (_low(c[t]) - z))
                hi = o[w:n]
                for t in range(n - w):
                    hi[t] = np.float32(s * (_high(c[t]) - z))
        elif bits == 8:
            for i in range(n):
                o[i] = s * (np.int8(c[i]) - z)
        else:
            lo = o[:w]
            for t in range(w):
                lo[t] = s * (_low(c[t]) - z)
            hi = o[w:n]
            for t in range(n - w):
                hi[t] = s * (_high(c[t]) - z)


@njit(cache=True, nogil=True)
def scatter_exceptions(xptr, pw, xrows, rw, xvals, c0, c1, out):
    """``out[j - c0, row] = value`` for the exceptions of columns c0..c1."""
    for j in range(c0, c1):
        for q in range(ptr_at(xptr, pw, j), ptr_at(xptr, pw, j + 1)):
            out[j - c0, np.int64(read_bits(xrows, q * rw, rw))] = xvals[q]


@njit(cache=True, nogil=True)
def check_exceptions(xptr, pw, xrows, rw, codes, bits, n, zeros):
    """OK when every exception's code is its column's zero code, else EXCEPTION_CODE (the
    codes there are canonical: they contribute nothing to a product)."""
    for j in range(zeros.shape[0]):
        for q in range(ptr_at(xptr, pw, j), ptr_at(xptr, pw, j + 1)):
            i = np.int64(read_bits(xrows, q * rw, rw))
            if _code(codes, bits, n, j, i) != np.int64(zeros[j]):
                return EXCEPTION_CODE
    return OK
