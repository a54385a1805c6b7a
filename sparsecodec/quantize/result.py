"""The one result type of every quantizer, the input checks they share, and the finishing pass
that turns labels into the quantized array."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..coding.information import entropy
from ..errors import DTypeError, QuantizeError, ShapeError
from ..kernels import quantize as kq

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
MAX_LEVELS = 1 << 20


@dataclass(frozen=True, eq=False)
class Quantized:
    """A quantized weight array.

    - ``values``: same shape and dtype as the input; every nonzero entry is exactly one of
      ``codebook``'s values and entries that were zero (pruned) stay +0.0;
    - ``codebook``: the distinct values taken, ascending, in the input's dtype (at most k; levels
      no weight chose are dropped). A level may be 0.0 (e.g. symmetric uniform with odd k): the
      weights on it become zeros;
    - ``labels``: int32, same shape; ``values == codebook[labels]`` where ``labels >= 0``, -1 where
      the input was zero;
    - ``mse``: mean over *all* entries of (input - values)^2, in float64;
    - ``entropy``: zero-order entropy of the entries of ``values``, bits per entry (zeros
      included); ``entropy_nonzero``: of the codebook labels of the nonzero input entries, bits
      per nonzero;
    - ``method`` and ``info`` (iterations, convergence, lambda, ... as the method reports).
    """

    values: np.ndarray
    codebook: np.ndarray
    labels: np.ndarray
    mse: float
    entropy: float
    entropy_nonzero: float
    method: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of levels in the codebook."""
        return int(self.codebook.shape[0])

    @property
    def mask(self) -> np.ndarray:
        """True where the input was nonzero (the weights that were quantized)."""
        return self.labels >= 0

    def __repr__(self) -> str:
        return (f"Quantized(method={self.method!r}, shape={self.values.shape}, "
                f"dtype={self.values.dtype}, k={self.k}, mse={self.mse:.4g}, "
                f"entropy={self.entropy:.4g} bits/weight)")


def check_weights(W: Any, name: str = "W") -> np.ndarray:
    """The weights as an ndarray of float16/32/64 with finite entries, or a clear error."""
    A = np.asarray(W)
    if A.dtype.kind == "f" and not A.dtype.isnative:  # e.g. big-endian from a file: same values
        A = A.astype(A.dtype.newbyteorder("="))
    if A.dtype not in FLOAT_DTYPES:
        raise DTypeError(f"{name} must be float16, float32 or float64, got {A.dtype}")
    finite = np.isfinite(A)
    if not finite.all():
        bad = A.size - int(np.count_nonzero(finite))
        raise QuantizeError(f"{name} has {bad} NaN or infinite entries; quantizers need finite "
                            "weights")
    return np.ascontiguousarray(A)


def kernel_input(A: np.ndarray) -> np.ndarray:
    """The flat entries as the numba kernels read them: float16 (which numba lacks) widened to
    float32, exactly."""
    flat = A.reshape(-1)
    return flat.astype(np.float32) if flat.dtype == np.float16 else flat


def check_k(k: Any, minimum: int = 1) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise QuantizeError(f"k must be an integer, got {k!r}")
    if not minimum <= int(k) <= MAX_LEVELS:
        raise QuantizeError(f"k must be in [{minimum}, {MAX_LEVELS}], got {k}")
    return int(k)


def check_like(W: np.ndarray, A: Any, name: str) -> np.ndarray:
    """``A`` as a finite float64 array of W's shape (gradients, importance scores)."""
    B = np.asarray(A)
    if B.shape != W.shape:
        raise ShapeError(f"{name} must have the weights' shape {W.shape}, got {B.shape}")
    if B.dtype.kind not in "fiu":
        raise DTypeError(f"{name} must be a real numeric array, got {B.dtype}")
    B = B.astype(np.float64, copy=False)
    if not np.isfinite(B).all():
        raise QuantizeError(f"{name} has NaN or infinite entries")
    return B


def check_levels_available(k: int, distinct: int, exact_k: bool) -> None:
    if exact_k and k > distinct:
        raise QuantizeError(f"k={k} levels asked exactly, but the weights have only {distinct} "
                            "distinct nonzero values")


def from_labels(W: np.ndarray, labels: np.ndarray, counts: np.ndarray, levels: np.ndarray,
                method: str, info: dict[str, Any] | None = None) -> Quantized:
    """Build the result from per-entry ``labels`` into float64 ``levels`` (ascending) and their
    ``counts`` (last slot: zeros), as the assignment kernels return them.

    The levels are cast to W's dtype first; levels that the cast merges, and levels no weight
    chose, are dropped, so that the codebook is exactly the set of values taken."""
    nlev = levels.shape[0]
    cast = levels.astype(W.dtype)
    used = counts[:nlev] > 0
    keep = np.flatnonzero(used)
    book, inverse = np.unique(cast[keep], return_inverse=True)
    remap = np.full(max(nlev, 1), -1, np.int32)
    remap[keep] = inverse.astype(np.int32)
    new_counts = np.bincount(inverse, weights=counts[keep], minlength=book.size).astype(np.int64)
    wide = W.dtype == np.float16  # numba has no float16: work in float32, exactly
    values = np.empty(W.shape, np.float32 if wide else W.dtype)
    sse = kq.finish(kernel_input(W), labels.reshape(-1), remap,
                    book.astype(values.dtype), values.reshape(-1))
    if wide:
        values = values.astype(np.float16)
    zeros = int(counts[-1])
    is_zero = book == 0
    value_counts = np.append(new_counts[~is_zero], zeros + int(new_counts[is_zero].sum()))
    return Quantized(
        values=values, codebook=book, labels=labels, mse=float(sse / max(W.size, 1)),
        entropy=entropy(value_counts), entropy_nonzero=entropy(new_counts),
        method=method, info=dict(info or {}))


def from_values(W: np.ndarray, values: np.ndarray, method: str,
                info: dict[str, Any] | None = None) -> Quantized:
    """Build the result from the quantized array itself (a quantizer that computes each value,
    as ``integer`` and ``dependent`` do, rather than labels into levels): the codebook is the
    distinct values of W's nonzero entries, the labels index it (-1 where W is 0)."""
    mask = (W != 0).reshape(-1)
    book, inverse = np.unique(values.reshape(-1)[mask], return_inverse=True)
    labels = np.full(W.size, -1, np.int32)
    labels[mask] = inverse
    counts = np.bincount(inverse, minlength=book.size)
    zeros = int(W.size - mask.sum()) + int(counts[book == 0].sum())
    err = W.astype(np.float64) - values.astype(np.float64)
    return Quantized(
        values=values, codebook=book, labels=labels.reshape(W.shape),
        mse=float(np.mean(err * err)) if W.size else 0.0,
        entropy=entropy(np.append(counts[book != 0], zeros)),
        entropy_nonzero=entropy(counts), method=method, info=dict(info or {}))


def by_thresholds(W: np.ndarray, thresholds: np.ndarray, levels: np.ndarray, method: str,
                  info: dict[str, Any] | None = None) -> Quantized:
    """Nearest-cell quantization: nonzero x gets ``levels[i]`` with i = number of ``thresholds``
    strictly below x (x equal to a threshold goes to the lower cell)."""
    labels = np.empty(W.shape, np.int32)
    counts = kq.assign(kernel_input(W), np.ascontiguousarray(thresholds, np.float64),
                       labels.reshape(-1))
    return from_labels(W, labels, counts, np.asarray(levels, np.float64), method, info)
