"""Product quantization (PQ) training: k-means on d-long sub-vectors, plain or
importance-weighted, shared or per-group codebooks, and the conv-kernel reshaping of Stock et
al.

References: Jégou, Douze, Schmid, "Product quantization for nearest neighbor search", IEEE
TPAMI 2011; Stock, Joulin, Gribonval, Graham, Jégou, "And the bit goes down: revisiting the
quantization of neural networks", ICLR 2020; Sakthi, Yadla, Pawate, "Deep learning model
compression using network sensitivity and gradients", 2022 (gradient-weighted k-means, here
applied to sub-vectors).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import QuantizeError, ShapeError
from ..kernels import pq as kp
from .result import check_like, check_weights

TREE_ABOVE = 1024
"""Above this many codewords the codebook is trained as a two-level tree (k1 coarse x k2 fine
clusters): flat k-means would cost n*k*d per pass."""


def product_quantize(W: Any, d: int, k: int, *, importance: Any = None, mask: Any = None,
                     codebook: str = "shared", n_iter: int = 20, seed: int = 0,
                     pad: bool = False, codebook_dtype: Any = np.float32,
                     index_coding: str = "auto", max_train: int | None = None):
    """Product-quantize the (n, m) matrix ``W`` (inputs x outputs) into an encoded ``pq``
    matrix: each column's d consecutive rows of group g form a sub-vector, replaced by the
    nearest of k codewords; log2(k)/d bits per weight plus the codebook.

    - ``importance`` (W's shape, nonnegative, e.g. ``np.abs(grad)``): k-means minimises
      sum s (w - q)^2 (the GWK idea on sub-vectors): weighted assignment and per-coordinate
      weighted centroids.
    - ``mask`` (bool, W's shape, True = kept): pruned weights get no weight in training, and a
      sub-vector pruned entirely maps to a reserved all-zero codeword, so it decodes to exact
      zeros (prune by sub-vector to keep every zero exact).
    - ``codebook="per_group"``: one codebook per group (k <= m), else one shared (k <= G m).
    - k-means++ seeding on a sample, Lloyd's iterations (at most ``n_iter``) on at most
      ``max_train`` sub-vectors, empty clusters moved to the worst-served points; then every
      sub-vector is assigned (default ``max_train``: 256 per codeword, as Faiss does). Above
      1024 codewords, a two-level tree (sqrt(k) coarse clusters, each split in sqrt(k)).
    - ``pad=True`` pads n to a multiple of d with zero rows (else n % d must be 0).
    - ``codebook_dtype``: float16 or float32 (never wider than W's dtype); ``index_coding``:
      "packed", "huffman" or "auto" (the smaller).
    Deterministic for a given seed."""
    from ..formats.pq import PQ, groups_of  # the result is an encoded matrix (format layer)

    A = check_weights(W)
    if A.ndim != 2:
        raise ShapeError(f"product_quantize needs a 2-D matrix, got {A.ndim}-D (use "
                         "conv_to_matrix for convolution kernels)")
    n, m = A.shape
    d = _int("d", d, 1, 1 << 16)
    k = _int("k", k, 1, 1 << 24)
    n_iter = _int("n_iter", n_iter, 0, 1 << 20)
    max_train = _int("max_train", 256 * k if max_train is None else max_train, 1, 1 << 30)
    if codebook not in ("shared", "per_group"):
        raise QuantizeError(f"codebook must be 'shared' or 'per_group', got {codebook!r}")
    if n % d and not pad:
        raise QuantizeError(f"n = {n} rows are not a multiple of d = {d}; pass pad=True to pad "
                            "with zero rows")
    cb_dtype = np.dtype(codebook_dtype)
    if cb_dtype not in (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)):
        raise QuantizeError(f"codebook_dtype must be float16, float32 or float64, got {cb_dtype}")
    if cb_dtype.itemsize > A.dtype.itemsize:
        cb_dtype = A.dtype
    G = groups_of(n, d)
    per_group = codebook == "per_group" and G > 1
    points = m if per_group else G * m
    if k > points:
        raise QuantizeError(f"k = {k} codewords exceed the {points} sub-vectors "
                            f"{'of a group' if per_group else 'of the matrix'}")
    S = np.ones(A.shape, np.float32)
    if importance is not None:
        imp = check_like(A, importance, "importance")
        if (imp < 0).any():
            raise QuantizeError("importance must be nonnegative (pass np.abs(grad))")
        S = imp.astype(np.float32)
    reserved: np.ndarray | None = None
    if mask is not None:
        M = np.asarray(mask)
        if M.shape != A.shape or M.dtype != np.bool_:
            raise ShapeError(f"mask must be a bool array of the weights' shape {A.shape}, got "
                             f"{M.dtype} {M.shape}")
        S = np.where(M, S, 0).astype(np.float32)
        reserved = np.asarray(~_sub(M.astype(np.float32), d).any(axis=1))  # pruned entirely
        if k < 2:
            raise QuantizeError("with a mask, k must be at least 2 (one codeword is the "
                                "reserved zero)")
    V = _sub(A.astype(np.float32), d)
    SV = _sub(S, d)
    rng = np.random.default_rng(seed)
    codes = np.zeros(V.shape[0], np.int64)
    C = G if per_group else 1
    book = np.zeros((C, k, d), np.float32)
    parts = ([np.arange(g, V.shape[0], G) for g in range(G)] if per_group
             else [np.arange(V.shape[0])])
    for c, rows in enumerate(parts):
        if reserved is not None:
            free = rows[~reserved[rows]]
            kk, base = k - 1, 1
        else:
            free, kk, base = rows, k, 0
        cents, labels, _ = _train(V[free], SV[free], kk, n_iter, rng, max_train)
        book[c, base:base + cents.shape[0]] = cents
        codes[free] = labels + base
    return PQ.from_codes((n, m), A.dtype, d, book.astype(cb_dtype), codes, index_coding)


def _int(name: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise QuantizeError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
    return int(v)


def _sub(A: np.ndarray, d: int) -> np.ndarray:
    from ..formats.pq import sub_vectors

    return sub_vectors(A, d)


def _assign(V: np.ndarray, S: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest codeword of each row under the weighted distance sum_t S_t (V_t - C_t)^2, and
    that distance (one fused numba pass; no n x k distance matrix)."""
    labels = np.empty(V.shape[0], np.int64)
    dist = np.empty(V.shape[0], np.float64)
    kp.assign_weighted(V, S, np.ascontiguousarray(np.asarray(C, np.float32).T), labels, dist)
    return labels, dist


def _lloyd(V: np.ndarray, S: np.ndarray, k: int, n_iter: int, rng: np.random.Generator
           ) -> tuple[np.ndarray, int]:
    """Weighted k-means on the rows of V: k-means++ seeds (on at most 2^15 rows), then
    Lloyd's iterations with empty clusters moved to the worst-served rows."""
    n, d = V.shape
    seed_rows = rng.choice(n, size=min(n, 1 << 15), replace=False) if n > 1 << 15 \
        else np.arange(n)
    chosen = kp.kmeanspp(V[seed_rows], S[seed_rows], k, rng.random(k))
    C = V[seed_rows][chosen].astype(np.float64)
    if C.shape[0] < k:  # fewer distinct points than codewords: repeat the last
        C = np.concatenate([C, np.repeat(C[-1:], k - C.shape[0], axis=0)])
    prev = None
    done = 0
    for it in range(1, n_iter + 1):
        done = it
        labels, dist = _assign(V, S, C)
        if prev is not None and np.array_equal(labels, prev):
            break
        prev = labels
        num, den = kp.accumulate(labels, V, S, k)
        counts = np.bincount(labels, minlength=k)
        C = np.where(den > 0, num / np.where(den > 0, den, 1.0), C)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            worst = np.argsort(-dist, kind="stable")[:empty.size]
            C[empty[:worst.size]] = V[worst]
    return C, done


def _train(V: np.ndarray, S: np.ndarray, k: int, n_iter: int, rng: np.random.Generator,
           max_train: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Codebook (at most k rows) and the label of every row of V."""
    n = V.shape[0]
    if n == 0:
        return np.zeros((0, V.shape[1])), np.zeros(0, np.int64), 0
    k = min(k, n)
    train = rng.choice(n, size=max_train, replace=False) if n > max_train else np.arange(n)
    if k <= TREE_ABOVE:
        C, its = _lloyd(V[train], S[train], k, n_iter, rng)
        labels, _ = _assign(V, S, C)
        return C, labels, its
    # two-level tree: k1 coarse clusters, each split into k2 fine ones (k1 * k2 <= k)
    k1 = int(np.sqrt(k))
    k2 = k // k1
    coarse, its = _lloyd(V[train], S[train], k1, n_iter, rng)
    tl, _ = _assign(V[train], S[train], coarse)
    book = np.repeat(coarse, k2, axis=0)  # a coarse centroid fills its unused fine slots
    for c in range(k1):
        mine = train[tl == c]
        if mine.size:
            fine, _ = _lloyd(V[mine], S[mine], min(k2, mine.size), n_iter, rng)
            book[c * k2:c * k2 + fine.shape[0]] = fine
    top, _ = _assign(V, S, coarse)
    labels = np.empty(n, np.int64)
    for c in range(k1):
        mine = np.flatnonzero(top == c)
        if mine.size:
            sub, _ = _assign(V[mine], S[mine], book[c * k2:(c + 1) * k2])
            labels[mine] = c * k2 + sub
    return book, labels, its


def conv_to_matrix(kernel: Any, layout: str = "OIHW") -> np.ndarray:
    """A convolution kernel as our (inputs, outputs) matrix whose consecutive kh*kw rows are
    one input channel's patch, so that PQ with d = kh*kw quantizes whole patches (Stock et al.:
    d = 9 for 3x3). ``layout``: "OIHW" (PyTorch) or "HWIO" (Keras). Row index = (i, y, x)."""
    K = np.asarray(kernel)
    if K.ndim != 4:
        raise ShapeError(f"a convolution kernel has 4 dimensions, got {K.ndim}")
    if layout == "HWIO":
        K = K.transpose(3, 2, 0, 1)
    elif layout != "OIHW":
        raise ShapeError(f"layout must be 'OIHW' or 'HWIO', got {layout!r}")
    return np.ascontiguousarray(K.reshape(K.shape[0], -1).T)


def matrix_to_conv(W: Any, shape: tuple[int, int, int, int], layout: str = "OIHW") -> np.ndarray:
    """Inverse of :func:`conv_to_matrix`: ``shape`` is the kernel's shape in ``layout``."""
    A = np.asarray(W)
    if layout == "HWIO":
        kh, kw, i, o = shape
    elif layout == "OIHW":
        o, i, kh, kw = shape
    else:
        raise ShapeError(f"layout must be 'OIHW' or 'HWIO', got {layout!r}")
    if A.shape != (i * kh * kw, o):
        raise ShapeError(f"expected a ({i * kh * kw}, {o}) matrix for kernel {shape}, got "
                         f"{A.shape}")
    K = np.ascontiguousarray(A.T).reshape(o, i, kh, kw)
    return np.ascontiguousarray(K.transpose(2, 3, 1, 0)) if layout == "HWIO" else K
