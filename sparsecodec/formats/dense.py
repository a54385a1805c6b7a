"""``dense``: the matrix as it is, the baseline every other format is measured against."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import widen
from ..kernels.analysis import count_nonzero_bits
from .base import (
    BFLOAT16,
    MATRIX_DTYPES,
    Encoded,
    Matrix,
    PsiBounds,
    bits_dtype,
    component,
    register,
)


@register
class Dense(Encoded):
    """One component ``values``: the (n, m) matrix in its own dtype, row-major."""

    format = "dense"
    dtypes = MATRIX_DTYPES

    def __init__(self, values: np.ndarray):
        super().__init__(values.shape, values.dtype)
        self.values = values

    @classmethod
    def _encode(cls, M: Matrix, **opts: Any) -> Dense:
        return cls(M.W.copy())

    @classmethod
    def size_of(cls, M: Matrix, **opts: Any) -> int:
        return M.W.nbytes

    @classmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        return ("values",)

    @classmethod
    def _from_parts(cls, shape, dtype, meta, comps) -> Dense:
        if dtype.name == BFLOAT16:  # stored as its bits
            return cls(component(comps, "values", cls.format, np.uint16, shape=shape)
                       .view(dtype))
        return cls(component(comps, "values", cls.format, dtype, shape=shape))

    def psi_bounds(self, M: Matrix) -> PsiBounds:
        return PsiBounds(1.0, None, 1.0)

    def components(self) -> dict[str, np.ndarray]:
        if self.dtype.name == BFLOAT16:
            return {"values": self.values.view(np.uint16)}
        return {"values": self.values}

    def layout(self) -> dict[str, tuple[str, int]]:
        return {"values": ("payload", 8 * self.values.nbytes)}

    @property
    def nnz(self) -> int:
        return int(count_nonzero_bits(self.values.view(bits_dtype(self.dtype))))

    def decode(self) -> np.ndarray:
        return self.values.copy()

    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        values = widen(self.values)
        return (Xt.T @ values).T

    # dense is the numpy baseline: products run in numpy's BLAS in the result dtype, with no
    # float64 copy of the matrix
    def rmatvec(self, x: Any) -> np.ndarray:
        x, out = self._operand(x, 1)
        return x.astype(out, copy=False) @ self.values.astype(out, copy=False)

    def rmatmul(self, X: Any) -> np.ndarray:
        X, out = self._operand(X, 2)
        return X.astype(out, copy=False) @ self.values.astype(out, copy=False)
