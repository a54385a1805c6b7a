"""Kernels of the scalar quantizers: sorted-data sums, threshold assignment, stochastic rounding,
the finishing pass, and the exact 1-D k-means dynamic programme.

The quantizers work on the nonzero weights only; an entry equal to zero (+0.0 or -0.0) is a
pruned weight, gets label -1 and stays zero. Per-element loops run over fixed chunks in
``prange`` so that results never depend on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

CHUNK = 1 << 16

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, nogil=True)
def prefix_sums(xs, ws, center):
    """Prefix sums over sorted values ``xs``: ``S1[i] = sum_{t<i} w_t (x_t - center)`` and, when
    weights ``ws`` are given (non-empty), ``S0[i] = sum_{t<i} w_t``; unit weights otherwise
    (``S0`` is then empty: it would equal the index)."""
    n = xs.shape[0]
    weighted = ws.shape[0] > 0
    s1 = np.empty(n + 1, np.float64)
    s0 = np.empty(n + 1 if weighted else 0, np.float64)
    a1 = 0.0
    a0 = 0.0
    s1[0] = 0.0
    if weighted:
        s0[0] = 0.0
        for i in range(n):
            w = np.float64(ws[i])
            a0 += w
            a1 += w * (np.float64(xs[i]) - center)
            s0[i + 1] = a0
            s1[i + 1] = a1
    else:
        for i in range(n):
            a1 += np.float64(xs[i]) - center
            s1[i + 1] = a1
    return s0, s1


@njit(cache=True, nogil=True)
def sums_at(xs, ws, center, cuts):
    """Weight, first and second moment sums of sorted ``xs`` (about ``center``) at the positions
    ``cuts`` (ascending, first 0, last n): one pass, no full-length arrays."""
    weighted = ws.shape[0] > 0
    p = cuts.shape[0]
    a0 = np.empty(p, np.float64)
    a1 = np.empty(p, np.float64)
    a2 = np.empty(p, np.float64)
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    t = 0
    for c in range(p):
        end = cuts[c]
        while t < end:
            d = np.float64(xs[t]) - center
            w = np.float64(ws[t]) if weighted else 1.0
            s0 += w
            s1 += w * d
            s2 += w * d * d
            t += 1
        a0[c] = s0
        a1[c] = s1
        a2[c] = s2
    return a0, a1, a2


@njit(cache=True, nogil=True)
def count_le(xs, keys):
    """For each key, how many of the sorted values ``xs`` are <= key (compared in float64, as
    :func:`assign` compares, so that sorted-space clusters and per-entry labels agree)."""
    n = xs.shape[0]
    out = np.empty(keys.shape[0], np.int64)
    for j in range(keys.shape[0]):
        key = keys[j]
        lo = 0
        hi = n
        while lo < hi:
            mid = (lo + hi) >> 1
            if np.float64(xs[mid]) <= key:
                lo = mid + 1
            else:
                hi = mid
        out[j] = lo
    return out


@njit(cache=True, nogil=True)
def bucket_table(thresholds, nb):
    """``table[b]`` = how many thresholds lie below the left edge of bucket b of ``nb`` equal
    buckets over [thresholds[0], thresholds[-1]]: a starting guess for :func:`assign`."""
    t = thresholds.shape[0]
    lo = thresholds[0]
    width = (thresholds[t - 1] - lo) / nb
    table = np.empty(nb, np.int64)
    j = 0
    for b in range(nb):
        edge = lo + b * width
        while j < t and thresholds[j] < edge:
            j += 1
        table[b] = j
    return table


@njit(cache=True, nogil=True, parallel=True)
def assign(flat, thresholds, labels):
    """Label every nonzero entry by the number of ``thresholds`` (ascending) strictly below it,
    zeros by -1. Returns the count of each label (last slot: zeros).

    A table over equal buckets of the threshold range gives a guess that is exact or a step
    or two off (about 4 buckets per cell), then a short walk makes it exact, whatever the
    table says: one cache-friendly probe instead of a log2(k)-step binary search."""
    n = flat.shape[0]
    t = thresholds.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    counts = np.zeros((nchunks, t + 2), np.int64)
    zero_slot = t + 1
    nb = min(4 * (t + 1), 1 << 16)
    if t > 0:
        lo = thresholds[0]
        hi = thresholds[t - 1]
        table = bucket_table(thresholds, nb)
        scale = nb / (hi - lo) if hi > lo else 0.0
    else:
        lo = hi = scale = 0.0
        table = np.zeros(1, np.int64)
    for c in prange(nchunks):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            x = np.float64(flat[i])
            if x == 0.0:
                labels[i] = -1
                counts[c, zero_slot] += 1
                continue
            if t == 0 or x <= lo:
                lab = 0
            elif x > hi:
                lab = t
            else:
                b = int((x - lo) * scale)
                lab = table[min(b, nb - 1)]
                while lab > 0 and thresholds[lab - 1] >= x:
                    lab -= 1
                while lab < t and thresholds[lab] < x:
                    lab += 1
            labels[i] = lab
            counts[c, lab] += 1
    return counts.sum(axis=0)


@njit(cache=True, nogil=True)
def _uniform01(seed, i):
    """A uniform double in [0, 1) from (seed, i): splitmix64, so that every entry draws its own
    number whatever the chunking or the number of threads."""
    z = seed + (np.uint64(i) + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True, parallel=True)
def stochastic_assign(flat, edges, seed, labels):
    """Round each nonzero entry at random to one of the two ``edges`` (ascending, the first <=
    every entry, the last >=) around it, up with probability (x - lo) / (hi - lo), so that the
    expected value is x. Labels index ``edges``; zeros get -1. Returns counts (last: zeros)."""
    n = flat.shape[0]
    e = edges.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    counts = np.zeros((nchunks, e + 1), np.int64)
    useed = np.uint64(seed)
    for c in prange(nchunks):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            x = np.float64(flat[i])
            if x == 0.0:
                labels[i] = -1
                counts[c, e] += 1
                continue
            lo = 0
            hi = e
            while lo < hi:  # j = number of edges <= x, minus one: the interval's lower edge
                mid = (lo + hi) >> 1
                if edges[mid] <= x:
                    lo = mid + 1
                else:
                    hi = mid
            j = lo - 1
            if j < 0:
                j = 0
            lab = j
            if j + 1 < e and x > edges[j]:
                p_up = (x - edges[j]) / (edges[j + 1] - edges[j])
                if _uniform01(useed, i) < p_up:
                    lab = j + 1
            labels[i] = lab
            counts[c, lab] += 1
    return counts.sum(axis=0)


@njit(cache=True, nogil=True, parallel=True)
def finish(flat, labels, remap, levels, values):
    """Write ``values = levels[remap[labels]]`` (zero where the label is -1), relabel in place and
    return the sum of squared errors against ``flat`` in float64."""
    n = flat.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    sse = np.zeros(nchunks, np.float64)
    zero = levels.dtype.type(0)
    for c in prange(nchunks):
        s = 0.0
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            lab = labels[i]
            if lab < 0:
                values[i] = zero
                continue
            lab = remap[lab]
            labels[i] = lab
            v = levels[lab]
            values[i] = v
            d = np.float64(flat[i]) - np.float64(v)
            s += d * d
        sse[c] = s
    return sse.sum()


@njit(cache=True, nogil=True)
def _cluster_cost(a0, a1, a2, i, j):
    w = a0[j] - a0[i]
    if w <= 0.0:
        return 0.0
    s = a1[j] - a1[i]
    c = (a2[j] - a2[i]) - s * s / w
    return c if c > 0.0 else 0.0


@njit(cache=True, nogil=True)
def optimal_partition(a0, a1, a2, k):
    """Exact weighted 1-D k-means over P sorted groups given by prefix sums (length P + 1) of
    weight, first and second moments. Clusters are runs of consecutive groups (optimal in 1-D);
    the dynamic programme D[l, j] = min_i D[l-1, i] + cost(i, j) is solved row by row with the
    divide-and-conquer rule (the optimal i is monotone in j for this cost), in O(k P log P).

    Returns ``(cuts, sse)``: cluster l holds groups cuts[l] .. cuts[l+1]-1; at most min(k, P)
    clusters."""
    p = a0.shape[0] - 1
    k = min(k, p)
    if k <= 0:
        return np.zeros(1, np.int64), 0.0
    prev = np.full(p + 1, np.inf)
    prev[0] = 0.0
    cur = np.full(p + 1, np.inf)
    arg = np.zeros((k, p + 1), np.int32)
    stack = np.empty((256, 4), np.int64)
    for ell in range(1, k + 1):
        cur[:] = np.inf
        top = 0
        jlo = ell if ell < k else p  # the last row needs only D[k, P]
        stack[0, 0] = jlo
        stack[0, 1] = p
        stack[0, 2] = ell - 1
        stack[0, 3] = p - 1
        top = 1
        while top > 0:
            top -= 1
            lo = stack[top, 0]
            hi = stack[top, 1]
            olo = stack[top, 2]
            ohi = stack[top, 3]
            if lo > hi:
                continue
            mid = (lo + hi) >> 1
            best = np.inf
            bi = olo
            for i in range(olo, min(mid - 1, ohi) + 1):
                v = prev[i] + _cluster_cost(a0, a1, a2, i, mid)
                if v < best:
                    best = v
                    bi = i
            cur[mid] = best
            arg[ell - 1, mid] = bi
            stack[top, 0] = mid + 1
            stack[top, 1] = hi
            stack[top, 2] = bi
            stack[top, 3] = ohi
            stack[top + 1, 0] = lo
            stack[top + 1, 1] = mid - 1
            stack[top + 1, 2] = olo
            stack[top + 1, 3] = bi
            top += 2
        tmp = prev
        prev = cur
        cur = tmp
    cuts = np.empty(k + 1, np.int64)
    cuts[k] = p
    j = p
    for ell in range(k, 0, -1):
        j = arg[ell - 1, j]
        cuts[ell - 1] = j
    return cuts, prev[p]


@njit(cache=True, nogil=True)
def lower_envelope(c, b):
    """Cells of the entropy-constrained assignment: codeword i costs (x - c_i)^2 + b_i; with
    ``c`` strictly ascending, each codeword wins on at most one interval, in order. Returns the
    indices of the codewords that win somewhere and the thresholds between consecutive winners
    (x <= threshold goes to the lower one)."""
    n = c.shape[0]
    st = np.empty(n, np.int64)
    top = 0
    for j in range(n):
        while top >= 1:
            i = st[top - 1]
            xij = 0.5 * (c[i] + c[j]) + (b[j] - b[i]) / (2.0 * (c[j] - c[i]))
            if top >= 2:
                h = st[top - 2]
                xhi = 0.5 * (c[h] + c[i]) + (b[i] - b[h]) / (2.0 * (c[i] - c[h]))
                if xij <= xhi:
                    top -= 1
                    continue
            break
        st[top] = j
        top += 1
    act = st[:top].copy()
    th = np.empty(max(top - 1, 0), np.float64)
    for t in range(top - 1):
        i = act[t]
        j = act[t + 1]
        th[t] = 0.5 * (c[i] + c[j]) + (b[j] - b[i]) / (2.0 * (c[j] - c[i]))
    return act, th


@njit(cache=True, nogil=True, parallel=True)
def pack_keys(bits, width):
    """Sort keys for values given by their ``width``-bit patterns (16 or 32): the pattern mapped
    to an unsigned integer in the floats' order, above the entry's index (so one unsigned sort
    orders the values and carries their positions; ties stay in position order)."""
    n = bits.shape[0]
    sign = np.uint64(1) << np.uint64(width - 1)
    mask = (np.uint64(1) << np.uint64(width)) - np.uint64(1)
    out = np.empty(n, np.uint64)
    for i in prange(n):
        b = np.uint64(bits[i])
        m = (~b) & mask if b & sign else b | sign
        out[i] = (m << np.uint64(32)) | np.uint64(i)
    return out


@njit(cache=True, nogil=True, parallel=True)
def unpack_keys(keys, width, bits_out, ws, ws_out):
    """Inverse of :func:`pack_keys` after sorting: the values' bit patterns in sorted order, and
    ``ws`` gathered into the same order."""
    sign = np.uint64(1) << np.uint64(width - 1)
    mask = (np.uint64(1) << np.uint64(width)) - np.uint64(1)
    low = np.uint64(0xFFFFFFFF)
    for i in prange(keys.shape[0]):
        key = keys[i]
        m = key >> np.uint64(32)
        bits_out[i] = m ^ sign if m & sign else (~m) & mask
        ws_out[i] = ws[key & low]


@njit(cache=True, nogil=True, parallel=True)
def gather(a, idx):
    out = np.empty(idx.shape[0], a.dtype)
    for i in prange(idx.shape[0]):
        out[i] = a[idx[i]]
    return out
