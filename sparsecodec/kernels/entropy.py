"""Kernels of the codebook formats: index map (fixed width), HAM and sHAM (Huffman coded).

Each works column block by column block in parallel. The Huffman formats decode one block of
symbols at a time into a small scratch array (kept in L2) and consume it at once, so the dense
matrix is never formed by a dot product.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..coding.bits import read_bits, read_next, reader_at
from ..coding.huffman import decode_block, first_bad
from .compressed import columns_dot, ptr_at

# --------------------------------------------------------------------------- index map


@njit(cache=True, nogil=True, parallel=True)
def im_max_index(words, width, count):
    chunk = 1 << 15
    nchunks = (count + chunk - 1) // chunk
    best = np.zeros(max(nchunks, 1), np.int64)
    for c in prange(nchunks):
        p = c * chunk * width
        mx = 0
        for _ in range(c * chunk, min(count, (c + 1) * chunk)):
            v = np.int64(read_bits(words, p, width))
            p += width
            if v > mx:
                mx = v
        best[c] = mx
    return best.max()


@njit(cache=True, nogil=True, parallel=True)
def im_count(words, width, n, m, sym):
    """How many of the n*m packed indices equal ``sym``."""
    counts = np.zeros(max(m, 1), np.int64)
    for j in prange(m):
        if width == 0:
            counts[j] = n if sym == 0 else 0
            continue
        buf, used, p = reader_at(words, j * n * width)
        c = 0
        for _ in range(n):
            u, buf, used, p = read_next(words, buf, used, p, width)
            if u == sym:
                c += 1
        counts[j] = c
    return counts.sum()


@njit(cache=True, nogil=True, parallel=True)
def im_decode(words, width, cb, n, m, out):
    """``out`` is the flat column-major result."""
    for j in prange(m):
        base = j * n
        if width == 0:
            for i in range(n):
                out[base + i] = cb[0]
            continue
        buf, used, p = reader_at(words, base * width)
        for i in range(n):
            s, buf, used, p = read_next(words, buf, used, p, width)
            out[base + i] = cb[np.int64(s)]


@njit(cache=True, nogil=True, parallel=True)
def im_rmatmul(words, width, cbf, zero_sym, Xt, Yt):
    n = Xt.shape[0]
    for j in prange(Yt.shape[0]):
        col = np.zeros(n, np.uint32)  # the column's indices, unpacked once
        if width:
            buf, used, p = reader_at(words, j * n * width)
            for i in range(n):
                u, buf, used, p = read_next(words, buf, used, p, width)
                col[np.uint64(i)] = u
        if Xt.shape[1] == 1:
            Yt[j, 0] = _dot_codes(Xt[:, 0], col, cbf, zero_sym)
        else:
            _matmul_codes(Xt, col, cbf, zero_sym, Yt[j])


@njit(cache=True, nogil=True, inline="always")
def _matmul_codes(Xt, col, cbf, zero_sym, out):
    """``out[:] = sum_i Xt[i] * cbf[col[i]]`` over entries not coded ``zero_sym`` (skipping
    zeros saves most of the work on sparse columns; the batch is the contiguous inner loop)."""
    for u in range(out.shape[0]):
        out[u] = 0.0
    for i in range(col.shape[0]):
        s = col[i]
        if s != zero_sym:
            v = cbf[s]
            for u in range(out.shape[0]):
                out[u] += Xt[i, u] * v


@njit(cache=True, nogil=True, inline="always")
def _dot_codes(x, col, cbf, zero_sym):
    """``sum_i x[i] * cbf[col[i]]`` over the entries whose code is not ``zero_sym``.

    Zeros are skipped with a select, not a branch (no mispredicted jump per entry, and
    ``inf * 0`` never turns into NaN, as in scipy.sparse); four partial sums keep the adder
    busy instead of waiting on one chain. Indices are unsigned: no wraparound tests.
    """
    n = col.shape[0]
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    i = np.uint64(0)
    four = np.uint64(4)
    for _ in range(n // 4):
        a = col[i]
        b = col[i + np.uint64(1)]
        c = col[i + np.uint64(2)]
        d = col[i + np.uint64(3)]
        pa = x[i] * cbf[a]
        pb = x[i + np.uint64(1)] * cbf[b]
        pc = x[i + np.uint64(2)] * cbf[c]
        pd = x[i + np.uint64(3)] * cbf[d]
        s0 += pa if a != zero_sym else 0.0
        s1 += pb if b != zero_sym else 0.0
        s2 += pc if c != zero_sym else 0.0
        s3 += pd if d != zero_sym else 0.0
        i += four
    for _ in range(n % 4):
        a = col[i]
        pa = x[i] * cbf[a]
        s0 += pa if a != zero_sym else 0.0
        i += np.uint64(1)
    return (s0 + s1) + (s2 + s3)


# --------------------------------------------------------------------------- HAM


@njit(cache=True, nogil=True, parallel=True)
def ham_decode(words, lane_off, table, limit, base, first, bits, maxlen, cb, n, m, block_cols,
               b_lo, b_hi, out):
    """Decode blocks b_lo..b_hi into the flat column-major ``out`` (which starts at block
    b_lo's first column); returns a corrupt block or -1."""
    bad = np.full(max(b_hi - b_lo, 1), -1, np.int64)
    for b in prange(b_lo, b_hi):
        lo = (b - b_lo) * block_cols * n
        cnt = (min(m, (b + 1) * block_cols) - b * block_cols) * n
        scratch = np.empty(cnt, np.uint32)
        if not decode_block(words, lane_off, b, cnt, table, limit, base, first, bits, maxlen,
                            scratch):
            bad[b - b_lo] = b
            continue
        dst = out[lo:lo + cnt]
        for t in range(cnt):
            dst[np.uint64(t)] = cb[scratch[np.uint64(t)]]
    return first_bad(bad)


@njit(cache=True, nogil=True, parallel=True)
def ham_rmatmul(words, lane_off, table, limit, base, first, bits, maxlen, cbf, zero_sym,
                block_cols, Xt, Yt):
    n = Xt.shape[0]
    bsz = Xt.shape[1]
    m = Yt.shape[0]
    nblocks = (m + block_cols - 1) // block_cols
    bad = np.full(max(nblocks, 1), -1, np.int64)
    for b in prange(nblocks):
        c0 = b * block_cols
        c1 = min(m, c0 + block_cols)
        cnt = (c1 - c0) * n
        scratch = np.empty(cnt, np.uint32)
        if not decode_block(words, lane_off, b, cnt, table, limit, base, first, bits, maxlen,
                            scratch):
            bad[b] = b
            continue
        t = np.uint64(0)  # unsigned indices: no wraparound test per access
        for j in range(c0, c1):
            col = scratch[t:t + np.uint64(n)]
            if bsz == 1:
                Yt[j, 0] = _dot_codes(Xt[:, 0], col, cbf, zero_sym)
            else:
                _matmul_codes(Xt, col, cbf, zero_sym, Yt[j])
            t += np.uint64(n)
    return first_bad(bad)


# --------------------------------------------------------------------------- sHAM


@njit(cache=True, nogil=True, inline="always")
def _sham_block(words, lane_off, table, limit, base, first, bits, maxlen, ptr, pw, b, block_cols,
                m):
    """Decode the values of block ``b`` (columns c0..c1, first nonzero q0) into a fresh
    scratch array; returns (c0, c1, q0, scratch, ok)."""
    c0 = b * block_cols
    c1 = min(m, c0 + block_cols)
    q0 = ptr_at(ptr, pw, c0)
    cnt = ptr_at(ptr, pw, c1) - q0
    scratch = np.empty(cnt, np.uint32)
    ok = decode_block(words, lane_off, b, cnt, table, limit, base, first, bits, maxlen, scratch)
    return c0, c1, q0, scratch, ok


@njit(cache=True, nogil=True, parallel=True)
def sham_decode(words, lane_off, table, limit, base, first, bits, maxlen, cb, ptr, pw, idx, iw,
                n, m, block_cols, b_lo, b_hi, out):
    """Scatter the nonzeros of blocks b_lo..b_hi into the flat column-major, zero-filled
    ``out`` (which starts at block b_lo's first column)."""
    bad = np.full(max(b_hi - b_lo, 1), -1, np.int64)
    off = b_lo * block_cols * n
    for b in prange(b_lo, b_hi):
        c0, c1, q0, scratch, ok = _sham_block(words, lane_off, table, limit, base, first, bits,
                                              maxlen, ptr, pw, b, block_cols, m)
        if not ok:
            bad[b - b_lo] = b
            continue
        lo = q0
        for j in range(c0, c1):
            hi = ptr_at(ptr, pw, j + 1)
            for q in range(lo, hi):
                out[j * n - off + np.int64(read_bits(idx, q * iw, iw))] = cb[scratch[q - q0]]
            lo = hi
    return first_bad(bad)


@njit(cache=True, nogil=True, parallel=True)
def sham_rmatmul(words, lane_off, table, limit, base, first, bits, maxlen, cbf, ptr, pw, idx, iw,
                 block_cols, Xt, Yt):
    m = Yt.shape[0]
    nblocks = (m + block_cols - 1) // block_cols
    bad = np.full(max(nblocks, 1), -1, np.int64)
    for b in prange(nblocks):
        c0, c1, _, scratch, ok = _sham_block(words, lane_off, table, limit, base, first, bits,
                                             maxlen, ptr, pw, b, block_cols, m)
        if not ok:
            bad[b] = b
            continue
        acc = np.empty(Xt.shape[1], np.float64)
        columns_dot(ptr, pw, idx, iw, c0, c1, cbf, scratch, Xt, Yt, acc, True)
    return first_bad(bad)
