"""Low-rank (and sparse plus low-rank) layers: ``W ~ S + U V`` with U (n, r) and V (r, m)
quantized and each factor encoded by any format, products computed as ``(x U) V + x S``
without forming W (SlimNets; the sparse low-rank method of the sHAM authors' study).

The factors come from a truncated SVD, ``U = A sqrt(s)``, ``V = sqrt(s) B^T`` (balanced, so
one codebook size suits both), each shared among ``levels`` k-means values. With ``sparse``
> 0, that fraction of W's entries, those with the largest residual ``|W - U V|``, is kept in
a sparse S, quantized to ``levels`` values too. The factors are stored exactly; ``decode()``
is their float64 product rounded to W's dtype (a BLAS product: equal to the last bit only on
the same machine, unlike the other formats' decode).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..api import encode
from ..errors import QuantizeError, ShapeError
from ..formats.base import Encoded
from ..quantize import kmeans
from ..quantize.result import check_weights

PARTS = ("U", "V", "S")
SEPARATOR = ".lowrank."  # a low-rank layer NAME is stored as NAME.lowrank.U, .V (and .S)


def part_name(name: str, part: str) -> str:
    """The name under which part ``part`` of the low-rank layer ``name`` is stored."""
    return f"{name}{SEPARATOR}{part}"


def assemble(tensors: Any, name: str, parts: Any = None) -> LowRank:
    """The low-rank layer ``name`` from its stored parts (``parts``: which; default U, V and S
    if stored). KeyError for a missing part, ShapeError for parts that do not chain."""
    if parts is None:
        parts = [p for p in PARTS if p != "S" or part_name(name, p) in tensors]
    enc = {p: tensors[part_name(name, p)] for p in parts}
    return LowRank(enc["U"], enc["V"], enc.get("S"), enc["U"].dtype)


class LowRank:
    """``S + U V`` with each part an :class:`Encoded` matrix (S may be None)."""

    __array_ufunc__ = None  # ``X @ lr`` with X an ndarray: numpy defers to __rmatmul__

    def __init__(self, U: Encoded, V: Encoded, S: Encoded | None = None,
                 dtype: Any = np.float32):
        if U.shape[1] != V.shape[0]:
            raise ShapeError(f"U {U.shape} and V {V.shape} do not chain")
        if S is not None and S.shape != (U.shape[0], V.shape[1]):
            raise ShapeError(f"S {S.shape} is not ({U.shape[0]}, {V.shape[1]})")
        self.U, self.V, self.S = U, V, S
        self.dtype = np.dtype(dtype)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.U.shape[0], self.V.shape[1])

    @property
    def rank(self) -> int:
        return int(self.U.shape[1])

    @property
    def parts(self) -> dict[str, Encoded]:
        out = {"U": self.U, "V": self.V}
        if self.S is not None:
            out["S"] = self.S
        return out

    @property
    def nbytes(self) -> int:
        """Stored bytes of the factors (and S)."""
        return sum(p.nbytes for p in self.parts.values())

    @property
    def format(self) -> str:
        return "lowrank(" + ",".join(f"{k}:{p.format}" for k, p in self.parts.items()) + ")"

    def decode(self) -> np.ndarray:
        """The matrix ``S + U V`` in the dtype of the layer it approximates."""
        out = self.U.decode().astype(np.float64) @ self.V.decode().astype(np.float64)
        if self.S is not None:
            out += self.S.decode()
        return out.astype(self.dtype)

    def __rmatmul__(self, X: Any) -> np.ndarray:
        """``X @ (S + U V)`` as ``(X @ U) @ V + X @ S``: W is never formed."""
        X = np.asarray(X, np.float64)
        one = X.ndim == 1
        X2 = X[None] if one else X
        y = np.asarray(np.asarray(X2 @ self.U, np.float64) @ self.V, np.float64)
        if self.S is not None:
            y = y + X2 @ self.S
        return y[0] if one else y

    def rmatvec(self, x: Any) -> np.ndarray:
        return self.__rmatmul__(np.asarray(x))


def _shared(A: np.ndarray, levels: int) -> np.ndarray:
    if levels <= 0 or not np.any(A):
        return A
    return kmeans(A, levels).values


def lowrank(W: Any, rank: int, *, levels: int = 32, sparse: float = 0.0,
            format: str = "auto") -> LowRank:
    """``W ~ S + U V`` of rank ``rank`` (see the module docstring): factors shared among
    ``levels`` values each (0: kept as floats), ``sparse`` in [0, 1) the fraction of entries
    corrected in S, every part encoded in ``format`` (``auto``: its smallest)."""
    W = check_weights(W)
    if W.ndim != 2:
        raise ShapeError(f"lowrank needs a matrix, got shape {W.shape}")
    n, m = W.shape
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or \
            not 1 <= rank <= min(n, m):
        raise QuantizeError(f"rank must be an integer in [1, {min(n, m)}], got {rank!r}")
    if not 0 <= sparse < 1:
        raise QuantizeError(f"sparse must be in [0, 1), got {sparse}")
    A, s, Bt = np.linalg.svd(W.astype(np.float64), full_matrices=False)
    r = int(rank)
    root = np.sqrt(s[:r])
    U = _shared((A[:, :r] * root).astype(W.dtype), levels)
    V = _shared((root[:, None] * Bt[:r]).astype(W.dtype), levels)
    S = None
    if sparse > 0:
        R = W.astype(np.float64) - U.astype(np.float64) @ V.astype(np.float64)
        keep = int(round(sparse * W.size))
        Sd = np.zeros(W.shape, W.dtype)
        if keep:
            idx = np.argpartition(np.abs(R), W.size - keep, axis=None)[W.size - keep:]
            Sd.reshape(-1)[idx] = R.reshape(-1)[idx]
            Sd = _shared(Sd, levels)
        S = encode(Sd, format=format)
    return LowRank(encode(U, format=format), encode(V, format=format), S, W.dtype)
