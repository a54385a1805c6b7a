"""Kernels over compressed sparse structure with bit-packed pointers and indices.

The same kernels serve CSC (outer = columns, inner = rows) and CSR (outer = rows, inner = columns)
and the position part of sHAM. Pointers and indices are read straight from their packed words;
nothing is unpacked into a temporary array.

Products are computed as ``Yt = (X @ W).T`` from ``Xt = X.T`` (both float64, C order), so the
batch dimension is the contiguous inner loop.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ..coding.bits import read_bits, read_next, reader_at
from ..status import BAD_FIRST, BAD_LAST, NOT_MONOTONE, NOT_SORTED, OK, OUT_OF_RANGE

_COLS_PER_TASK = 16


def scatter_tasks() -> int:
    """Private accumulators for row-wise scatter products: two per thread, for balance."""
    return 2 * numba.get_num_threads()


@njit(cache=True, nogil=True, inline="always")
def ptr_at(ptr, pw, j):
    return np.int64(read_bits(ptr, j * pw, pw))


@njit(cache=True, nogil=True)
def check_pointers(ptr, pw, outer, nnz):
    """Validate packed pointers (outer + 1): 0 first, never decreasing, nnz last."""
    if pw == 0:  # nothing stored (nnz == 0): every pointer is 0; O(1), whatever ``outer`` says
        return OK if nnz == 0 else BAD_LAST
    if ptr_at(ptr, pw, 0) != 0:
        return BAD_FIRST
    prev = 0
    for j in range(1, outer + 1):
        cur = ptr_at(ptr, pw, j)
        if cur < prev:
            return NOT_MONOTONE
        if cur > nnz:
            return BAD_LAST
        prev = cur
    return OK if prev == nnz else BAD_LAST


@njit(cache=True, nogil=True)
def check_compressed(ptr, pw, outer, idx, iw, inner, nnz):
    """Validate packed pointers (outer + 1) and indices (nnz); returns an error code."""
    code = check_pointers(ptr, pw, outer, nnz)
    if code != OK or pw == 0:
        return code
    lo = 0
    for j in range(outer):
        hi = ptr_at(ptr, pw, j + 1)
        last = -1
        for q in range(lo, hi):
            i = np.int64(read_bits(idx, q * iw, iw))
            if i >= inner:
                return OUT_OF_RANGE
            if i <= last:
                return NOT_SORTED
            last = i
        lo = hi
    return OK


@njit(cache=True, nogil=True)
def check_coordinates(row, rw, col, cw, n, m, nnz):
    """Validate packed COO coordinates: in range and strictly increasing in row-major order."""
    last = -1
    for q in range(nnz):
        i = np.int64(read_bits(row, q * rw, rw))
        j = np.int64(read_bits(col, q * cw, cw))
        if i >= n or j >= m:
            return OUT_OF_RANGE
        key = i * m + j
        if key <= last:
            return NOT_SORTED
        last = key
    return OK


@njit(cache=True, nogil=True)
def has_zero(bits):
    for v in bits:
        if v == 0:
            return True
    return False


@njit(cache=True, nogil=True, parallel=True)
def decode(ptr, pw, idx, iw, vals, outer, inner, out):
    """Scatter stored values into ``out`` (flat, zero-filled; ``outer`` runs of ``inner``)."""
    for j in prange(outer):
        lo = ptr_at(ptr, pw, j)
        hi = ptr_at(ptr, pw, j + 1)
        base = j * inner
        for q in range(lo, hi):
            out[base + np.int64(read_bits(idx, q * iw, iw))] = vals[q]


@njit(cache=True, nogil=True, inline="always")
def _value(vals, sym, q, t, coded):
    """Value of stored entry ``q``: raw ``vals[q]``, or ``vals[sym[t]]`` when ``coded``."""
    if coded:
        return np.float64(vals[sym[t]])
    return np.float64(vals[q])


@njit(cache=True, nogil=True, inline="always")
def columns_dot(ptr, pw, idx, iw, c0, c1, vals, sym, Xt, Yt, acc, coded):
    """``Yt[j] = sum_q Xt[row_q] * value_q`` over the stored entries of columns c0..c1.

    ``value_q`` is ``vals[q]`` for raw values, or ``vals[sym[t]]`` when ``coded``: a codebook
    and the decoded symbols of the block that starts at column c0 (``t`` counts from there).
    ``coded`` is a constant at each call site, so each caller compiles its own loop. Indices
    are unsigned so that numba emits no negative-index wraparound per access: that alone
    halves the time of these loops.
    """
    bsz = Xt.shape[1]
    lo = ptr_at(ptr, pw, c0)
    t = np.uint64(0)
    one = np.uint64(1)
    if iw == 0:  # one row: every index is 0
        for j in range(c0, c1):
            hi = ptr_at(ptr, pw, j + 1)
            for u in range(bsz):
                Yt[j, u] = Xt[0, u] * _value(vals, sym, lo, t, coded) if hi > lo else 0.0
            t += np.uint64(hi - lo)
            lo = hi
        return
    buf, used, p = reader_at(idx, lo * iw)
    q = np.uint64(lo)
    if bsz == 1:  # a vector: keep the sum in a register, not in acc[0]
        x = Xt[:, 0]
        for j in range(c0, c1):
            hi = ptr_at(ptr, pw, j + 1)
            s = 0.0
            for _ in range(hi - lo):
                i, buf, used, p = read_next(idx, buf, used, p, iw)
                s += x[i] * _value(vals, sym, q, t, coded)
                q += one
                t += one
            Yt[j, 0] = s
            lo = hi
        return
    for j in range(c0, c1):
        hi = ptr_at(ptr, pw, j + 1)
        for u in range(bsz):
            acc[u] = 0.0
        for _ in range(hi - lo):
            i, buf, used, p = read_next(idx, buf, used, p, iw)
            v = _value(vals, sym, q, t, coded)
            q += one
            t += one
            for u in range(bsz):
                acc[u] += Xt[i, u] * v
        for u in range(bsz):
            Yt[j, u] = acc[u]
        lo = hi


@njit(cache=True, nogil=True, parallel=True)
def csc_rmatmul(ptr, pw, idx, iw, vals, Xt, Yt):
    m = Yt.shape[0]
    ntasks = (m + _COLS_PER_TASK - 1) // _COLS_PER_TASK
    for task in prange(ntasks):
        c0 = task * _COLS_PER_TASK
        c1 = min(m, c0 + _COLS_PER_TASK)
        acc = np.empty(Xt.shape[1], np.float64)
        columns_dot(ptr, pw, idx, iw, c0, c1, vals, vals, Xt, Yt, acc, False)


@njit(cache=True, nogil=True)
def private_parts(ntasks, rows, cols):
    """Zeroed private accumulators for ``ntasks`` scatter tasks, allocated outside the
    parallel kernel: inside one, ``np.zeros`` is itself a parallel loop, and under
    ``threads.for_work``'s chunk size of 1 numba schedules its every element as a chunk
    (zeroing 4 x 1536 x 512 took 1.7 s instead of 3 ms)."""
    return np.zeros((ntasks, rows, cols), np.float64)


@njit(cache=True, nogil=True, parallel=True)
def csr_rmatmul(ptr, pw, idx, iw, vals, Xt, Yt, ntasks):
    """Row-wise scatter ``Yt[col] += Xt[row] * v``, one private accumulator per task."""
    n = Xt.shape[0]
    bsz = Xt.shape[1]
    ntasks = min(n, ntasks)
    part = private_parts(ntasks, Yt.shape[0], Yt.shape[1])
    for task in prange(ntasks):
        r0 = task * n // ntasks
        r1 = (task + 1) * n // ntasks
        mine = part[task]
        for r in range(r0, r1):
            lo = ptr_at(ptr, pw, r)
            hi = ptr_at(ptr, pw, r + 1)
            for q in range(lo, hi):
                j = np.int64(read_bits(idx, q * iw, iw))
                v = np.float64(vals[q])
                for t in range(bsz):
                    mine[j, t] += Xt[r, t] * v
    sum_parts(part, Yt)


@njit(cache=True, nogil=True, parallel=True)
def coo_rmatmul(row, rw, col, cw, vals, Xt, Yt, ntasks):
    nnz = vals.shape[0]
    bsz = Xt.shape[1]
    ntasks = min(max(nnz, 1), ntasks)
    part = private_parts(ntasks, Yt.shape[0], Yt.shape[1])
    for task in prange(ntasks):
        q0 = task * nnz // ntasks
        q1 = (task + 1) * nnz // ntasks
        mine = part[task]
        for q in range(q0, q1):
            i = np.int64(read_bits(row, q * rw, rw))
            j = np.int64(read_bits(col, q * cw, cw))
            v = np.float64(vals[q])
            for t in range(bsz):
                mine[j, t] += Xt[i, t] * v
    sum_parts(part, Yt)


@njit(cache=True, nogil=True, parallel=True)
def sum_parts(part, Yt):
    """``Yt = part.sum(axis=0)``, by rows of Yt, written as loops (see
    :func:`private_parts`)."""
    m = Yt.shape[0]
    for j in prange(m):
        for t in range(Yt.shape[1]):
            s = 0.0
            for k in range(part.shape[0]):
                s += part[k, j, t]
            Yt[j, t] = s


@njit(cache=True, nogil=True, parallel=True)
def coo_decode(row, rw, col, cw, vals, m, out):
    for q in prange(vals.shape[0]):
        i = np.int64(read_bits(row, q * rw, rw))
        j = np.int64(read_bits(col, q * cw, cw))
        out[i * m + j] = vals[q]
