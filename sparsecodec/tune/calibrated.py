"""Calibration-aware quantization and pruning: minimise the error of a layer's *outputs* on
real inputs, ``||X W - X Q||_F``, instead of the error of its weights.

With our convention ``y = x @ W`` (W is (inputs, outputs)), the output error of a change D of
W is ``trace(D^T H D)`` with ``H = X^T X`` (inputs x inputs), one quadratic form per output
column, all sharing H. Both algorithms below walk the inputs (rows of W) once, quantize or
prune row i, and spread its error over the rows not yet visited through the inverse of H
(the optimal-brain-surgeon update), so that later rows compensate:

- :func:`gptq` (Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ", 2022): each row rounded to the
  nearest level of a codebook (k-means levels, a uniform grid, one step per output column);
- :func:`sparsegpt` (Frantar & Alistarh, "SparseGPT", 2023): the same walk choosing which
  weights become zero, per block of rows by ``w^2 / [H^-1]_ii^2`` (unstructured, or n of
  every m consecutive inputs), optionally quantizing the survivors on the way.

Details we chose (and which the papers also use): H is damped by ``damp`` times its mean
diagonal; inputs never active on the calibration data (``H_ii = 0``) get zero weights (they
cannot change the outputs seen); the walk goes in blocks of ``block`` rows with the updates
of later blocks applied lazily (same result, faster); ``act_order`` visits rows by decreasing
``H_ii``. The result is a :class:`~sparsecodec.quantize.Quantized`, stored losslessly by any
format. Cost: one Cholesky of an n x n matrix and O(n^2 m) for the walk.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.linalg import cho_factor, cho_solve, cholesky

from ..errors import QuantizeError, ShapeError
from ..quantize.result import Quantized, check_weights, from_values

DAMP = 0.01


def hessian(X: Any) -> np.ndarray:
    """``X^T X`` in float64 for inputs X (samples, inputs) of a layer."""
    A = np.asarray(X, np.float64)
    if A.ndim != 2:
        raise ShapeError(f"calibration inputs must be (samples, inputs), got {A.shape}")
    return A.T @ A


def _inverse_factor(H: np.ndarray, damp: float) -> tuple[np.ndarray, np.ndarray]:
    """(upper Cholesky factor of the damped H^-1, mask of dead inputs)."""
    H = np.array(H, np.float64)
    dead = np.diag(H) <= 0
    H[dead, dead] = 1.0
    d = float(np.mean(np.diag(H)))
    H[np.diag_indices_from(H)] += damp * d
    try:
        inv = cho_solve(cho_factor(H), np.eye(len(H)))
        return cholesky(inv, lower=False), dead
    except np.linalg.LinAlgError as exc:
        raise QuantizeError(f"the calibration Hessian is not positive definite even with "
                            f"damp={damp}; give more calibration inputs or a larger damp"
                            ) from exc


def _check(W: Any, H: Any) -> tuple[np.ndarray, np.ndarray]:
    W = check_weights(W)
    if W.ndim != 2:
        raise ShapeError(f"W must be a matrix (inputs, outputs), got shape {W.shape}")
    H = np.asarray(H, np.float64)
    if H.shape != (W.shape[0], W.shape[0]):
        raise ShapeError(f"H must be ({W.shape[0]}, {W.shape[0]}) for W of shape {W.shape}, "
                         f"got {H.shape}")
    if not np.isfinite(H).all():
        raise QuantizeError("H has NaN or infinite entries")
    return W, H


def rounder(codebook: Any = None, step: float | None = None, steps: Any = None,
            bits: int | None = None) -> Any:
    """The per-row rounding function of a codebook (nearest of sorted levels), a uniform grid
    of ``step`` (zero included), or ``steps`` per output column, clipped to ``bits`` signed
    levels when given. Exactly one of codebook, step, steps."""
    given = sum(v is not None for v in (codebook, step, steps))
    if given != 1:
        raise QuantizeError("give exactly one of codebook=, step= and steps=")
    if codebook is not None:
        book = np.unique(np.asarray(codebook, np.float64))
        if book.size == 0 or not np.isfinite(book).all():
            raise QuantizeError("the codebook must hold finite levels")
        mids = (book[1:] + book[:-1]) / 2

        def by_book(w: np.ndarray) -> np.ndarray:
            return book[np.searchsorted(mids, w)]

        return by_book
    s = np.asarray(step if step is not None else steps, np.float64)
    if not np.isfinite(s).all() or (s <= 0).any():
        raise QuantizeError("steps must be finite and > 0")
    top = None if bits is None else 2 ** (bits - 1) - 1

    def by_grid(w: np.ndarray) -> np.ndarray:
        q = np.round(w / s)
        if top is not None:
            q = np.clip(q, -top - 1, top)
        return q * s

    return by_grid


def _walk(W: np.ndarray, H: np.ndarray, quant: Any, prune: Any, block: int, damp: float,
          act_order: bool) -> np.ndarray:
    """The shared row walk: ``prune(Wblock, diag of the factor, first row)`` -> mask of the
    block's entries to zero (or None), ``quant(row)`` -> the row rounded (or None). Returns Q
    in float64."""
    n = W.shape[0]
    order = _order(H, act_order)
    U, dead = _inverse_factor(H[np.ix_(order, order)], damp)  # of the permuted H
    Wp = W.astype(np.float64)[order]
    Wp[dead] = 0.0
    Q = np.zeros_like(Wp)
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        Wb = Wp[b0:b1].copy()
        Ub = U[b0:b1, b0:b1]
        E = np.zeros_like(Wb)
        zero = prune(Wb, np.diag(Ub), b0) if prune is not None else None
        for i in range(b1 - b0):
            w = Wb[i]
            q = w.copy() if quant is None else quant(w)
            if zero is not None:
                q = np.where(zero[i], 0.0, q)
            d = Ub[i, i]
            err = (w - q) / d
            Wb[i + 1:] -= np.outer(Ub[i, i + 1:], err)
            Q[b0 + i] = q
            E[i] = err
        Wp[b1:] -= U[b0:b1, b1:].T @ E
    Q[dead] = 0.0
    out = np.empty_like(Q)
    out[order] = Q
    return out


def _order(H: np.ndarray, act_order: bool) -> np.ndarray:
    return np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(len(H))


def _result(W: np.ndarray, Q: np.ndarray, method: str, info: dict[str, Any]) -> Quantized:
    values = Q.astype(W.dtype) + W.dtype.type(0)  # -0.0 -> +0.0
    return from_values(W, values, method, info)


def output_error(W: Any, Q: Any, H: Any) -> float:
    """``||X (W - Q)|| / ||X W||`` for inputs whose ``X^T X`` is ``H`` (0 for X W = 0)."""
    W = np.asarray(W, np.float64)
    D = W - np.asarray(Q, np.float64)
    num = float(np.einsum("ij,ij->", D, H @ D))
    den = float(np.einsum("ij,ij->", W, H @ W))
    return math.sqrt(max(num, 0.0) / den) if den > 0 else 0.0


def refit_levels(W: Any, Q: Any, H: Any, max_levels: int = 256) -> np.ndarray:
    """``Q`` with its nonzero levels moved to minimise the output error ``||X (W - Q)||``,
    every entry keeping its level (zeros stay zeros): a k-variable least-squares problem,
    ``G c = b`` with ``G_kl = tr(A_k^T H A_l)`` and ``b_k = tr(A_k^T H W)`` for the 0/1
    masks A_k of the levels. Never a larger output error than ``Q``'s. Q unchanged when it
    has more than ``max_levels`` levels (the cost is k matrix products)."""
    W = np.asarray(W, np.float64)
    Qd = np.asarray(Q)
    levels, inverse = np.unique(Qd, return_inverse=True)
    inverse = inverse.reshape(Qd.shape)
    nz = np.flatnonzero(levels != 0)
    if nz.size == 0 or nz.size > max_levels:
        return np.array(Qd)
    masks = [(inverse == k).astype(np.float64) for k in nz]
    HA = [H @ A for A in masks]
    G = np.array([[float(np.einsum("ij,ij->", A, HB)) for HB in HA] for A in masks])
    b = np.array([float(np.einsum("ij,ij->", HA_k, W)) for HA_k in HA])  # H symmetric
    c, *_ = np.linalg.lstsq(G, b, rcond=None)
    new = levels.astype(np.float64)
    new[nz] = c
    out = new[inverse].astype(Qd.dtype) + Qd.dtype.type(0)
    # rounding to the dtype (or a singular G) must not make it worse than where it started
    return out if output_error(W, out, H) <= output_error(W, Qd, H) else np.array(Qd)


def gptq(W: Any, H: Any, *, codebook: Any = None, step: float | None = None,
         steps: Any = None, bits: int | None = None, mask: Any = None, block: int = 128,
         damp: float = DAMP, act_order: bool = True) -> Quantized:
    """Quantize ``W`` (inputs, outputs) for inputs whose ``X^T X`` is ``H``, row by row with
    error feedback (see the module docstring), onto ``codebook`` levels, a ``step`` grid, or
    ``steps`` per output column (``bits``: clip to that many signed levels). ``mask`` (W's
    shape, bool): entries outside it are zero in the result (a pruning kept fixed; zeros of
    W itself are not kept unless masked out). With ``H`` a multiple of the identity this is
    nearest rounding. Deterministic."""
    W, H = _check(W, H)
    quant = rounder(codebook, step, steps, bits)
    keep = None if mask is None else np.asarray(mask, bool)
    if keep is not None and keep.shape != W.shape:
        raise ShapeError(f"mask must have W's shape {W.shape}, got {keep.shape}")

    prune = None
    if keep is not None:
        kp = keep[_order(H, act_order)]

        def prune(Wb: np.ndarray, dinv: np.ndarray, b0: int) -> np.ndarray:
            return ~kp[b0:b0 + len(Wb)]

    Q = _walk(W, H, quant, prune, block, damp, act_order)
    return _result(W, Q, "gptq", {"block": block, "damp": damp, "act_order": act_order})


def sparsegpt(W: Any, H: Any, *, sparsity: float | None = None,
              nm: tuple[int, int] | None = None, codebook: Any = None,
              step: float | None = None, steps: Any = None, bits: int | None = None,
              block: int = 128, damp: float = DAMP) -> Quantized:
    """Prune ``W`` (inputs, outputs) for inputs whose ``X^T X`` is ``H``: a fraction
    ``sparsity`` (0..1) of the entries of each block of ``block`` rows, or ``nm=(n, m)``: keep
    n of every m consecutive inputs of each output column (2:4). The error of each pruned
    (and, with a codebook/step/steps, quantized) row is fed back to the rows after it.
    Rows are visited in order (no act_order: N:M groups are consecutive inputs)."""
    W, H = _check(W, H)
    if (sparsity is None) == (nm is None):
        raise QuantizeError("give exactly one of sparsity= and nm=")
    quant = None if all(v is None for v in (codebook, step, steps)) else \
        rounder(codebook, step, steps, bits)
    if sparsity is not None:
        if not 0 <= sparsity <= 1:
            raise QuantizeError(f"sparsity must be in [0, 1], got {sparsity}")

        def prune(Wb: np.ndarray, dinv: np.ndarray, b0: int) -> np.ndarray:
            score = Wb ** 2 / dinv[:, None] ** 2
            cut = int(round(sparsity * score.size))
            zero = np.zeros(score.size, bool)
            if cut:
                zero[np.argsort(score, axis=None, kind="stable")[:cut]] = True
            return zero.reshape(score.shape)
    else:
        n, m = nm  # type: ignore[misc]
        if not (0 <= n <= m and m >= 1) or W.shape[0] % m or block % m:
            raise QuantizeError(f"nm=({n}, {m}) needs 0 <= n <= m, rows ({W.shape[0]}) and "
                                f"block ({block}) multiples of m")

        def prune(Wb: np.ndarray, dinv: np.ndarray, b0: int) -> np.ndarray:
            score = (Wb ** 2 / dinv[:, None] ** 2).reshape(-1, m, Wb.shape[1])
            rank = np.argsort(np.argsort(-score, axis=1, kind="stable"), axis=1, kind="stable")
            return (rank >= n).reshape(Wb.shape)

    Q = _walk(W, H, quant, prune, block, damp, act_order=False)
    info = {"block": block, "damp": damp, "sparsity": sparsity, "nm": nm}
    return _result(W, Q, "sparsegpt", info)
