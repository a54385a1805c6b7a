"""Kernels that analyse an input matrix: distinct values and sparse structure.

All of them work on the raw bit patterns of the entries (unsigned integer views), so that -0.0,
infinities and every NaN payload are values of their own. An entry is *zero* exactly when its
bit pattern is all zeros (+0.0).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True)
def _slot(key, shift, mask, keys, used):
    h = np.int64((np.uint64(key) * _GOLDEN) >> shift)
    while used[h] and keys[h] != key:
        h = (h + 1) & mask
    return h


@njit(cache=True, nogil=True)
def distinct(values, max_k):
    """Distinct values of a 1-D unsigned array in first-seen order.

    Returns ``(uniq, counts, inverse, k)`` with ``values == uniq[inverse]``. Stops early and
    returns ``k = max_k + 1`` when there are more than ``max_k`` distinct values.
    """
    n = values.shape[0]
    logcap = 10
    cap = 1 << logcap
    keys = np.zeros(cap, values.dtype)
    ids = np.zeros(cap, np.int64)
    used = np.zeros(cap, np.bool_)
    uniq = np.zeros(cap, values.dtype)
    counts = np.zeros(cap, np.int64)
    inverse = np.empty(n, np.int32)
    k = 0
    for i in range(n):
        v = values[i]
        h = _slot(v, np.uint64(64 - logcap), cap - 1, keys, used)
        if not used[h]:
            if k == max_k:
                return uniq[:0], counts[:0], inverse[:0], max_k + 1
            used[h] = True
            keys[h] = v
            ids[h] = k
            uniq[k] = v
            k += 1
            if 2 * k > cap:  # grow and rehash
                logcap += 1
                cap = 1 << logcap
                nkeys = np.zeros(cap, values.dtype)
                nids = np.zeros(cap, np.int64)
                nused = np.zeros(cap, np.bool_)
                for s in range(k):
                    g = _slot(uniq[s], np.uint64(64 - logcap), cap - 1, nkeys, nused)
                    nused[g] = True
                    nkeys[g] = uniq[s]
                    nids[g] = s
                keys, ids, used = nkeys, nids, nused
                nu = np.zeros(cap, values.dtype)
                nu[:k] = uniq[:k]
                nc = np.zeros(cap, np.int64)
                nc[:k] = counts[:k]
                uniq, counts = nu, nc
                h = _slot(v, np.uint64(64 - logcap), cap - 1, keys, used)
        s = ids[h]
        inverse[i] = s
        counts[s] += 1
    return uniq[:k].copy(), counts[:k].copy(), inverse, k


@njit(cache=True, nogil=True, parallel=True)
def remap(inverse, rank):
    """``rank[inverse]`` in parallel, in place."""
    for i in prange(inverse.shape[0]):
        inverse[i] = rank[inverse[i]]


@njit(cache=True, nogil=True)
def compress_structure(bits):
    """CSC structure of a C-ordered (n, m) bit matrix: (indptr, row indices, value bits).

    Rows within each column come out sorted. One row-major pass to count, one to fill.
    """
    n, m = bits.shape
    counts = np.zeros(m + 1, np.int64)
    for i in range(n):
        for j in range(m):
            if bits[i, j] != 0:
                counts[j + 1] += 1
    for j in range(m):
        counts[j + 1] += counts[j]
    nnz = counts[m]
    rows = np.empty(nnz, np.int64)
    vals = np.empty(nnz, bits.dtype)
    nxt = counts[:m].copy()
    for i in range(n):
        for j in range(m):
            v = bits[i, j]
            if v != 0:
                q = nxt[j]
                rows[q] = i
                vals[q] = v
                nxt[j] = q + 1
    return counts, rows, vals


@njit(cache=True, nogil=True)
def count_nonzero_bits(bits):
    c = 0
    for v in bits.ravel():
        if v != 0:
            c += 1
    return c
