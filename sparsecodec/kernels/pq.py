"""Kernels of product quantization: k-means on sub-vectors, and lookup-table products.

Sub-vector (g, j) is rows g*d .. g*d+d-1 of column j; indices are stored column by column
(j outer, g inner), so an output's codes are contiguous. A product never rebuilds W: for each
group g a table P[g, c, :] = C[c] . x_g holds every codeword's partial dot product, and
y_j = sum_g P[g, idx[g, j], :].
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..coding.bits import read_bits, read_next, reader_at
from ..coding.huffman import decode_block


@njit(cache=True, nogil=True)
def accumulate(labels, V, S, k):
    """Per cluster and coordinate: sum of S*V and of S (importance-weighted centroid parts)."""
    d = V.shape[1]
    num = np.zeros((k, d), np.float64)
    den = np.zeros((k, d), np.float64)
    for p in range(V.shape[0]):
        c = labels[p]
        for t in range(d):
            s = np.float64(S[p, t])
            num[c, t] += s * np.float64(V[p, t])
            den[c, t] += s
    return num, den


@njit(cache=True, nogil=True)
def kmeanspp(V, S, k, u):
    """k-means++ seeding on the rows of V (weighted squared distance, weights S), with the
    uniform draws ``u`` (length k) so that the caller's generator fixes the result. Returns
    the chosen row indices (fewer than k when the rows run out of distinct points)."""
    n = V.shape[0]
    d = V.shape[1]
    chosen = np.empty(k, np.int64)
    dist = np.empty(n, np.float64)
    # first: a row with probability proportional to its total weight
    w = np.empty(n, np.float64)
    tot = 0.0
    for p in range(n):
        s = 0.0
        for t in range(d):
            s += S[p, t]
        w[p] = s + 1e-300
        tot += w[p]
    chosen[0] = _pick(w, tot, u[0])
    c = chosen[0]
    tot = 0.0
    for p in range(n):
        s = 0.0
        for t in range(d):
            e = np.float64(V[p, t]) - np.float64(V[c, t])
            s += S[p, t] * e * e
        dist[p] = s
        tot += s
    got = 1
    while got < k and tot > 0.0:
        c = _pick(dist, tot, u[got])
        chosen[got] = c
        got += 1
        tot = 0.0
        for p in range(n):
            s = 0.0
            for t in range(d):
                e = np.float64(V[p, t]) - np.float64(V[c, t])
                s += S[p, t] * e * e
            if s < dist[p]:
                dist[p] = s
            tot += dist[p]
    return chosen[:got]


@njit(cache=True, nogil=True)
def _pick(w, tot, u):
    target = u * tot
    acc = 0.0
    for p in range(w.shape[0]):
        acc += w[p]
        if acc > target:
            return p
    return w.shape[0] - 1


@njit(cache=True, nogil=True, parallel=True)
def argmin_rows(D):
    """Index of the smallest entry of each row (first on ties) and its value."""
    n = D.shape[0]
    idx = np.empty(n, np.int64)
    val = np.empty(n, np.float64)
    for p in prange(n):
        best = D[p, 0]
        bi = 0
        for c in range(1, D.shape[1]):
            if D[p, c] < best:
                best = D[p, c]
                bi = c
        idx[p] = bi
        val[p] = best
    return idx, val


@njit(cache=True, nogil=True, parallel=True)
def gather_packed(indices, width, G, g0, g1, P, Yt):
    """Yt[j, :] += sum over groups g0..g1-1 of P[g - g0, idx[g, j], :] (packed indices)."""
    m = Yt.shape[0]
    b = Yt.shape[1]
    for j in prange(m):
        start = (j * G + g0) * width
        buf, used, p = reader_at(indices, start)
        if b == 1:
            s = 0.0
            for g in range(g1 - g0):
                if 0 < width <= 32:
                    c, buf, used, p = read_next(indices, buf, used, p, width)
                else:
                    c = read_bits(indices, start + g * width, width)
                s += P[g, np.int64(c), 0]
            Yt[j, 0] += s
        else:
            for g in range(g1 - g0):
                if 0 < width <= 32:
                    c, buf, used, p = read_next(indices, buf, used, p, width)
                else:
                    c = read_bits(indices, start + g * width, width)
                row = P[g, np.int64(c)]
                for t in range(b):
                    Yt[j, t] += row[t]


@njit(cache=True, nogil=True, parallel=True)
def gather_huffman(words, lane_off, table, limit, base, first, bits, maxlen, symbols,
                   block_cols, G, g0, g1, P, Yt):
    """As :func:`gather_packed` for Huffman-coded indices: each block of ``block_cols``
    columns is decoded into a small scratch first. Returns the first corrupt block or -1."""
    m = Yt.shape[0]
    b = Yt.shape[1]
    nblocks = (m + block_cols - 1) // block_cols
    bad = np.full(max(nblocks, 1), -1, np.int64)
    for blk in prange(nblocks):
        c0 = blk * block_cols
        c1 = min(m, c0 + block_cols)
        scratch = np.empty((c1 - c0) * G, np.uint32)
        if not decode_block(words, lane_off, blk, (c1 - c0) * G, table, limit, base, first,
                            bits, maxlen, scratch):
            bad[blk] = blk
            continue
        for j in range(c0, c1):
            off = (j - c0) * G
            for g in range(g0, g1):
                row = P[g - g0, np.int64(symbols[scratch[off + g]])]
                for t in range(b):
                    Yt[j, t] += row[t]
    for blk in range(nblocks):
        if bad[blk] >= 0:
            return blk
    return -1


@njit(cache=True, nogil=True, parallel=True)
def unpack_huffman(words, lane_off, table, limit, base, first, bits, maxlen, symbols,
                   block_starts, out):
    """All codes of a Huffman-coded index stream, as codeword indices. Returns the first
    corrupt block or -1."""
    nblocks = block_starts.shape[0] - 1
    bad = np.full(max(nblocks, 1), -1, np.int64)
    for blk in prange(nblocks):
        lo = block_starts[blk]
        cnt = block_starts[blk + 1] - lo
        scratch = np.empty(cnt, np.uint32)
        if not decode_block(words, lane_off, blk, cnt, table, limit, base, first, bits,
                            maxlen, scratch):
            bad[blk] = blk
            continue
        for t in range(cnt):
            out[lo + t] = symbols[scratch[t]]
    for blk in range(nblocks):
        if bad[blk] >= 0:
            return blk
    return -1


@njit(cache=True, nogil=True, parallel=True)
def assign_weighted(V, S, Ct, labels, dist):
    """Nearest codeword of each row of V under sum_t S[p, t] (V[p, t] - Ct[t, c])^2 (Ct is the
    codebook transposed, d x k, so the inner loop runs over codewords and vectorizes), and
    that distance. Ties go to the lower codeword. Fixed chunks: the result never depends on
    the thread count."""
    n, d = V.shape
    k = Ct.shape[1]
    chunk = 512
    nchunks = (n + chunk - 1) // chunk
    for ch in prange(nchunks):
        acc = np.empty(k, np.float32)
        for p in range(ch * chunk, min(n, (ch + 1) * chunk)):
            acc[:] = 0.0
            for t in range(d):
                s = S[p, t]
                v = V[p, t]
                row = Ct[t]
                for c in range(k):
                    e = v - row[c]
                    acc[c] += s * e * e
            best = acc[0]
            bi = 0
            for c in range(1, k):
                if acc[c] < best:
                    best = acc[c]
                    bi = c
            labels[p] = bi
            dist[p] = best
