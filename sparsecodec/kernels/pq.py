"""Kernels of product quantization: k-means on sub-vectors, and lookup-table products.

Sub-vector (g, j) is rows g*d .. g*d+d-1 of column j; indices are stored column by column
(j outer, g inner), so an output's codes are contiguous. A product never rebuilds W: for each
group g a table P[g, c, :] = C[c] . x_g holds every codeword's partial dot product, and
y_j = sum_g P[g, idx[g, j], :].
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..coding.bits import read_next, reader_at
from ..coding.huffman import decode_block, first_bad


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
    dist[:] = np.inf
    tot = _closer(V, S, chosen[0], dist)
    got = 1
    while got < k and tot > 0.0:
        chosen[got] = _pick(dist, tot, u[got])
        tot = _closer(V, S, chosen[got], dist)
        got += 1
    return chosen[:got]


@njit(cache=True, nogil=True)
def _closer(V, S, c, dist):
    """Lower each row's distance to its nearest seed with seed row ``c``; returns the total."""
    tot = 0.0
    for p in range(V.shape[0]):
        s = 0.0
        for t in range(V.shape[1]):
            e = np.float64(V[p, t]) - np.float64(V[c, t])
            s += S[p, t] * e * e
        if s < dist[p]:
            dist[p] = s
        tot += dist[p]
    return tot


@njit(cache=True, nogil=True)
def _pick(w, tot, u):
    target = u * tot
    acc = 0.0
    for p in range(w.shape[0]):
        acc += w[p]
        if acc > target:
            return p
    return w.shape[0] - 1


BLOCK = 32  # outputs per task: their codes for one group sit side by side


@njit(cache=True, nogil=True, inline="always")
def _gather_block(codes, nb, P, Yt, j0):
    """Yt[j0 + jj, :] += sum_g P[g, codes[g, jj], :] for jj < nb. Group by group, the table
    row P[g] stays in L1 and the inner loop over outputs is a gather the compiler vectorizes."""
    b = Yt.shape[1]
    G = codes.shape[0]
    if b == 1:
        acc = np.zeros(BLOCK, np.float64)
        P2 = P.reshape((P.shape[0], P.shape[1]))  # contiguous rows: the gather vectorizes
        for g in range(G):
            row = P2[g]
            cg = codes[g]
            for jj in range(BLOCK):  # a constant trip count vectorizes (unused slots: code 0)
                acc[jj] += row[cg[jj]]
        for jj in range(nb):
            Yt[j0 + jj, 0] += acc[jj]
    else:
        for jj in range(nb):
            out = Yt[j0 + jj]
            for g in range(G):
                r = P[g, codes[g, jj]]
                for t in range(b):
                    out[t] += r[t]


@njit(cache=True, nogil=True, parallel=True)
def gather_packed(indices, width, G, g0, g1, P, Yt, proto):
    """Yt[j, :] += sum over groups g0..g1-1 of P[g - g0, idx[g, j], :] (packed indices, at
    most 32 bits wide), BLOCK outputs per task; codes are unpacked into an array of
    ``proto``'s dtype (uint16 when they fit: the gathers run faster)."""
    m = Yt.shape[0]
    nblk = (m + BLOCK - 1) // BLOCK
    for blk in prange(nblk):
        j0 = blk * BLOCK
        nb = min(m, j0 + BLOCK) - j0
        codes = np.zeros((g1 - g0, BLOCK), proto.dtype)  # uint16 codes when they fit
        for jj in range(nb):
            base = (j0 + jj) * G + g0
            if width == 8:  # whole bytes: code t is byte 7 - t % 8 of little-endian word t / 8
                b8 = indices.view(np.uint8)
                for g in range(g1 - g0):
                    t = base + g
                    codes[g, jj] = b8[(t & ~7) + 7 - (t & 7)]
            elif width == 16:
                b16 = indices.view(np.uint16)
                for g in range(g1 - g0):
                    t = base + g
                    codes[g, jj] = b16[(t & ~3) + 3 - (t & 3)]
            elif width:
                buf, used, p = reader_at(indices, base * width)
                for g in range(g1 - g0):
                    c, buf, used, p = read_next(indices, buf, used, p, width)
                    codes[g, jj] = c
        _gather_block(codes, nb, P, Yt, j0)


@njit(cache=True, nogil=True, parallel=True)
def gather_huffman(words, lane_off, table, limit, base, first, bits, maxlen, symbols,
                   block_cols, G, g0, g1, P, Yt):
    """As :func:`gather_packed` for Huffman-coded indices: each stream block of
    ``block_cols`` columns is decoded into a scratch first. Returns the first corrupt block
    or -1."""
    m = Yt.shape[0]
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
        codes = np.zeros((g1 - g0, BLOCK), np.uint32)
        for j0 in range(c0, c1, BLOCK):
            nb = min(c1, j0 + BLOCK) - j0
            for jj in range(nb):
                off = (j0 + jj - c0) * G
                for g in range(g0, g1):
                    codes[g - g0, jj] = symbols[scratch[off + g]]
            _gather_block(codes, nb, P, Yt, j0)
    return first_bad(bad)


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
    return first_bad(bad)


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


@njit(cache=True, nogil=True, parallel=True)
def tables_vec(book, xg, per_group, g0):
    """One input vector: P[g, c, 0] = book[cb(g), c] . xg[g] for the groups of ``xg`` (G, d),
    group g0 + g of the matrix (cb(g) = g0 + g per group, else 0). Done here rather than by
    BLAS: the products are tiny, and BLAS threads waking next to numba's cost more."""
    G, d = xg.shape
    k = book.shape[1]
    P = np.empty((G, k, 1), np.float64)
    for g in prange(G):
        cb = book[g0 + g] if per_group else book[0]
        xr = xg[g]
        for c in range(k):
            row = cb[c]
            s = 0.0
            for t in range(d):
                s += row[t] * xr[t]
            P[g, c, 0] = s
    return P
