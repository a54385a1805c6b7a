"""Kernels of the shared-value formats CER and CSER (Wiedemann et al., IEEE TNNLS 2020).

Both store, for each row of the paper's matrix (here: each *column* of W, i.e. each output),
the positions of every value except the most frequent one, grouped by value. ``rank`` numbers
the distinct values by falling frequency; rank 0, the most frequent, is implicit. CER lists a
row's groups for ranks 1, 2, ..., up to the largest rank the row holds, empty groups included
(``padded``); CSER lists only the non-empty groups and stores each group's rank.

Arrays (0-based): ``col_index`` (the input index of each explicit entry), ``omega_ptr``
(group g holds col_index[omega_ptr[g]:omega_ptr[g+1]]), ``row_ptr`` (row j holds groups
row_ptr[j]:row_ptr[j+1]) and, for CSER, ``omega_index`` (each group's rank). Indices and
pointers are bit-packed; the kernels read them with ``read_bits``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..coding.bits import read_bits, read_next, reader_at
from ..status import (
    BAD_COL_INDEX,
    BAD_OMEGA_INDEX,
    BAD_OMEGA_PTR,
    BAD_ROW_PTR,
    EMPTY_GROUP,
    LAST_GROUP_EMPTY,
    NOT_BY_FREQUENCY,
    OK,
    REPEATED_INDEX,
    TOO_MANY_GROUPS,
    UNUSED_VALUE,
)


@njit(cache=True, nogil=True)
def group_sizes(symbols, rank, n, m, padded):
    """Pass 1 over column-major ``symbols`` (n per column): entries not of rank 0, and the
    number of groups (CER: the largest rank per column; CSER: distinct ranks per column)."""
    k = rank.shape[0]
    stamp = np.full(k, -1, np.int64)
    q = 0
    groups = 0
    for j in range(m):
        top = 0
        distinct = 0
        for i in range(j * n, (j + 1) * n):
            r = rank[symbols[i]]
            if r == 0:
                continue
            q += 1
            if stamp[r] != j:
                stamp[r] = j
                distinct += 1
                if r > top:
                    top = r
        groups += top if padded else distinct
    return q, groups


@njit(cache=True, nogil=True)
def build_groups(symbols, rank, n, m, padded, q, groups):
    """Pass 2: the unpacked ``col_index``, ``omega_ptr``, ``row_ptr`` and ``omega_index``.
    Within a column, groups go by rank and entries by input index (a stable scatter)."""
    k = rank.shape[0]
    stamp = np.full(k, -1, np.int64)
    count = np.zeros(k, np.int64)
    slot = np.zeros(k, np.int64)
    present = np.empty(k, np.int64)
    col_index = np.empty(q, np.int64)
    omega_ptr = np.empty(groups + 1, np.int64)
    omega_index = np.empty(groups, np.int64)
    row_ptr = np.empty(m + 1, np.int64)
    g = 0
    e = 0
    row_ptr[0] = 0
    for j in range(m):
        d = 0
        top = 0
        for i in range(j * n, (j + 1) * n):
            r = rank[symbols[i]]
            if r == 0:
                continue
            if stamp[r] != j:
                stamp[r] = j
                count[r] = 0
                present[d] = r
                d += 1
                if r > top:
                    top = r
            count[r] += 1
        ranks = np.sort(present[:d])
        if padded:
            for r in range(1, top + 1):
                omega_ptr[g] = e
                omega_index[g] = r
                slot[r] = e
                if stamp[r] == j:
                    e += count[r]
                g += 1
        else:
            for t in range(d):
                r = ranks[t]
                omega_ptr[g] = e
                omega_index[g] = r
                slot[r] = e
                e += count[r]
                g += 1
        for i in range(j * n, (j + 1) * n):
            r = rank[symbols[i]]
            if r == 0:
                continue
            col_index[slot[r]] = i - j * n
            slot[r] += 1
        row_ptr[j + 1] = g
    omega_ptr[groups] = e
    return col_index, omega_ptr, row_ptr, omega_index


@njit(cache=True, nogil=True)
def _group_rank(omega_index, oiw, padded, g, first):
    if padded:
        return g - first + 1
    return np.int64(read_bits(omega_index, g * oiw, oiw))


@njit(cache=True, nogil=True)
def check_groups(row_ptr, rw, omega_ptr, pw, col_index, cw, omega_index, oiw, padded,
                 n, m, k, q, groups):
    """Every structural rule of a stored CER/CSER matrix; a status (``kernels.status``), OK
    when all hold.
    O(q log q + groups + m + k) time and O(q + k) memory when n is large next to what is stored
    (a repeated column is found by sorting each row's columns), else O(q + groups + m + n + k)
    time with an O(n) mark array: a file cannot make validation cost more than it stores."""
    if np.int64(read_bits(row_ptr, 0, rw)) != 0 or \
            np.int64(read_bits(row_ptr, m * rw, rw)) != groups:
        return BAD_ROW_PTR
    if np.int64(read_bits(omega_ptr, 0, pw)) != 0 or \
            np.int64(read_bits(omega_ptr, groups * pw, pw)) != q:
        return BAD_OMEGA_PTR
    marks = n <= 4 * q + 4096
    seen = np.full(n if marks else 0, -1, np.int64)
    row_cols = np.empty(0 if marks else q, np.int64)
    freq = np.zeros(max(k, 1), np.int64)
    prev_row = np.int64(0)
    for j in range(m):
        count = 0
        r1 = np.int64(read_bits(row_ptr, (j + 1) * rw, rw))
        if r1 < prev_row or r1 > groups:
            return BAD_ROW_PTR
        if r1 - prev_row > max(k - 1, 0):
            return TOO_MANY_GROUPS
        last_rank = np.int64(0)
        for g in range(prev_row, r1):
            a = np.int64(read_bits(omega_ptr, g * pw, pw))
            b = np.int64(read_bits(omega_ptr, (g + 1) * pw, pw))
            if b < a or b > q:
                return BAD_OMEGA_PTR
            rk = _group_rank(omega_index, oiw, padded, g, prev_row)
            if padded:
                if g == r1 - 1 and b == a:
                    return LAST_GROUP_EMPTY
            else:
                if b == a:
                    return EMPTY_GROUP
                if rk <= last_rank or rk >= k:
                    return BAD_OMEGA_INDEX
                last_rank = rk
            freq[rk] += b - a
            prev_col = np.int64(-1)
            for t in range(a, b):
                c = np.int64(read_bits(col_index, t * cw, cw))
                if c <= prev_col or c >= n:
                    return BAD_COL_INDEX
                if marks:
                    if seen[c] == j:
                        return REPEATED_INDEX
                    seen[c] = j
                else:
                    row_cols[count] = c
                    count += 1
                prev_col = c
        if count > 1:
            ordered = np.sort(row_cols[:count])
            for i in range(1, count):
                if ordered[i] == ordered[i - 1]:
                    return REPEATED_INDEX
        prev_row = r1
    if k > 0:
        freq[0] = n * m - q
        for r in range(1, k):
            if freq[r] == 0:
                return UNUSED_VALUE
            if freq[r] > freq[r - 1]:
                return NOT_BY_FREQUENCY
    return OK


@njit(cache=True, nogil=True, parallel=True)
def decode(row_ptr, rw, omega_ptr, pw, col_index, cw, omega_index, oiw, padded, omega_bits,
           n, j_lo, j_hi, out):
    """Fill ``out`` (rows j_lo..j_hi-1 of the paper's matrix, i.e. columns of W, as rows of
    length n) with the implicit value, then write every group's value at its positions."""
    for jj in prange(j_hi - j_lo):
        j = j_lo + jj
        fill = omega_bits[0]
        for i in range(n):
            out[jj, i] = fill
        g0 = np.int64(read_bits(row_ptr, j * rw, rw))
        g1 = np.int64(read_bits(row_ptr, (j + 1) * rw, rw))
        for g in range(g0, g1):
            v = omega_bits[_group_rank(omega_index, oiw, padded, g, g0)]
            a = np.int64(read_bits(omega_ptr, g * pw, pw))
            b = np.int64(read_bits(omega_ptr, (g + 1) * pw, pw))
            for t in range(a, b):
                out[jj, np.int64(read_bits(col_index, t * cw, cw))] = v


@njit(cache=True, nogil=True, inline="always")
def _next_index(col_index, cw, buf, used, p, t):
    """The input index of entry t, read sequentially when the width allows (1..32 bits)."""
    if 0 < cw <= 32:
        v, buf, used, p = read_next(col_index, buf, used, p, cw)
        return np.int64(v), buf, used, p
    return np.int64(read_bits(col_index, t * cw, cw)), buf, used, p


@njit(cache=True, nogil=True, parallel=True)
def rmatmul(row_ptr, rw, omega_ptr, pw, col_index, cw, omega_index, oiw, padded, omega,
            Xt, Yt):
    """Yt[j, :] = sum_i Xt[i, :] * W[i, j], the paper's way: per group, sum the inputs first,
    then multiply once by the group's value. When the implicit value w0 is not zero, it
    contributes w0 * (sum of all inputs - sum of the grouped inputs). A row's indices are read
    with one sequential reader (its groups are contiguous)."""
    m = Yt.shape[0]
    b = Xt.shape[1]
    w0 = omega[0] if omega.shape[0] > 0 else 0.0
    total = np.zeros(b, np.float64)
    if w0 != 0.0:
        for i in range(Xt.shape[0]):
            for c in range(b):
                total[c] += Xt[i, c]
    for j in prange(m):
        partial = np.empty(b, np.float64)
        grouped = np.zeros(b, np.float64)
        acc = np.zeros(b, np.float64)
        g0 = np.int64(read_bits(row_ptr, j * rw, rw))
        g1 = np.int64(read_bits(row_ptr, (j + 1) * rw, rw))
        a = np.int64(read_bits(omega_ptr, g0 * pw, pw))
        buf, used, p = reader_at(col_index, a * cw)
        for g in range(g0, g1):
            e = np.int64(read_bits(omega_ptr, (g + 1) * pw, pw))
            if a == e:  # CER's padding: no entries (and no NaN * 0 from its value)
                continue
            v = omega[_group_rank(omega_index, oiw, padded, g, g0)]
            if b == 1:
                s = 0.0
                for t in range(a, e):
                    i, buf, used, p = _next_index(col_index, cw, buf, used, p, t)
                    s += Xt[i, 0]
                acc[0] += v * s
                grouped[0] += s
            else:
                partial[:] = 0.0
                for t in range(a, e):
                    i, buf, used, p = _next_index(col_index, cw, buf, used, p, t)
                    for c in range(b):
                        partial[c] += Xt[i, c]
                for c in range(b):
                    acc[c] += v * partial[c]
                    grouped[c] += partial[c]
            a = e
        if w0 != 0.0:
            for c in range(b):
                acc[c] += w0 * (total[c] - grouped[c])
        for c in range(b):
            Yt[j, c] = acc[c]
