"""Kernels of ``sham_gap``: sHAM whose row indices are Huffman-coded gaps.

Within column j, the stored rows r_0 < r_1 < ... are coded as gaps r_0 + 1, r_1 - r_0, ...
(every gap >= 1), each gap a symbol of a canonical Huffman code. Values and gaps are two
streams cut into the same blocks of columns, so a block decodes both independently.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..coding.huffman import decode_block, first_bad
from ..status import CORRUPT, OK, ROW_OUT_OF_RANGE
from .compressed import ptr_at


@njit(cache=True, nogil=True)
def gaps_of(ptr, rows):
    """Per column: first row + 1, then the differences of consecutive rows."""
    gaps = np.empty(rows.shape[0], np.int64)
    for j in range(ptr.shape[0] - 1):
        prev = -1
        for t in range(ptr[j], ptr[j + 1]):
            gaps[t] = rows[t] - prev
            prev = rows[t]
    return gaps


@njit(cache=True, nogil=True, inline="always")
def _block(vw, vlo, vt, vl, vb, vf, vbits, vml, gw, glo, gt, gl, gb, gf, gbits, gml,
           ptr, pw, b, block_cols, m):
    c0 = b * block_cols
    c1 = min(m, c0 + block_cols)
    q0 = ptr_at(ptr, pw, c0)
    cnt = ptr_at(ptr, pw, c1) - q0
    vs = np.empty(cnt, np.uint32)
    gs = np.empty(cnt, np.uint32)
    ok = decode_block(vw, vlo, b, cnt, vt, vl, vb, vf, vbits, vml, vs)
    if ok:
        ok = decode_block(gw, glo, b, cnt, gt, gl, gb, gf, gbits, gml, gs)
    return c0, c1, q0, vs, gs, ok


@njit(cache=True, nogil=True, parallel=True)
def check_rows(gw, glo, gt, gl, gb, gf, gbits, gml, gaps, ptr, pw, n, m, block_cols):
    """Decode every block of gaps and check that each column's rows stay below n. Returns
    (the first failing block or -1, its status: CORRUPT or ROW_OUT_OF_RANGE)."""
    nblocks = (m + block_cols - 1) // block_cols
    bad = np.full(max(nblocks, 1), -1, np.int64)
    why = np.full(max(nblocks, 1), OK, np.int64)
    for b in prange(nblocks):
        c0 = b * block_cols
        c1 = min(m, c0 + block_cols)
        q0 = ptr_at(ptr, pw, c0)
        cnt = ptr_at(ptr, pw, c1) - q0
        gs = np.empty(cnt, np.uint32)
        if not decode_block(gw, glo, b, cnt, gt, gl, gb, gf, gbits, gml, gs):
            bad[b] = b
            why[b] = CORRUPT
            continue
        t = 0
        for j in range(c0, c1):
            r = np.int64(-1)
            for _ in range(ptr_at(ptr, pw, j + 1) - ptr_at(ptr, pw, j)):
                r += np.int64(gaps[gs[t]])
                t += 1
            if r >= n:
                bad[b] = b
                why[b] = ROW_OUT_OF_RANGE
    first = first_bad(bad)
    return first, why[first] if first >= 0 else OK


@njit(cache=True, nogil=True, parallel=True)
def decode(vw, vlo, vt, vl, vb, vf, vbits, vml, gw, glo, gt, gl, gb, gf, gbits, gml,
           cb, gaps, ptr, pw, n, m, block_cols, b_lo, b_hi, out):
    """Scatter blocks b_lo..b_hi into the zero-filled column-major ``out`` (starting at block
    b_lo's first column). Returns the first corrupt block or -1."""
    bad = np.full(max(b_hi - b_lo, 1), -1, np.int64)
    off = b_lo * block_cols * n
    for b in prange(b_lo, b_hi):
        c0, c1, q0, vs, gs, ok = _block(vw, vlo, vt, vl, vb, vf, vbits, vml, gw, glo, gt, gl,
                                        gb, gf, gbits, gml, ptr, pw, b, block_cols, m)
        if not ok:
            bad[b - b_lo] = b
            continue
        t = 0
        for j in range(c0, c1):
            r = np.int64(-1)
            base = j * n - off
            for _ in range(ptr_at(ptr, pw, j + 1) - ptr_at(ptr, pw, j)):
                r += np.int64(gaps[gs[t]])
                out[base + r] = cb[vs[t]]
                t += 1
    return first_bad(bad)


@njit(cache=True, nogil=True, parallel=True)
def rmatmul(vw, vlo, vt, vl, vb, vf, vbits, vml, gw, glo, gt, gl, gb, gf, gbits, gml,
            cbf, gaps, ptr, pw, block_cols, Xt, Yt):
    """Yt[j, :] = sum over column j's entries of Xt[row, :] * value, block by block."""
    m = Yt.shape[0]
    bsz = Xt.shape[1]
    nblocks = (m + block_cols - 1) // block_cols
    bad = np.full(max(nblocks, 1), -1, np.int64)
    for b in prange(nblocks):
        c0, c1, q0, vs, gs, ok = _block(vw, vlo, vt, vl, vb, vf, vbits, vml, gw, glo, gt, gl,
                                        gb, gf, gbits, gml, ptr, pw, b, block_cols, m)
        if not ok:
            bad[b] = b
            continue
        t = 0
        x = Xt[:, 0]
        for j in range(c0, c1):
            r = np.int64(-1)
            cnt = ptr_at(ptr, pw, j + 1) - ptr_at(ptr, pw, j)
            if bsz == 1:
                # unsigned indices: numba then emits no wraparound test per access
                ru = np.uint64(0) - np.uint64(1)
                tu = np.uint64(t)
                s = 0.0
                for _ in range(cnt):
                    ru += np.uint64(gaps[gs[tu]])
                    s += x[ru] * cbf[vs[tu]]
                    tu += np.uint64(1)
                t += cnt
                Yt[j, 0] = s
            else:
                for _ in range(cnt):
                    r += np.int64(gaps[gs[t]])
                    v = cbf[vs[t]]
                    for u in range(bsz):
                        Yt[j, u] += Xt[r, u] * v
                    t += 1
    return first_bad(bad)
